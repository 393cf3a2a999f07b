"""Shared fixtures: the whole DAG built once on the synthetic sample in a temporary folder."""
import json, os, shutil, socket, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED = ROOT.parent / 'shared' / 'data' / 'nepse'
CHROMIUM = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true'}

if os.environ.get('PYTEST_XDIST_WORKER'):   # `make test` runs two workers on two cores: one OpenMP thread each, or
    os.environ['OMP_NUM_THREADS'] = '1'      # gradient boosting's spinning threads fight and a window takes 20x longer

needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f'real NEPSE data not found at {SHARED} (present in CI)')
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason='Debian chromium not installed (CI installs it: apt-get install chromium)')


# Tests pin the calendar and the modelling settings the sample was designed for: the live default market ends on the
# last session before today and carries the planted change (tests/test_replay.py checks that story on the default);
# the sample is a quiet 12-symbol market that ends on 2026-08-21, trained on 40-session windows with equal weights.
PINNED = ['--set', 'synth_through=2026-08-21', '--set', 'synth_change_at=null', '--set', 'today=2026-08-22',
          '--set', 'test_sessions=40', '--set', 'half_life=null', '--set', 'replay_sessions=120']


def build(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    ("Run `nepse-mlops run` with every product, report and the tracking "
     "store inside `tmp` (pinned settings first; `extra` wins).")
    args = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run',
            '--set', f'products={tmp}/products', '--set', f'reports={tmp}/reports',
            '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', *PINNED, *extra]
    return subprocess.run(args, cwd=ROOT, env=os.environ | QUIET, capture_output=True, text=True, timeout=1500)


def env_for(tmp: Path) -> dict:
    return {'products': f'{tmp}/products', 'reports': f'{tmp}/reports',
            'tracking_uri': f'sqlite:///{tmp}/products/mlflow.db',
            'model_name': 'nepse_direction'}


@pytest.fixture(scope='session')
def sample_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('sample')
    res = build(tmp, '--sample')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp, res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import urllib.request
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f'server exited with {proc.returncode}')
        try:
            urllib.request.urlopen(url, timeout=2); return
        except Exception: time.sleep(0.5)
    raise TimeoutError(url)

