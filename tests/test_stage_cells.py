"""The stage cells CI runs, and one stage run alone by papermill (issue 20, parts 5 and 6).

`nbdev_test` skips every `#| pipeline` cell (settings.ini `tst_flags`): it runs a notebook's tests, not the stage.
The stage cells run in pytest: the session's `sample_build` executes every task of pipeline.yaml, and the tests here
prove that a typo in a stage's run cell fails (naming the cell), and that `nepse-mlops params TASK` + papermill runs one
stage alone, under the run lock, recorded in the run ledger.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path
import yaml
from conftest import BIN, PINNED, QUIET, ROOT

ENV = {k: v for k, v in (os.environ | QUIET).items() if k != 'NEPSE_MLOPS_RUN_PGID'}   # not inside a `nepse-mlops run`


def _sets(tmp: Path) -> list[str]:
    return ['--set', f'products={tmp}/products', '--set', f'reports={tmp}/reports',
            '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', *PINNED, '--set', 'sample=true']


def params(tmp: Path, task: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'params', task, '-o', str(out), *_sets(tmp)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def papermill(nb: Path, out: Path, p: Path) -> subprocess.CompletedProcess:
    cmd = [str(BIN / 'papermill'), str(nb), str(out), '-f', str(p), '-k', 'python3', '--no-progress-bar']
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


def is_stage_cell(cell: dict) -> bool:
    return ''.join(cell['source']).startswith('#| pipeline')


def runs(tmp: Path) -> list[dict]:
    return [json.loads(l) for l in (tmp / 'products/runs.jsonl').read_text().splitlines() if l.strip()]


def test_sample_build_executed_every_stage_cell(sample_build):
    "The stage cells nbdev_test skips are exactly what the sample build runs: each executed, none with an error."
    tmp, _ = sample_build
    spec = yaml.safe_load((ROOT / 'pipeline.yaml').read_text())
    checked = 0
    for t in spec['tasks']:
        src = json.loads((ROOT / t['source']).read_text())
        if not any(is_stage_cell(c) for c in src['cells']): continue
        done = json.loads((tmp / 'reports' / Path(t['source']).name).read_text())
        cells = [c for c in done['cells'] if c['cell_type'] == 'code' and is_stage_cell(c)]
        assert cells, t['name']
        for c in cells:
            assert c.get('execution_count') is not None, (t['name'], ''.join(c['source'])[:200])
            assert not [o for o in c.get('outputs', []) if o.get('output_type') == 'error'], t['name']
        checked += 1
    assert checked >= 8   # ingest ... monitor and replay


def test_typo_in_a_stage_cell_fails(sample_build, tmp_path):
    "A typo in 03_features' run cell (nbdev_test: Success): the stage fails on that cell; the unmodified one passes."
    tmp, _ = sample_build
    shutil.copytree(tmp / 'products/validate', tmp_path / 'products/validate')   # the task's upstream, as built
    p = tmp_path / 'features.yaml'
    res = params(tmp_path, 'features', p)
    assert res.returncode == 0 and 'papermill' in res.stdout, res.stdout + res.stderr
    given = yaml.safe_load(p.read_text())
    assert given['upstream']['validate']['prices'] == f'{tmp_path}/products/validate/prices.parquet'

    nb = json.loads((ROOT / 'nbs/03_features.ipynb').read_text())
    run_cell = next(c for c in nb['cells'] if is_stage_cell(c) and 'features_stage(' in ''.join(c['source']))
    run_cell['source'] = [l.replace('res = features_stage(', 'res = featurs_stage(') for l in run_cell['source']]
    assert any('featurs_stage(' in l for l in run_cell['source'])
    broken = tmp_path / '03_features_broken.ipynb'; broken.write_text(json.dumps(nb))

    bad = papermill(broken, tmp_path / 'broken_out.ipynb', p)
    assert bad.returncode != 0, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert "NameError: name 'featurs_stage' is not defined" in bad.stderr, bad.stderr[-3000:]
    done = json.loads((tmp_path / 'broken_out.ipynb').read_text())
    failed = [c for c in done['cells'] if any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
    assert len(failed) == 1 and ''.join(failed[0]['source']) == ''.join(run_cell['source'])   # names that cell
    last = runs(tmp_path)[-1]
    assert (last['trigger'], last['task'], last['status'], last['exit_code']) == ('papermill', 'features', 'failed', 1)
    assert 'featurs_stage' in last['error']

    good = papermill(ROOT / 'nbs/03_features.ipynb', tmp_path / 'good_out.ipynb', p)
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-3000:]
    assert (tmp_path / 'products/features/features.parquet').stat().st_size > 0
    assert [(r['task'], r['status']) for r in runs(tmp_path)] == [('features', 'failed'), ('features', 'success')]

    hold = ("import sys, time; from nepse_mlops.runs import run_lock\n"
            "with run_lock(sys.argv[1], 'nepse-mlops run (a test)'):\n    print('locked', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, '-c', hold, str(tmp_path / 'products')], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        busy = papermill(ROOT / 'nbs/03_features.ipynb', tmp_path / 'busy_out.ipynb', p)   # another run holds the lock
    finally: holder.kill(); holder.wait()
    assert busy.returncode != 0, busy.stderr[-2000:]
    assert 'Task features was not run' in busy.stderr and 'nepse-mlops run (a test)' in busy.stderr, busy.stderr[-2000:]
    assert len(runs(tmp_path)) == 2   # refused: not run, not recorded


def test_params_then_papermill_runs_monitor_alone(sample_build, tmp_path):
    "`nepse-mlops params monitor -o p.yaml`, `papermill nbs/07_monitor.ipynb out.ipynb -f p.yaml`: exit 0, in history."
    tmp, _ = sample_build
    work = tmp_path / 'copy'                                   # the session's build stays as it was for the other tests
    shutil.copytree(tmp, work, ignore=shutil.ignore_patterns('.run.lock'))
    p = tmp_path / 'p.yaml'
    res = params(work, 'monitor', p)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"nbs/07_monitor.ipynb {work}/reports/07_monitor.ipynb -f {p} -k python3" in res.stdout, res.stdout
    given = yaml.safe_load(p.read_text())
    assert 'predict' in given['upstream'] and given['product']['summary'] == f'{work}/products/monitor/summary.json'
    before = {k: Path(v).stat().st_mtime_ns for k, v in given['product'].items() if k not in ('nb', 'nb_html')}
    n_runs = len(runs(work))

    out = papermill(ROOT / 'nbs/07_monitor.ipynb', tmp_path / 'out.ipynb', p)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    after = {k: Path(given['product'][k]).stat().st_mtime_ns for k in before}
    assert all(after[k] > before[k] for k in before), (before, after)   # every monitor product rewritten
    rec = runs(work)[-1]
    assert len(runs(work)) == n_runs + 1
    assert (rec['trigger'], rec['task'], rec['status'], rec['exit_code']) == ('papermill', 'monitor', 'success', 0)
    assert not (work / 'products/.run_current.json').exists() and (work / 'products/.run.lock').read_text() == ''

    hist = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'history', '--set',
                           f'products={work}/products'],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    line = hist.stdout.splitlines()[-1].split()
    assert hist.returncode == 0 and line[:2] == [rec['run_id'], 'papermill'] and 'monitor' in line, hist.stdout
