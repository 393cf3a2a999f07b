"""Wall time of `nepse-mlops run` when nothing changed (the no-op answered without Ploomber), against Ploomber's own
no-op build on the same products. Builds the products first if the folder is empty. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_noop.py [--products DIR] [--runs 7]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true',
         'PYTHONDONTWRITEBYTECODE': ''}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--products',
                    help='a folder with products/ and reports/ of a finished run (default: a new sample build)')
    ap.add_argument('--runs', type=int, default=7)
    a = ap.parse_args()
    base = Path(a.products or tempfile.mkdtemp(prefix='nepse-noop-'))
    sets = ['--set', f'products={base}/products', '--set', f'reports={base}/reports', '--set',
            f'tracking_uri=sqlite:///{base}/products/mlflow.db']
    run = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', *sets] + ([] if a.products else ['--sample'])
    if not (base / 'products').exists():
        print(f'building the sample into {base} ...', flush=True)
        subprocess.run(run, check=True, capture_output=True, env=os.environ | QUIET)
    # stamps the products if an older run built them
    subprocess.run(run, check=True, capture_output=True, env=os.environ | QUIET)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        p = subprocess.run(run, capture_output=True, text=True, env=os.environ | QUIET)
        times.append(time.perf_counter() - t0)
        assert 'up to date since run' in p.stdout, p.stdout[-500:]
    env_args = [x for i in range(0, len(sets), 2)
                for x in ('--env--' + sets[i + 1].split('=')[0], sets[i + 1].split('=', 1)[1])]
    t0 = time.perf_counter()
    subprocess.run([str(BIN / 'ploomber'), 'status', '--entry-point', str(ROOT / 'pipeline.yaml'), *env_args],
                   capture_output=True, env=os.environ | QUIET)
    ploomber = time.perf_counter() - t0
    print(f'no-op `nepse-mlops run`, {a.runs} runs: median {statistics.median(times):.3f} s, max {max(times):.3f} s '
          '(target <= 1 s)')
    print(f"Ploomber's own verdict on the same products (`ploomber status`): {ploomber:.1f} s")
    print(f'ratio noop/ploomber_status = {statistics.median(times) / ploomber:.3f}')


if __name__ == '__main__':
    main()
