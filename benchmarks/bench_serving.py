"""REST latency of the champion (MLflow scoring server on loopback) and batch scoring of all symbols.
Prints p50/p99 over N requests of one symbol's 61 raw rows; asserts nothing.

    .venv/bin/python benchmarks/bench_serving.py [--products DIR] [--requests 500] [--tracking-uri URI]

--tracking-uri: the store the champion is loaded from (default: the SQLite file in the products folder), e.g. a
tracking server, http://127.0.0.1:5000 (credentials, if any, from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD),
or postgresql://user@host/db (password in PGPASSWORD).
"""
import argparse, json, os, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products')); ap.add_argument('--requests', type=int, default=500)
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
    print(f'one symbol in process (validate-or-check -> features -> model): p50 {np.percentile(inproc, 50):.1f} ms, '
          f'p99 {np.percentile(inproc, 99):.1f} ms')
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = os.environ | {'MLFLOW_TRACKING_URI': uri, 'PATH': f"{BIN}{os.pathsep}{os.environ['PATH']}", 'MLFLOW_DISABLE_TELEMETRY': 'true'}
    srv = subprocess.Popen([str(BIN / 'mlflow'), 'models', 'serve', '-m', 'models:/nepse_direction@champion', '--env-manager', 'local',
                            '--host', '127.0.0.1', '--port', str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try: urllib.request.urlopen(f'http://127.0.0.1:{port}/ping', timeout=1); break
            except Exception: time.sleep(0.5)
        body = json.dumps({'dataframe_split': json.loads(one.to_json(orient='split', index=False))}).encode()
        req = lambda: urllib.request.urlopen(urllib.request.Request(f'http://127.0.0.1:{port}/invocations', data=body,
                                                                    headers={'Content-Type': 'application/json'}), timeout=10).read()
        for _ in range(20): req()   # warm-up
        lat = []
        for _ in range(a.requests):
            t = time.perf_counter(); req(); lat.append((time.perf_counter() - t) * 1000)
        lat = np.array(lat)
        print(f'REST one symbol ({len(one)} raw rows -> features -> model), {a.requests} requests on loopback: '
              f'p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms '
              f'(p99 / 25 ms target = {np.percentile(lat, 99) / 25:.2f})')
        allbody = json.dumps({'dataframe_split': json.loads(rows.to_json(orient='split', index=False))}).encode()
        t = time.perf_counter()
        urllib.request.urlopen(urllib.request.Request(f'http://127.0.0.1:{port}/invocations', data=allbody,
                                                      headers={'Content-Type': 'application/json'}), timeout=60).read()
        print(f'REST all symbols in one request: {time.perf_counter() - t:.3f} s')
    finally:
        srv.terminate(); srv.wait(20)


if __name__ == '__main__':
    main()
