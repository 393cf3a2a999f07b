"""Scale-out on Apache Airflow 3: the DAG written by `nepse-mlops export airflow`, run by `airflow dags test` on the
sample market, cold and then again with nothing changed. Airflow lives in its own venv (`make airflow-venv`,
.venv-airflow/: its pins clash with the project's), its home and metadata DB in a temporary folder, the products and
reports too. `pytest -s` prints each run's task lines and durations. About 6 minutes on 2 cores (make test-scale)."""
import json, os, re, sqlite3, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN, QUIET

pytestmark = pytest.mark.scale
AIRFLOW_VENV = ROOT / '.venv-airflow'
AIRFLOW = AIRFLOW_VENV / 'bin' / 'airflow'
DAG_ID = 'nepse_mlops_test'
# The sample market with the calendar pinned (as conftest.PINNED),
# and a short replay: the point is the engine, not the model.
PINNED = ['synth_through=2026-08-21', 'synth_change_at=', 'today=2026-08-22', 'test_sessions=40', 'half_life=',
          'replay_sessions=20']
# the files written around runs (ledger and its digest and copy, lock, caches)
from nepse_mlops.ops import OWN_FILES as OWN


def airflow_venv() -> Path:
    "Airflow's venv; built with `make airflow-venv` if missing. The only reason to skip: it cannot be built."
    if not (AIRFLOW_VENV / '.installed').exists():
        r = subprocess.run(['make', 'airflow-venv'], cwd=ROOT, capture_output=True, text=True, timeout=1200)
        if r.returncode or not AIRFLOW.exists():
            pytest.skip(f'the Airflow venv could not be built (make airflow-venv, exit {r.returncode}): '
                        f'{(r.stdout + r.stderr)[-500:]}')
    return AIRFLOW


@pytest.fixture(scope='module')
def airflow(tmp_path_factory):
    ("An exported DAG in a dags folder, AIRFLOW_HOME with a "
     "migrated SQLite metadata DB, and the environment to run them.")
    exe, tmp = airflow_venv(), tmp_path_factory.mktemp('airflow')
    sets = ['sample=true', f'products={tmp}/products', f'reports={tmp}/reports',
            f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', *PINNED]
    res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'export', 'airflow', str(tmp / 'dags'),
                          '--dag-id', DAG_ID,
                          *[a for s in sets for a in ('--set', s)]], cwd=ROOT, env=os.environ | QUIET,
                          capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHONPATH')} | QUIET | {
        'AIRFLOW_HOME': str(tmp / 'home'), 'AIRFLOW__CORE__DAGS_FOLDER': str(tmp / 'dags'),
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'AIRFLOW__USAGE_DATA_COLLECTION__ENABLED': 'False', 'DO_NOT_TRACK': '1', 'SCARF_ANALYTICS': 'false'}
    res = subprocess.run([str(exe), 'db', 'migrate'], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return exe, tmp, env


def dags_test(exe, env, label):
    "`airflow dags test DAG_ID`; prints the tasks' verdict lines and the run's end, and the wall time."
    t0 = time.time()
    res = subprocess.run([str(exe), 'dags', 'test', DAG_ID], env=env, capture_output=True, text=True, timeout=1500)
    secs = time.time() - t0
    out = res.stdout + res.stderr
    print(f'\n--- airflow dags test {DAG_ID} ({label}): exit {res.returncode}, {secs:.0f} s wall')
    for line in out.splitlines():
        m = re.search(r'(task \w+: (built|up to date).*?\))', line) or re.search(r'(DagRun Finished: '
                                                                                 r'.*?run_duration=[\d.]+, state=\w+)',
                                                                                 line)
        if m: print(f'  {line[:27]} {m.group(1)}')
    return res, out, secs


def metadata(home: Path) -> list[tuple[str, str, dict]]:
    "Each DAG run in Airflow's metadata DB: (run_id, state, {task_id: state})."
    with sqlite3.connect(home / 'airflow.db') as db:
        runs = db.execute('select run_id, state from dag_run where dag_id = ? order by id', (DAG_ID,)).fetchall()
        return [(r, s, dict(db.execute('select task_id, state from task_instance where dag_id = ? and run_id = ?',
                                       (DAG_ID, r)).fetchall()))
                for r, s in runs]


def product_mtimes(tmp: Path) -> dict:
    "Every product and report file with its mtime, except the files written around runs (ledger, lock, caches)."
    return {str(p.relative_to(tmp)): p.stat().st_mtime_ns for base in (tmp / 'products', tmp / 'reports')
            for p in base.rglob('*')
            if p.is_file() and not (p.parent == tmp / 'products' and p.name in OWN)}


def ledger(tmp: Path) -> list[dict]:
    return [json.loads(l) for l in (tmp / 'products' / 'runs.jsonl').read_text().splitlines() if l.strip()]


def test_exported_dag_runs_on_airflow_then_is_up_to_date(airflow):
    from nepse_mlops.export import pipeline_graph
    exe, tmp, env = airflow
    tasks = set(pipeline_graph(ROOT))

    res, out, cold_secs = dags_test(exe, env, 'cold')
    assert res.returncode == 0, out[-4000:]
    [(_, state, states)] = metadata(tmp / 'home')
    assert state == 'success' and states == {t: 'success' for t in tasks}, states
    for product in ['products/ingest/prices_raw.parquet', 'products/train/run.json', 'products/register/decision.json',
                    'products/predict/predictions.csv', 'products/monitor/summary.json', 'reports/dashboard.html']:
        assert (tmp / product).stat().st_size > 0, product
    cold = [r for r in ledger(tmp) if r.get('trigger') == 'airflow']
    assert {r['task'] for r in cold} == tasks and all(r['status'] == 'success' and r['tasks'][r['task']]['ran']
                                                      for r in cold)
    before = product_mtimes(tmp)

    res, out, warm_secs = dags_test(exe, env, 'nothing changed')
    assert res.returncode == 0, out[-4000:]
    (_, _, _), (_, state, states) = metadata(tmp / 'home')
    assert state == 'success' and states == {t: 'success' for t in tasks}, states
    assert (set(re.findall(r'task (\w+): up to date, nothing re-built', out)) == tasks
            and not re.search(r'task \w+: built', out))
    warm = [r for r in ledger(tmp) if r.get('trigger') == 'airflow'][len(cold):]
    assert {r['task'] for r in warm} == tasks
    assert all(r['status'] == 'noop' or (r['status'] == 'success' and not r['tasks'][r['task']]['ran'])
               for r in warm), warm
    assert product_mtimes(tmp) == before                                                   # nothing was re-built
    print(f'\ncold run {cold_secs:.0f} s, no-change run {warm_secs:.0f} s (wall, airflow dags test)')

    # A manual `nepse-mlops run` with the same settings agrees: Airflow's products are up to date for it too.
    sets = [a for s in ['sample=true', f'products={tmp}/products', f'reports={tmp}/reports',
                        f'tracking_uri=sqlite:///{tmp}/products/mlflow.db',
                        *PINNED] for a in ('--set', s)]
    res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', *sets], cwd=ROOT,
                         env=os.environ | QUIET,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    last = ledger(tmp)[-1]
    assert (last['trigger'] == 'manual' and set(last['tasks']) == tasks
            and not any(t['ran'] for t in last['tasks'].values())), last
    assert product_mtimes(tmp) == before


def test_one_task_takes_the_run_lock(tmp_path):
    ("`run --task` refuses (exit 75) while another run holds the "
     "products folder: a manual run and Airflow never collide.")
    hold = ("import sys, time; from nepse_mlops.runs import run_lock\nwith run_lock(sys.argv[1], "
            "'a manual run'):\n    print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, '-c', hold, str(tmp_path / 'products')], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--task', 'ingest', '--sample',
                              '--set', f'products={tmp_path}/products', '--set', f'reports={tmp_path}/reports'],
                             cwd=ROOT, env=os.environ | QUIET, capture_output=True, text=True, timeout=120)
        assert res.returncode == 75 and 'a manual run' in res.stderr, res.stdout + res.stderr
        assert not (tmp_path / 'reports').exists()                                         # nothing ran
    finally:
        holder.kill(); holder.wait()
