"""Point-in-time validation on real NEPSE history: a row's fate, features and label depend only on the past.

Validating the raw history cut at a date T must give, for rows <= T, the same kept rows, the same features and
the same (known) labels as validating the full history. Features are compared with rtol 1e-6: adjusted prices
are rounded to 10 significant digits, and later corporate actions scale earlier prices (every feature is a ratio,
so it changes only by that rounding, ~1e-9). Labels are compared exactly."""
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED, needs_shared

S1 = SHARED / 'Aabishkar2__nepse-data' / 'data' / 'company-wise'
pytestmark = needs_shared

# corporate actions (NABIL NICA NTC API HIDCL UPPER, undone drops CZBIL SMB SHL), the 2011-06-21 jumps (AHPC CHCL EBL),
# big 2026 moves that the old fixed ±10% rule quarantined, and a few plain ones
SYMBOLS = ['NABIL', 'NICA', 'NTC', 'API', 'HIDCL', 'UPPER', 'CZBIL', 'SMB', 'SHL', 'AHPC', 'CHCL', 'EBL', 'ADBL',
           'ICFC',
           'CORBL', 'ULHC', 'BUNGAL', 'DLBS', 'ULBSL', 'ANLB', 'APHL', 'BJHL', 'CREST', 'FOWAD', 'KHPL', 'MKHL', 'SAIL',
           'SKHEL', 'SMJC', 'SNORL', 'AHL', 'CFCL', 'CITY', 'CKHL', 'CYCL', 'GHL', 'ALICL', 'BARUN', 'HDL', 'JOSHI']
CUTS = ['2011-06-21', '2020-12-30', '2026-04-17', '2026-04-21', '2026-06-15']
KEY = ['symbol', 'date']


def _run(raw, today):
    from nepse_mlops.validate import validate_prices
    from nepse_mlops.features import build_features
    v = validate_prices(raw, today=today)
    return v, build_features(v.prices)


@pytest.fixture(scope='module')
def full():
    from nepse_mlops.ingest import ingest_paths
    files = [S1 / f'{s}.csv' for s in SYMBOLS]
    assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
    raw = ingest_paths(files, progress_every=10**6).prices
    v, f = _run(raw, '2026-08-22')
    return raw, v, f


@pytest.mark.parametrize('cut', CUTS)
def test_validation_and_features_are_point_in_time(full, cut):
    from nepse_mlops.features import FEATURES
    raw, v, f = full
    T = pd.Timestamp(cut)
    vc, fc = _run(raw[raw.date <= T], cut)
    kept_full = set(map(tuple, v.prices.loc[v.prices.date <= T, KEY].astype(str).to_numpy()))
    kept_cut = set(map(tuple, vc.prices[KEY].astype(str).to_numpy()))
    assert kept_cut == kept_full, sorted(kept_cut ^ kept_full)[:10]
    m = fc.merge(f[f.date <= T], on=KEY, suffixes=('_cut', '_full'), validate='one_to_one')
    assert len(m) == len(fc) > 1000
    for c in FEATURES:
        a, b = m[f'{c}_cut'].to_numpy('float64'), m[f'{c}_full'].to_numpy('float64')
        bad = ~np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True)
        assert not bad.any(), (c, m.loc[bad, KEY + [f'{c}_cut', f'{c}_full']].head().to_dict('records'))
    known = m.target_cut.notna()                 # labels whose next kept session is <= T
    assert known.sum() > 1000
    diff = m.loc[known & (m.target_cut != m.target_full), KEY + ['target_cut', 'target_full']]
    assert diff.empty, diff.head().to_dict('records')


def test_moves_within_the_15pct_limit_are_kept_and_big_rises_do_not_foretell_the_next_session(full):
    raw, v, f = full
    r = raw.sort_values(KEY).drop_duplicates(KEY, keep=False)
    r = r.assign(move=r.close / r.groupby('symbol').close.shift() - 1)
    new = r[(r.date >= '2026-04-20') & (r.move.abs() > 0.105) & (r.move.abs() <= 0.15)]
    assert len(new) >= 20                        # the old fixed ±10% rule quarantined or back-adjusted these
    q = set(map(tuple, v.quarantine[KEY].astype(str).to_numpy()))
    assert not q & set(map(tuple, new[KEY].astype(str).to_numpy()))
    adj = set(zip(v.adjustments.symbol, v.adjustments.date))
    assert not adj & set(zip(new.symbol, new.date))
    # the look-ahead symptom: under the old rule kept big rises were the ones that did not revert next session
    big = f[(f.date >= '2026-04-20') & (f.ret_1 > np.log(1.095))].dropna(subset=['target'])
    up = big.target.mean()
    print(f'kept rises > 9.5% from 2026-04-20: {len(big)}, next-session up-rate {up:.3f}')
    assert len(big) >= 20 and up < 0.75
