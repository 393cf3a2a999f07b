"""REST serving (`nepse-mlops serve`): the champion answers raw OHLCV rows with the batch prediction's probability; bad
requests get 4xx; /metrics is scraped over real HTTP; every answer lands in the request log, which monitoring reads."""
import json, os, subprocess, urllib.error, urllib.request
import pandas as pd
import pytest
from conftest import BIN, QUIET, ROOT, free_port, wait_http


@pytest.fixture(scope='module')
def server(sample_build):
    tmp, _ = sample_build
    port = free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(port), '--workers',
                             '2',
                             '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', '--set',
                             f'products={tmp}/products'],
                            env=os.environ | QUIET, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        # worker processes start slowly on a busy machine
        wait_http(f'http://127.0.0.1:{port}/ping', proc, timeout=300)
        yield f'http://127.0.0.1:{port}', tmp
    finally:
        proc.terminate(); proc.wait(20)


def post(url, payload):
    req = urllib.request.Request(url + '/invocations', data=json.dumps(payload).encode(),
                                 headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b'{}')


def request_rows(tmp, sym):
    "What a client sends: the one request builder, for one symbol of the built products."
    from nepse_mlops.features import request_rows as build
    return build(pd.read_parquet(tmp / 'products/validate/prices.parquet'),
                 pd.read_parquet(tmp / 'products/features/market.parquet'), [sym])


def split(rows):
    return {'dataframe_split': json.loads(rows.to_json(orient='split', index=False))}


def test_rest_matches_batch_prediction(server):
    url, tmp = server
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    for i in (0, len(preds) - 1):                      # the most and the least bullish symbol
        sym = preds.symbol.iat[i]
        status, body = post(url, split(request_rows(tmp, sym)))
        assert status == 200, body
        ans = body['predictions'][0]
        assert ans['symbol'] == sym and ans['date'] == preds.feature_date.iat[i]
        assert abs(ans['prob_up'] - preds.prob_up.iat[i]) < 1e-12
        assert ans['model_version'] == str(preds.model_version.iat[i]) == '1'


def test_bad_requests_get_4xx_and_server_stays_up(server):
    url, tmp = server
    status, body = post(url, {'dataframe_split': {'columns': ['date', 'open'], 'data': [['2024-01-01', 1.0]]}})
    assert 400 <= status < 500, (status, body)
    status, body = post(url,
                        {'dataframe_split': {'columns': ['date', 'symbol', 'open', 'high', 'low', 'close', 'volume'],
                                                  'data': [['2024-01-01', 'X', 1, 1, 1, 1, 1],
                                                           ['2024-01-01', 'NEPSE', None, None, None, 1000, None]]}})
    # X is no symbol the model knows
    assert status == 422 and 'not one of the' in body['message'], body
    sym = pd.read_csv(tmp / 'products/predict/predictions.csv').symbol.iat[0]
    rows = request_rows(tmp, sym)
    status, body = post(url, split(rows[rows.symbol != 'NEPSE']))            # index levels left out
    assert status == 400 and "symbol 'NEPSE' needs its level" in body.get('message', ''), body
    status, body = post(url, split(rows.assign(close=rows.close.astype(str).where(rows.index != rows.index[3], 'abc'))))
    assert 400 <= status < 500, body
    assert urllib.request.urlopen(url + '/ping', timeout=5).status == 200
    assert post(url, split(rows))[0] == 200                                   # and it still answers good requests


def scrape(url) -> dict[str, float]:
    "The /metrics samples, by their name and labels as written."
    text = urllib.request.urlopen(url + '/metrics', timeout=10).read().decode()
    return {line.rsplit(' ', 1)[0]: float(line.rsplit(' ', 1)[1]) for line in text.splitlines() if line
            and not line.startswith('#')}


def test_metrics_and_request_log_after_100_requests(server):
    "Counts, histogram and model info merged over both worker processes; every answer in the request log."
    url, tmp = server
    from nepse_mlops.serving import read_request_log
    log = tmp / 'products/serving/requests.jsonl'
    before, logged = scrape(url), len(read_request_log(log))
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    syms = list(preds.symbol.head(4))
    bodies = [split(request_rows(tmp, s)) for s in syms]
    for i in range(100): assert post(url, bodies[i % len(bodies)])[0] == 200
    after = scrape(url)
    ok = 'nepse_serving_requests_total{path="/invocations",status="200"}'
    assert after[ok] - before.get(ok, 0) == 100
    assert (after['nepse_serving_request_seconds_count{path="/invocations"}']
            - before.get('nepse_serving_request_seconds_count{path="/invocations"}', 0) >= 100)
    assert (after['nepse_serving_predictions_total{model_version="1"}']
            - before.get('nepse_serving_predictions_total{model_version="1"}', 0) == 100)
    info = [k for k in after if k.startswith('nepse_serving_model_info{')]
    assert len(info) == 1 and 'version="1"' in info[0] and 'model_name="nepse_direction"' in info[0], info
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in after.items()
                     if k.startswith('nepse_serving_request_seconds_bucket{') and 'path="/invocations"' in k)
    assert ([v for _, v in buckets] == sorted(v for _, v in buckets)
            and buckets[-1][1] == after['nepse_serving_request_seconds_count{path="/invocations"}'])
    # every answer is in the request log, with what monitoring joins on: symbol, feature date, version, probability
    rl = read_request_log(log).iloc[logged:]
    assert len(rl) == 100 and set(rl.symbol) == set(syms) and (rl.model_version == '1').all()
    batch = preds.set_index('symbol')
    for r in rl.drop_duplicates('symbol').itertuples():
        assert r.date == batch.feature_date[r.symbol] and abs(r.prob_up - batch.prob_up[r.symbol]) < 1e-6
    assert (rl.time.max() - rl.time.min()).total_seconds() < 600


def test_served_probability_is_the_estimators(server):
    "The served fast path (`train.TreeTable`) gives the fitted estimator's own predict_proba on the features row."
    url, tmp = server
    import mlflow
    from nepse_mlops.features import build_features
    from nepse_mlops.features import FEATURES
    mlflow.set_tracking_uri(f'sqlite:///{tmp}/products/mlflow.db')
    est = mlflow.pyfunc.load_model('models:/nepse_direction@champion').unwrap_python_model().est
    prices = pd.read_parquet(tmp / 'products/validate/prices.parquet')
    feats = build_features(prices, 1, pd.read_parquet(tmp / 'products/features/market.parquet'))
    for sym in pd.read_csv(tmp / 'products/predict/predictions.csv').symbol.head(3):
        ans = post(url, split(request_rows(tmp, sym)))[1]['predictions'][0]
        row = feats[(feats.symbol == sym) & (feats.date == pd.Timestamp(ans['date']))][FEATURES]
        assert len(row) == 1 and abs(est.predict_proba(row)[0, 1] - ans['prob_up']) < 1e-12


def test_champion_watch_follows_promotion_and_rollback(sample_build, tmp_path):
    "A running server picks up a promotion and a rollback through the registry alias, without a restart."
    import shutil, time, mlflow
    tmp, _ = sample_build
    # a registry of its own (artifacts stay where they are)
    shutil.copy(tmp / 'products/mlflow.db', tmp_path / 'mlflow.db')
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    # the new version's source resolves against it
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    v1 = client.get_model_version_by_alias('nepse_direction', 'champion')
    v2 = client.create_model_version('nepse_direction', v1.source, run_id=v1.run_id)   # the same model, a new version
    port = free_port()
    # one watch: the reload count below is its
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(port),
                             '--watch-every', '0.5',
                             '--workers', '1',
                             '--set', f'tracking_uri={uri}', '--set', f'products={tmp_path}'],
                            env=os.environ | QUIET, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    body = split(request_rows(tmp, pd.read_csv(tmp / 'products/predict/predictions.csv').symbol.iat[0]))

    def served_version(want, timeout=30):
        t0 = time.time()
        while time.time() - t0 < timeout:
            got = post(url, body)[1]['predictions'][0]['model_version']
            if got == want: return got
            time.sleep(0.2)
        return got
    try:
        wait_http(url + '/ping', proc, timeout=300)
        assert served_version(str(v1.version), 1) == str(v1.version)
        # what `nepse-mlops promote` does
        client.set_registered_model_alias('nepse_direction', 'champion', v2.version)
        assert served_version(str(v2.version)) == str(v2.version)
        client.set_registered_model_alias('nepse_direction', 'champion', v1.version)       # and a rollback
        assert served_version(str(v1.version)) == str(v1.version)
        m = scrape(url)
        assert m['nepse_serving_model_reloads_total'] == 2
        assert any(k.startswith('nepse_serving_model_info{') and f'version="{v1.version}"' in k for k in m)
    finally:
        proc.terminate(); out = proc.communicate(timeout=20)[0]
    assert (f'champion moved: now serving version {v2.version}' in out
            and f'champion moved: now serving version {v1.version}' in out), out
