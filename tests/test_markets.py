"""A champion never crosses markets: a synthetic run, then a run on real files in the SAME products folder."""
import json, os, shutil, subprocess
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, SHARED, QUIET, build, env_for, free_port

DATA = Path(os.environ.get('NEPSE_SHARED_DATA') or SHARED)   # conftest's shared data; a git worktree can point at it
COMPANY = DATA / 'Aabishkar2__nepse-data' / 'data' / 'company-wise'
needs_shared = pytest.mark.skipif(not COMPANY.exists(), reason=f'real NEPSE data not found at {COMPANY} (present in '
                                  'CI; NEPSE_SHARED_DATA=<shared>/data/nepse points a worktree at it)')
SYMBOLS = ['NABIL', 'ADBL', 'NTC', 'CHCL', 'BPCL', 'AHPC', 'SCB', 'SBI', 'PCBL', 'CZBIL', 'ALICL', 'API', 'EBL', 'HBL',
           'NICA']
pytestmark = pytest.mark.loop   # two runs on two markets in one folder: make test-loop (CI runs it)
CHEAP = ['--set', 'replay_sessions=0', '--set', 'bootstrap=50']   # bounded cost: no replay, fewer bootstrap resamples


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    sets = [a for k, v in env_for(tmp).items() if k != 'model_name' for a in ('--set', f'{k}={v}')]
    return subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), *args, *sets], cwd=ROOT, capture_output=True,
                          text=True, env=os.environ | QUIET | {'OMP_NUM_THREADS': '1'}, timeout=300)


def status(tmp: Path) -> dict:
    r = cli(tmp, 'status'); assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@needs_shared
def test_a_champion_never_crosses_markets(tmp_path):
    res = build(tmp_path, '--sample', *CHEAP)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    st = status(tmp_path)
    if not st['champion']:   # the sample's gate may refuse: make sure a synthetic champion exists to be set aside
        r = cli(tmp_path, 'promote', '1', '--force', '--reason', 'test: a synthetic champion')
        assert r.returncode == 0, r.stderr
        st = status(tmp_path)
    synth_v = st['champion']
    assert st['champion_market'].startswith('synthetic:symbols=12,') and st['market'] == st['champion_market'], st

    real = tmp_path / 'real'; real.mkdir()
    for s in SYMBOLS: shutil.copy(COMPANY / f'{s}.csv', real / f'{s}.csv')
    # CI time: not the real-data profile's 10
    res = build(tmp_path, '--data', str(real), *CHEAP, '--set', 'n_windows=4')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    market = f'files:{real.resolve()}'
    run = json.loads((tmp_path / 'products/train/run.json').read_text())
    assert run['market'] == market and not run.get('reused'), run.get('reuse_reason')   # trained for this market
    ledger = [json.loads(l) for l in (tmp_path / 'reports/registry_ledger.jsonl').read_text().splitlines()]
    decision = json.loads((tmp_path / 'products/register/decision.json').read_text())
    assert decision['market'] == market
    aside_reason = f'set aside: champion v{synth_v} was trained on market'
    assert any(r.startswith(aside_reason) for r in decision['reasons']), decision['reasons']
    st = status(tmp_path)
    if st['champion']:   # promoted: a model of the real market
        assert st['champion'] != synth_v and st['champion_market'] == market and 'champion_refused' not in st, st
    else:                # refused: the synthetic champion was set aside, and the ledger says why
        aside = [e for e in ledger if e['event'] == 'set_aside']
        assert aside and aside[-1]['version'] == synth_v, ledger[-2:]
        assert 'never crosses markets' in aside[-1]['reasons'][0]
    preds = pd.read_csv(tmp_path / 'products/predict/predictions.csv', dtype={'model_version': str})
    assert synth_v not in set(preds.model_version), 'a real symbol was predicted by the synthetic champion'
    assert len(preds) == 0 or set(preds.model_version) == {st['champion']}
    print(f"\nreal run: champion {st['champion']} ({st.get('champion_market')}), {len(preds)} predictions; "
          f"synthetic v{synth_v} set aside: {decision['reasons'][-1]}")

    # the synthetic model made champion by hand: status names its market, serve and predict refuse it in one line
    r = cli(tmp_path, 'promote', synth_v, '--force', '--reason', 'test: a champion of another market')
    assert r.returncode == 0, r.stderr
    st = status(tmp_path)
    assert st['champion'] == synth_v and st['champion_market'].startswith('synthetic:') and st['market'] == market, st
    assert 'never crosses markets' in st['champion_refused']
    r = cli(tmp_path, 'serve', '--port', str(free_port()))
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stdout
    assert lines[0].startswith(f'error: champion v{synth_v} was trained on market'), r.stdout
    assert 'never crosses markets' in lines[0]
    print(f"serve: {lines[0]}")
    out = predict_again(tmp_path)
    assert out.summary['champion'] is None and len(out.preds) == 0
    assert out.summary['refused'].startswith(f'champion v{synth_v} was trained on market'), out.summary


def predict_again(tmp: Path):
    "The predict stage on the real run's products, into a scratch folder (the production products stay as they are)."
    from nepse_mlops.predict import predict_stage, PredictSettings
    p = tmp / 'products'
    up = {'register': {'decision': str(p / 'register/decision.json')},
          'validate': {'prices': str(p / 'validate/prices.parquet')},
          'features': {'market': str(p / 'features/market.parquet')}}
    out = tmp / 'scratch'; out.mkdir()
    s = PredictSettings(tracking_uri=env_for(tmp)['tracking_uri'], artifact_root=str(p / 'mlartifacts'))
    return predict_stage(up, {'predictions': str(out / 'predictions.csv'), 'summary': str(out / 'summary.json')}, s)
