"""Known-answer tests: the embedded synthetic market plants a signal whose best possible ROC AUC the generator knows.

A correct pipeline finds a stated share of that signal, never more than the best possible beyond noise (more can
only mean look-ahead), refuses a market with nothing planted, and handles the canaries a real market throws at it:
a column known only the next day, a change of the circuit limit, new listings that run limit-up.
"""
import numpy as np
import pandas as pd
import pytest
import yaml
from pathlib import Path

from nepse_mlops.core import CANONICAL_COLUMNS
from nepse_mlops.synthetic import make_market, PLANTED_LIMITS
from nepse_mlops.validate import validate_prices, CIRCUIT_LIMITS, parse_limits
from nepse_mlops.features import build_features, market_index, check_no_lookahead
from nepse_mlops.evaluation import (walk_forward, compare_all, known_answer, serving_eligible, backtest, BASELINES,
                                    gate_window, gate_rules)
from nepse_mlops.train import TrainSettings
from nepse_mlops.register import gate_decision

PARAMS = {'learning_rate': 0.05, 'max_iter': 200, 'max_leaf_nodes': 15, 'min_samples_leaf': 200,
          'l2_regularization': 1.0}
SHARE_OF_EDGE = 0.6      # the pipeline must find at least this share of the achievable edge over 0.5
NOISE = 0.01             # ... and never beat the best possible ROC AUC by more than this


def _raw(mk):
    return mk.assign(instrument_type=np.where(mk.sector == 'Promoter_Share', 'promoter', 'equity'),
                     source_file='synthetic.csv', source_line=np.arange(len(mk)) + 2)[CANONICAL_COLUMNS]


def evaluate(seed=7, signal=1.0, model_seed=42, n_symbols=40, start='2019-01-01'):
    "validate -> features -> walk-forward -> the gate's decision, as the pipeline does it (no tracking store)."
    mk, events = make_market(n_symbols=n_symbols, start=start, end='2026-08-21', seed=seed, signal=signal)
    vp = validate_prices(_raw(mk), today='2026-08-21').prices
    fe = build_features(vp, market=market_index(vp))
    data = fe[fe.target.notna().to_numpy() & serving_eligible(fe)].reset_index(drop=True)
    per_window, preds = walk_forward(data, PARAMS, seed=model_seed)
    ev = compare_all(preds, 200, 0)
    gate = gate_window(per_window)
    rules = gate_rules(per_window)   # the naive rules' gate-window metrics, as the register stage reads them
    d = gate_decision({'roc_auc': gate.loc['model', 'roc_auc']}, rules, ev, None)
    return dict(mk=mk, vp=vp, fe=fe, preds=preds, evidence=ev, decision=d,
                known=known_answer(preds, mk[['date', 'symbol', 'planted_p_up']]))


ENV = yaml.safe_load((Path(__file__).resolve().parents[1] / 'env.yaml').read_text())
# the shipped settings must find this share of the edge on the default market (issue 21; 75.006% measured with
# max_bins 32, 73.8% without: at the threshold). The limit is the 16 inputs that carry nothing here: on ret_1 and
# volume_z20 alone the model finds 84% (README: the known answer) ...
SHIPPED_SHARE = 0.75
# ... as a run on 2026-11-25 sees it: 120 sessions into the changed regime (tests/test_replay.py)
SHIPPED_THROUGH = '2026-11-24'


def evaluate_shipped(through=SHIPPED_THROUGH, seed=None, features=None, **model_params):
    """The known answer of the default market (env.yaml's generator) trained as the train stage does with env.yaml's
    settings. `features` (default `FEATURES`) and `model_params` (overriding env.yaml's) are for experiments
    (benchmarks/known_answer.py)."""
    seed = ENV['seed'] if seed is None else seed
    mk, _ = make_market(ENV['synth_symbols'], ENV['synth_start'], ENV['synth_end'], seed, ENV['synth_signal'],
                        ENV['synth_change_at'] or None, through, ENV['synth_change_every'] or None)
    vp = validate_prices(_raw(mk), today=str((pd.Timestamp(through) + pd.Timedelta(days=1)).date())).prices
    fe = build_features(vp, market=market_index(vp))
    data = fe[fe.target.notna().to_numpy() & serving_eligible(fe)].reset_index(drop=True)
    s = TrainSettings.from_params(ENV)
    _, preds = walk_forward(data, s.model_params | model_params, s.n_windows, s.test_sessions,
                            max(s.embargo, s.horizon), s.min_train_sessions, s.seed, s.half_life, features=features)
    return known_answer(preds, mk[['date', 'symbol', 'planted_p_up']])


def test_the_shipped_settings_find_most_of_the_edge_on_the_default_market():
    ka = evaluate_shipped()
    assert ka['share_of_edge'] >= SHIPPED_SHARE, ka
    assert ka['model_auc'] <= ka['best_auc'] + NOISE, f'above the best possible: look-ahead? {ka}'


@pytest.fixture(scope='module')
def default_market():
    return evaluate()


def test_the_pipeline_finds_the_planted_signal_and_no_more(default_market):
    ka = default_market['known']
    assert ka['best_auc'] > 0.6, ka
    assert ka['model_auc'] >= 0.5 + SHARE_OF_EDGE * (ka['best_auc'] - 0.5), ka
    assert ka['model_auc'] <= ka['best_auc'] + NOISE, f'above the best possible: look-ahead? {ka}'
    assert default_market['decision']['decision'] == 'promoted', default_market['decision']['reasons']


def test_the_model_beats_every_naive_rule_beyond_noise(default_market):
    diffs = default_market['evidence']['diffs']
    assert set(BASELINES) <= set(diffs)
    assert all(diffs[b]['roc_auc']['ci'][0] > 0 for b in BASELINES), {b: diffs[b]['roc_auc'] for b in BASELINES}


def test_another_model_seed_gives_the_same_decision(default_market):
    other = evaluate(model_seed=7)
    assert other['decision']['decision'] == default_market['decision']['decision']


def test_a_market_with_nothing_planted_is_refused():
    r = evaluate(seed=11, signal=0.0, n_symbols=20, start='2022-01-01')
    model = r['evidence']['candidates']['model']['roc_auc']
    assert model['ci'][0] < 0.5 < model['ci'][1], model
    assert r['decision']['decision'] == 'refused'


def test_a_column_known_only_next_day_is_caught_by_the_leakage_guard(default_market, monkeypatch):
    import nepse_mlops.features as F
    vp = default_market['vp']
    vp = vp[vp.symbol.isin(sorted(vp.symbol.unique())[:8])]
    assert check_no_lookahead(vp, '2025-06-30') == []
    honest = F.build_features
    def with_settlement(prices, horizon=1, market=None):
        # a figure the exchange publishes the next day (e.g. settled turnover), joined to the session it describes
        f = honest(prices, horizon, market)
        late = prices.sort_values(['symbol', 'date']).assign(settled=lambda d: d.groupby('symbol').turnover.shift(-1))
        return f.merge(late[['symbol', 'date', 'settled']], on=['symbol', 'date'], how='left')
    monkeypatch.setattr(F, 'build_features', with_settlement)
    assert F.check_no_lookahead(vp, '2025-06-30') == ['settled']


def test_the_limit_change_leaves_the_planted_up_rate_alone(default_market):
    assert parse_limits(None) == [(d, l) for d, l in PLANTED_LIMITS]   # validation knows the regimes the market obeys
    mk, fe = default_market['mk'], default_market['fe']
    eq = mk[mk.sector != 'Promoter_Share'].drop_duplicates(['symbol', 'date'], keep=False).sort_values(['symbol',
                                                                                                        'date'])
    nxt = eq.groupby('symbol').close.shift(-1)
    planted = eq.assign(up=(nxt > eq.close).astype(float).where(nxt.notna()),
                        ret=eq.groupby('symbol').close.pct_change())
    after = lambda d: d[(d.date >= '2026-04-21') & d.up.notna()]
    big_raw = after(planted)[after(planted).ret.abs().between(0.105, 0.15)]
    kept = fe.merge(big_raw[['symbol', 'date', 'up']], on=['symbol', 'date'])
    assert len(big_raw) >= 5, 'the market must have moves between the old and the new limit'
    assert len(kept) == len(big_raw), 'a genuine move within the new limit was dropped'
    assert (kept.target == kept.up).all(), 'labels of big moves differ from what was planted'


def test_a_new_listing_that_runs_limit_up_is_never_bought(default_market):
    mk, fe = default_market['mk'], default_market['fe']
    listings = default_market['mk'].groupby('symbol').date.min()
    sym = listings[listings > listings.min()].index[0]                    # a symbol listed after the market opened
    rows = fe[fe.symbol == sym].head(8).dropna(subset=['fwd_ret'])
    # a model that says 'buy' every day
    preds = rows.assign(candidate='model', window=0, y=rows.target, p=1.0, label=1)
    bt = backtest(preds, cost_one_way=0.0)
    # the listing day and the limit-up run after it
    run = rows.date.iloc[:4]
    assert (bt.loc[run, 'signal_same_close'] == 0).all() and (bt.loc[run, 'longs'] == 0).all(), bt.head()
    assert (bt.limit_up_skipped.loc[run] == 1).all()
    # and the pipeline never scores those rows at all
    assert not serving_eligible(fe[fe.symbol == sym])[:60].any()
