"""REST latency of the champion beside the floor, and batch scoring of all symbols.

Two servers run side by side on loopback and are asked in turn (A, B, A, B, ...), so both see the same machine:
  champion   `nepse-mlops serve` (MLflow's scoring app + /metrics + the request log), one symbol's raw rows per request
  floor      a trivial two-feature scikit-learn LogisticRegression through `mlflow models serve`, one row per request
Prints p50/p99/max of each and the ratios champion/floor (target p99 ratio <= 1.5), batch scoring in process, and a
/metrics excerpt after the run. Asserts nothing.

    .venv/bin/python benchmarks/bench_serving.py [--products DIR] [--requests 500] [--tracking-uri URI]

--tracking-uri: the store the champion is loaded from (default: the SQLite file in the products folder), e.g. a
tracking server, http://127.0.0.1:5000 (credentials, if any, from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD),
or postgresql://user@host/db (password in PGPASSWORD).
"""
import argparse, http.client, json, os, socket, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = {'MLFLOW_DISABLE_TELEMETRY': 'true', 'PLOOMBER_STATS_ENABLED': 'false', 'DO_NOT_TRACK': '1'}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait(port: int, proc: subprocess.Popen, timeout: float = 120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise SystemExit(f'server on port {port} exited with {proc.returncode}')
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2); c.request('GET', '/ping'); c.getresponse().read(); return
        except OSError: time.sleep(0.3)
    raise SystemExit(f'server on port {port} did not answer /ping in {timeout} s')


class Client:
    "One keep-alive connection, as a real client would hold."
    def __init__(self, port): self.c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    def post(self, body: bytes) -> tuple[int, bytes]:
        self.c.request('POST', '/invocations', body=body, headers={'Content-Type': 'application/json'})
        r = self.c.getresponse(); return r.status, r.read()
    def get(self, path) -> str:
        self.c.request('GET', path); return self.c.getresponse().read().decode()


def floor_model(tmp: Path) -> str:
    "Log a trivial two-feature LogisticRegression to a throwaway store; return its URI there."
    import mlflow, pandas as pd
    from sklearn.linear_model import LogisticRegression
    from mlflow.models import infer_signature
    mlflow.set_tracking_uri(f'sqlite:///{tmp}/floor.db')
    rng = np.random.default_rng(0)
    X = pd.DataFrame({'ret_1': rng.normal(size=500), 'vol_20': rng.normal(size=500)}); y = (X.ret_1 > 0).astype(int)
    est = LogisticRegression().fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(est, name='model', signature=infer_signature(X, est.predict_proba(X)[:, 1]),
                                        pip_requirements=['scikit-learn'])
    return info.model_uri


def pct(a, q): return float(np.percentile(a, q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products'), help='a built products folder (mlflow.db with a champion)')
    ap.add_argument('--requests', type=int, default=500, help='requests to each server (default 500)')
    ap.add_argument('--tracking-uri', help='where the champion is registered (default: sqlite:///PRODUCTS/mlflow.db)')
    a = ap.parse_args()
    import pandas as pd, mlflow
    prod = Path(a.products); uri = a.tracking_uri or f'sqlite:///{prod.resolve()}/mlflow.db'
    prices = pd.read_parquet(prod / 'validate/prices.parquet')
    market = pd.read_parquet(prod / 'features/market.parquet')
    from nepse_mlops.predict import serving_rows
    from nepse_mlops.features import request_rows
    rows, _ = serving_rows(prices, market)                 # the batch: every active symbol
    sym = rows[~rows.symbol.str.contains(':') & (rows.symbol != 'NEPSE')].symbol.iloc[0]
    one = request_rows(prices, market, [sym])              # one client's request
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model('models:/nepse_direction@champion')
    t = time.perf_counter(); model.predict(rows); batch = time.perf_counter() - t
    print(f'batch scoring, in process: {len(model.predict(rows))} symbols ({len(rows):,} raw + index rows) in {batch:.3f} s (target <= 1 s)')
    inproc = []
    for _ in range(200):
        t = time.perf_counter(); model.predict(one); inproc.append((time.perf_counter() - t) * 1000)
    print(f'one symbol in process (validate-or-check -> features -> model): p50 {pct(inproc, 50):.1f} ms, p99 {pct(inproc, 99):.1f} ms')

    tmp = Path(tempfile.mkdtemp(prefix='bench_serving_'))
    floor_uri = floor_model(tmp)
    env = os.environ | QUIET | {'PATH': f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    pc, pf = free_port(), free_port()
    champ = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(pc), '--set', f'tracking_uri={uri}',
                              '--set', f'products={prod}', '--request-log', str(tmp / 'requests.jsonl')],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    floor = subprocess.Popen([str(BIN / 'mlflow'), 'models', 'serve', '-m', floor_uri, '--env-manager', 'local',
                              '--host', '127.0.0.1', '--port', str(pf)], env=env | {'MLFLOW_TRACKING_URI': f'sqlite:///{tmp}/floor.db'},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(pc, champ); wait(pf, floor)
        cbody = json.dumps({'dataframe_split': json.loads(one.to_json(orient='split', index=False))}).encode()
        fbody = json.dumps({'dataframe_split': {'columns': ['ret_1', 'vol_20'], 'data': [[0.01, -0.3]]}}).encode()
        cc, fc = Client(pc), Client(pf)
        for _ in range(30): assert cc.post(cbody)[0] == 200 and fc.post(fbody)[0] == 200   # warm-up
        lat = {'champion': [], 'floor': []}
        for _ in range(a.requests):
            for name, cl, body in (('champion', cc, cbody), ('floor', fc, fbody)):
                t = time.perf_counter(); st, _ = cl.post(body); lat[name].append((time.perf_counter() - t) * 1000)
                assert st == 200
        c, f = np.array(lat['champion']), np.array(lat['floor'])
        print(f'REST, {a.requests} requests to each server, asked in turn on loopback (keep-alive):')
        print(f'  champion  nepse-mlops serve, metrics + request log on, one symbol ({len(one)} raw rows -> validation check -> features '
              f'-> model): p50 {pct(c, 50):.1f} ms, p99 {pct(c, 99):.1f} ms, max {c.max():.1f} ms')
        print(f'  floor     mlflow models serve, trivial 2-feature LogisticRegression, one row:                                '
              f'p50 {pct(f, 50):.1f} ms, p99 {pct(f, 99):.1f} ms, max {f.max():.1f} ms')
        print(f'  ratio champion/floor: p50 {pct(c, 50) / pct(f, 50):.2f}, p99 {pct(c, 99) / pct(f, 99):.2f} (target p99 <= 1.5)')
        allbody = json.dumps({'dataframe_split': json.loads(rows.to_json(orient='split', index=False))}).encode()
        t = time.perf_counter(); st, _ = cc.post(allbody)
        print(f'REST all symbols in one request: {time.perf_counter() - t:.3f} s (status {st})')
        metrics = cc.get('/metrics')
        keep = [l for l in metrics.splitlines() if l.startswith(('nepse_serving_requests_total', 'nepse_serving_predictions_total',
                                                                  'nepse_serving_model_info', 'nepse_serving_request_seconds_count',
                                                                  'nepse_serving_request_seconds_sum', 'nepse_serving_request_seconds_bucket{le="0.01"'))]
        print('/metrics excerpt:\n  ' + '\n  '.join(keep))
        n = sum(1 for _ in open(tmp / 'requests.jsonl'))
        print(f'request log: {n} lines in {tmp / "requests.jsonl"}')
    finally:
        for p in (champ, floor): p.terminate(); p.wait(20)


if __name__ == '__main__':
    main()
