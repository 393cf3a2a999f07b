"""Where one REST request's time goes, in process: each step of the champion's answer, the whole ASGI app as
`nepse-mlops serve` runs it, the same request through MLflow's own scoring app (what the server did before), and the
floor (a trivial one-row scikit-learn model through MLflow's app), all in this run. No HTTP, no sockets: what is left
out (uvicorn's HTTP parsing, the client) is the same for the champion and the floor. Prints min and median of `--n`
calls per line and a cProfile of the whole request with `--profile`. Asserts nothing.

    .venv/bin/python benchmarks/profile_request.py [--products DIR] [--n 300] [--profile]
"""
import argparse, asyncio, cProfile, json, pstats, sys, tempfile, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(fs: list, n: int) -> list[tuple[float, float]]:
    "Min and median (ms) of `n` calls of each of `fs`, taken in turn, so a load that comes and goes touches them alike."
    ts = [[] for _ in fs]
    for f in fs: f()                                           # warm-up
    for _ in range(n):
        for f, t in zip(fs, ts):
            a = time.perf_counter(); f(); t.append(time.perf_counter() - a)
    return [(min(t) * 1000, float(np.median(t)) * 1000) for t in ts]


def asgi_call(app, body: bytes, loop):
    "One POST /invocations through an ASGI app, without a server; returns the status."
    scope = {'type': 'http', 'method': 'POST', 'path': '/invocations', 'raw_path': b'/invocations', 'query_string': b'',
             'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode())],
             'root_path': '', 'scheme': 'http', 'server': ('127.0.0.1', 1), 'client': ('127.0.0.1', 2),
             'http_version': '1.1', 'asgi': {'version': '3.0'}}
    out = []
    async def receive(): return {'type': 'http.request', 'body': body, 'more_body': False}
    async def send(m): out.append(m)
    def call():
        loop.run_until_complete(app(scope, receive, send))
        status = out[0]['status']; out.clear(); return status
    return call


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products'))
    ap.add_argument('--n', type=int, default=300)
    ap.add_argument('--profile', action='store_true', help="cProfile the champion's whole request")
    a = ap.parse_args()
    import os, pandas as pd, mlflow
    from mlflow.pyfunc import scoring_server
    from nepse_mlops import serving as S
    from nepse_mlops.features import request_rows, feature_arrays_from_raw
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from bench_serving import floor_model
    prod = Path(a.products)
    mlflow.set_tracking_uri(f'sqlite:///{prod.resolve()}/mlflow.db')
    prices = pd.read_parquet(prod / 'validate/prices.parquet')
    market = pd.read_parquet(prod / 'features/market.parquet')
    sym = sorted(prices[prices.instrument_type == 'equity'].symbol.unique())[0]
    one = request_rows(prices, market, [sym])
    body = json.dumps({'dataframe_split': json.loads(one.to_json(orient='split', index=False))}).encode()
    S.quiet_validation()
    app = S.make_app(mlflow.pyfunc.load_model('models:/nepse_direction@champion'), '1')
    served, py = app.served, app.served._state[1]
    split = S.check_request(body, served.universe, S.latest_session())
    cols = dict(zip(split['columns'], map(list, zip(*split['data']))))
    frame = pd.DataFrame(columns=split['columns'], data=split['data'])
    m = py.meta; limits = m.get('circuit_limits') or m.get('circuit_limit', 0.10)
    tmp = Path(tempfile.mkdtemp(prefix='profile_request_'))
    floor = scoring_server.init(mlflow.pyfunc.load_model(floor_model(tmp)))
    fbody = json.dumps({'dataframe_split': {'columns': ['ret_1', 'vol_20'], 'data': [[0.01, -0.3]]}}).encode()
    loop = asyncio.new_event_loop()
    champion, old, flo = asgi_call(app, body, loop), asgi_call(app.app.app, body, loop), asgi_call(floor, fbody, loop)
    assert champion() == 200 and old() == 200 and flo() == 200
    rows = [('parse + check the body (check_request)',
             lambda: S.check_request(body, served.universe, S.latest_session())),
            ('rows -> columns (lists)', lambda: dict(zip(split['columns'], map(list, zip(*split['data']))))),
            ('rows -> DataFrame (as MLflow parses)',
             lambda: pd.DataFrame(columns=split['columns'], data=split['data'])),
            ('features from columns', lambda: feature_arrays_from_raw(cols, m['horizon'], m.get('sectors'), limits)),
            ('features from the DataFrame',
             lambda: feature_arrays_from_raw(frame, m['horizon'], m.get('sectors'), limits)),
            ('model answer from columns (features + trees)', lambda: py.answer(cols)),
            ('score: columns, answer, metrics, JSON', lambda: served.score(split)),
            ('WHOLE REQUEST champion (guard answers it)', champion),
            ('whole request through MLflow\'s app (before)', old),
            ('WHOLE REQUEST floor (MLflow\'s app, 1 row)', flo)]
    print(f"one symbol: {len(one)} rows, {len(body):,} bytes; {a.n} calls each; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    res = dict(zip([r[0] for r in rows], timed([r[1] for r in rows], a.n)))
    for name, _ in rows:
        print(f"  {name:<46} min {res[name][0]:6.3f} ms   median {res[name][1]:6.3f} ms")
    c, o, fl = (res[k] for k in ('WHOLE REQUEST champion (guard answers it)',
                                 "whole request through MLflow's app (before)",
                                 'WHOLE REQUEST floor (MLflow\'s app, 1 row)'))
    print(f"champion / floor: min {c[0] / fl[0]:.2f}, median {c[1] / fl[1]:.2f}; "
          f"before / floor: min {o[0] / fl[0]:.2f}, median {o[1] / fl[1]:.2f}")
    if a.profile:
        pr = cProfile.Profile(); pr.enable()
        for _ in range(a.n): champion()
        pr.disable(); pstats.Stats(pr).sort_stats('tottime').print_stats(25)


if __name__ == '__main__':
    main()
