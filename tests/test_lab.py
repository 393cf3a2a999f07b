"""`make lab` as shipped: a real JupyterLab started from the project's own configuration (.jupyter/), over REST and
in Chromium. The notebooks list, a stage notebook opens with its upstream injected, a kernel runs it in Lab mode."""
import json, os, secrets, shutil, subprocess, time, urllib.request
from contextlib import contextmanager
from pathlib import Path
import pytest
from conftest import BIN, CHROMIUM, QUIET, ROOT, free_port, needs_chromium, wait_http

STAGES = ['01_ingest', '02_validate', '03_features', '04_train', '05_register', '06_predict', '07_monitor',
          '07a_replay']
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab as `make lab` starts it (JUPYTER_CONFIG_DIR=.jupyter), on a free loopback port with a token."
    tmp = tmp_path_factory.mktemp('lab')
    port, token = free_port(), secrets.token_hex(16)
    env = os.environ | QUIET | {'JUPYTER_CONFIG_DIR': str(ROOT / '.jupyter'),   # what `make lab` sets
                                'JUPYTER_RUNTIME_DIR': str(tmp / 'runtime'),
                                'JUPYTERLAB_WORKSPACES_DIR': str(tmp / 'ws')}
    env.pop('NEPSE_MLOPS_LAB', None)   # the configuration must set it for kernels itself
    log = open(tmp / 'lab.log', 'w')
    cmd = [str(BIN / 'jupyter'), 'lab', f'--port={port}', '--ServerApp.port_retries=0',
           f'--IdentityProvider.token={token}']
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        wait_http(f'{base}/api/status?token={token}', proc, timeout=300)   # importing ploomber alone takes 10-45 s
        yield {'base': base, 'token': token, 'tmp': tmp, 'log': tmp / 'lab.log'}
    finally:
        proc.terminate()
        try: proc.wait(timeout=30)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()


@pytest.fixture(scope='module')
def checkout_products(sample_build):
    """Run All reads the upstream products Ploomber injects: this checkout's products/ (env.yaml). Where no `make run`
    made them (a clean clone in CI), the sample build's validated prices and features stand in, removed afterwards."""
    src, _ = sample_build
    made = []
    for rel in ('products/validate/prices.parquet', 'products/features/features.parquet'):
        if not (ROOT / rel).exists():
            (ROOT / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy(src / rel,
                                                                                ROOT / rel); made.append(ROOT / rel)
    yield
    for f in made: f.unlink(missing_ok=True)
    if made: shutil.rmtree(ROOT / 'products/lab', ignore_errors=True)


def api(lab, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{lab['base']}{path}", method=method, data=data,
                                 headers={'Authorization': f"token {lab['token']}", 'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=120) as r:
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)


def injected_at(cells) -> int:
    "Index of the cell Ploomber injected when the notebook opened."
    [i] = [i for i, c in enumerate(cells) if 'injected-parameters' in c['metadata'].get('tags', [])]
    return i


@contextmanager
def kernel(lab, path='nbs'):
    "A kernel started by the server (as Lab starts one for a notebook in `path`) and a client on it; deleted after."
    from jupyter_client import BlockingKernelClient
    status, k = api(lab, 'POST', '/api/kernels', {'name': 'python3', 'path': path})
    assert status == 201 and k['id']
    kc = BlockingKernelClient(connection_file=str(Path(lab['tmp'], 'runtime', f"kernel-{k['id']}.json")))
    kc.load_connection_file(); kc.start_channels(hb=False)   # a busy machine misses heartbeats
    try:
        kc.wait_for_ready(timeout=180)
        yield kc
    finally:
        kc.stop_channels()
        assert api(lab, 'DELETE', f"/api/kernels/{k['id']}")[0] == 204
    assert k['id'] not in {x['id'] for x in api(lab, 'GET', '/api/kernels')[1]}


def run(kc, code: str, timeout=600) -> tuple[str, str]:
    "Execute `code` as one cell; (status, everything it printed or raised)."
    out = []
    def hook(msg):
        if msg['msg_type'] == 'stream': out.append(msg['content']['text'])
        if msg['msg_type'] == 'error': out.append('\n'.join(msg['content']['traceback']))
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply['content']['status'], ''.join(out)


def test_contents_lists_the_notebooks(lab):
    status, d = api(lab, 'GET', '/api/contents/nbs')
    assert status == 200 and d['type'] == 'directory'
    names = {x['name'] for x in d['content']}
    assert {f'{s}.ipynb' for s in STAGES} <= names, names
    assert 'Traceback' not in lab['log'].read_text()


def test_stage_notebook_opens_with_its_upstream_injected(lab):
    status, d = api(lab, 'GET', '/api/contents/nbs/04_train.ipynb')
    assert status == 200 and d['type'] == 'notebook'
    cells = d['content']['cells']; i = injected_at(cells)
    ns = {}; exec(cells[i]['source'], {}, ns)   # plain assignments of literals
    assert set(ns['upstream']) == {'ingest', 'validate', 'features'}
    assert ns['upstream']['features']['features'] == str(ROOT / 'products/features/features.parquet')
    assert ns['product']['run'] == str(ROOT / 'products/train/run.json') and ns['horizon'] == 1
    assert 'parameters' in cells[i - 1]['metadata']['tags']
    assert "stage_start('nbs/04_train.ipynb', globals())" in cells[i + 1]['source']
    on_disk = json.loads((ROOT / 'nbs/04_train.ipynb').read_text())   # injected in memory only; removed on save
    assert not [c for c in on_disk['cells'] if 'injected-parameters' in c['metadata'].get('tags', [])]


def test_saving_in_lab_removes_the_injection_and_keeps_the_products(lab):
    "Lab autosaves: the saved notebook has no injected cell; Ploomber no longer deletes the product metadata."
    nb = ROOT / 'nbs/03_features.ipynb'
    original = nb.read_bytes()
    meta = {p: p.stat().st_mtime_ns for p in ROOT.glob('products/features/.*.metadata')}
    d = api(lab, 'GET', '/api/contents/nbs/03_features.ipynb')[1]
    try:
        status, _ = api(lab, 'PUT', '/api/contents/nbs/03_features.ipynb',
                        {'type': 'notebook', 'format': 'json', 'content': d['content']})
        assert status == 200
        saved = json.loads(nb.read_text())
    finally:
        nb.write_bytes(original)
    assert not [c for c in saved['cells'] if 'injected-parameters' in c['metadata'].get('tags', [])]
    assert len(saved['cells']) == len(json.loads(original)['cells'])
    assert '[nepse_mlops] kept the product metadata of nbs/03_features.ipynb' in lab['log'].read_text()
    assert {p: p.stat().st_mtime_ns for p in meta} == meta


def test_a_kernel_starts_and_the_stage_runs_in_lab_mode(lab):
    cells = api(lab, 'GET', '/api/contents/nbs/04_train.ipynb')[1]['content']['cells']; i = injected_at(cells)
    with kernel(lab) as kc:
        code = '\n'.join(c['source'] for c in cells[i - 1:i + 2])   # parameters, injected, stage_start
        status, text = run(kc, code + '\nprint(product["run"], tracking_uri)')
    assert status == 'ok', text
    lab_dir = ROOT / 'products/lab/train'
    assert '04_train.ipynb: tests skipped (product injected' in text and 'restart the kernel' not in text, text
    assert f"{lab_dir}/products/train/run.json sqlite:///{lab_dir}/products/mlflow.db" in text, text


def test_run_all_of_a_stage_writes_only_the_lab_copy(lab, checkout_products):
    "Run All as Lab sends it (one execute request per code cell) on 03_features: the products land in products/lab/."
    cells = api(lab, 'GET', '/api/contents/nbs/03_features.ipynb')[1]['content']['cells']
    real = ROOT / 'products/features/features.parquet'
    before = real.stat().st_mtime_ns if real.exists() else None
    t0 = time.time()
    with kernel(lab) as kc:
        for c in cells:
            if c['cell_type'] != 'code': continue
            status, text = run(kc, c['source'])
            assert status == 'ok', (c['source'][:200], text)
    out = ROOT / 'products/lab/features/products/features/features.parquet'
    assert out.exists() and out.stat().st_mtime > t0
    assert (real.stat().st_mtime_ns if real.exists() else None) == before


@needs_chromium
def test_lab_ui_opens_a_stage_notebook_without_an_error_dialog(lab):
    from playwright.sync_api import sync_playwright
    shot = lab['tmp'] / 'lab_03_features.png'
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.goto(f"{lab['base']}/lab/tree/nbs/03_features.ipynb?token={lab['token']}", timeout=180_000)
            page.wait_for_selector('.jp-NotebookPanel .jp-Cell .jp-InputArea', timeout=180_000)
            page.wait_for_selector('text=This cell was injected automatically', timeout=60_000)   # upstream injected
            page.wait_for_timeout(3000)   # a late error dialog would show by now
            page.screenshot(path=str(shot))
            print(f'\nJupyterLab screenshot: {shot}')
            dialogs = [t for t in page.locator('.jp-Dialog').all_inner_texts() if 'Error' in t or 'Unhandled' in t]
            assert not dialogs, dialogs
            assert page.locator('.jp-NotebookPanel .jp-Cell').count() >= 10
            assert "stage_start('nbs/03_features.ipynb'" in page.locator('.jp-NotebookPanel').inner_text()
        finally:
            browser.close()
    assert not [e for e in errors if 'toolbar' in e or 'ploomber' in e.lower()], errors


@needs_chromium
def test_lab_ui_run_all_runs_the_stage_into_the_lab_copy(lab, checkout_products):
    "Run > Run All Cells in the Lab UI on 03_features: its line shows, no error, the product lands in products/lab/."
    from playwright.sync_api import sync_playwright
    shot = lab['tmp'] / 'lab_03_features_run_all.png'
    out = ROOT / 'products/lab/features/products/features/features.parquet'
    real = ROOT / 'products/features/features.parquet'
    before, t0 = real.stat().st_mtime_ns, time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(f"{lab['base']}/lab/tree/nbs/03_features.ipynb?token={lab['token']}", timeout=180_000)
            page.wait_for_selector('.jp-NotebookPanel .jp-Cell .jp-InputArea', timeout=180_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=180_000)
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            page.wait_for_selector('text=tests skipped (product injected', timeout=180_000)
            deadline = time.time() + 600
            while time.time() < deadline and not (out.exists() and out.stat().st_mtime > t0):
                page.wait_for_timeout(2000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=300_000)
            page.screenshot(path=str(shot))
            print(f'\nJupyterLab after Run All: {shot}')
            outputs = page.locator('.jp-OutputArea-output').all_inner_texts()   # Run All stops at an error
            assert not [t for t in outputs if 'Traceback' in t], outputs[-3:]
        finally:
            browser.close()
    assert out.exists() and out.stat().st_mtime > t0
    assert real.stat().st_mtime_ns == before
