"""Wall time and peak memory of the pipeline: a cold `ploomber build`, a no-op rebuild, and the same stages as plain
Python functions: every stage, replay included, called as the notebooks call them (the ratio is what Ploomber and papermill
cost on top). The last line is `ratio cold_dag/plain_all_stages = X.XX`. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_pipeline.py [--data synthetic|real|both] [--keep DIR] [--stages-only]

Real data is source 1 in ../shared/data/nepse (372 files, 505k rows); it is read in place, never copied.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / 'shared/data/nepse/Aabishkar2__nepse-data/data/company-wise'
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true'}

# Runs in a child process so its peak RSS is its own: every stage of the DAG (ingest ... monitor, and the replay) called as
# the plain functions the notebooks call, with the same settings and products, without Ploomber or papermill.
PLAIN = r"""
import sys, time, json, resource
from pathlib import Path
t = {}
t0 = time.time()
import numpy as np, pandas as pd, mlflow
from nepse_mlops.core import load_env, write_json, read_json, frame_digest, setup_tracking, champion_version, read_jsonl, stage_log
from nepse_mlops.synthetic import synthetic_source, live_through
from nepse_mlops.ingest import ingest_paths, real_source, write_ingest
from nepse_mlops.validate import validate_prices, write_validation
from nepse_mlops.features import build_features, market_index, FEATURES
from nepse_mlops.train import TrainSettings, train_stage
from nepse_mlops.register import register_and_gate
from nepse_mlops.predict import predict_next, update_log
from nepse_mlops.monitor import MonitorSettings, monitor_stage
from nepse_mlops.replay import replay, ReplaySettings, ReplayRegistry, replay_summary
root, data, w = sys.argv[1], sys.argv[2], Path(sys.argv[3]) / 'plain'
w.mkdir(parents=True, exist_ok=True)
env = load_env(root, {'products': str(w), 'tracking_uri': f'sqlite:///{w}/mlflow.db'})
P = lambda *a: str(w.joinpath(*a))
for d in ['ingest', 'validate', 'features', 'train', 'register', 'predict', 'monitor', 'replay']: (w / d).mkdir(exist_ok=True)
t['imports'] = time.time() - t0; s = time.time()
up = {'ingest': {k: P('ingest', f) for k, f in [('prices', 'prices_raw.parquet'), ('quarantine', 'quarantine.csv'), ('manifest', 'manifest.csv'),
                                                  ('actions', 'actions.csv'), ('truth', 'truth.parquet'), ('planted', 'planted.json')]}}
with stage_log(path=P('plain.log')):
    src = (synthetic_source(w / 'ingest/raw', env['synth_symbols'], env['synth_start'], env['synth_end'], env['seed'], float(env['synth_signal']),
                            env['synth_change_at'] or None, env['synth_through'] or None) if data == 'synthetic' else real_source(data))
    res = ingest_paths(src['inputs'], cache_dir=w / 'ingest/cache'); write_ingest(res, src, up['ingest'])
    t['ingest'] = time.time() - s; s = time.time()
    v = validate_prices(res.prices, res.quarantine, circuit_limits=env['circuit_limits'])
    write_validation(v, w / 'validate', res.manifest)
    write_json({'digest': frame_digest(v.prices[['date', 'symbol', 'open', 'high', 'low', 'close', 'volume', 'turnover']])}, P('validate', 'snapshot.json'))
    up['validate'] = {'prices': P('validate', 'prices.parquet'), 'snapshot': P('validate', 'snapshot.json'), 'report': P('validate', 'report.json')}
    t['validate'] = time.time() - s; s = time.time()
    market = market_index(v.prices); f = build_features(v.prices, env['horizon'], market=market)
    f.to_parquet(P('features', 'features.parquet')); market.to_parquet(P('features', 'market.parquet'))
    up['features'] = {'features': P('features', 'features.parquet'), 'market': P('features', 'market.parquet')}
    t['features'] = time.time() - s; s = time.time()
    tprod = {k: P('train', n) for k, n in [('windows', 'windows.csv'), ('predictions', 'oos.parquet'), ('backtest', 'backtest.csv'), ('run', 'run.json')]}
    r = train_stage(up, tprod, TrainSettings.from_params(dict(env, artifact_root=P('mlartifacts'))))
    t['train'] = time.time() - s; s = time.time()
    ev = register_and_gate(r['record'], f, env['model_name'], P('ledger.jsonl'), env['margin'])
    write_json(ev, P('register', 'decision.json')); t['register'] = time.time() - s; s = time.time()
    setup_tracking(env['tracking_uri'], 'nepse_direction'); ver = champion_version(mlflow.MlflowClient(), env['model_name'])
    preds = pd.DataFrame()
    if ver:
        preds, left = predict_next(mlflow.pyfunc.load_model(f"models:/{env['model_name']}@champion"), v.prices, market, ver, env['active_within_days'])
        update_log(P('prediction_log.parquet'), preds)
    write_json({'champion': ver, 'n': len(preds)}, P('predict', 'summary.json')); t['predict'] = time.time() - s; s = time.time()
    up |= {'predict': {'summary': P('predict', 'summary.json')}, 'register': {'decision': P('register', 'decision.json')}}
    mprod = {k: P('monitor', n) for k, n in [('summary', 'summary.json'), ('drift_columns', 'drift_columns.csv'), ('performance', 'performance.csv'),
                                             ('retrain', 'retrain.json'), ('drift_sectors', 'drift_sectors.csv')]}
    monitor_stage(up, mprod, MonitorSettings.from_params(dict(env, prediction_log=P('prediction_log.parquet'), drift_html=P('drift.html'), alert_log=P('alerts.jsonl'))))
    t['monitor'] = time.time() - s; s = time.time()
    n = min(int(env['replay_sessions']), f.date.nunique())
    if n:
        sessions = np.sort(f.date.unique())
        replay(f, sessions[-n], settings=ReplaySettings.from_env(dict(env['replay_policy'], model_params=env['model_params'])), out=w / 'replay',
               registry=ReplayRegistry(env['tracking_uri'], env['model_name'], fresh=True), progress=False)
    t['replay'] = time.time() - s
t['total'] = time.time() - t0
pooled = r['pooled']
print(json.dumps({'seconds': t, 'rows': len(res.prices) + len(res.quarantine), 'labelled_rows': int(f.target.notna().sum()),
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'pooled_auc': pooled['roc_auc'].round(4).to_dict(), 'pooled_accuracy': pooled['accuracy'].round(4).to_dict()}))
"""


def timed(cmd, **kw):
    "Run `cmd`; return (seconds, peak RSS MB of the child tree's largest process, completed process)."
    wrapper = [sys.executable, '-c', 'import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); '
               'print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)', *cmd]
    t0 = time.time()
    p = subprocess.run(wrapper, capture_output=True, text=True, env=os.environ | QUIET, **kw)
    peak = next((int(l.split()[1]) / 1024 for l in p.stderr.splitlines() if l.startswith('PEAK')), float('nan'))
    return time.time() - t0, peak, p


def stages(label, data, work):
    "Only the stages as plain functions, each timed (features <= 5 s; train, all windows, final model and logging <= 60 s)."
    work.mkdir(parents=True, exist_ok=True)
    plain_s, _, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    if pp.returncode: print(pp.stderr[-3000:]); raise SystemExit('stage run failed')
    p = json.loads(pp.stdout.strip().splitlines()[-1]); t = p['seconds']
    print(f'\n== {label}: stages as plain functions ({p["rows"]:,} rows, {p["labelled_rows"]:,} labelled) ==')
    print(f'ingest {t["ingest"]:.1f} s, validate {t["validate"]:.1f} s')
    print(f'features          {t["features"]:6.1f} s   (target <= 5 s: {t["features"] / 5:.2f} of budget)')
    print(f'train stage       {t["train"]:6.1f} s   (target <= 60 s: {t["train"] / 60:.2f} of budget)')
    print('then: ' + ', '.join(f'{k} {t[k]:.1f} s' for k in ['register', 'predict', 'monitor', 'replay']))
    print(f'peak RSS {p["peak_rss_mb"]:.0f} MB; pooled ROC AUC {p["pooled_auc"]}; pooled accuracy {p["pooled_accuracy"]}')


def bench(label, data, work):
    work.mkdir(parents=True, exist_ok=True)
    run = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--set', f'products={work}/products', '--set', f'reports={work}/reports',
           '--set', f'tracking_uri=sqlite:///{work}/products/mlflow.db', *(['--data', str(data)] if data != 'synthetic' else [])]
    print(f'\n== {label} ==', flush=True)
    cold, cold_mb, p = timed(run)
    if p.returncode: print(p.stdout[-2000:], p.stderr[-2000:]); raise SystemExit(f'cold build failed ({label})')
    tasks = [l for l in p.stdout.splitlines() if l.split()[:1] and l.split()[0] in ('ingest', 'validate', 'features', 'train', 'replay', 'register', 'predict', 'monitor', 'dashboard')]
    noop, noop_mb, _ = timed(run)
    plain_s, plain_mb, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    plain = json.loads(pp.stdout.strip().splitlines()[-1])
    print('per task (Ploomber):'); [print('   ', l) for l in tasks]
    print(f'cold ploomber build : {cold:7.1f} s   peak RSS {cold_mb:7.0f} MB (largest single process)')
    print(f'no-op rebuild       : {noop:7.1f} s   peak RSS {noop_mb:7.0f} MB')
    print(f'plain functions     : {plain_s:7.1f} s   peak RSS {plain["peak_rss_mb"]:7.0f} MB  (every stage: '
          + ', '.join(f'{k} {v:.1f} s' for k, v in plain['seconds'].items() if k != 'total') + f'; {plain["rows"]:,} rows, {plain["labelled_rows"]:,} labelled)')
    print(f'pooled out-of-sample ROC AUC by candidate: {plain["pooled_auc"]}')
    print(f'pooled out-of-sample accuracy by candidate: {plain["pooled_accuracy"]}')
    print(f'no-op / cold: {noop / cold:.3f}')
    print(f'ratio cold_dag/plain_all_stages = {cold / plain_s:.2f}')
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
