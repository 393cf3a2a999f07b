"""The Voila dashboard in a real headless Chromium: panels, champion, predictions, the sector and symbol controls,
`?symbol=` preselection, the optional per-sector drift table, the friendly empty page, and the static snapshot;
what a stakeholder reads (the SYNTHETIC banner, the plain sentence, an unknown symbol, refusals first); and the server:
kernels bounded and culled, a token off loopback."""
import csv, json, os, shutil, signal, socket, subprocess, tempfile, threading, time, urllib.error, urllib.request
from contextlib import contextmanager
from pathlib import Path
import pytest
from conftest import BIN, CHROMIUM, QUIET, ROOT, free_port, needs_chromium, wait_http

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
PANELS = ['Data freshness and last run', 'Champion model', 'Drift', 'Realised performance', 'Latest predictions',
          'Price and predictions']
BAD = ['Traceback', 'Error', 'Exception']


@contextmanager
def dashboard(products, env=None):
    "`nepse-mlops dashboard` on a free port, serving `products`; yields a Playwright page factory."
    for attempt in range(3):   # a free port can be taken between free_port() and the bind: refused, try another
        port = free_port()
        # the server's log beside the products, for a failure
        log = open(Path(products).parent / f'dashboard_{port}.log', 'w')
        proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port)],
                                env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': str(products)} | (env or {}),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f'http://127.0.0.1:{port}/'
        try: wait_http(url, proc); break
        except Exception as e:
            if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)
            log.close()
            # the CLI's refusal ("is in use") or Voila's own ("is already in use")
            if attempt == 2 or not isinstance(e, RuntimeError) or 'in use' not in Path(log.name).read_text(): raise
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            def open_page(query='', wait_for='Price and predictions'):
                page = b.new_page(viewport={'width': 1300, 'height': 1000})
                # Voila keeps loading widgets; wait for content instead
                page.goto(url + query, timeout=120_000, wait_until='commit')
                page.wait_for_selector(f'text={wait_for}', timeout=120_000)
                if wait_for == 'Price and predictions':
                    page.wait_for_selector('table.nm-preds', timeout=60_000); page.wait_for_selector('text=Selected:',
                                                                                                     timeout=60_000)
                return page
            yield open_page
            b.close()
    finally:
        # the CLI and its Voila (whose kernels stop with it)
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(20); log.close()


def rows(page):
    "The predictions table's rows as (symbol, sector), and the highlighted symbol."
    r = page.locator('table.nm-preds tbody tr')
    cells = [r.nth(i).locator('td').all_inner_texts() for i in range(r.count())]
    sel = page.locator('table.nm-preds tr.nm-sel td').first
    return [(c[0], c[1]) for c in cells], (sel.inner_text() if sel.count() else None)


def dropdown(page, label):
    return page.locator(f'.widget-dropdown:has(label:text-is("{label}")) select')


@needs_chromium
def test_dashboard_shows_every_panel(sample_build, tmp_path):
    tmp, _ = sample_build
    preds = list(csv.DictReader(open(tmp / 'products/predict/predictions.csv')))
    sym = sorted(r['symbol'] for r in preds)[-1]                                   # not the default first one
    with dashboard(tmp / 'products') as open_page:
        page = open_page(f'?symbol={sym.lower()}')
        text = page.inner_text('body')
        table, selected = rows(page)
        page.screenshot(path=str(tmp_path / 'dashboard.png'), full_page=True)
    for title in PANELS: assert title in text, title
    assert 'version 1' in text
    assert len(table) == len(preds) >= 10
    assert f'Selected: {sym}' in text and selected == sym                          # ?symbol= preselects and highlights
    assert page_has_no_error(text)


def page_has_no_error(text):
    return not [b for b in BAD if b in text]


@needs_chromium
def test_dashboard_sector_and_symbol_controls(sample_build, tmp_path):
    "Picking a sector narrows the table and the symbol choices; the symbol filter narrows the table; the chart follows."
    tmp, _ = sample_build
    preds = list(csv.DictReader(open(tmp / 'products/predict/predictions.csv')))
    sectors = sorted({r['sector'] for r in preds if r['sector']})
    assert len(sectors) >= 2, 'the synthetic sample has sectors'
    sector = sectors[-1]
    in_sector = sorted(r['symbol'] for r in preds if r['sector'] == sector)
    with dashboard(tmp / 'products') as open_page:
        page = open_page()
        assert dropdown(page, 'Sector').locator('option').all_inner_texts() == ['all'] + sectors
        first_symbol = dropdown(page, 'Symbol').input_value()
        dropdown(page, 'Sector').select_option(sector)
        page.wait_for_function(f"document.querySelectorAll('table.nm-preds tbody tr').length == {len(in_sector)}",
                               timeout=30_000)
        table, _ = rows(page)
        symbol_options = dropdown(page, 'Symbol').locator('option').all_inner_texts()
        page.wait_for_selector(f'text=Selected: {in_sector[0]}' if first_symbol not in in_sector
                               else f'text=Selected: {first_symbol}', timeout=30_000)
        page.locator('.widget-text:has(label:text-is("Filter")) input').fill(in_sector[-1].lower())
        page.wait_for_function("document.querySelectorAll('table.nm-preds tbody tr').length == 1", timeout=30_000)
        filtered, _ = rows(page)
        dropdown(page, 'Symbol').select_option(in_sector[-1])
        page.wait_for_selector(f'text=Selected: {in_sector[-1]}', timeout=30_000)
        text = page.inner_text('body')
    assert {s for _, s in table} == {sector} and sorted(sym for sym, _ in table) == in_sector
    assert symbol_options == in_sector
    assert filtered == [(in_sector[-1], sector)]
    assert page_has_no_error(text)


@needs_chromium
def test_dashboard_sector_drift_table(sample_build, tmp_path):
    "monitor/drift_sectors.csv, when the monitor stage wrote it, shows as a table (here added to a copy if absent)."
    tmp, _ = sample_build
    products = tmp_path / 'products'
    shutil.copytree(tmp / 'products', products, ignore=shutil.ignore_patterns('mlflow.db', 'mlartifacts', 'mlruns'))
    f = products / 'monitor/drift_sectors.csv'
    if not f.exists():
        f.write_text('sector,reference_rows,current_rows,drifted_columns,columns,drift_share,dataset_drift\n'
                     'Hydropower,500,40,9,12,0.75,True\nCommercial Banks,600,45,1,12,0.083,False\n')
    top = max(csv.DictReader(open(f)), key=lambda r: float(r['drift_share']))['sector']
    with dashboard(products) as open_page:
        page = open_page(wait_for='Drift by sector')
        text = page.inner_text('body')
    assert 'Drift by sector' in text and top in text
    assert page_has_no_error(text)


@needs_chromium
def test_dashboard_without_products_is_friendly(tmp_path):
    empty = tmp_path / 'nothing'; empty.mkdir()
    with dashboard(empty) as open_page:
        text = open_page(wait_for='No pipeline products yet').inner_text('body')
    assert 'make run' in text and 'Traceback' not in text


def test_static_snapshot(sample_build):
    ("The pipeline's dashboard task writes a static HTML snapshot: "
     "every panel, the table and the charts, no widgets needed.")
    tmp, _ = sample_build
    page = (tmp / 'reports/dashboard.html').read_text()
    for title in PANELS: assert title in page, title
    assert "nm-preds" in page and '<svg' in page and 'Selected:' in page
    assert 'Traceback' not in page


def products_copy(tmp, dest):
    "The sample's products and reports copied to `dest` (no tracking store), for a test that edits them."
    shutil.copytree(tmp / 'products', dest / 'products',
                    ignore=shutil.ignore_patterns('mlflow.db', 'mlartifacts', 'mlruns'))
    shutil.copytree(tmp / 'reports', dest / 'reports', ignore=shutil.ignore_patterns('*.html', '*.ipynb', '*.log'))
    return dest / 'products', dest / 'reports'


@needs_chromium
def test_dashboard_says_it_plainly(sample_build, tmp_path):
    "SYNTHETIC banner on top, the champion in a plain sentence, an unknown ?symbol= said in words, failed checks first."
    tmp, _ = sample_build
    products, reports = products_copy(tmp, tmp_path)
    failed = 'walk-forward: not shown better than reversal: +0.0050 [-0.0100, +0.0200] includes 0 ' + 'and words ' * 12
    refusal = dict(time='2026-08-22T10:00:00+00:00', event='refused', version='2', previous_champion='1',
                   reasons=['gate window: beats always_up on roc_auc by +0.0100 (0.5100 vs 0.5000)', failed])
    with open(reports / 'registry_ledger.jsonl', 'a') as f: f.write(json.dumps(refusal) + '\n')
    with dashboard(products, {'NEPSE_MLOPS_REPORTS': str(reports)}) as open_page:
        page = open_page('?symbol=NABIL')
        text = page.inner_text('body')
        card = page.locator('.nm-card:has(h3:text-is("Champion model"))')
        shot = Path(tempfile.gettempdir()) / 'nepse_mlops_champion_card.png'   # outlives pytest's rotation of tmp_path
        card.screenshot(path=str(shot))
        why = page.locator('table.nm-ledger tbody tr').first.locator('td.nm-why').inner_text()
        _, selected = rows(page)
    print(f'champion card screenshot: {shot}')
    assert 'SYNTHETIC DATA' in text and text.index('SYNTHETIC DATA') < text.index('Data freshness and last run')
    assert 'whether its next close will be higher than its last close' in text
    assert 'of the time; the best simple rule on the same rows' in text and 'buy-and-hold' in text
    assert 'No prediction for symbol NABIL' in text
    assert f'Showing {selected} instead' in text and f'Selected: {selected}' in text
    assert why.index('not shown better than reversal') < why.index('1 check passed')   # failed first
    assert failed.strip() in why                                                          # and whole
    assert 'replay model v' in text and ('have not settled yet' in text or 'from the prediction log' in text)
    assert page_has_no_error(text)


def kernel_count(pid: int) -> int:
    "Kernel processes under the dashboard command."
    import psutil
    kids = psutil.Process(pid).children(recursive=True)
    n = 0
    for k in kids:
        try: n += 'ipykernel_launcher' in ' '.join(k.cmdline())
        except psutil.Error: pass
    return n


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    "Wait until the port accepts connections (a GET would itself start a kernel)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f'server exited with {proc.returncode}')
        try: socket.create_connection(('127.0.0.1', port), timeout=1).close(); return
        except OSError: time.sleep(0.3)
    raise TimeoutError(port)


def fetch(url: str) -> tuple[int, str, dict]:
    "GET without following redirects: (status, body, headers)."
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k): return None
    try:
        r = urllib.request.build_opener(NoRedirect).open(url, timeout=180)
        return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors='replace'), dict(e.headers)


def test_dashboard_kernels_bounded_and_culled(sample_build):
    """Anonymous page fetches that never open the websocket: at most --max-kernels kernels, the rest told 'busy, retry';
    back to the pool after the cull."""
    tmp, _ = sample_build
    port, cap = free_port(), 3
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port),
                             '--max-kernels', str(cap), '--pool-size', '1', '--cull-idle', '6', '--cull-interval', '1'],
                            env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': str(tmp / 'products')},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc)
        t0 = time.time()
        while kernel_count(proc.pid) < 1 and time.time() - t0 < 120: time.sleep(0.3)   # the preheated pool
        answers, seen = [], []
        def get(): answers.append(fetch(f'http://127.0.0.1:{port}/'))
        for burst in range(2):                                     # 8 at once, then 8 more while the first are alive
            threads = [threading.Thread(target=get) for _ in range(8)]
            for t in threads: t.start()
            while any(t.is_alive() for t in threads): seen.append(kernel_count(proc.pid)); time.sleep(0.2)
        busy = [a for a in answers if a[0] == 503]
        ok = [a for a in answers if a[0] == 200]
        t0, after = time.time(), []
        while time.time() - t0 < 90:                               # the culler: idle 6 s, checked every second
            after.append(kernel_count(proc.pid))
            if after[-1] == 1 and time.time() - t0 > 3: break
            time.sleep(0.5)
        settled = time.time() - t0
        again = fetch(f'http://127.0.0.1:{port}/')                 # and it serves again
    finally:
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)
    print(f'{len(ok)} pages served, {len(busy)} told busy; most kernels seen {max(seen)} (cap {cap}); '
          f'back to {after[-1]} after {settled:.0f} s')
    assert max(seen) <= cap
    assert ok and busy and len(ok) + len(busy) == 16
    assert all('busy' in b[1] and b[2].get('Retry-After') for b in busy)
    assert all('Champion model' in a[1] for a in ok)
    assert after[-1] == 1, after
    assert again[0] == 200 and 'Champion model' in again[1]


def test_dashboard_refuses_public_bind_without_token():
    env = {k: v for k, v in os.environ.items() if k != 'NEPSE_MLOPS_DASHBOARD_TOKEN'} | QUIET
    r = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--host', '0.0.0.0',
                        '--port', str(free_port())],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ''
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith('error:')
    assert 'NEPSE_MLOPS_DASHBOARD_TOKEN' in r.stderr


def test_dashboard_token(sample_build):
    """With NEPSE_MLOPS_DASHBOARD_TOKEN set, a page without the token goes to the login page; with it, the dashboard;
    the token is never printed."""
    tmp, _ = sample_build
    token, port = 'tok-' + os.urandom(12).hex(), free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port)],
                            env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': str(tmp / 'products'),
                                                     'NEPSE_MLOPS_DASHBOARD_TOKEN': token},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_port(port, proc)
        anon = fetch(f'http://127.0.0.1:{port}/')
        wrong = fetch(f'http://127.0.0.1:{port}/?token=wrong-{token}')
        good = fetch(f'http://127.0.0.1:{port}/?token={token}')
    finally:
        os.killpg(proc.pid, signal.SIGTERM); out = proc.communicate(timeout=20)[0]
    assert anon[0] in (302, 403) and (anon[0] == 403 or '/login' in anon[2].get('Location', ''))
    assert wrong[0] in (302, 403)
    assert good[0] == 200 and 'Champion model' in good[1]
    assert token not in out
