"""The "Try a feature" loop end to end on the sample market: two experiments, the leaderboard, promote --experiment.

An experiment must leave production alone: every product file, every report, the ledger and the champion alias are
the same before and after (the MLflow store gains the experiments' runs and artifacts, nothing else changes)."""
import hashlib, json, os, shutil, subprocess
from pathlib import Path

import mlflow
import pytest

from conftest import BIN, ROOT, QUIET, env_for

RULES = ['always_up', 'majority', 'persistence', 'reversal', 'logistic']


@pytest.fixture(scope='module')
def market(sample_build, tmp_path_factory):
    "A copy of the sample build's products and reports: promotions here never move the shared fixture's champion."
    src, _ = sample_build
    tmp = tmp_path_factory.mktemp('experiments')
    shutil.copytree(src / 'products', tmp / 'products'); shutil.copytree(src / 'reports', tmp / 'reports')
    return tmp


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    sets = [a for k, v in env_for(tmp).items() if k != 'model_name' for a in ('--set', f'{k}={v}')]
    return subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), *args, *sets], cwd=ROOT, capture_output=True,
                          text=True, env=os.environ | QUIET | {'OMP_NUM_THREADS': '1'}, timeout=900)


def digests(tmp: Path) -> dict:
    "sha256 of every production file: products/ (but the experiments' workspace and the MLflow database) and reports/."
    out = {}
    for base in ('products', 'reports'):
        for f in sorted((tmp / base).rglob('*')):
            rel = f.relative_to(tmp).as_posix()
            if f.is_file() and not rel.startswith(('products/experiments/', 'products/mlflow.db')):
                out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def champion(tmp: Path) -> str:
    mlflow.set_tracking_uri(env_for(tmp)['tracking_uri'])
    return str(mlflow.MlflowClient().get_model_version_by_alias('nepse_direction', 'champion').version)


def check_memo(text: str, name: str):
    assert f"# Experiment `{name}`: the gate would **" in text
    table = text.split('## All walk-forward windows')[1].split('## The gate window')[0]
    for c in ['experiment', 'champion', *RULES]: assert f"| {c} " in table, c
    for c in ['champion', *RULES]:   # every other candidate: experiment minus it, signed, with its 95% interval
        row = next(l for l in table.splitlines() if l.startswith(f"| {c} "))
        cell = row.rstrip(' |').rsplit('|', 1)[1].strip()
        assert cell[0] in '+-' and cell.count('[') == 1 and cell.endswith(']'), row
    gate = text.split('## The gate window')[1]
    assert '| champion v1 ' in gate and all(f"| {c} " in gate for c in RULES)
    verdict = text.split("## The gate's verdict: ")[1]
    assert verdict.split()[0] in ('refused', 'promoted')
    assert '- does not beat champion v1' in verdict or '- beats champion v1' in verdict


def test_try_a_feature(market):
    tmp = market
    before, champ_before = digests(tmp), champion(tmp)
    ledger = tmp / 'reports' / 'registry_ledger.jsonl'
    n_ledger = len(ledger.read_text().splitlines())

    memos = {}
    for name, setting in [('half_life_40', 'half_life=40'), ('one_tree', 'model_params.max_iter=1')]:
        r = cli(tmp, 'experiment', name, '--set', setting)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        memos[name] = r.stdout
        print(f"\n--- nepse-mlops experiment {name} --set {setting} ---\n{r.stdout}")
        check_memo(r.stdout, name)
        ws = tmp / 'products' / 'experiments' / name
        assert (ws / 'memo.md').read_text() in r.stdout and '<table>' in (ws / 'memo.html').read_text()
    assert "`half_life`: 20 -> 40" in memos['half_life_40'] and "`model_params.max_iter`: 100 -> 1" in memos['one_tree']
    assert 'the data the champion was trained on' in memos['half_life_40']

    # production untouched: products, reports (the ledger too) and the champion alias
    after = digests(tmp)
    assert {k: v for k, v in after.items() if not k.startswith('products/mlartifacts/')} == \
           {k: v for k, v in before.items() if not k.startswith('products/mlartifacts/')}
    assert all(after.get(k) == v for k, v in before.items())   # old artifacts unchanged; new: the experiments' runs
    assert champion(tmp) == champ_before == '1'
    assert len(ledger.read_text().splitlines()) == n_ledger

    # the leaderboard: both, best ROC AUC first
    r = cli(tmp, 'experiments')
    print(r.stdout)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'vs champion (gate window) [95%]' in lines[0] and 'gate verdict' in lines[0]
    rows = {l.split()[0]: l for l in lines[1:]}
    assert set(rows) == {'half_life_40', 'one_tree'}
    assert 'half_life=40' in rows['half_life_40'] and 'model_params.max_iter=1' in rows['one_tree']
    aucs = [float(next(t for t in l.split() if t.startswith('0.'))) for l in lines[1:]]
    assert aucs == sorted(aucs, reverse=True)

    # promotion is the real gate: either promoted or refused, with reasons, recorded in the ledger
    r = cli(tmp, 'promote', '--experiment', 'half_life_40')
    print(r.stdout, r.stderr)
    assert r.returncode in (0, 1) and 'registered as version 2; the gate ' in r.stdout
    assert '  - walk-forward: ' in r.stdout
    ev = json.loads(ledger.read_text().splitlines()[-1])
    assert ev['event'] in ('promoted', 'refused') and ev['version'] == '2' and ev['reasons']
    assert (r.returncode == 0) == (ev['event'] == 'promoted') == (champion(tmp) == '2')

    # one tree: refused on the sample (not shown better than persistence, nor than the champion beyond noise);
    # --force needs a reason; with one it is promoted, and the ledger records the reason
    champ = champion(tmp)
    r = cli(tmp, 'promote', '--experiment', 'one_tree')
    assert r.returncode == 1 and 'the gate refused it' in r.stdout, r.stdout + r.stderr
    assert json.loads(ledger.read_text().splitlines()[-1])['event'] == 'refused' and champion(tmp) == champ
    r = cli(tmp, 'promote', '--experiment', 'one_tree', '--force')
    assert r.returncode == 2 and '--force needs --reason' in r.stderr
    r = cli(tmp, 'promote', '--experiment', 'one_tree', '--force', '--reason', 'demo of an overruled gate')
    print(r.stdout, r.stderr)
    assert r.returncode == 0 and 'FORCED' in r.stdout, r.stdout + r.stderr
    ev = json.loads(ledger.read_text().splitlines()[-1])
    assert ev['event'] == 'manual_promotion' and ev['version'] == '3', ev
    assert 'demo of an overruled gate' in ev['reason'] and 'forced past the gate' in ev['reason']
    assert champion(tmp) == '3'
