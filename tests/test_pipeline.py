"""The whole DAG on the synthetic sample: products, registry, drift summary, incremental builds."""
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd
from conftest import BIN, QUIET, ROOT, build

STAGES = ['01_ingest', '02_validate', '03_features', '04_train', '05_register', '06_predict', '07_monitor']


def test_every_stage_has_an_executed_report(sample_build):
    tmp, _ = sample_build
    for s in STAGES:
        nb = json.loads((tmp / 'reports' / f'{s}.ipynb').read_text())
        outputs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
        assert outputs, f'{s} has no outputs'
        assert not [o for o in outputs if o.get('output_type') == 'error'], s
        assert (tmp / 'reports' / f'{s}.html').stat().st_size > 10_000
    assert 'SYNTHETIC' in (tmp / 'reports' / '01_ingest.html').read_text()   # labelled as synthetic
    assert (tmp / 'reports' / 'dashboard.html').exists() and (tmp / 'reports' / 'drift_report.html').exists()


def test_sample_flag_really_shrinks_the_market(sample_build):
    tmp, _ = sample_build
    prices = pd.read_parquet(tmp / 'products/validate/prices.parquet')
    assert prices[prices.instrument_type == 'equity'].symbol.nunique() == 12
    assert prices.date.min() >= pd.Timestamp('2023-01-01')


def test_validation_balance_and_quarantine(sample_build):
    tmp, _ = sample_build
    rep = json.loads((tmp / 'products/validate/report.json').read_text())
    assert rep['balanced'] and rep['rows_in'] == rep['rows_kept'] + rep['rows_quarantined'] + rep['rows_dropped']
    q = pd.read_csv(tmp / 'products/validate/quarantine.csv')
    assert len(q) == rep['rows_quarantined'] > 0
    assert q.source_file.str.endswith('.csv').all() and (q.source_line > 1).all() and q.reason.notna().all()
    events = pd.read_csv(tmp / 'products/ingest/synthetic_events.csv')
    rules = {r['rule']: r['rows'] for r in rep['rules']}
    assert rules['high_below_low'] == (events.kind == 'high_below_low').sum()


def test_model_registered_and_loads_in_a_fresh_process(sample_build):
    tmp, _ = sample_build
    decision = json.loads((tmp / 'products/register/decision.json').read_text())
    assert decision['decision'] == 'promoted' and decision['champion'] == '1'
    code = ("import mlflow, pandas as pd; mlflow.set_tracking_uri('sqlite:///%s/products/mlflow.db'); "
            "m = mlflow.pyfunc.load_model('models:/nepse_direction@champion'); "
            "p = pd.read_parquet('%s/products/validate/prices.parquet'); "
            "s = p[p.symbol == p.symbol.iloc[0]].sort_values('date').tail(61); s = s.assign(date=s.date.dt.strftime('%%Y-%%m-%%d')); "
            "print(m.predict(s[['date','symbol','open','high','low','close','volume']]).to_json(orient='records'))") % (tmp, tmp)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=os.environ | QUIET, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout.strip().splitlines()[-1])[0]
    assert 0 <= rec['prob_up'] <= 1 and rec['direction'] in ('up', 'down')


def test_train_report_has_baselines_and_lineage(sample_build):
    tmp, _ = sample_build
    run = json.loads((tmp / 'products/train/run.json').read_text())
    assert {'always_up', 'persistence', 'logistic', 'model'} <= set(run['gate_metrics'])
    assert run['intervals']['roc_auc']['model_ci'][0] <= run['intervals']['roc_auc']['model'] <= run['intervals']['roc_auc']['model_ci'][1]
    import mlflow
    mlflow.set_tracking_uri(f'sqlite:///{tmp}/products/mlflow.db')
    r = mlflow.get_run(run['run_id'])
    assert r.data.tags['data_digest'] == run['data_digest'] and r.data.tags['git_commit']
    assert 'model_roc_auc' in r.data.metrics and 'gate_model_roc_auc' in r.data.metrics
    assert r.inputs.dataset_inputs, 'data snapshot not logged with log_input'


def test_drift_summary_and_predictions(sample_build):
    tmp, _ = sample_build
    drift = pd.read_csv(tmp / 'products/monitor/drift_columns.csv')
    assert {'column', 'method', 'threshold', 'score', 'drifted'} <= set(drift.columns)
    assert 'prob_up' in set(drift.column) and 'ret_1' in set(drift.column)
    summary = json.loads((tmp / 'products/monitor/summary.json').read_text())
    assert 0 <= summary['drift']['drift_share'] <= 1 and summary['champion']['version'] == '1'
    assert isinstance(summary['retrain']['retrain'], bool)
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    assert len(preds) >= 10 and preds.prob_up.between(0, 1).all() and (preds.model_version == 1).all()
    assert preds.prediction_for.nunique() == 1


def test_second_build_is_a_noop(sample_build):
    tmp, _ = sample_build
    before = {p: p.stat().st_mtime_ns for p in (tmp / 'reports').glob('*.html')}
    res = build(tmp, '--sample')
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'True' not in [line.split()[1] for line in res.stdout.splitlines() if line.split()[:1] and line.split()[0] in
                          ('ingest', 'validate', 'features', 'train', 'register', 'predict', 'monitor', 'dashboard') and len(line.split()) > 2]
    assert before == {p: p.stat().st_mtime_ns for p in (tmp / 'reports').glob('*.html')}


def test_cli_status_and_help(sample_build):
    tmp, _ = sample_build
    h = subprocess.run([str(BIN / 'nepse-mlops'), '--help'], capture_output=True, text=True)
    for cmd in ['run', 'serve', 'dashboard', 'promote', 'rollback', 'status', 'ingest']: assert cmd in h.stdout
    env = tmp / 'root'; env.mkdir(exist_ok=True)
    (env / 'pipeline.yaml').write_text((ROOT / 'pipeline.yaml').read_text())
    (env / 'env.yaml').write_text((ROOT / 'env.yaml').read_text().replace('{{root}}/products', str(tmp / 'products'))
                                  .replace('{{root}}/reports', str(tmp / 'reports')))
    s = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(env), 'status'], capture_output=True, text=True, env=os.environ | QUIET)
    assert s.returncode == 0, s.stderr
    st = json.loads(s.stdout)
    assert st['champion'] == '1' and st['last_run']['status'] == 'success' and st['last_market_session']
