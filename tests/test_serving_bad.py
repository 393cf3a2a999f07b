"""REST for real traffic: a corpus of malformed and hostile requests sent over real HTTP to `nepse-mlops serve` (each
gets its 4xx and one short sentence, the server stays up, nothing wrong is ever answered 200 or logged), many clients
at once on worker processes (every answer right), a full queue (503 with Retry-After), and a request past its timeout
(504; its work stops)."""
import http.client, json, os, subprocess, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
import pandas as pd
import pytest
from conftest import BIN, QUIET, ROOT, free_port, wait_http


def start(tmp, log, *extra):
    port = free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'serve', '--port', str(port), *extra,
                             '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db', '--set',
                             f'products={tmp}/products'],
                            env=os.environ | QUIET, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f'http://127.0.0.1:{port}/ping', proc, timeout=300)
    return proc, port


@pytest.fixture(scope='module')
def server(sample_build, tmp_path_factory):
    "Two worker processes; at most 3 symbols per request (so the symbol cap is reachable with the sample's universe)."
    tmp, _ = sample_build
    out = tmp_path_factory.mktemp('serve_bad') / 'serve.out'
    with open(out, 'w') as log:
        proc, port = start(tmp, log, '--workers', '2', '--max-symbols', '3', '--request-log',
                           str(out.parent / 'requests.jsonl'))
        try: yield port, tmp, out
        finally: proc.terminate(); proc.wait(30)


def call(port, body: bytes | None, headers=None, method='POST', path='/invocations') -> tuple[int, str, dict]:
    "Status, the message (the JSON's `message`, else the text) and the headers of one raw HTTP exchange."
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    c.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items(): c.putheader(k, v)
    if body is not None: c.putheader('Content-Length', str(len(body)))
    c.endheaders()
    if body: c.send(body)
    r = c.getresponse(); text = r.read().decode('utf-8', 'replace'); c.close()
    try: msg = json.loads(text).get('message', text)
    except (ValueError, AttributeError): msg = text
    return r.status, msg, {k.lower(): v for k, v in r.getheaders()}


JSON = {'Content-Type': 'application/json'}


def rows_for(tmp, syms):
    from nepse_mlops.features import request_rows
    return request_rows(pd.read_parquet(tmp / 'products/validate/prices.parquet'),
                        pd.read_parquet(tmp / 'products/features/market.parquet'), syms)


def split(rows) -> dict:
    return json.loads(rows.to_json(orient='split', index=False))


def enc(split_: dict) -> bytes:
    return json.dumps({'dataframe_split': split_}).encode()


def corpus(tmp) -> list[tuple[str, bytes | None, dict, int, str]]:
    "(name, body, headers, status, message fragment): at least 40 requests a strict server refuses."
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    syms = list(preds.symbol)
    good = split(rows_for(tmp, syms[:1]))
    cols = good['columns']
    ci = {c: i for i, c in enumerate(cols)}

    def cell(col, value, row=0):
        s = json.loads(json.dumps(good)); s['data'][row][ci[col]] = value; return enc(s)

    def raw(col, token, row=0):                          # a literal JSON token in a cell (NaN, Infinity, 1e400)
        return cell(col, '@@', row).replace(b'"@@"', token)

    def every(col, value):                               # one column changed on every equity row
        s = json.loads(json.dumps(good)); sym = s['data'][0][ci['symbol']]
        for r in s['data']:
            if r[ci['symbol']] == sym: r[ci[col]] = value
        return enc(s)

    last = good['data'][0][ci['date']]
    # the symbol's rows come first, by date
    n_eq = sum(r[ci['symbol']] == good['data'][0][ci['symbol']] for r in good['data'])
    saturday = (pd.Timestamp(good['data'][n_eq - 1][ci['date']]) + pd.offsets.Week(weekday=5)).strftime('%Y-%m-%d')
    dup = json.loads(json.dumps(good)); dup['data'].append(list(dup['data'][1])); dup['data'][-1][ci['close']] = 1.0
    same = json.loads(json.dumps(good)); same['data'].append(list(same['data'][1]))
    short = split(rows_for(tmp, syms[:1]).groupby('symbol').tail(20))
    no_index = json.loads(json.dumps(good)); no_index['data'] = [r for r in good['data'] if r[ci['symbol']] != 'NEPSE']
    many = split(rows_for(tmp, syms[:4]))
    tiny_rows = enc({'columns': ['date', 'symbol', 'close'], 'data': [[last, 'NEPSE', 1.0]] * 26_000})
    future = pd.Timestamp(last) + pd.DateOffset(years=5)
    future = (future + pd.offsets.BDay(1) if future.dayofweek >= 5 else future).strftime('%Y-%m-%d')
    return [
        ('no content type', enc(good), {}, 415, 'Content-Type: application/json'),
        ('csv content type', b'date,symbol,close\n', {'Content-Type': 'text/csv'}, 415,
         'Content-Type: application/json'),
        ('latin-1 charset', enc(good), {'Content-Type': 'application/json; charset=latin-1'}, 415, 'UTF-8'),
        ('GET', None, {}, 405, 'use POST'),
        ('not JSON', b'hello', JSON, 400, 'not UTF-8 JSON'),
        ('not UTF-8', b'\xff\xfe\x00', JSON, 400, 'not UTF-8 JSON'),
        ('100,000-deep JSON', b'[' * 100_000 + b']' * 100_000, JSON, 400, 'nested too deeply'),
        ('5 MB body', b' ' * 5_000_000, JSON, 413, 'over 4,000,000 bytes'),
        ('1e6 rows', enc({'columns': cols, 'data': [good['data'][0]] * 1_000_000}), JSON, 413, 'over 4,000,000 bytes'),
        ('26,000 small rows', tiny_rows, JSON, 413, 'over the cap of 25,000 rows'),
        ('4 symbols over a cap of 3', enc(many), JSON, 413, '4 symbols is over the cap of 3'),
        ('inputs instead of dataframe_split', json.dumps({'inputs': good['data']}).encode(), JSON, 400,
         'dataframe_split'),
        ('a list at the top', b'[1, 2]', JSON, 400, 'dataframe_split'),
        ('extra params key', json.dumps({'dataframe_split': good, 'params': {}}).encode(), JSON, 400,
         'dataframe_split'),
        ('dataframe_split a list', json.dumps({'dataframe_split': [1]}).encode(), JSON, 400, 'dataframe_split'),
        ('index key', enc(good | {'index': list(range(len(good['data'])))}), JSON, 400, "list 'columns'"),
        ('close missing', enc({'columns': cols[:5], 'data': [r[:5] for r in good['data']]}), JSON, 400,
         'close are missing'),
        ('unknown column', enc({'columns': cols[:-1] + ['colour'], 'data': good['data']}), JSON, 400, 'distinct names'),
        ('duplicate column', enc({'columns': cols[:-1] + ['close'], 'data': good['data']}), JSON, 400,
         'distinct names'),
        ('short row', enc({'columns': cols, 'data': [good['data'][0][:-1]] + good['data'][1:]}), JSON, 400,
         f'list of {len(cols)} values'),
        ('no rows', enc({'columns': cols, 'data': []}), JSON, 400, 'no rows'),
        ('unknown symbol ZZZZ', every('symbol', 'ZZZZ'), JSON, 422, 'not one of the'),
        ('integer symbol', cell('symbol', 12345), JSON, 400, 'symbols must be text'),
        ('symbol with a newline and JSON', cell('symbol', 'NABIL\n{"prob_up": 1}'), JSON, 400, 'capital letters'),
        ('1 MB symbol', cell('symbol', 'A' * 1_000_000), JSON, 400, 'capital letters'),
        ('lower-case symbol', every('symbol', syms[0].lower()), JSON, 400, 'capital letters'),
        ('null symbol', cell('symbol', None), JSON, 400, 'symbols must be text'),
        ('five years ahead', cell('date', future), JSON, 422, 'after the latest session'),
        ('year 9999', cell('date', '9999-12-31'), JSON, 422, 'after the latest session'),
        ('latest row on a Saturday', cell('date', saturday, row=n_eq - 1), JSON, 422,
         'is a Saturday, not a NEPSE session day'),
        ('30 February', cell('date', '2026-02-30'), JSON, 400, 'real calendar days'),
        ('date as a number', cell('date', 20260820), JSON, 400, 'dates must be text'),
        ('date with a time', cell('date', last + 'T00:00:00'), JSON, 400, 'YYYY-MM-DD'),
        ('year 1816', cell('date', '1816-03-01'), JSON, 422, 'first trading year'),
        ('true as a price', cell('close', True), JSON, 400, 'close holds a boolean'),
        ('NaN', raw('close', b'NaN'), JSON, 400, 'NaN is not a number'),
        ('Infinity', raw('high', b'Infinity'), JSON, 400, 'Infinity is not a number'),
        ('-Infinity', raw('low', b'-Infinity'), JSON, 400, '-Infinity is not a number'),
        ('1e400', raw('close', b'1e400'), JSON, 400, 'Infinity is not a number'),
        ('1e308', cell('close', 1e308), JSON, 422, 'beyond any NEPSE value'),
        ('zero close', cell('close', 0), JSON, 422, 'close must be positive'),
        ('negative open', cell('open', -3.5), JSON, 422, 'open must be positive'),
        ('negative volume', cell('volume', -100), JSON, 422, 'volume must not be negative'),
        ('text price', cell('close', 'abc'), JSON, 400, 'close holds str values'),
        ('a list in a cell', cell('close', [1, 2]), JSON, 400, 'close holds list values'),
        ('an object in a cell', cell('volume', {'a': 1}), JSON, 400, 'volume holds dict values'),
        ('null close', cell('close', None), JSON, 400, 'every row needs its close'),
        ('conflicting duplicate date', enc(dup), JSON, 422, 'two rows for'),
        ('exact duplicate row', enc(same), JSON, 422, 'two rows for'),
        ('too little history', enc(short), JSON, 400, 'too little history'),
        ('index rows left out', enc(no_index), JSON, 400, "symbol 'NEPSE' needs its level"),
    ]


def test_bad_request_corpus(server):
    ("Every request of the corpus gets its status and one short "
     "sentence; the server stays up; none reaches the request log.")
    port, tmp, out = server
    cases = corpus(tmp)
    assert len(cases) >= 40
    log = out.parent / 'requests.jsonl'
    before = log.read_text().count('\n') if log.exists() else 0
    wrong = []
    for name, body, headers, status, fragment in cases:
        got, msg, _ = call(port, body, headers, method='GET' if name == 'GET' else 'POST')
        if got != status or fragment not in msg or len(msg) > 300 or '\n' in msg.strip() or 'Failed to predict' in msg:
            wrong.append((name, got, msg[:300]))
        assert urllib.request.urlopen(f'http://127.0.0.1:{port}/ping', timeout=10).status == 200, name
    assert not wrong, wrong
    after = log.read_text().count('\n') if log.exists() else 0
    assert after == before                                     # nothing refused was logged
    good = enc(split(rows_for(tmp, [pd.read_csv(tmp / 'products/predict/predictions.csv').symbol.iat[0]])))
    assert call(port, good, JSON)[0] == 200                     # and good requests still get answers


def test_16_clients_on_two_workers(server):
    ("16 clients x 12 requests at once over keep-alive connections: every "
     "answer 200 and the batch's probability; no stdout per request.")
    port, tmp, out = server
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv').set_index('symbol')
    syms = list(preds.index[:4])
    bodies = {s: enc(split(rows_for(tmp, [s]))) for s in syms}

    def client(k):
        c, res = http.client.HTTPConnection('127.0.0.1', port, timeout=120), []
        for i in range(12):
            s = syms[(k + i) % len(syms)]
            c.request('POST', '/invocations', body=bodies[s], headers=JSON)
            r = c.getresponse(); res.append((s, r.status, json.loads(r.read())))
        c.close()
        return res
    with ThreadPoolExecutor(16) as ex: results = [x for r in ex.map(client, range(16)) for x in r]
    assert len(results) == 192
    for s, status, body in results:
        assert status == 200, body
        ans = body['predictions'][0]
        assert ans['symbol'] == s and ans['date'] == preds.feature_date[s] and abs(ans['prob_up']
                                                                                   - preds.prob_up[s]) < 1e-12
    text = out.read_text()
    # start-up lines and rate-limited events only
    assert 'validate:' not in text and text.count('\n') < 40, text[-2000:]
    for line in text.splitlines():                                          # every event line is one JSON object
        if line.startswith('{'): assert json.loads(line)['event'] in ('refused', 'overloaded', 'timeout',
                                                                      'server_error')


def test_full_queue_answers_503_with_retry_after(sample_build, tmp_path):
    ("One worker that takes one request at a time: concurrent big "
     "requests beyond it get 503 + Retry-After at once, the rest 200.")
    tmp, _ = sample_build
    with open(tmp_path / 'serve.out', 'w') as log:
        proc, port = start(tmp, log, '--workers', '1', '--max-queue', '1', '--request-log', 'off')
        try:
            preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
            # every symbol: tens of ms per request
            body = enc(split(rows_for(tmp, list(preds.symbol))))
            start_line = threading.Barrier(16)
            def one(_):
                start_line.wait(); return call(port, body, JSON)
            with ThreadPoolExecutor(16) as ex: res = list(ex.map(one, range(16)))
            codes = [r[0] for r in res]
            assert set(codes) <= {200, 503} and codes.count(503) >= 1 and codes.count(200) >= 1, codes
            for status, msg, headers in res:
                if status == 503: assert headers.get('retry-after') == '1' and 'retry after' in msg, (msg, headers)
            assert urllib.request.urlopen(f'http://127.0.0.1:{port}/ping', timeout=10).status == 200
            assert call(port, body, JSON)[0] == 200                              # the queue drained: answers again
        finally: proc.terminate(); proc.wait(30)


def tree(pid: int) -> list[int]:
    "A process and all its descendants, from /proc."
    out, todo = [], [pid]
    while todo:
        p = todo.pop(); out.append(p)
        try: todo += [int(c) for t in os.listdir(f'/proc/{p}/task')
                      for c in open(f'/proc/{p}/task/{t}/children').read().split()]
        except OSError: pass
    return out


def cpu_seconds(pids) -> float:
    "User + system CPU time of `pids` so far."
    total = 0
    for p in pids:
        try: total += sum(int(x) for x in open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[11:13])
        except OSError: pass
    return total / os.sysconf('SC_CLK_TCK')


def rss_bytes(pids) -> int:
    return sum(int(open(f'/proc/{p}/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') for p in pids
               if os.path.exists(f'/proc/{p}'))


def test_timeout_stops_the_work(sample_build, tmp_path):
    ("Requests past a 2 ms timeout over real HTTP: 504 and one "
     "sentence each; then the server idles and its memory stays put.")
    tmp, _ = sample_build
    with open(tmp_path / 'serve.out', 'w') as log:
        proc, port = start(tmp, log, '--workers', '1', '--timeout', '0.002', '--request-log', 'off', '--watch-every',
                           '0')
        try:
            preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
            body = enc(split(rows_for(tmp, list(preds.symbol))))                 # every symbol: tens of ms of work
            pids = tree(proc.pid)
            call(port, body, JSON); rss0 = rss_bytes(pids)
            for _ in range(20):
                status, msg, _ = call(port, body, JSON)
                assert status == 504 and msg.startswith("the request was stopped after 0.002 s, the server's timeout: "
                                                        "send"), msg
                assert '\n' not in msg and len(msg) < 200
            cpu0 = cpu_seconds(pids); time.sleep(1.5)
            assert cpu_seconds(pids) - cpu0 < 0.2                                # nothing runs on after the answers
            assert rss_bytes(pids) - rss0 < 30e6, (rss0, rss_bytes(pids))        # nothing held
            assert urllib.request.urlopen(f'http://127.0.0.1:{port}/ping', timeout=10).status == 200
        finally: proc.terminate(); proc.wait(30)
    events = [json.loads(l) for l in (tmp_path / 'serve.out').read_text().splitlines() if l.startswith('{')]
    assert events and {e['event'] for e in events} == {'timeout'}, events            # rate-limited: one line per 10 s
