"""First paint of the Voila dashboard in headless Chromium (Debian's /usr/bin/chromium), and a full-page screenshot.

    .venv/bin/python benchmarks/bench_dashboard.py [--products DIR] [--runs 3] [--screenshot out/dashboard.png]
    .venv/bin/python benchmarks/bench_dashboard.py --real   # full real history (source 1), built once, then reused
    .venv/bin/python benchmarks/bench_dashboard.py --real --voila-arg=--preheat_kernel=True   # try a Voila option

Per page view it prints: the server's own render time (the whole HTML over plain HTTP, i.e. kernel start + running the
notebook), then in Chromium the time until the champion card is visible (static HTML) and until the predictions table
and the price chart are visible (ipywidgets, drawn once the widget manager has loaded and connected to the kernel).
It also times what the kernel does, cell by cell, outside Voila (imports dominate).
"""
import argparse, json, os, socket, statistics, subprocess, sys, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / 'shared/data/nepse/Aabishkar2__nepse-data/data/company-wise'
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true'}
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update', '--disable-sync']


def build_real(products: Path, reports: Path) -> None:
    "The whole DAG on the full real source 1 (~3-10 min on 2 cores), unless its products are already there."
    if (products / 'monitor/summary.json').exists(): print(f'reusing real products in {products}'); return
    print(f'building real products into {products} (once) ...', flush=True)
    t = time.perf_counter()
    subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--data', str(REAL), '--set',
                    f'products={products}',
                    '--set', f'reports={reports}', '--set', f'tracking_uri=sqlite:///{products}/mlflow.db'],
                   env=os.environ | QUIET, check=True, stdout=subprocess.DEVNULL)
    print(f'built in {time.perf_counter() - t:.0f} s')


def kernel_profile(products: str) -> list[tuple[str, float]]:
    "Each code cell of the dashboard notebook run in a fresh kernel, as Voila would (outside Voila), with its time."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / 'nbs/voila_dashboard.ipynb', as_version=4)
    os.environ.update(NEPSE_MLOPS_PRODUCTS=products, SERVER_SOFTWARE='voila/bench')
    t0 = time.perf_counter(); out = []
    c = NotebookClient(nb, kernel_name='python3', timeout=120)
    with c.setup_kernel():
        out.append(('kernel start', time.perf_counter() - t0))
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            t = time.perf_counter(); c.execute_cell(cell, i)
            out.append((cell.source.splitlines()[-1 if i == 1 else 0][:70], time.perf_counter() - t))
    for k in ('NEPSE_MLOPS_PRODUCTS', 'SERVER_SOFTWARE'): os.environ.pop(k)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products'))
    ap.add_argument('--real', action='store_true', help='use (and if needed build) real products in --real-dir')
    ap.add_argument('--real-dir', default='/tmp/dash_real', help='real products go to DIR_prod, reports to DIR_rep')
    ap.add_argument('--runs', type=int, default=3); ap.add_argument('--pause', type=float, default=6.0,
                                                                    help='seconds between page views')
    ap.add_argument('--query', default='', help="e.g. '?symbol=NABIL'")
    ap.add_argument('--screenshot', default=None, help='default: benchmarks/out/dashboard[_real].png')
    ap.add_argument('--voila-arg', action='append', default=[],
                    help='extra Voila option, e.g. --voila-arg=--preheat_kernel=True')
    ap.add_argument('--no-profile', action='store_true', help='skip the cell-by-cell kernel profile')
    a = ap.parse_args()
    if a.real:
        a.products = f'{a.real_dir}_prod'; build_real(Path(a.products), Path(f'{a.real_dir}_rep'))
    shot = Path(a.screenshot or ROOT / f"benchmarks/out/dashboard{'_real' if a.real else ''}.png")
    if not a.no_profile:
        prof = kernel_profile(a.products)
        print('kernel, cell by cell (outside Voila):')
        for name, s in prof: print(f'  {s:5.2f} s  {name}')
        print(f'  {sum(s for _, s in prof):5.2f} s  total')

    from playwright.sync_api import sync_playwright
    from nepse_mlops.cli import dashboard_command
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    # what `nepse-mlops dashboard` runs, plus any extra option
    cmd = dashboard_command(ROOT, '127.0.0.1', port) + a.voila_arg
    srv = subprocess.Popen(cmd, env=os.environ | QUIET | {'NEPSE_MLOPS_PRODUCTS': a.products},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f'http://127.0.0.1:{port}/{a.query}'
    try:
        for _ in range(240):                              # wait for the port (a GET would itself be a page view)
            try: socket.create_connection(('127.0.0.1', port), timeout=2).close(); break
            except OSError: time.sleep(0.5)
        time.sleep(a.pause)                               # a preheated kernel pool fills here
        server = []
        for _ in range(a.runs):                           # the server alone: kernel start + the notebook, whole HTML
            t = time.perf_counter()
            urllib.request.urlopen(url, timeout=120).read()
            server.append(time.perf_counter() - t)
            time.sleep(a.pause)
        times = []
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path='/usr/bin/chromium', args=ARGS)
            for i in range(a.runs):
                page = b.new_page(viewport={'width': 1300, 'height': 1000})
                t = time.perf_counter()
                # the load event can wait on widget assets; time the content
                page.goto(url, timeout=120_000, wait_until='commit')
                page.wait_for_selector('text=Champion model', timeout=120_000); first = time.perf_counter() - t
                page.wait_for_selector('table.nm-preds', timeout=120_000); table = time.perf_counter() - t
                page.wait_for_selector('text=Selected:', timeout=120_000); chart = time.perf_counter() - t
                times.append((first, table, chart))
                if i == a.runs - 1:
                    page.wait_for_timeout(1000); shot.parent.mkdir(parents=True, exist_ok=True)
                    # Voila scrolls an inner element, not the body: grow
                    # the viewport to the content so full_page gets it all
                    h = page.evaluate("Math.max(...Array.from(document.querySelectorAll('.jp-Cell')).map(e => "
                                      "e.getBoundingClientRect().bottom))")
                    page.set_viewport_size({'width': 1300, 'height': min(int(h) + 40, 12000)})
                    page.wait_for_timeout(300); page.screenshot(path=str(shot), full_page=True)
                page.close(run_before_unload=True)      # lets Voila shut the page's kernel down
                time.sleep(a.pause)
            b.close()
        print(f"products: {a.products}   voila options: {' '.join(a.voila_arg) or '(defaults)'}")
        for i, (sv, (f, tb, ch)) in enumerate(zip(server, times), 1):
            print(f'page view {i}: server HTML {sv:.2f} s | Chromium: champion card {f:.2f} s, predictions table '
                  f'{tb:.2f} s, chart {ch:.2f} s')
        med = lambda k: statistics.median(t[k] for t in times)
        print(f'median first paint (champion card) {med(0):.2f} s, everything drawn {med(2):.2f} s, server HTML '
              f'{statistics.median(server):.2f} s')
        print(f'screenshot: {shot}')
    finally:
        os.killpg(srv.pid, 15); srv.wait(20)


if __name__ == '__main__':
    main()
