"""Scale-out on an existing engine: a throwaway PostgreSQL 15 cluster (run as an unprivileged user: PostgreSQL refuses
root, and CI runs as root), `nepse-mlops tracking-server` on it, the sample pipeline tracked through that server, the
champion served from it over REST, a promotion and a rollback through the CLI, and MLflow's basic auth on a
non-loopback bind (401 without a login, refused to start without credentials). Nothing is mocked: a real PostgreSQL,
a real `mlflow server`, real HTTP. `make test-scale` (a few minutes); CI runs it."""
import base64, json, os, pwd, secrets, shlex, shutil, signal, subprocess, tempfile, urllib.error, urllib.request
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, QUIET, PINNED, free_port, wait_http

pytestmark = pytest.mark.scale
PG_BIN = Path('/usr/lib/postgresql/15/bin')
MODEL = 'nepse_direction'
# the client and server settings a developer may have exported must not leak into these runs
CLEAN = ('MLFLOW_TRACKING_URI', 'MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD', 'NEPSE_MLOPS_BACKEND_URI',
         'NEPSE_MLOPS_TRACKING_USER', 'NEPSE_MLOPS_TRACKING_PASSWORD', 'NEPSE_MLOPS_ARTIFACTS_DESTINATION',
         'NEPSE_MLOPS_AUTH_DB_URI',
         'MLFLOW_AUTH_CONFIG_PATH', 'MLFLOW_AUTH_ADMIN_USERNAME', 'MLFLOW_AUTH_ADMIN_PASSWORD', 'PGPASSWORD')


def env_with(**extra) -> dict:
    return ({k: v for k, v in os.environ.items() if k not in CLEAN} | QUIET
            | {'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"} | extra)


def pg_user() -> tuple[str | None, bool]:
    ("The unprivileged user to run PostgreSQL as (None: this process "
     "is not root, run as itself) and whether the test created it.")
    if os.geteuid() != 0: return None, False
    for name in ('postgres', 'nepse_pg_test'):
        try: pwd.getpwnam(name); return name, False
        except KeyError: pass
    if shutil.which('useradd') and subprocess.run(['useradd', '--system', '--no-create-home', '--shell',
                                                   '/usr/sbin/nologin',
                                                   'nepse_pg_test'], capture_output=True).returncode == 0:
        return 'nepse_pg_test', True
    pytest.skip('PostgreSQL refuses to run as root, there is no postgres user and useradd could not create one')


def as_user(user: str | None, cmd: list) -> list:
    return ['su', user, '-s', '/bin/sh', '-c', shlex.join(map(str, cmd))] if user else [str(c) for c in cmd]


@pytest.fixture(scope='module')
def pg():
    ("A throwaway PostgreSQL cluster: 127.0.0.1 on a free port, fsync "
     "off, a password for TCP logins (scram); removed at the end.")
    if not (PG_BIN / 'initdb').exists(): pytest.skip(f'PostgreSQL 15 binaries not found at {PG_BIN}')
    user, created = pg_user()
    d = Path(tempfile.mkdtemp(prefix='nepse_pg_'))   # not under pytest's tmp: its parent is private to root
    password, port = secrets.token_urlsafe(18), free_port()
    run = lambda *cmd: subprocess.run(as_user(user, list(cmd)), capture_output=True, text=True, timeout=120)
    started = False
    try:
        (d / 'pw').write_text(password + '\n'); os.chmod(d / 'pw', 0o600)
        if user: shutil.chown(d, user); shutil.chown(d / 'pw', user)
        r = run(PG_BIN / 'initdb', '-D', d / 'data', '-U', 'postgres', '--pwfile', d / 'pw', '--auth-local=trust',
                '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8')
        assert r.returncode == 0, r.stdout + r.stderr
        (d / 'pw').unlink()
        r = run(PG_BIN / 'pg_ctl', '-D', d / 'data', '-l', d / 'pg.log', '-w', 'start',
                '-o', f'-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off')
        started = True
        assert r.returncode == 0, r.stdout + r.stderr + ((d / 'pg.log').read_text() if (d / 'pg.log').exists() else '')
        # over the socket (trust): no password
        r = run(PG_BIN / 'createdb', '-h', d, '-p', port, '-U', 'postgres', 'mlflow')
        assert r.returncode == 0, r.stdout + r.stderr
        yield dict(port=port, password=password, uri=f'postgresql://postgres@127.0.0.1:{port}/mlflow', dir=d)
    finally:
        if started: run(PG_BIN / 'pg_ctl', '-D', d / 'data', '-m', 'fast', '-w', 'stop')
        shutil.rmtree(d, ignore_errors=True)
        if created: subprocess.run(['userdel', 'nepse_pg_test'], capture_output=True)


def start_tracking(tmp: Path, pg: dict, port: int, host: str = '127.0.0.1', **extra) -> tuple[subprocess.Popen, Path]:
    "`nepse-mlops tracking-server` on the cluster; the backend URI and its password only in the environment."
    log = tmp / f'tracking-{port}.log'
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), 'tracking-server', '--host', host, '--port', str(port),
                             '--artifacts-destination', str(tmp / 'server-artifacts')],
                            env=env_with(NEPSE_MLOPS_BACKEND_URI=pg['uri'], PGPASSWORD=pg['password'], **extra),
                            stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True)
    try: wait_http(f'http://127.0.0.1:{port}/health', proc, timeout=180)
    except Exception:
        stop(proc); raise AssertionError(log.read_text()[-3000:])
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    "SIGTERM to the server's whole process group (the CLI, mlflow server, its uvicorn worker), SIGKILL if it lingers."
    try:
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(30)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)
    except ProcessLookupError: pass


@pytest.fixture(scope='module')
def tracking(pg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('scale')
    port = free_port()
    proc, log = start_tracking(tmp, pg, port)
    try: yield dict(url=f'http://127.0.0.1:{port}', tmp=tmp, log=log)
    finally:
        stop(proc)
        out = log.read_text()
        assert pg['password'] not in out, 'the database password was printed'


def cli(*args, timeout=600, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), *args], cwd=ROOT, env=env_with(**extra),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def built(tracking):
    "The sample pipeline, every MLflow call through the tracking server (nothing tracked on this machine's disk)."
    tmp, url = tracking['tmp'], tracking['url']
    res = cli('run', '--sample', '--set', f'products={tmp}/products', '--set', f'reports={tmp}/reports', '--set',
              f'tracking_uri={url}',
              *PINNED, '--set', 'replay_sessions=20', timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tracking


def client(url: str):
    import mlflow
    return mlflow.MlflowClient(tracking_uri=url, registry_uri=url)


def test_pipeline_through_the_tracking_server_promotes_a_champion(built, pg):
    tmp, url = built['tmp'], built['url']
    c = client(url)
    champ = c.get_model_version_by_alias(MODEL, 'champion')
    assert champ.tags.get('gate_decision') == 'promoted', champ.tags
    assert json.loads((tmp / 'products/register/decision.json').read_text())['champion'] == str(champ.version)
    # artifacts went through the server to its destination; nothing was tracked beside the products
    assert c.get_experiment_by_name('nepse_direction').artifact_location.startswith('mlflow-artifacts:')
    assert any((tmp / 'server-artifacts').rglob('MLmodel'))
    assert not (tmp / 'products/mlflow.db').exists() and not (tmp / 'products/mlartifacts').exists()
    import psycopg   # and the registry is in PostgreSQL itself
    with psycopg.connect(pg['uri'], password=pg['password']) as conn:
        rows = conn.execute("select version from model_versions where name = %s", (MODEL,)).fetchall()
    assert str(champ.version) in {str(r[0]) for r in rows}
    print(f"\nchampion on the tracking server (PostgreSQL backend): {MODEL} version {champ.version} "
          f"(gate: {champ.tags['gate_decision']}; versions in PostgreSQL: {sorted(r[0] for r in rows)})")


def post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + '/invocations', data=json.dumps(payload).encode(),
                                 headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=60) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b'{}')


def test_serve_loads_the_champion_from_the_tracking_server(built):
    tmp, url = built['tmp'], built['url']
    v = str(client(url).get_model_version_by_alias(MODEL, 'champion').version)
    port = free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(port), '--set',
                             f'tracking_uri={url}'],
                            cwd=ROOT, env=env_with(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_http(f'http://127.0.0.1:{port}/ping', proc, timeout=180)
        from nepse_mlops.features import request_rows
        preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
        sym = preds.symbol.iat[0]
        rows = request_rows(pd.read_parquet(tmp / 'products/validate/prices.parquet'),
                            pd.read_parquet(tmp / 'products/features/market.parquet'), [sym])
        status, body = post(f'http://127.0.0.1:{port}',
                            {'dataframe_split': json.loads(rows.to_json(orient='split', index=False))})
        assert status == 200, body
        ans = body['predictions'][0]
        assert (ans['symbol'] == sym and ans['model_version'] == v
                and abs(ans['prob_up'] - preds.prob_up.iat[0]) < 1e-12), (ans, preds.iloc[0])
        print(f"\nnepse-mlops serve (models:/{MODEL}@champion from {url}): /invocations {status} -> {ans}")
    finally: stop(proc)


def test_promote_then_rollback_on_the_tracking_server(built):
    tmp, url = built['tmp'], built['url']
    c = client(url)
    first = c.get_model_version_by_alias(MODEL, 'champion')
    import mlflow
    previous = mlflow.get_tracking_uri(); mlflow.set_tracking_uri(url)
    # another version of the same model, through the server
    try: second = str(mlflow.register_model(first.source, MODEL).version)
    finally: mlflow.set_tracking_uri(previous)
    sets = ['--set', f'tracking_uri={url}', '--set', f'reports={tmp}/reports']
    pr = cli('promote', second, '--reason', 'scale test: a second version', *sets)
    assert pr.returncode == 0, pr.stdout + pr.stderr
    assert str(c.get_model_version_by_alias(MODEL, 'champion').version) == second
    rb = cli('rollback', '--reason', 'scale test: back to the gated champion', *sets)
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert str(c.get_model_version_by_alias(MODEL, 'champion').version) == str(first.version)
    ledger = [json.loads(l) for l in (tmp / 'reports/registry_ledger.jsonl').read_text().splitlines()]
    assert [(e['event'], e['version'], e['previous_champion']) for e in ledger[-2:]] == [
        ('manual_promotion', second, str(first.version)), ('rollback', str(first.version), second)], ledger[-2:]
    print(f"\npromote: {pr.stdout.strip()}\nrollback: {rb.stdout.strip()}\nledger: {ledger[-1]['event']} to version "
          f"{ledger[-1]['version']} (was {ledger[-1]['previous_champion']}) at {ledger[-1]['time']}")


def get(url: str, auth: tuple | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if auth: req.add_header('Authorization', 'Basic ' + base64.b64encode(':'.join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()


def test_non_loopback_bind_needs_credentials_and_basic_auth(built, pg):
    tmp, url = built['tmp'], built['url']
    port = free_port()
    refused = subprocess.run([str(BIN / 'nepse-mlops'), 'tracking-server', '--host', '0.0.0.0', '--port', str(port)],
                             capture_output=True,
                             text=True, timeout=120,
                             env=env_with(NEPSE_MLOPS_BACKEND_URI=pg['uri'], PGPASSWORD=pg['password']))
    assert (refused.returncode != 0 and 'NEPSE_MLOPS_TRACKING_PASSWORD' in refused.stderr), (refused.stdout
                                                                                             + refused.stderr)
    print(f"\nno credentials on 0.0.0.0: exit {refused.returncode}: {refused.stderr.strip()[:160]}...")

    admin = secrets.token_urlsafe(18)
    proc, log = start_tracking(tmp, pg, port, host='0.0.0.0', NEPSE_MLOPS_TRACKING_USER='nepse_admin',
                               NEPSE_MLOPS_TRACKING_PASSWORD=admin)
    try:
        alias = f'http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion'
        anon, _ = get(alias)
        wrong, _ = get(alias, ('nepse_admin', 'not-the-password'))
        ok, body = get(alias, ('nepse_admin', admin))
        assert (anon, wrong, ok) == (401, 401, 200), (anon, wrong, ok, body)
        champ = str(client(url).get_model_version_by_alias(MODEL, 'champion').version)
        assert json.loads(body)['model_version']['version'] == champ
        # the CLI as a client: credentials from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
        st = cli('status', '--set', f'tracking_uri=http://127.0.0.1:{port}', '--set', f'products={tmp}/products',
                 timeout=300,
                 MLFLOW_TRACKING_USERNAME='nepse_admin', MLFLOW_TRACKING_PASSWORD=admin)
        assert st.returncode == 0 and json.loads(st.stdout)['champion'] == champ, st.stdout + st.stderr
        print(f"basic auth on 0.0.0.0:{port}: no login {anon}, wrong password {wrong}, admin {ok} (champion version "
              f"{champ}); nepse-mlops status with MLFLOW_TRACKING_USERNAME/PASSWORD: champion "
              f"{json.loads(st.stdout)['champion']}")
    finally: stop(proc)
    out = log.read_text()
    assert 'basic auth on' in out and admin not in out and pg['password'] not in out, out[-2000:]


def test_postgresql_tracking_uri_directly(built, pg):
    ("tracking_uri=postgresql://... without a server: two tasks setting "
     "up a fresh database at once, and the CLI reading the registry.")
    import sys
    d = pg['dir']
    r = subprocess.run(as_user(pg_user()[0],
                               [PG_BIN / 'createdb', '-h', d, '-p', pg['port'], '-U', 'postgres', 'mlflow_direct']),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    fresh = f"postgresql://postgres@127.0.0.1:{pg['port']}/mlflow_direct"
    code = (f"import sys; from nepse_mlops.registry import setup_tracking; "
            f"print(setup_tracking({fresh!r}, 'exp' + sys.argv[1], {str(built['tmp'] / 'direct-artifacts')!r}))")
    # the DAG's two tasks creating the tables at once
    procs = [subprocess.Popen([sys.executable, '-c', code, str(k)], env=env_with(PGPASSWORD=pg['password']),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    # read while waiting: no pipe can fill
    outs = [(lambda out, err, p=p: (p.returncode, out, err))(*p.communicate(timeout=120)) for p in procs]
    assert [o[0] for o in outs] == [0, 0] and not any('Traceback' in o[2] for o in outs), outs
    st = cli('status', '--set', f"tracking_uri={pg['uri']}", '--set', f"products={built['tmp']}/products", timeout=300,
             PGPASSWORD=pg['password'])
    champ = str(client(built['url']).get_model_version_by_alias(MODEL, 'champion').version)
    assert st.returncode == 0 and json.loads(st.stdout)['champion'] == champ, st.stdout + st.stderr
    refused = cli('run', '--sample', '--set',
                  f"tracking_uri=postgresql://postgres:{pg['password']}@127.0.0.1:{pg['port']}/mlflow",
                  '--set', f"products={built['tmp']}/refused", timeout=120)
    assert (refused.returncode == 2 and 'PGPASSWORD' in refused.stderr and pg['password'] not in refused.stderr
            + refused.stdout)
    print(f"\npostgresql:// directly: two set-ups on a fresh database -> experiments {[o[1].strip() for o in outs]}; "
          f"status reads champion {champ}; a password in the URI is refused (exit {refused.returncode})")


def test_two_tracking_servers_started_at_once_on_a_fresh_database_both_serve(pg, tmp_path):
    """MLflow's migrations race when two servers start on an empty database (`UniqueViolation` on `alembic_version`, one
    exits); the start-up advisory lock makes them take turns. The password travels as `?password=` (libpq's other form)
    and is masked in every line."""
    d = pg['dir']
    r = subprocess.run(as_user(pg_user()[0],
                               [PG_BIN / 'createdb', '-h', d, '-p', pg['port'], '-U', 'postgres', 'mlflow_race']),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    uri = f"postgresql://postgres@127.0.0.1:{pg['port']}/mlflow_race?password={pg['password']}"
    ports, procs = [free_port(), free_port()], []
    try:
        for port in ports:
            log = tmp_path / f'race-{port}.log'
            procs.append((subprocess.Popen([str(BIN / 'nepse-mlops'), 'tracking-server', '--port', str(port),
                                            '--artifacts-destination', str(tmp_path / 'art')],
                                            env=env_with(NEPSE_MLOPS_BACKEND_URI=uri),
                                           stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True),
                                           log))
        for (proc, log), port in zip(procs, ports):
            try: wait_http(f'http://127.0.0.1:{port}/health', proc, timeout=240)
            except Exception: raise AssertionError(log.read_text()[-3000:])
        for port in ports:   # each answers a real API call against the one schema
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5',
                                        timeout=30) as r:
                assert r.status == 200 and 'experiments' in json.loads(r.read())
    finally:
        for proc, _ in procs: stop(proc)
    logs = [log.read_text() for _, log in procs]
    assert not any('UniqueViolation' in t or 'Traceback' in t for t in logs), logs
    assert all(pg['password'] not in t and 'password=***' in t for t in logs), [t[:500] for t in logs]
    waited = sum('waiting for it to finish its set-up' in t for t in logs)
    print(f"\ntwo tracking servers at once on a fresh database: both serve (ports {ports}); {waited} waited on the "
          f"start-up lock; first line: {logs[0].splitlines()[0][:150]}")
