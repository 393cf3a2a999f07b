"""The Voila dashboard in a real headless Chromium: panels, champion, predictions, and the friendly empty page."""
import os, subprocess
import pytest
from conftest import BIN, CHROMIUM, QUIET, ROOT, free_port, needs_chromium, wait_http

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
PANELS = ['Data freshness and last run', 'Champion model', 'Drift', 'Realised performance', 'Latest predictions', 'Price and predictions']


def voila(products):
    port = free_port()
    proc = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port)],
                            env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': str(products)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, f'http://127.0.0.1:{port}/'


def render(url, wait_for, tmp_path, query=''):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = b.new_page(viewport={'width': 1300, 'height': 1000})
        page.goto(url + query, timeout=120_000, wait_until='commit')   # Voila keeps loading widgets; wait for content instead
        page.wait_for_selector(f'text={wait_for}', timeout=120_000)
        if wait_for == 'Price and predictions': page.wait_for_selector('table.nm-preds', timeout=60_000)
        text = page.inner_text('body')
        rows = page.locator('table.nm-preds tbody tr').count()
        page.screenshot(path=str(tmp_path / 'dashboard.png'), full_page=True)
        b.close()
    return text, rows


@needs_chromium
def test_dashboard_shows_every_panel(sample_build, tmp_path):
    tmp, _ = sample_build
    proc, url = voila(tmp / 'products')
    try:
        wait_http(url, proc)
        import pandas as pd
        sym = sorted(pd.read_csv(tmp / 'products/predict/predictions.csv').symbol)[-1]    # not the default first one
        text, rows = render(url, 'Price and predictions', tmp_path, f'?symbol={sym.lower()}')
    finally:
        proc.terminate(); proc.wait(20)
    for title in PANELS: assert title in text, title
    assert 'version 1' in text
    assert rows >= 10
    assert f'Selected: {sym}' in text                          # ?symbol= preselects
    for bad in ['Traceback', 'Error', 'Exception']: assert bad not in text, bad


@needs_chromium
def test_dashboard_without_products_is_friendly(tmp_path):
    empty = tmp_path / 'nothing'; empty.mkdir()
    proc, url = voila(empty)
    try:
        wait_http(url, proc)
        text, _ = render(url, 'No pipeline products yet', tmp_path)
    finally:
        proc.terminate(); proc.wait(20)
    assert 'make run' in text and 'Traceback' not in text
