"""REST serving: the champion answers raw OHLCV rows with the batch prediction's probability; bad requests get 4xx."""
import json, os, subprocess, urllib.error, urllib.request
import pandas as pd
import pytest
from conftest import BIN, QUIET, free_port, wait_http


@pytest.fixture(scope='module')
def server(sample_build):
    tmp, _ = sample_build
    port = free_port()
    env = os.environ | QUIET | {'MLFLOW_TRACKING_URI': f'sqlite:///{tmp}/products/mlflow.db',
                                  'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # scoring server execs uvicorn
    proc = subprocess.Popen([str(BIN / 'mlflow'), 'models', 'serve', '-m', 'models:/nepse_direction@champion',
                             '--env-manager', 'local', '--host', '127.0.0.1', '--port', str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f'http://127.0.0.1:{port}/ping', proc)
        yield f'http://127.0.0.1:{port}', tmp
    finally:
        proc.terminate(); proc.wait(20)


def post(url, payload):
    req = urllib.request.Request(url + '/invocations', data=json.dumps(payload).encode(), headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b'{}')


def test_rest_matches_batch_prediction(server):
    url, tmp = server
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    prices = pd.read_parquet(tmp / 'products/validate/prices.parquet')
    sym = preds.symbol.iat[0]
    rows = prices[prices.symbol == sym].sort_values('date').tail(61)
    rows = rows.assign(date=rows.date.dt.strftime('%Y-%m-%d'))[['date', 'symbol', 'open', 'high', 'low', 'close', 'volume']]
    status, body = post(url, {'dataframe_split': json.loads(rows.to_json(orient='split', index=False))})
    assert status == 200, body
    ans = body['predictions'][0]
    assert ans['symbol'] == sym and ans['date'] == preds.feature_date.iat[0]
    assert abs(ans['prob_up'] - preds.prob_up.iat[0]) < 1e-9


def test_bad_requests_get_4xx_and_server_stays_up(server):
    url, tmp = server
    status, body = post(url, {'dataframe_split': {'columns': ['date', 'open'], 'data': [['2024-01-01', 1.0]]}})
    assert 400 <= status < 500, (status, body)
    status, body = post(url, {'dataframe_split': {'columns': ['date', 'symbol', 'open', 'high', 'low', 'close', 'volume'],
                                                  'data': [['2024-01-01', 'X', 1, 1, 1, 1, 1]]}})
    assert 400 <= status < 500 and ('history' in json.dumps(body) or 'schema' in json.dumps(body).lower()), body
    assert urllib.request.urlopen(url + '/ping', timeout=5).status == 200
