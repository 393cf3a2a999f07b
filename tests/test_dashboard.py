"""The Voila dashboard in a real headless Chromium: panels, champion, predictions, the sector and symbol controls,
`?symbol=` preselection, the optional per-sector drift table, the friendly empty page, and the static snapshot."""
import csv, os, shutil, signal, subprocess
from contextlib import contextmanager
from pathlib import Path
import pytest
from conftest import BIN, CHROMIUM, QUIET, ROOT, free_port, needs_chromium, wait_http

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
PANELS = ['Data freshness and last run', 'Champion model', 'Drift', 'Realised performance', 'Latest predictions', 'Price and predictions']
BAD = ['Traceback', 'Error', 'Exception']


@contextmanager
def dashboard(products):
    "`nepse-mlops dashboard` on a free port, serving `products`; yields a Playwright page factory."
    port = free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port)],
                            env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': str(products)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        wait_http(url, proc)
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            def open_page(query='', wait_for='Price and predictions'):
                page = b.new_page(viewport={'width': 1300, 'height': 1000})
                page.goto(url + query, timeout=120_000, wait_until='commit')   # Voila keeps loading widgets; wait for content instead
                page.wait_for_selector(f'text={wait_for}', timeout=120_000)
                if wait_for == 'Price and predictions':
                    page.wait_for_selector('table.nm-preds', timeout=60_000); page.wait_for_selector('text=Selected:', timeout=60_000)
                return page
            yield open_page
            b.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)   # the CLI and the Voila it started (its kernels stop with it)


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
        page.wait_for_function(f"document.querySelectorAll('table.nm-preds tbody tr').length == {len(in_sector)}", timeout=30_000)
        table, _ = rows(page)
        symbol_options = dropdown(page, 'Symbol').locator('option').all_inner_texts()
        page.wait_for_selector(f'text=Selected: {in_sector[0]}' if first_symbol not in in_sector else f'text=Selected: {first_symbol}', timeout=30_000)
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
    "The pipeline's dashboard task writes a static HTML snapshot: every panel, the table and the charts, no widgets needed."
    tmp, _ = sample_build
    page = (tmp / 'reports/dashboard.html').read_text()
    for title in PANELS: assert title in page, title
    assert "nm-preds" in page and '<svg' in page and 'Selected:' in page
    assert 'Traceback' not in page
