"""The loop over time: `replay` runs the scheduled daily loop as of past sessions.

Known-answer checks on the synthetic market: with a planted regime change, monitoring flags it and a retrain
follows; on a control market without the change, neither drift nor decay triggers a retrain. A replay sees no
future (perturbing raw rows after t leaves every prediction up to t unchanged) and is deterministic.
"""
import json
import numpy as np
import pandas as pd
import pytest

from nepse_mlops.core import CANONICAL_COLUMNS
from nepse_mlops.synthetic import make_market, synthetic_calendar
from nepse_mlops.validate import validate_prices
from nepse_mlops.features import build_features, market_index
from nepse_mlops.replay import replay, ReplaySettings

END = '2026-08-21'
CAL = synthetic_calendar('2019-01-01', END, 7)
CHANGE_BACK, SPAN = 100, 140           # the planted change 100 sessions before the end; replay the last 140
CHANGE = str(CAL[-CHANGE_BACK].date())
REACT_WITHIN = 40                      # sessions after the change by which the loop must have flagged it


def features_of(mk):
    raw = mk.assign(instrument_type=np.where(mk.sector == 'Promoter_Share', 'promoter', 'equity'),
                    source_file='synthetic.csv', source_line=np.arange(len(mk)) + 2)[CANONICAL_COLUMNS]
    vp = validate_prices(raw, today=END).prices
    return build_features(vp, market=market_index(vp))


def run(tmp, change_at, name):
    mk, _ = make_market(40, '2019-01-01', END, 7, change_at=change_at)
    tl = replay(features_of(mk), CAL[-SPAN], settings=ReplaySettings(max_new_sessions=None), out=tmp / name, progress=False)
    led = [json.loads(l) for l in (tmp / name / 'ledger.jsonl').read_text().splitlines()]
    return tl, led


loop = pytest.mark.loop   # replays of 140 sessions of the full default market: `make test-loop` (CI runs it)


@pytest.fixture(scope='module')
def changed(tmp_path_factory):
    return run(tmp_path_factory.mktemp('replay'), CHANGE, 'changed')


@loop
def test_the_planted_change_is_flagged_and_a_retrain_follows(changed):
    tl, led = changed
    assert tl.retrain.iat[0] and led[0]['event'] == 'promoted'            # the first session trains a champion
    after = tl[(tl.session >= CHANGE) & tl.retrain]
    assert len(after), 'the change was never flagged'
    first = after.session.iat[0]
    waited = int(((tl.session > pd.Timestamp(CHANGE)) & (tl.session <= first)).sum())
    assert waited <= REACT_WITHIN, f'flagged {waited} sessions after the change'
    assert 'realised ROC AUC' in after.reasons.iat[0] or 'drift share' in after.reasons.iat[0]
    assert all(e['replay'] and e['as_of'] for e in led)


@loop
def test_a_market_without_the_change_does_not_retrain_on_drift_or_decay(tmp_path):
    tl, led = run(tmp_path, None, 'control')
    later = tl.iloc[1:]
    assert not later.retrain.any(), later[later.retrain][['session', 'reasons']]


def test_replay_sees_no_future_and_is_deterministic(tmp_path):
    mk, _ = make_market(16, '2022-06-01', '2024-12-31', 3)
    cal = np.sort(mk.date.unique())
    t = pd.Timestamp(cal[-10])
    small = ReplaySettings(model_params={'max_iter': 60, 'max_leaf_nodes': 7, 'min_samples_leaf': 50}, n_windows=2, test_sessions=60,
                           min_train_sessions=100, bootstrap=30, max_new_sessions=5, reference_sessions=100, current_sessions=10)
    replay(features_of(mk), cal[-25], t, settings=small, out=tmp_path / 'a', progress=False)
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
    replay(features_of(noisy), cal[-25], t, settings=small, out=tmp_path / 'b', progress=False)
    replay(features_of(mk), cal[-25], t, settings=small, out=tmp_path / 'c', progress=False)
    a, b, c = (pd.read_parquet(tmp_path / x / 'predictions.parquet') for x in 'abc')
    assert len(a) and a.feature_date.max() == t
    assert not features_of(noisy).loc[lambda f: f.date > t, 'ret_1'].equals(features_of(mk).loc[lambda f: f.date > t, 'ret_1'])
    cols = ['feature_date', 'symbol', 'prob_up', 'model_version']
    pd.testing.assert_frame_equal(a[cols], b[cols])        # the future was perturbed: nothing up to t changed
    pd.testing.assert_frame_equal(a[cols], c[cols])        # the same replay twice: the same predictions
    ta, tc = (pd.read_csv(tmp_path / x / 'timeline.csv') for x in 'ac')
    pd.testing.assert_frame_equal(ta.drop(columns='seconds'), tc.drop(columns='seconds'))
