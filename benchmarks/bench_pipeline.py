"""Wall time and peak memory of the pipeline: a cold `ploomber build`, a no-op rebuild, and the same stages as plain
Python functions: every stage, replay included, called as the notebooks call them (the ratio is what Ploomber and
papermill cost on top). The last line is `ratio cold_dag/plain_all_stages = X.XX`. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_pipeline.py [--data synthetic|real|both] [--keep DIR] [--stages-only]

Real data is source 1 in ../shared/data/nepse (372 files, 505k rows); it is read in place, never copied.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / 'shared/data/nepse/Aabishkar2__nepse-data/data/company-wise'
QUIET = {'PLOOMBER_STATS_ENABLED': 'false', 'PLOOMBER_VERSION_CHECK_DISABLED': '1', 'MLFLOW_DISABLE_TELEMETRY': 'true'}

# Runs in a child process so its peak RSS is its own: every stage
# of the DAG (ingest ... monitor, and the replay) called as
# the notebooks' run sections call them (`<stage>_stage`), with the same settings and products, one after another,
# without Ploomber, papermill or the reports' rendering.
PLAIN = r"""
import sys, time, json, resource
from pathlib import Path
t = {}
t0 = time.time()
from nepse_mlops.core import load_env
from nepse_mlops.runs import stage_log
from nepse_mlops.ingest import IngestSettings, ingest_stage
from nepse_mlops.validate import ValidateSettings, validate_stage
from nepse_mlops.features import features_stage
from nepse_mlops.train import TrainSettings, train_stage
from nepse_mlops.register import RegisterSettings, register_stage
from nepse_mlops.predict import PredictSettings, predict_stage
from nepse_mlops.monitor import MonitorSettings, monitor_stage
from nepse_mlops.replay import ReplayTask, replay_stage
root, data, w = sys.argv[1], sys.argv[2], Path(sys.argv[3]) / 'plain'
env = (load_env(root, {'products': str(w), 'tracking_uri': f'sqlite:///{w}/mlflow.db'})
       | {'data': data, 'artifact_root': str(w / 'mlartifacts')})
P = lambda *a: str(w.joinpath(*a))
prod = {'ingest': {k: P('ingest', f) for k, f in [('prices', 'prices_raw.parquet'), ('quarantine', 'quarantine.csv'),
                                                   ('manifest', 'manifest.csv'), ('actions', 'actions.csv'),
                                                   ('truth', 'truth.parquet'), ('planted', 'planted.json')]},
        'validate': {k: P('validate', f) for k, f in [('prices', 'prices.parquet'), ('quarantine', 'quarantine.csv'),
                                                       ('adjustments', 'adjustments.csv'), ('report', 'report.json'),
                                                       ('snapshot', 'snapshot.json')]},
        'features': {'features': P('features', 'features.parquet'), 'market': P('features', 'market.parquet')},
        'train': {k: P('train', f) for k, f in [('windows', 'windows.csv'), ('predictions', 'oos.parquet'),
                                                 ('backtest', 'backtest.csv'), ('run', 'run.json'),
                                                 ('nb_html', '04_train.html')]},
        'register': {'nb': P('register', '05_register.ipynb'), 'decision': P('register', 'decision.json')},
        'predict': {'predictions': P('predict', 'predictions.csv'), 'summary': P('predict', 'summary.json')},
        'monitor': {k: P('monitor', f) for k, f in [('summary', 'summary.json'), ('drift_columns', 'drift_columns.csv'),
                                                     ('performance', 'performance.csv'), ('retrain', 'retrain.json'),
                                                     ('drift_sectors', 'drift_sectors.csv')]},
        'replay': {k: P('replay', f) for k, f in [('timeline', 'timeline.csv'), ('ledger', 'ledger.jsonl'),
                                                   ('predictions', 'predictions.parquet'),
                                                   ('summary', 'summary.json')]}}
for d in prod: (w / d).mkdir(parents=True, exist_ok=True)
# the DAG attaches the executed train report to the run; here a stand-in
Path(prod['train']['nb_html']).write_text('<html></html>')
t['imports'] = time.time() - t0; s = time.time()
def lap(k):
    global s
    t[k] = time.time() - s; s = time.time()
with stage_log(path=P('plain.log')):
    ingest_stage(prod['ingest'], IngestSettings.from_params(env)); lap('ingest')
    validate_stage(prod, prod['validate'], ValidateSettings.from_params(env | {'validation_html': ''})); lap('validate')
    f = features_stage(prod, prod['features'], env['horizon']).feats; lap('features')
    r = train_stage(prod, prod['train'],
                    TrainSettings.from_params(env | {'retrain_decision': P('monitor', 'retrain.json')}))
    lap('train')
    register_stage(prod, prod['register'], RegisterSettings.from_params(env | {'ledger': P('ledger.jsonl')}))
    lap('register')
    predict_stage(prod, prod['predict'],
                  PredictSettings.from_params(env | {'prediction_log': P('prediction_log.parquet')}))
    lap('predict')
    monitor_stage(prod, prod['monitor'], MonitorSettings.from_params(
        env | {'experiment': env['monitor_experiment'], 'prediction_log': P('prediction_log.parquet'),
               'drift_html': P('drift.html'), 'alert_log': P('alerts.jsonl')}))
    lap('monitor')
    replay_stage(prod, prod['replay'],
                 ReplayTask.from_params(env | {'experiment': env['replay_experiment'], 'policy': env['replay_policy']}))
    lap('replay')
t['total'] = time.time() - t0
pooled = r.evaluation.pooled
print(json.dumps({'seconds': t, 'rows': int(json.load(open(prod['validate']['report']))['rows_in']),
                  'labelled_rows': int(f.target.notna().sum()),
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'pooled_auc': pooled['roc_auc'].round(4).to_dict(),
                  'pooled_accuracy': pooled['accuracy'].round(4).to_dict()}))
"""


def timed(cmd, **kw):
    "Run `cmd`; return (seconds, peak RSS MB of the child tree's largest process, completed process)."
    wrapper = [sys.executable, '-c', 'import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); '
                                     'print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, '
                                     'file=sys.stderr); sys.exit(r.returncode)', *cmd]
    t0 = time.time()
    p = subprocess.run(wrapper, capture_output=True, text=True, env=os.environ | QUIET, **kw)
    peak = next((int(l.split()[1]) / 1024 for l in p.stderr.splitlines() if l.startswith('PEAK')), float('nan'))
    return time.time() - t0, peak, p


def stages(label, data, work):
    ("Only the stages as plain functions, each timed (features <= "
     "5 s; train, all windows, final model and logging <= 60 s).")
    work.mkdir(parents=True, exist_ok=True)
    plain_s, _, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    if pp.returncode: print(pp.stderr[-3000:]); raise SystemExit('stage run failed')
    p = json.loads(pp.stdout.strip().splitlines()[-1]); t = p['seconds']
    print(f'\n== {label}: stages as plain functions ({p["rows"]:,} rows, {p["labelled_rows"]:,} labelled) ==')
    print(f'ingest {t["ingest"]:.1f} s, validate {t["validate"]:.1f} s')
    print(f'features          {t["features"]:6.1f} s   (target <= 5 s: {t["features"] / 5:.2f} of budget)')
    print(f'train stage       {t["train"]:6.1f} s   (target <= 60 s: {t["train"] / 60:.2f} of budget)')
    print('then: ' + ', '.join(f'{k} {t[k]:.1f} s' for k in ['register', 'predict', 'monitor', 'replay']))
    print(f'peak RSS {p["peak_rss_mb"]:.0f} MB; pooled ROC AUC {p["pooled_auc"]}; pooled accuracy '
          f'{p["pooled_accuracy"]}')


def bench(label, data, work):
    work.mkdir(parents=True, exist_ok=True)
    run = [str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'run', '--set', f'products={work}/products', '--set',
           f'reports={work}/reports',
           '--set', f'tracking_uri=sqlite:///{work}/products/mlflow.db',
           *(['--data', str(data)] if data != 'synthetic' else [])]
    print(f'\n== {label} ==', flush=True)
    cold, cold_mb, p = timed(run)
    if p.returncode: print(p.stdout[-2000:], p.stderr[-2000:]); raise SystemExit(f'cold build failed ({label})')
    tasks = [l for l in p.stdout.splitlines() if l.split()[:1]
             and l.split()[0] in ('ingest', 'validate', 'features', 'train', 'replay', 'register', 'predict', 'monitor',
                                  'dashboard')]
    noop, noop_mb, _ = timed(run)
    plain_s, plain_mb, pp = timed([sys.executable, '-c', PLAIN, str(ROOT), str(data), str(work)])
    plain = json.loads(pp.stdout.strip().splitlines()[-1])
    print('per task (Ploomber):'); [print('   ', l) for l in tasks]
    print(f'cold ploomber build : {cold:7.1f} s   peak RSS {cold_mb:7.0f} MB (largest single process)')
    print(f'no-op rebuild       : {noop:7.1f} s   peak RSS {noop_mb:7.0f} MB')
    print(f'plain functions     : {plain_s:7.1f} s   peak RSS {plain["peak_rss_mb"]:7.0f} MB  (every stage: '
          + ', '.join(f'{k} {v:.1f} s' for k, v in plain['seconds'].items() if k != 'total')
          + f'; {plain["rows"]:,} rows, {plain["labelled_rows"]:,} labelled)')
    print(f'pooled out-of-sample ROC AUC by candidate: {plain["pooled_auc"]}')
    print(f'pooled out-of-sample accuracy by candidate: {plain["pooled_accuracy"]}')
    print(f'no-op / cold: {noop / cold:.3f}')
    print(f'ratio cold_dag/plain_all_stages = {cold / plain_s:.2f}')
    return dict(label=label, cold=cold, noop=noop, plain=plain_s, ratio=cold / plain_s, plain_detail=plain)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', choices=['synthetic', 'real', 'both'], default='both')
    ap.add_argument('--keep', help='keep products here instead of a temporary folder')
    ap.add_argument('--stages-only', action='store_true',
                    help='only time the stages as plain functions (features, training targets)')
    a = ap.parse_args()
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='nepse-bench-'))
    out = []
    if a.stages_only:
        if a.data in ('synthetic', 'both'): stages('synthetic default', 'synthetic', base / 'synthetic')
        if a.data in ('real', 'both'): stages('real source 1, full', REAL, base / 'real')
        return
    if a.data in ('synthetic', 'both'): out.append(bench('synthetic default (40 symbols, 2019-2026)', 'synthetic',
                                                         base / 'synthetic'))
    if a.data in ('real', 'both'):
        if not REAL.exists(): print(f'\n(real data not found at {REAL}; skipped)')
        else: out.append(bench('real source 1, full (372 files)', REAL, base / 'real'))
    print(f'\nproducts kept in {base}' if a.keep else '')


if __name__ == '__main__':
    main()
