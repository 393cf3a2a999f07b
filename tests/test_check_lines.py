"tools/check_lines.py: every line over 120 characters in notebook code cells and Python files, by file and line."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_check_lines_lists_long_lines(tmp_path):
    "A long line in a code cell is found at its line in the .ipynb; markdown cells and short lines are not."
    (tmp_path / 'tools').mkdir(); (tmp_path / 'nbs').mkdir(); (tmp_path / 'tests').mkdir()
    (tmp_path / 'tools' / 'check_lines.py').write_text((ROOT / 'tools' / 'check_lines.py').read_text())
    nb = {'cells': [{'cell_type': 'markdown', 'id': 'a', 'metadata': {}, 'source': ['x' * 200]},
                    {'cell_type': 'code', 'execution_count': None, 'id': 'b', 'metadata': {}, 'outputs': [],
                     'source': ['ok = 1\n', 'y = ' + '1' * 130]}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path / 'nbs' / '01_x.ipynb').write_text(json.dumps(nb, indent=1))
    (tmp_path / 'tests' / 'test_x.py').write_text('a = 1\n' + '# ' + 'z' * 121 + '\n')
    run = lambda: subprocess.run([sys.executable, 'tools/check_lines.py'], cwd=tmp_path, capture_output=True, text=True)
    r = run()
    assert (r.returncode, r.stdout.splitlines()) == (1, ['nbs/01_x.ipynb:19: 134 chars',
                                                         'tests/test_x.py:2: 123 chars'])
    (tmp_path / 'tests' / 'test_x.py').write_text('a = 1\n'); nb['cells'].pop()
    (tmp_path / 'nbs' / '01_x.ipynb').write_text(json.dumps(nb, indent=1))
    assert (run().returncode, run().stdout) == (0, '')


def test_check_lines_leaves_nbdev_all_alone(tmp_path):
    "nbdev wraps `__all__` at 120 and then prefixes `__all__ = `: no notebook line makes it, so it is not reported."
    (tmp_path / 'tools').mkdir(); (tmp_path / 'nepse_mlops').mkdir()
    (tmp_path / 'tools' / 'check_lines.py').write_text((ROOT / 'tools' / 'check_lines.py').read_text())
    names = ', '.join(f"'name_{i:03d}'" for i in range(11))
    (tmp_path / 'nepse_mlops' / 'm.py').write_text(f"__all__ = [{names},\n           'last']\nx = '{'y' * 120}'\n")
    r = subprocess.run([sys.executable, 'tools/check_lines.py'], cwd=tmp_path, capture_output=True, text=True)
    assert len(f"__all__ = [{names},") > 120 and r.stdout.splitlines() == ['nepse_mlops/m.py:3: 126 chars'], r.stdout
