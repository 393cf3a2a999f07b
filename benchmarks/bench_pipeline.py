"""Wall time and peak memory of the pipeline: a cold `ploomber build`, a no-op rebuild, and the same stages as plain
Python functions (the ratio is Ploomber + papermill + in-notebook tests overhead). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_pipeline.py [--data synthetic|real|both] [--keep DIR] [--stages-only]

Real data is source 1 in ../shared/data/nepse (372 files, 505k rows); it is read in place, never copied.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / 'shared/data/nepse/Aabishkar2__nepse-data/data/company-wise'
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true'}

# Runs in a child process so its peak RSS is its own.
PLAIN = r'''
import sys, time, json, resource
t = {}
t0 = time.time()
import pandas as pd
from nepse_mlops.synthetic import make_market, write_market
from nepse_mlops.ingest import ingest_paths
from nepse_mlops.validate import validate_prices
from nepse_mlops.features import build_features, FEATURES
from nepse_mlops.train import walk_forward, fit_final
from nepse_mlops.core import load_env
env = load_env(sys.argv[1]); data = sys.argv[2]; tmp = sys.argv[3]
t['imports'] = time.time() - t0; s = time.time()
if data == 'synthetic':
    mk, _ = make_market(env['synth_symbols'], env['synth_start'], env['synth_end'], env['seed']); write_market(mk, tmp + '/raw'); data = tmp + '/raw'
    t['synthesise'] = time.time() - s; s = time.time()
res = ingest_paths([data], progress_every=10**6); t['ingest'] = time.time() - s; s = time.time()
v = validate_prices(res.prices, res.quarantine); t['validate'] = time.time() - s; s = time.time()
f = build_features(v.prices, env['horizon']); t['features'] = time.time() - s; s = time.time()
lab = f[f.target.notna()].reset_index(drop=True)
pw, pr = walk_forward(lab, env['model_params'], env['n_windows'], env['test_sessions'], env['embargo'], env['min_train_sessions'], env['seed'])
est, n = fit_final(lab, pw.test_start.max(), env['model_params'], env['seed']); t['train_all_windows'] = time.time() - s
t['total'] = time.time() - t0
print(json.dumps({'seconds': t, 'rows': len(res.prices) + len(res.quarantine), 'labelled_rows': len(lab),
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'pooled_auc': pr.groupby('candidate').apply(lambda g: __import__('sklearn.metrics').metrics.roc_auc_score(g.y, g.p), include_groups=False).round(4).to_dict(),
                  'pooled_accuracy': pr.groupby('candidate').apply(lambda g: float((g.label == g.y).mean()), include_groups=False).round(4).to_dict()}))
'''


def timed(cmd, **kw):
    "Run `cmd`; return (seconds, peak RSS MB of the child tree's largest process, completed process)."
    wrapper = [sys.executable, '-c', 'import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); '
               'print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)', *cmd]
    t0 = time.time()
    p = subprocess.run(wrapper, capture_output=True, text=True, env=os.environ | QUIET, **kw)
    peak = next((int(l.split()[1]) / 1024 for l in p.stderr.splitlines() if l.startswith('PEAK')), float('nan'))
    return time.time() - t0, peak, p


def stages(label, data, work):
    "Only the stages as plain functions: the features and training targets (features <= 5 s, all windows <= 60 s)."
    work.mkdir(parents=True, exist_ok=True)
    plain_s, _, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    if pp.returncode: print(pp.stderr[-3000:]); raise SystemExit('stage run failed')
    p = json.loads(pp.stdout.strip().splitlines()[-1]); t = p['seconds']
    print(f'\n== {label}: stages as plain functions ({p["rows"]:,} rows, {p["labelled_rows"]:,} labelled) ==')
    print(f'ingest {t["ingest"]:.1f} s, validate {t["validate"]:.1f} s')
    print(f'features          {t["features"]:6.1f} s   (target <= 5 s: {t["features"] / 5:.2f} of budget)')
    print(f'train all windows {t["train_all_windows"]:6.1f} s   (target <= 60 s: {t["train_all_windows"] / 60:.2f} of budget)')
    print(f'peak RSS {p["peak_rss_mb"]:.0f} MB; pooled ROC AUC {p["pooled_auc"]}; pooled accuracy {p["pooled_accuracy"]}')


def bench(label, data, work):
    work.mkdir(parents=True, exist_ok=True)
    run = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--set', f'products={work}/products', '--set', f'reports={work}/reports',
           '--set', f'tracking_uri=sqlite:///{work}/products/mlflow.db', *(['--data', str(data)] if data != 'synthetic' else [])]
    print(f'\n== {label} ==', flush=True)
    cold, cold_mb, p = timed(run)
    if p.returncode: print(p.stdout[-2000:], p.stderr[-2000:]); raise SystemExit(f'cold build failed ({label})')
    tasks = [l for l in p.stdout.splitlines() if l.split()[:1] and l.split()[0] in ('ingest', 'validate', 'features', 'train', 'register', 'predict', 'monitor', 'dashboard')]
    noop, noop_mb, _ = timed(run)
    plain_s, plain_mb, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    plain = json.loads(pp.stdout.strip().splitlines()[-1])
    print('per task (Ploomber):'); [print('   ', l) for l in tasks]
    print(f'cold ploomber build : {cold:7.1f} s   peak RSS {cold_mb:7.0f} MB (largest single process)')
    print(f'no-op rebuild       : {noop:7.1f} s   peak RSS {noop_mb:7.0f} MB')
    print(f'plain functions     : {plain_s:7.1f} s   peak RSS {plain["peak_rss_mb"]:7.0f} MB  '
          f'(ingest {plain["seconds"]["ingest"]:.1f} s, validate {plain["seconds"]["validate"]:.1f} s, features {plain["seconds"]["features"]:.1f} s, '
          f'train all windows {plain["seconds"]["train_all_windows"]:.1f} s; {plain["rows"]:,} rows, {plain["labelled_rows"]:,} labelled)')
    print(f'ratio cold build / plain functions: {cold / plain_s:.2f}x   (no-op / cold: {noop / cold:.3f})')
    print(f'pooled out-of-sample ROC AUC by candidate: {plain["pooled_auc"]}')
    print(f'pooled out-of-sample accuracy by candidate: {plain["pooled_accuracy"]}')
    return dict(label=label, cold=cold, noop=noop, plain=plain_s, ratio=cold / plain_s, plain_detail=plain)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', choices=['synthetic', 'real', 'both'], default='both')
    ap.add_argument('--keep', help='keep products here instead of a temporary folder')
    ap.add_argument('--stages-only', action='store_true', help='only time the stages as plain functions (features, training targets)')
    a = ap.parse_args()
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='nepse-bench-'))
    out = []
    if a.stages_only:
        if a.data in ('synthetic', 'both'): stages('synthetic default', 'synthetic', base / 'synthetic')
        if a.data in ('real', 'both'): stages('real source 1, full', REAL, base / 'real')
        return
    if a.data in ('synthetic', 'both'): out.append(bench('synthetic default (40 symbols, 2019-2026)', 'synthetic', base / 'synthetic'))
    if a.data in ('real', 'both'):
        if not REAL.exists(): print(f'\n(real data not found at {REAL}; skipped)')
        else: out.append(bench('real source 1, full (372 files)', REAL, base / 'real'))
    print(f'\nproducts kept in {base}' if a.keep else '')


if __name__ == '__main__':
    main()
