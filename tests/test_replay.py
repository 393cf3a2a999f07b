"""The loop over time: `replay` runs the scheduled daily loop as of past sessions.

Known-answer checks on the default synthetic market (pinned to end on 2026-11-24, as a run on 2026-11-25 sees it) with
the shipped replay policy (env.yaml's `replay_policy`): the planted regime change on 2026-05-29 (120 sessions before the
end) is flagged by monitoring within 25 sessions, a retrain follows, a retrained champion is promoted, and on the
post-change outcomes settled after its promotion it beats the old champion beyond noise. On a control market without
the change, neither drift nor decay triggers a retrain. A replay sees no future and is deterministic.
"""
import json
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from pathlib import Path

from nepse_mlops.core import CANONICAL_COLUMNS, read_jsonl
from nepse_mlops.features import FEATURES
from nepse_mlops.register import champion_on_gate
from nepse_mlops.synthetic import make_market, synthetic_calendar, planted_changes, regime_sessions
from nepse_mlops.validate import validate_prices
from nepse_mlops.features import build_features, market_index
from nepse_mlops.replay import replay, ReplaySettings

ROOT = Path(__file__).resolve().parents[1]
ENV = yaml.safe_load((ROOT / 'env.yaml').read_text())
END, HORIZON = '2026-11-24', ENV['synth_end']
CHANGE = ENV['synth_change_at']                    # the shipped default: 2026-05-29
CAL = synthetic_calendar('2019-01-01', HORIZON, 7)
CAL = CAL[CAL <= END]
SPAN = ENV['replay_sessions']                      # what `make run` replays
REACT_WITHIN = 25                                  # sessions after the change by which monitoring must have flagged it
POLICY = ReplaySettings.from_env(dict(ENV['replay_policy'], model_params=ENV['model_params']))


def features_of(mk, today='2026-11-25'):
    raw = mk.assign(instrument_type=np.where(mk.sector == 'Promoter_Share', 'promoter', 'equity'),
                    source_file='synthetic.csv', source_line=np.arange(len(mk)) + 2)[CANONICAL_COLUMNS]
    vp = validate_prices(raw, today=today).prices
    return build_features(vp, market=market_index(vp))


def run(tmp, change_at, name):
    mk, _ = make_market(40, '2019-01-01', HORIZON, 7, change_at=change_at, through=END)
    fx = features_of(mk)
    tl = replay(fx, CAL[-SPAN], settings=POLICY, out=tmp / name, progress=False)
    return tl, read_jsonl(tmp / name / 'ledger.jsonl'), fx


loop = pytest.mark.loop   # replays of 150 sessions of the full default market: `make test-loop` (CI runs it)


@pytest.fixture(scope='module')
def changed(tmp_path_factory):
    d = tmp_path_factory.mktemp('replay')
    return run(d, CHANGE, 'changed') + (d / 'changed',)


def test_the_default_places_the_change_inside_the_replay():
    assert CAL[-SPAN] < pd.Timestamp(CHANGE) < CAL[-40], ('the replay must start before the planted change, with '
                                                          'sessions to spare after it')
    assert int((CAL >= pd.Timestamp(CHANGE)).sum()) == 120


def test_every_later_day_replays_a_planted_change():
    # the change recurs (synth_change_every), so a fresh `make run` on any day up to synth_end replays one, with
    # sessions after it; the days shown before the next change are those of the single-change market (tested in
    # 00f_synthetic)
    seed = ENV['seed']
    cal = synthetic_calendar(ENV['synth_start'], HORIZON, seed)
    changes = pd.DatetimeIndex(regime_sessions(planted_changes(CHANGE, ENV['synth_change_every'], HORIZON),
                                               ENV['synth_start'], HORIZON, seed))
    assert len(changes) >= 3 and changes[0] == pd.Timestamp(CHANGE)
    worst = min(max(((cal > c) & (cal <= cal[t])).sum()
                    for c in changes[(changes > cal[t - SPAN + 1]) & (changes <= cal[t])])
                for t in range(cal.searchsorted(pd.Timestamp(END)), len(cal)))
    assert worst >= 20, worst


@loop
def test_the_planted_change_is_flagged_and_a_retrain_follows(changed):
    tl, led, _, _ = changed
    assert led[0]['event'] in ('promoted', 'refused') and any(e['event'] == 'promoted' for e in led)
    before = tl[tl.session < CHANGE]
    assert before.champion.notna().iloc[-1], 'a champion serves before the change'
    # outcomes after the change settle from the next session
    after = tl[(tl.session > CHANGE) & tl.retrain.astype(bool)]
    assert len(after), 'the change was never flagged'
    first = after.session.iat[0]
    waited = int(((tl.session > pd.Timestamp(CHANGE)) & (tl.session <= first)).sum())
    assert waited <= REACT_WITHIN, f'flagged {waited} sessions after the change'
    assert 'realised ROC AUC' in after.reasons.iat[0] or 'drift share' in after.reasons.iat[0]
    assert all(e['replay'] and e['as_of'] for e in led)


@loop
def test_the_retrained_champion_beats_the_old_one_after_the_change(changed):
    tl, led, fx, out = changed
    promos = [e for e in led if e['event'] == 'promoted']
    new = [e for e in promos if e['as_of'] > CHANGE]
    assert new, 'no retrained model was promoted after the change'
    old_v, new_v, since = new[0]['previous_champion'], new[0]['version'], pd.Timestamp(new[0]['as_of'])
    old, newest = (joblib.load(out / 'models' / f'v{v}.joblib') for v in (old_v, new_v))
    rows = fx[(fx.date > since) & fx.target.notna()
              & (fx.groupby('symbol').date.rank(method='first') > 60)].reset_index(drop=True)
    assert rows.date.nunique() >= 20, 'too few settled sessions after the promotion to judge'
    cmp = champion_on_gate(newest.predict_proba(rows[FEATURES])[:, 1], old.predict_proba(rows[FEATURES])[:, 1], rows,
                           200, 0)
    assert cmp['diff_ci'][0] > 0, f"retrained v{new_v} minus old v{old_v}: {cmp['diff']:+.4f} {cmp['diff_ci']}"
    # and the replay's own realised metrics say the same: the new
    # champion's realised ROC AUC at the end beats the rules'
    last = tl.iloc[-1]
    assert last.realised_auc > max(0.5, last.realised_reversal_auc, last.realised_persistence_auc)


@loop
def test_a_market_without_the_change_does_not_retrain_on_drift_or_decay(tmp_path):
    tl, led, _ = run(tmp_path, None, 'control')
    served = tl[tl.champion.notna()]
    assert len(served) > SPAN // 2, 'a champion must serve most of the control replay'
    # a baseline rule's realised AUC sits at 0.5 by
    rules = {str(e['version']) for e in led if e['event'] == 'baseline'}
    # noise, so its decay trips by design: models only
    model = tl.champion.notna() & ~tl.champion.astype(str).isin(rules)
    assert model.sum() > SPAN // 3, 'a trained model must serve much of the control replay'
    judged = tl[tl.retrain.astype(bool) & model]
    assert not judged.reasons.str.contains('drift|realised').any(), judged[['session', 'reasons']]


def test_replay_sees_no_future_and_is_deterministic(tmp_path):
    mk, _ = make_market(16, '2022-06-01', '2024-12-31', 3)
    cal = np.sort(mk.date.unique())
    t = pd.Timestamp(cal[-10])
    small = ReplaySettings(model_params={'max_iter': 60, 'max_leaf_nodes': 7, 'min_samples_leaf': 50}, n_windows=2,
                           test_sessions=60,
                           min_train_sessions=100, bootstrap=30, max_new_sessions=5, reference_sessions=100,
                           current_sessions=10)
    replay(features_of(mk, '2025-01-01'), cal[-25], t, settings=small, out=tmp_path / 'a', progress=False)
    # a different future: every raw price after t moves by up to ±3% (within the circuit limit, so no corporate action
    # is detected after t: such an action rescales earlier adjusted prices, which features see only as ratios, equal to
    # ~1e-10 but not bit for bit, and tree models may split on that last bit; tests/test_point_in_time.py covers it)
    rng = np.random.default_rng(0)
    noisy = mk.copy()
    later = noisy.date > t
    for c in ['open', 'high', 'low', 'close']:
        noisy.loc[later, c] = (noisy.loc[later, c] * rng.uniform(0.97, 1.03, later.sum())).round(1)
    noisy.loc[later, 'high'] = noisy.loc[later, ['open', 'high', 'low', 'close']].max(axis=1)
    noisy.loc[later, 'low'] = noisy.loc[later, ['open', 'high', 'low', 'close']].min(axis=1)
    replay(features_of(noisy, '2025-01-01'), cal[-25], t, settings=small, out=tmp_path / 'b', progress=False)
    replay(features_of(mk, '2025-01-01'), cal[-25], t, settings=small, out=tmp_path / 'c', progress=False)
    a, b, c = (pd.read_parquet(tmp_path / x / 'predictions.parquet') for x in 'abc')
    assert len(a) and a.feature_date.max() == t
    assert not features_of(noisy, '2025-01-01').loc[lambda f: f.date > t, 'ret_1'].equals(
        features_of(mk, '2025-01-01').loc[lambda f: f.date > t, 'ret_1'])
    cols = ['feature_date', 'symbol', 'prob_up', 'model_version']
    pd.testing.assert_frame_equal(a[cols], b[cols])        # the future was perturbed: nothing up to t changed
    pd.testing.assert_frame_equal(a[cols], c[cols])        # the same replay twice: the same predictions
    ta, tc = (pd.read_csv(tmp_path / x / 'timeline.csv') for x in 'ac')
    pd.testing.assert_frame_equal(ta.drop(columns='seconds'), tc.drop(columns='seconds'))
