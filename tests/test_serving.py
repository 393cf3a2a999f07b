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


def request_rows(tmp, sym):
    "What a client sends: the one request builder, for one symbol of the built products."
    from nepse_mlops.features import request_rows as build
    return build(pd.read_parquet(tmp / 'products/validate/prices.parquet'), pd.read_parquet(tmp / 'products/features/market.parquet'), [sym])


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
    status, body = post(url, {'dataframe_split': {'columns': ['date', 'symbol', 'open', 'high', 'low', 'close', 'volume'],
                                                  'data': [['2024-01-01', 'X', 1, 1, 1, 1, 1], ['2024-01-01', 'NEPSE', None, None, None, 1000, None]]}})
    assert 400 <= status < 500 and ('history' in json.dumps(body) or 'schema' in json.dumps(body).lower()), body
    sym = pd.read_csv(tmp / 'products/predict/predictions.csv').symbol.iat[0]
    rows = request_rows(tmp, sym)
    status, body = post(url, split(rows[rows.symbol != 'NEPSE']))            # index levels left out
    assert status == 400 and "symbol 'NEPSE' needs its level" in body.get('message', ''), body
    status, body = post(url, split(rows.assign(close=rows.close.astype(str).where(rows.index != rows.index[3], 'abc'))))
    assert 400 <= status < 500, body
    assert urllib.request.urlopen(url + '/ping', timeout=5).status == 200
    assert post(url, split(rows))[0] == 200                                   # and it still answers good requests
