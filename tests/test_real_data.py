"""Real NEPSE history from ../shared (skipped only where it is absent; CI has it)."""
import json, shutil
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED, build, needs_shared

S1 = SHARED / 'Aabishkar2__nepse-data' / 'data' / 'company-wise'
S2 = SHARED / 'Sudipsudip5250__Nepal_Stock_Data'
S3 = SHARED / 'owstron__capstone2020'
pytestmark = needs_shared


@pytest.fixture(scope='module')
def source1():
    from nepse_mlops.ingest import ingest_paths
    from nepse_mlops.validate import validate_prices
    res = ingest_paths([S1], progress_every=10**6)
    return res, validate_prices(res.prices, res.quarantine, today='2026-08-22')


def test_source1_balance_and_known_quirks(source1):
    res, v = source1
    r = v.report
    assert r['rows_in'] == 505_255 and r['balanced']
    assert r['rows_in'] == r['rows_kept'] + r['rows_quarantined'] + r['rows_dropped']
    rules = {x['rule']: x['rows'] for x in r['rules']}
    assert rules['exact_duplicate'] == 674                       # SOURCES.md: 674 exact duplicates
    assert rules['high_below_low'] == 115                        # SOURCES.md: 115 rows with high < low
    q = v.quarantine
    ahpc = q[(q.symbol == 'AHPC') & (q.date == '2019-09-17')]
    assert ahpc.rule.tolist() == ['high_below_low'] and ahpc.source_file.str.endswith('AHPC.csv').all()


def test_nabil_bonus_drop_is_adjusted(source1):
    _, v = source1
    n = v.prices[v.prices.symbol == 'NABIL'].sort_values('date').set_index('date')
    raw_r = n.close.pct_change().loc['2020-12-30']
    adj_r = n.adj_close.pct_change().loc['2020-12-30']
    assert raw_r < -0.2 and abs(adj_r) <= 0.10
    a = v.adjustments
    assert ((a.symbol == 'NABIL') & (a.date == '2020-12-30')).sum() == 1


def test_adbl_triple_row_is_resolved_and_counted(source1):
    res, v = source1
    raw = res.prices[(res.prices.symbol == 'ADBL') & (res.prices.date == '2011-11-29')]
    assert len(raw) == 3
    kept = v.prices[(v.prices.symbol == 'ADBL') & (v.prices.date == '2011-11-29')]
    quarantined = v.quarantine[(v.quarantine.symbol == 'ADBL') & (v.quarantine.date == '2011-11-29')]
    dropped = v.dropped[(v.dropped.symbol == 'ADBL') & (v.dropped.date == '2011-11-29')]
    assert len(kept) <= 1 and len(kept) + len(quarantined) + len(dropped) == 3 and len(quarantined) >= 1


def test_quoted_thousands_source_agrees_with_plain_source(source1):
    from nepse_mlops.ingest import ingest_paths
    res, _ = source1
    b = ingest_paths([S2 / 'Nepse_Data'], progress_every=10**6).prices
    k = ['symbol', 'date']
    m = res.prices.drop_duplicates(k, keep=False).merge(b.drop_duplicates(k, keep=False), on=k, suffixes=('_a', '_b'))
    m = m[m.date >= '2012-01-01']
    assert len(m) > 300_000
    agree = ((m.close_a - m.close_b).abs() <= 1e-6) & ((m.volume_a - m.volume_b).abs() <= 1e-6)
    assert agree.mean() >= 0.999


def test_source2_folders_classify_instruments_and_skip_non_price_files():
    from nepse_mlops.ingest import ingest_paths
    res = ingest_paths([S2], progress_every=10**6)
    types = res.prices.drop_duplicates('symbol').instrument_type.value_counts()
    assert types['promoter'] >= 200 and types['debenture'] >= 70 and types['mutual_fund'] >= 50
    other = res.manifest[res.manifest.status != 'ingested']
    assert dict(zip(other.file.str.rsplit('/', n=1).str[-1], other.reason)) == {
        'listed_company.csv': 'company list', 'only_public_holidays.csv': 'holiday list',
        'public_and_weekly_holidays.csv': 'holiday list', 'trading_calendar.csv': 'trading calendar'}
    assert (other.status == 'other_table').all() and res.errors == []


def test_index_file_with_blank_line_nbsp_and_percent():
    from nepse_mlops.ingest import ingest_paths
    res = ingest_paths([S3], progress_every=10**6)
    p = res.prices
    assert len(p) == 5173 and set(p.instrument_type) == {'index'} and len(res.quarantine) == 0
    top = p.sort_values('date').iloc[-1]
    assert str(top.date.date()) == '2019-12-08' and top.close == pytest.approx(1135.37)
    assert p.source_line.min() == 3                                  # line 2 is blank and skipped


def test_whole_dag_on_real_files(tmp_path):
    """Ingest to monitor on 12 liquid real symbols (copied to a temp folder; the repo never holds real data)."""
    real = tmp_path / 'real'; real.mkdir()
    for s in ['NABIL', 'ADBL', 'NTC', 'CHCL', 'BPCL', 'AHPC', 'SCB', 'SBI', 'PCBL', 'CZBIL', 'ALICL', 'API']:
        shutil.copy(S1 / f'{s}.csv', real / f'{s}.csv')
    before = {f.name: f.read_bytes() for f in real.iterdir()}
    # CI time: not the real-data profile's 10 windows (nbs/10_cli tests that it applies)
    res = build(tmp_path, '--data', str(real), '--set', 'today=2026-08-22', '--set', 'replay_sessions=30',
                '--set', 'n_windows=4')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert before == {f.name: f.read_bytes() for f in real.iterdir()}       # raw inputs untouched
    assert 'real files' in (tmp_path / 'reports/01_ingest.html').read_text()
    decision = json.loads((tmp_path / 'products/register/decision.json').read_text())
    assert decision['decision'] in ('promoted', 'refused') and decision['reasons']
    run = json.loads((tmp_path / 'products/train/run.json').read_text())
    assert run['gate_end'] <= '2026-08-21' and run['pooled']['model']['n'] > 1000
    preds = pd.read_csv(tmp_path / 'products/predict/predictions.csv')
    summary = json.loads((tmp_path / 'products/monitor/summary.json').read_text())
    assert decision['champion'], 'something always serves: a model that passed the gate, or the best naive rule'
    assert len(preds) >= 10 and (preds.prediction_for == '2026-08-24').all()
    # no model beat every rule: the best rule serves, labelled as a rule everywhere
    if decision['decision'] == 'refused':
        check_baseline_champion(tmp_path, decision, preds, summary)


def check_baseline_champion(tmp, decision, preds, summary):
    ("The baseline champion is registered, labelled in status, "
     "memos and the answer (REST and batch share it), monitored.")
    from conftest import env_for
    from nepse_mlops.cli import status
    v, rule = decision['champion'], decision['champion_rule']
    assert decision['champion_kind'] == 'baseline_rule' and decision['baseline']['event'] == 'baseline'
    st = status(env_for(tmp))
    assert st['champion_label'] == f"v{v} - baseline rule '{rule}' (not a trained model)", st
    assert (preds.model_kind == 'baseline_rule').all() and preds.what.str.contains('ranking score').all()
    assert preds.what.str.contains('not a buy signal').all() and (preds.model_version.astype(str) == v).all()
    assert "baseline rule '" in (tmp / 'reports/05_register.html').read_text()
    assert 'not a buy signal' in (tmp / 'reports/06_predict.html').read_text()
    assert (summary['champion']['version'], summary['champion']['kind']) == (v, 'baseline_rule')
    ledger = [json.loads(l) for l in (tmp / 'reports/registry_ledger.jsonl').read_text().splitlines()]
    assert [e['event'] for e in ledger][-2:] == ['refused', 'baseline']
    assert 'no model beat every naive rule' in ledger[-1]['reasons'][0]
    replay = json.loads((tmp / 'products/replay/summary.json').read_text())
    assert replay['baselines'] or replay['promotions'], replay   # the replayed loop serves too


def test_holiday_file_flags_sessions_on_holidays(source1):
    from nepse_mlops.validate import load_holidays, validate_prices
    res, v = source1
    hol = load_holidays(S2 / 'other_nepse_detail' / 'only_public_holidays.csv')
    assert len(hol) > 100
    v2 = validate_prices(res.prices, res.quarantine, today='2026-08-22', holidays=hol)
    before = {x['rule']: x['rows'] for x in v.report['rules']}['off_calendar']
    after = {x['rule']: x['rows'] for x in v2.report['rules']}['off_calendar']
    assert after > before and v2.report['rows_kept'] == v.report['rows_kept']   # flagged, never dropped
