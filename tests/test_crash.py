"""Crash safety: a real run killed (SIGKILL to its whole process group) at each named kill point, then the next
run. After each: the next run succeeds, every JSON-lines file holds whole records only, the champion alias is on a
version the gate promoted, the prediction log has no duplicated rows, every product reads, the killed run is in the
run ledger, and Ploomber finds nothing left to do. `make test-ops` (about 12 minutes); CI runs it."""
import json, os, subprocess
from pathlib import Path
import pytest
from conftest import ROOT, BIN, QUIET, PINNED

pytestmark = pytest.mark.ops


def run(tmp, kill=None, *extra):
    args = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--sample', '--set', f'products={tmp}/products',
            '--set', f'reports={tmp}/reports',
            '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', *PINNED, '--set', 'replay_sessions=20',
            '--set', 'retrain=always', *extra]
    env = os.environ | QUIET | ({'NEPSE_MLOPS_KILL_AT': kill} if kill else {})
    env.pop('NEPSE_MLOPS_KILL_AT', None) if not kill else None
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, start_new_session=True)


def consistent(tmp):
    "Every invariant a killed run must leave for the next one (see the module docstring)."
    import mlflow, pandas as pd
    for f in list(Path(tmp).rglob('*.jsonl')):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            json.loads(line)   # raises on half a line
    for f in Path(tmp, 'products').rglob('*.parquet'):
        if not f.name.startswith('.'): pd.read_parquet(f)
    for f in Path(tmp, 'products').rglob('*.json'):
        if not f.name.startswith('.'): json.loads(f.read_text())
    left = [str(f) for f in Path(tmp, 'products').rglob('.*.tmp')]
    assert not left, f'half-written files left behind: {left}'   # the next run sweeps a killed writer's temporary files
    log = pd.read_parquet(Path(tmp, 'products/prediction_log.parquet'))
    assert not log.duplicated(['feature_date', 'symbol']).any()
    client = mlflow.MlflowClient(f'sqlite:///{tmp}/products/mlflow.db')
    champ = client.get_model_version_by_alias('nepse_direction', 'champion')
    assert champ.tags.get('gate_decision') == 'promoted', champ.tags
    promoted = [e for e in map(json.loads, Path(tmp, 'reports/registry_ledger.jsonl').read_text().splitlines())
                if e['event'] == 'promoted']
    assert str(champ.version) in {str(e['version']) for e in promoted}


@pytest.fixture(scope='module')
def crashed(tmp_path_factory):
    "A first run killed as it moves the champion alias (the only point a first promotion passes), then recovered."
    tmp = tmp_path_factory.mktemp('crash')
    first = run(tmp, 'register_alias')
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    again = run(tmp)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    consistent(tmp)
    runs = [json.loads(l) for l in Path(tmp, 'products/runs.jsonl').read_text().splitlines()]
    print(f"\nkilled at register_alias (a first run): the next run ({runs[-1]['status']}) re-ran "
          f"{sorted(k for k, v in runs[-1]['tasks'].items() if v['ran'])} in {runs[-1]['seconds']} s; "
          f"champion {runs[-1]['champion_before']} -> {runs[-1]['champion_after']}")
    return tmp


POINTS = ['ingest_written', 'validate_written', 'features_written', 'train_logged', 'register_version', 'predict_log',
          'monitor_alerts', 'replay_session', 'append_jsonl', 'write_json', 'run_recorded']


@pytest.mark.parametrize('point', POINTS)
def test_killed_run_leaves_a_state_the_next_run_completes(crashed, point):
    tmp = crashed
    # a retrain identical to the champion is not registered: to
    # reach register_version the killed run trains another model
    other = ('--set', 'embargo=2') if point == 'register_version' else ()
    killed = run(tmp, point, '--force', *other)
    assert killed.returncode == -9, f'{point} was not reached: ' + killed.stdout[-2000:] + killed.stderr[-2000:]
    nxt = run(tmp)
    assert nxt.returncode == 0, nxt.stdout[-3000:] + nxt.stderr[-3000:]
    consistent(tmp)
    runs = [json.loads(l) for l in Path(tmp, 'products/runs.jsonl').read_text().splitlines()]
    if point != 'write_json':   # that one dies writing the run's own start marker, before anything else
        assert runs[-2]['status'] == 'killed' and runs[-2]['detected_by'] == runs[-1]['run_id']
        # the killed run's record says which champion it left
        assert runs[-2]['champion_after'] == runs[-1]['champion_before']
    # killed writing its own start marker, a run changed nothing: the next one finds everything up to date (its
    # temporary file swept first); after any later point the next run has work to finish
    assert runs[-1]['status'] == ('noop' if point == 'write_json' else 'success'), runs[-1]
    print(f"\nkilled at {point}: the next run ({runs[-1]['status']}) re-ran "
          f"{sorted(k for k, v in runs[-1]['tasks'].items() if v['ran'])} in {runs[-1]['seconds']} s; champion "
          f"{runs[-1]['champion_before']} -> {runs[-1]['champion_after']}")
    from nepse_mlops.cli import why_outdated, resolve_settings
    from nepse_mlops.core import load_env
    s = {'products': f'{tmp}/products', 'reports': f'{tmp}/reports',
         'tracking_uri': f'sqlite:///{tmp}/products/mlflow.db', 'sample': True,
         'synth_through': '2026-08-21', 'synth_change_at': None, 'today': '2026-08-22', 'test_sessions': 40,
         'half_life': None,
         'replay_sessions': 20, 'retrain': 'always'}
    assert why_outdated(ROOT, resolve_settings(load_env(ROOT), s)) == []
