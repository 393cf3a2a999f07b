"""Products that can be trusted or recovered: each product corrupted in turn on a sample build, then the next commands.
A damaged task product is rebuilt; a damaged history (prediction log, ledgers) or tracking store stops the run with one
line naming the file and the copy to restore; `status` never prints a traceback; a full disk (a real tmpfs filled up) is
one clear line, the run is recorded as failed, nothing half-written is left, and the run after space is freed completes
with nothing lost or duplicated."""
import json, os, shutil, subprocess
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, QUIET, build, env_for

pytestmark = pytest.mark.ops   # a build of its own, corrupted file by file: make test-ops (CI runs it)


def cli(tmp: Path, *args) -> subprocess.CompletedProcess:
    sets = ['--set', f'products={tmp}/products', '--set', f'reports={tmp}/reports', '--set',
            f'tracking_uri=sqlite:///{tmp}/products/mlflow.db']
    return subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), *args, *sets], cwd=ROOT,
                          env=os.environ | QUIET,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('integrity')
    res = build(tmp, '--sample', '--set', 'replay_sessions=0')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp


def runs(tmp: Path) -> list[dict]:
    return [json.loads(l) for l in (tmp / 'products' / 'runs.jsonl').read_text().splitlines() if l.strip()]


def test_a_cut_prediction_log_stops_the_run_with_the_copy_to_restore(built):
    log = built / 'products' / 'prediction_log.parquet'
    good, rows = log.read_bytes(), len(pd.read_parquet(log))
    log.write_bytes(good[: len(good) // 2])
    res = build(built, '--sample', '--set', 'replay_sessions=0')
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and 'Traceback' not in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-2000:]
    assert (len(err) == 1 and str(log) in err[0]
            and f"cp {log.with_name('.prediction_log.parquet.bak')} {log}" in err[0]), err
    assert runs(built)[-1]['status'] == 'failed' and 'prediction_log' in runs(built)[-1]['error']
    print(f"\ncut prediction log -> run exit {res.returncode}: {err[0]}")
    shutil.copy(log.with_name('.prediction_log.parquet.bak'), log)   # what the line says to do
    res = build(built, '--sample', '--set', 'replay_sessions=0')
    assert res.returncode == 0 and len(pd.read_parquet(log)) == rows, res.stdout[-2000:] + res.stderr[-2000:]


def test_a_damaged_tracking_store_stops_the_run_and_status_says_so(built):
    db = built / 'products' / 'mlflow.db'
    keep = built / 'mlflow.db.good'; shutil.copy(db, keep)
    with open(db, 'r+b') as f: f.seek(100); f.write(b'\x00' * 4096)   # the schema page overwritten
    res = build(built, '--sample', '--set', 'replay_sessions=0')
    assert res.returncode == 2 and str(db) in res.stderr and '.mlflow.db.bak' in res.stderr, (res.stdout[-1500:]
                                                                                              + res.stderr[-1500:])
    st = cli(built, 'status')
    assert 'Traceback' not in st.stdout + st.stderr, st.stdout + st.stderr
    out = json.loads(st.stdout)
    assert 'registry_error' in out and '.mlflow.db.bak' in out['registry_error'], out
    print(f"\ndamaged mlflow.db -> run exit {res.returncode}: {res.stderr.strip()[:200]}\n  status: "
          f"{out['registry_error'][:200]}")
    shutil.copy(db.with_name('.mlflow.db.bak'), db)
    assert json.loads(cli(built, 'status').stdout)['champion'] is not None


def test_an_edited_ledger_stops_the_run_and_a_missing_newline_loses_nothing(built):
    led = built / 'reports' / 'registry_ledger.jsonl'
    n = len(led.read_text().splitlines())
    led.write_bytes(led.read_bytes().rstrip(b'\n'))                  # whole records, the final newline lost
    from nepse_mlops.core import append_jsonl
    append_jsonl(led, {'event': 'note', 'why': 'test'})
    assert len(led.read_text().splitlines()) == n + 1
    text = led.read_text(); led.write_text(text.replace('"event": "', '"event": "X', 1))
    res = build(built, '--sample', '--set', 'replay_sessions=0')
    assert (res.returncode == 2
            and 'registry_ledger.jsonl: changed since it was written' in res.stderr), res.stderr[-1500:]
    led.write_text(text)


def test_a_cut_task_product_is_rebuilt_never_up_to_date(built):
    summ = built / 'products' / 'monitor' / 'summary.json'
    summ.write_text(summ.read_text()[:50])
    res = build(built, '--sample', '--set', 'replay_sessions=0')
    assert res.returncode == 0 and 'summary.json: not valid JSON' in res.stdout, res.stdout[-2000:] + res.stderr[-1500:]
    assert json.loads(summ.read_text())['champion'] is not None and runs(built)[-1]['tasks']['monitor']['ran']


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(where)],
                          capture_output=True).returncode == 0


def test_a_full_disk_is_one_line_recorded_and_the_next_run_completes(tmp_path):
    fs = tmp_path / 'fs'
    if os.geteuid() != 0 or not _mount_tmpfs(fs, '400m'):
        pytest.skip('needs root to mount a small tmpfs (CI runs as root)')
    try:
        res = build(fs, '--sample', '--set', 'replay_sessions=0')
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        log = fs / 'products' / 'prediction_log.parquet'; rows = len(pd.read_parquet(log))
        filler = fs / 'filler'
        # until ENOSPC
        subprocess.run(['dd', 'if=/dev/zero', f'of={filler}', 'bs=1M', 'count=1000'], capture_output=True)
        res = build(fs, '--sample', '--set', 'replay_sessions=0', '--force')
        assert (res.returncode != 0 and 'Traceback' not in res.stderr
                and len(res.stderr.strip().splitlines()) == 1), res.stderr[-2000:]
        assert 'no space left on device' in res.stderr.lower(), res.stdout[-1500:] + res.stderr[-1500:]
        assert not list((fs / 'products').rglob('.*.tmp')), 'half-written files left behind'
        print(f"\nfull disk -> exit {res.returncode}: {res.stderr.strip().splitlines()[-1][:220]}")
        filler.unlink()
        done = build(fs, '--sample', '--set', 'replay_sessions=0')
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        recs = runs(fs)
        assert any(r['status'] in ('failed', 'killed') for r in recs[1:]), recs
        assert len(pd.read_parquet(log)) == rows and not pd.read_parquet(log).duplicated(['feature_date',
                                                                                          'symbol']).any()
        print(f"  after freeing space: exit 0; ledger {[r['status'] for r in recs]}; prediction log {rows} rows, no "
              "duplicates")
    finally:
        subprocess.run(['umount', '-l', str(fs)], capture_output=True)
