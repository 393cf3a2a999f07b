"""REST throughput and latency of the champion beside the floor, at 1, 4, 16 and 64 clients, and batch scoring of all
symbols.

Two servers run side by side on loopback, each with the same number of worker processes:
  champion   `nepse-mlops serve --workers N` (MLflow's scoring app behind the request guard, /metrics, the request log),
             one symbol's raw rows per request
  floor      a trivial two-feature scikit-learn LogisticRegression through `mlflow models serve -w N`,
             one row per request
For each client count, the champion then the floor are driven for `--seconds` by that many keep-alive clients (threads
spread over up to 4 client processes); prints a table of answers/s, p50, p99 and non-200 answers (503 = the queue cap),
the ratios (targets on a quiet machine: champion x1.5 from 1 to 16 clients; at 16, >= 0.8x the floor's throughput and
p99 <= 1.5x the floor's), the servers' resident memory before and after, batch scoring in process, and a /metrics
excerpt. Asserts nothing. A loaded machine (other builds running) depresses every figure, and the clients share its
cores.

    .venv/bin/python benchmarks/bench_serving.py [--products DIR] [--workers N] [--seconds 5] [--clients 1,4,16,64]
                                                 [--tracking-uri URI]

--tracking-uri: the store the champion is loaded from (default: the SQLite file in the products folder), e.g. a
tracking server, http://127.0.0.1:5000 (credentials, if any, from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD),
or postgresql://user@host/db (password in PGPASSWORD).
"""
import argparse, http.client, json, os, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = {'MLFLOW_DISABLE_TELEMETRY': 'true', 'PLOOMBER_STATS_ENABLED': 'false', 'DO_NOT_TRACK': '1'}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait(port: int, proc: subprocess.Popen, timeout: float = 600):   # worker processes start slowly on a loaded machine
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise SystemExit(f'server on port {port} exited with {proc.returncode}')
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            c.request('GET', '/ping')
            c.getresponse().read()
            return
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


def drive(port: int, body: bytes, threads: int, seconds: float) -> tuple[list[float], dict]:
    "`threads` keep-alive clients posting `body` until the deadline: latencies (ms) of 200s and counts by status."
    lat, codes, lock = [], {}, threading.Lock()
    deadline = time.perf_counter() + seconds
    def client():
        cl, mine, cs = Client(port), [], {}
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try: st, _ = cl.post(body)
            except OSError: st, cl = 0, Client(port)             # a dropped connection counts as an error
            cs[st] = cs.get(st, 0) + 1
            if st == 200: mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)
            for k, v in cs.items(): codes[k] = codes.get(k, 0) + v
    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    return lat, codes


def load(port: int, body: bytes, clients: int, seconds: float, pool: ProcessPoolExecutor, procs: int) -> dict:
    ("Drive one server with `clients` clients spread over `procs` "
     "client processes; throughput, percentiles, non-200 counts.")
    split = [clients // procs + (i < clients % procs) for i in range(procs)]
    t0 = time.perf_counter()
    parts = list(pool.map(drive, *zip(*[(port, body, n, seconds) for n in split if n])))
    wall = time.perf_counter() - t0
    lat = np.array([x for p in parts for x in p[0]]); codes = {}
    for _, cs in parts:
        for k, v in cs.items(): codes[k] = codes.get(k, 0) + v
    return dict(rps=len(lat) / seconds, p50=pct(lat, 50) if len(lat) else float('nan'),
                p99=pct(lat, 99) if len(lat) else float('nan'),
                other={k: v for k, v in codes.items() if k != 200}, wall=wall)


def rss_mb(pid: int) -> float:
    "Resident memory of a process and its children (MB), from /proc."
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(open(f'/proc/{p}/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            todo += [int(c) for t in os.listdir(f'/proc/{p}/task')
                     for c in open(f'/proc/{p}/task/{t}/children').read().split()]
        except OSError: pass
    return total / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products'),
                    help='a built products folder (mlflow.db with a champion)')
    ap.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)),
                    help='worker processes of each server (default: cores)')
    ap.add_argument('--seconds', type=float, default=5.0,
                    help='how long each client count drives each server (default 5)')
    ap.add_argument('--clients', default='1,4,16,64', help='client counts (default 1,4,16,64)')
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
    print(f'batch scoring, in process: {len(model.predict(rows))} symbols ({len(rows):,} raw + index rows) in '
          f'{batch:.3f} s (target <= 1 s)')
    inproc = []
    for _ in range(200):
        t = time.perf_counter(); model.predict(one); inproc.append((time.perf_counter() - t) * 1000)
    print(f'one symbol in process (validate-or-check -> features -> model): p50 {pct(inproc, 50):.1f} ms, p99 '
          f'{pct(inproc, 99):.1f} ms')

    tmp = Path(tempfile.mkdtemp(prefix='bench_serving_'))
    floor_uri = floor_model(tmp)
    env = os.environ | QUIET | {'PATH': f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    pc, pf = free_port(), free_port()
    champ = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(pc), '--set',
                              f'tracking_uri={uri}',
                              '--set', f'products={prod}', '--request-log', str(tmp / 'requests.jsonl'), '--workers',
                              str(a.workers)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    floor = subprocess.Popen([str(BIN / 'mlflow'), 'models', 'serve', '-m', floor_uri, '--env-manager', 'local', '-w',
                              str(a.workers),
                              '--host', '127.0.0.1', '--port', str(pf)],
                              env=env | {'MLFLOW_TRACKING_URI': f'sqlite:///{tmp}/floor.db'},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(pc, champ); wait(pf, floor)
        cbody = json.dumps({'dataframe_split': json.loads(one.to_json(orient='split', index=False))}).encode()
        fbody = json.dumps({'dataframe_split': {'columns': ['ret_1', 'vol_20'], 'data': [[0.01, -0.3]]}}).encode()
        cc, fc = Client(pc), Client(pf)
        for _ in range(30): assert cc.post(cbody)[0] == 200 and fc.post(fbody)[0] == 200   # warm-up
        mem0 = {'champion': rss_mb(champ.pid), 'floor': rss_mb(floor.pid)}
        levels = [int(x) for x in a.clients.split(',')]
        res = {}
        with ProcessPoolExecutor(min(4, max(levels))) as pool:
            # client processes started before timing
            list(pool.map(time.sleep, [0] * 4))
            for n in levels:
                for name, port, body in (('champion', pc, cbody), ('floor', pf, fbody)):
                    res[name, n] = load(port, body, n, a.seconds, pool, min(4, n))
        mem1 = {'champion': rss_mb(champ.pid), 'floor': rss_mb(floor.pid)}
        print(f'\nREST on loopback, {a.workers} worker process(es) per server, {a.seconds:g} s per cell, keep-alive '
              f'clients (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):')
        print(f"  {'clients':>7}  {'server':<9} {'answers/s':>9} {'p50 ms':>8} {'p99 ms':>8}  non-200")
        for n in levels:
            for name in ('champion', 'floor'):
                r = res[name, n]
                print(f"  {n:>7}  {name:<9} {r['rps']:>9.1f} {r['p50']:>8.1f} {r['p99']:>8.1f}  {r['other'] or '-'}")
        if 1 in levels and 16 in levels:
            c1, c16, f16 = res['champion', 1], res['champion', 16], res['floor', 16]
            print(f"  champion throughput 16 clients / 1 client: x{c16['rps'] / c1['rps']:.2f} (target >= 1.5)")
            print(f"  at 16 clients, champion / floor: throughput {c16['rps'] / f16['rps']:.2f} (target >= 0.8), "
                  f"p99 {c16['p99'] / f16['p99']:.2f} (target <= 1.5)")
        print(f"  resident memory (all processes of each server), before -> after the load: "
              + ', '.join(f"{k} {mem0[k]:.0f} -> {mem1[k]:.0f} MB" for k in mem0))
        allbody = json.dumps({'dataframe_split': json.loads(rows.to_json(orient='split', index=False))}).encode()
        cc = Client(pc)                                        # a new connection: the server closed the idle one
        t = time.perf_counter(); st, _ = cc.post(allbody)
        print(f'REST all symbols in one request: {time.perf_counter() - t:.3f} s (status {st})')
        metrics = cc.get('/metrics')
        keep = [l for l in metrics.splitlines()
                if l.startswith(('nepse_serving_requests_total', 'nepse_serving_predictions_total',
                                                                  'nepse_serving_model_info',
                                                                  'nepse_serving_request_seconds_count',
                                                                  'nepse_serving_request_seconds_sum'))]
        print('/metrics excerpt (merged over the workers):\n  ' + '\n  '.join(keep))
        n = sum(1 for _ in open(tmp / 'requests.jsonl'))
        print(f'request log: {n} lines in {tmp / "requests.jsonl"}')
    finally:
        for p in (champ, floor): p.terminate()
        for p in (champ, floor):
            try: p.wait(60)
            # workers still starting ignore a polite stop
            except subprocess.TimeoutExpired: os.killpg(p.pid, 9); p.wait()


if __name__ == '__main__':
    main()
