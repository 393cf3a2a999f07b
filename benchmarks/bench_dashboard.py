"""First paint of the Voila dashboard in headless Chromium (Debian's /usr/bin/chromium), and a full-page screenshot.

    .venv/bin/python benchmarks/bench_dashboard.py [--products DIR] [--runs 3] [--screenshot out/dashboard.png]
"""
import argparse, os, socket, subprocess, sys, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products', default=str(ROOT / 'products')); ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--screenshot', default=str(ROOT / 'benchmarks/out/dashboard.png'))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    srv = subprocess.Popen([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'dashboard', '--port', str(port)],
                           env=os.environ | {'NEPSE_MLOPS_PRODUCTS': a.products}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(120):
            try: urllib.request.urlopen(url, timeout=30).read(); break
            except Exception: time.sleep(0.5)
        times = []
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path='/usr/bin/chromium', args=ARGS)
            for i in range(a.runs):
                page = b.new_page(viewport={'width': 1300, 'height': 1000})
                t = time.perf_counter()
                page.goto(url, timeout=120_000, wait_until='commit')   # the load event can wait on widget assets; time the content
                page.wait_for_selector('text=Champion model', timeout=120_000); first = time.perf_counter() - t
                page.wait_for_selector('table.nm-preds', timeout=120_000); full = time.perf_counter() - t
                times.append((first, full))
                if i == a.runs - 1:
                    page.wait_for_timeout(1500); Path(a.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=a.screenshot, full_page=True)
                page.close()
            b.close()
        for i, (f, full) in enumerate(times, 1):
            print(f'page view {i}: champion card visible after {f:.2f} s, predictions table after {full:.2f} s')
        print(f'screenshot: {a.screenshot}')
    finally:
        srv.terminate(); srv.wait(20)


if __name__ == '__main__':
    main()
