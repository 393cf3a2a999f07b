"""Operations around the DAG: one run at a time (exit 75, --wait), the run ledger and `history`, and the no-op that
answers without Ploomber — checked against Ploomber's own verdict on: unchanged, input touched, input edited, setting
changed, notebook edited, product deleted. One build of a small market written as CSV files (a real-data layout)."""
import json, os, shutil, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN, QUIET

SETTINGS = {'today': '2026-08-22', 'test_sessions': 40, 'half_life': None, 'replay_sessions': 30,
            'n_windows': 4}   # CI time: not the real-data profile's 10 windows (nbs/10_cli tests that it applies)


def cli(root, tmp, *args, timeout=1500):
    base = [str(BIN / 'nepse-mlops'), '--root', str(root)]
    sets = [a for k, v in ({'products': f'{tmp}/products', 'reports': f'{tmp}/reports',
                            'tracking_uri': f'sqlite:///{tmp}/products/mlflow.db'}
                           | SETTINGS).items() for a in ('--set', f"{k}={'null' if v is None else v}")]
    cmd = base + list(args[:1]) + (sets if args[:1] in (('run',), ('history',), ('status',)) else []) + list(args[1:])
    return subprocess.run(cmd, cwd=root, env=os.environ | QUIET, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def ops(tmp_path_factory):
    "A copy of the project (so a test may edit a notebook), a market written as CSV files, and one cold build."
    from nepse_mlops.synthetic import make_market, write_market
    tmp = tmp_path_factory.mktemp('ops')
    root = tmp / 'repo'; root.mkdir()
    shutil.copytree(ROOT / 'nbs', root / 'nbs')
    shutil.copy(ROOT / 'pipeline.yaml', root)
    shutil.copy(ROOT / 'env.yaml', root)
    shutil.copytree(ROOT / 'data', root / 'data')   # the shipped sector map env.yaml's `sectors` names
    mk, _ = make_market(n_symbols=12, start='2023-01-01', end='2026-08-21', seed=7)
    write_market(mk, tmp / 'data')
    res = cli(root, tmp, 'run', '--data', str(tmp / 'data'), '--trigger', 'ci')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return root, tmp


def settings(tmp, **extra):
    return {'products': f'{tmp}/products', 'reports': f'{tmp}/reports',
            'tracking_uri': f'sqlite:///{tmp}/products/mlflow.db',
            'data': str(tmp / 'data')} | SETTINGS | extra


def verdicts(root, tmp, **extra):
    "(ours: the run id it is up to date since, or None; Ploomber's: the tasks it would run)."
    from nepse_mlops.cli import noop_verdict, why_outdated, resolve_settings
    from nepse_mlops.core import load_env
    s = settings(tmp, **extra)
    ours = noop_verdict(root, dict(s))
    theirs = why_outdated(root, resolve_settings(load_env(root), dict(s)))
    return (ours or {}).get('run_id'), [t['task'] for t in theirs]


def test_noop_answers_at_once_and_agrees_with_ploomber(ops):
    root, tmp = ops
    res = cli(root, tmp, 'run', '--data', str(tmp / 'data'))
    assert res.returncode == 0 and 'up to date since run' in res.stdout, res.stdout + res.stderr
    last = json.loads((tmp / 'products/runs.jsonl').read_text().splitlines()[-1])
    assert last['status'] == 'noop' and last['up_to_date_since'] in res.stdout
    since, tasks = verdicts(root, tmp)
    assert since == last['up_to_date_since'] and tasks == []                     # unchanged: both say nothing to do


def test_touched_input_is_still_a_noop(ops):
    root, tmp = ops
    f = sorted((tmp / 'data').rglob('*.csv'))[0]
    os.utime(f, (time.time() + 5, time.time() + 5))
    since, tasks = verdicts(root, tmp)
    assert since is not None and tasks == []                                    # content unchanged: neither re-runs


def test_edited_input_setting_and_notebook_are_not(ops):
    root, tmp = ops
    f = sorted((tmp / 'data').rglob('*.csv'))[0]
    text = f.read_text(); lines = text.splitlines(keepends=True)
    # one digit of the latest open
    cells = lines[1].split(','); cells[2] = cells[2][:-1] + str((int(cells[2][-1]) + 1) % 10)
    lines[1] = ','.join(cells); f.write_text(''.join(lines))
    since, tasks = verdicts(root, tmp)
    # a byte edited: ingest and everything after it
    assert since is None and tasks[:1] == ['ingest'] and 'dashboard' in tasks
    f.write_text(text)
    assert verdicts(root, tmp) [1] == []                                          # the same bytes again: nothing to do
    since, tasks = verdicts(root, tmp, horizon=2)
    # a setting: from the task that reads it
    assert since is None and 'features' in tasks and 'ingest' not in tasks
    nb = root / 'nbs/06_predict.ipynb'; original = nb.read_bytes()
    doc = json.loads(original)
    cell = next(c for c in doc['cells'] if c['cell_type'] == 'code'
                and ''.join(c['source']).startswith('#| pipeline\nfrom nepse_mlops.predict'))
    cell['source'].append('\n# edited')
    nb.write_text(json.dumps(doc, indent=1))
    since, tasks = verdicts(root, tmp)
    # a notebook: that task and what follows
    assert since is None and tasks[0] == 'predict' and 'train' not in tasks
    nb.write_bytes(original)
    assert verdicts(root, tmp)[0] is not None


def test_deleted_product_is_not(ops):
    root, tmp = ops
    (tmp / 'products/predict/summary.json').unlink()
    since, tasks = verdicts(root, tmp)
    assert since is None and tasks[0] == 'predict'
    res = cli(root, tmp, 'run', '--data', str(tmp / 'data'))                  # the next run rebuilds exactly that
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    ran = json.loads((tmp / 'products/runs.jsonl').read_text().splitlines()[-1])['tasks']
    assert {k for k, v in ran.items() if v['ran']} == {'predict', 'monitor', 'dashboard'}
    assert (tmp / 'products/predict/summary.json').exists()


def test_one_run_at_a_time(ops):
    root, tmp = ops
    hold = ("import sys, time; from nepse_mlops.runs import run_lock\nwith run_lock(sys.argv[1], 'nepse-mlops run (a "
            "long one)'):\n    print('locked', flush=True); time.sleep(float(sys.argv[2]))")
    p = subprocess.Popen([sys.executable, '-c', hold, str(tmp / 'products'), '60'], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'locked'
    try:
        t0 = time.time(); res = cli(root, tmp, 'run', '--data', str(tmp / 'data'))
        assert (res.returncode == 75 and f'pid {p.pid}' in res.stderr and 'a long one' in res.stderr
                and '--wait' in res.stderr), res.stderr
        rp = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(root), 'replay', '--from', '2026-08-01', '--set',
                             f'products={tmp}/products'],
                            capture_output=True, text=True, env=os.environ | QUIET, timeout=120)
        assert rp.returncode == 75, rp.stderr
    finally: p.kill(); p.wait()
    p = subprocess.Popen([sys.executable, '-c', hold, str(tmp / 'products'), '3'], stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    res = cli(root, tmp, 'run', '--data', str(tmp / 'data'), '--wait')          # queued behind it, then nothing to do
    p.wait()
    assert res.returncode == 0 and 'up to date since run' in res.stdout, res.stdout + res.stderr


def test_history_lists_every_run(ops):
    root, tmp = ops
    res = cli(root, tmp, 'history')
    rows = res.stdout.splitlines()
    assert rows[0].split()[:4] == ['run', 'trigger', 'started', 'status']
    runs = [json.loads(l) for l in (tmp / 'products/runs.jsonl').read_text().splitlines()]
    assert len(rows) - 1 == min(15, len(runs)) and runs[0]['trigger'] == 'ci' and runs[0]['status'] == 'success'
    assert {r['status'] for r in runs} >= {'success', 'noop'}
    first = runs[0]
    assert first['tasks']['ingest']['ran'] and first['champion_after'] and first['git_commit'] and first['data_digest']
    assert json.loads(cli(root, tmp, 'status').stdout)['last_run_record']['run_id'] == runs[-1]['run_id']


def test_schedule_prints_cron_and_systemd():
    res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'schedule'], capture_output=True, text=True,
                         env=os.environ | QUIET)
    assert (res.returncode == 0 and '15 10 * * 1-5' in res.stdout
            and 'OnCalendar=Mon..Fri 16:00 Asia/Kathmandu' in res.stdout)
    assert '--wait --retries 2 --trigger schedule' in res.stdout and 'reports/schedule.log' in res.stdout
