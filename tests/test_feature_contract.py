"""Each registered model carries its feature contract (issue 20, part 2). In a COPY of the project (its package on
PYTHONPATH, as `nbdev_export` would leave it after an edit), on the small sample market: build once (champion v1); a
retrain with nothing changed registers nothing; add a feature and drop another, then retrain: the run completes,
the gate scores the champion on its own features, every active symbol is still predicted; the old champion still answers
through `NepseDirectionModel`; once the code stops computing a feature, a model needing it is refused when it loads."""
import json, os, shutil, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, QUIET, PINNED

pytestmark = pytest.mark.loop   # three runs of a copy of the project: make test-loop (CI runs it)

MAIN = 'import sys; from nepse_mlops.cli import main; sys.exit(main())'
CHEAP = ['--set', 'replay_sessions=0', '--set', 'bootstrap=50']   # no replay, fewer resamples: bounded cost


def copy_project(dst: Path) -> Path:
    skip = shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints')
    for d in ('nbs', 'nepse_mlops', 'data'): shutil.copytree(ROOT / d, dst / d, ignore=skip)
    for f in ('pipeline.yaml', 'env.yaml', 'settings.ini', 'pyproject.toml'): shutil.copy(ROOT / f, dst / f)
    return dst


def env_of(root: Path) -> dict:
    return os.environ | QUIET | {'PYTHONPATH': str(root)}   # PYTHONPATH wins over the editable install's finder


def run(root: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    "`nepse-mlops run --sample` with the copy's package and notebooks, products and reports under `tmp`."
    args = [str(BIN / 'python'), '-c', MAIN, '--root', str(root), 'run', '--set', f'products={tmp}/products',
            '--set', f'reports={tmp}/reports', '--set', f'tracking_uri=sqlite:///{tmp}/products/mlflow.db',
            *PINNED, *CHEAP, '--sample', *extra]
    t0 = time.time()
    res = subprocess.run(args, cwd=root, env=env_of(root), capture_output=True, text=True, timeout=1500)
    print(f"run {' '.join(extra) or '(cold)'}: exit {res.returncode} in {time.time() - t0:.0f}s")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def edit(root: Path, old: str, new: str) -> None:
    "The same edit in the copy's features notebook and its exported module (what `nbdev_export` would write)."
    py = root / 'nepse_mlops/features.py'
    assert py.read_text().count(old) == 1, old
    py.write_text(py.read_text().replace(old, new))
    nb = root / 'nbs/03_features.ipynb'; doc = json.loads(nb.read_text())
    cells = [c for c in doc['cells'] if old in ''.join(c['source'])]
    assert len(cells) == 1, old
    cells[0]['source'] = ''.join(cells[0]['source']).replace(old, new).splitlines(keepends=True)
    nb.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + '\n')


def in_copy(root: Path, tmp: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    "Python run with the copy's package against the build's tracking store."
    pre = f"import json, sys, mlflow, pandas as pd\nmlflow.set_tracking_uri('sqlite:///{tmp}/products/mlflow.db')\n"
    return subprocess.run([str(BIN / 'python'), '-c', pre + code, *args], cwd=root, env=env_of(root),
                          capture_output=True, text=True, timeout=600)


# the champion re-scored on the gate rows with its own feature list, as the gate must have scored it
RESCORE = """from nepse_mlops.registry import load_estimator
from nepse_mlops.model import contract_proba, model_features
from nepse_mlops.evaluation import pooled_score
from nepse_mlops.register import gate_rows
tmp, version, start, end = sys.argv[1:]
est = load_estimator(f'models:/nepse_direction/{version}')
rows = gate_rows(pd.read_parquet(f'{tmp}/products/features/features.parquet'), start, end)
p = contract_proba(est, rows)
auc = pooled_score(rows.target.astype(int), p, (p >= 0.5).astype(int), 0 * p)['roc_auc']
print(json.dumps(dict(features=model_features(est), roc_auc=auc)))
"""

# the served model (pyfunc, `NepseDirectionModel`) answering the batch request for every active symbol
ANSWER = """from nepse_mlops.predict import serving_rows
tmp, version = sys.argv[1:]
model = mlflow.pyfunc.load_model(f'models:/nepse_direction/{version}')
prices = pd.read_parquet(f'{tmp}/products/validate/prices.parquet')
rows, _ = serving_rows(prices, pd.read_parquet(f'{tmp}/products/features/market.parquet'))
print(model.predict(rows)[['symbol', 'prob_up', 'model_version']].to_json(orient='records'))
"""


def ledger(tmp: Path) -> list[dict]:
    return [json.loads(l) for l in (tmp / 'reports/registry_ledger.jsonl').read_text().splitlines()]


def versions(tmp: Path) -> list[str]:
    import mlflow
    client = mlflow.MlflowClient(f'sqlite:///{tmp}/products/mlflow.db')
    return sorted((str(v.version) for v in client.search_model_versions("name='nepse_direction'")), key=int)


def gate_line(ev: dict) -> str:
    return f"{ev['event']} v{ev['version']} (champion before: v{ev['previous_champion']}): " + ' | '.join(ev['reasons'])


def check_gate_and_predictions(root: Path, tmp: Path, before: list[str], symbols: set) -> dict:
    "The run's gate line: a new version against the champion scored on its own features; every active symbol predicted."
    ev = ledger(tmp)[-1]
    print('gate:', gate_line(ev))
    assert ev['event'] in ('promoted', 'refused') and ev['version'] not in before
    assert versions(tmp) == before + [ev['version']]
    champ = ev['champion_metrics']
    assert champ['version'] == ev['previous_champion']
    res = in_copy(root, tmp, RESCORE, str(tmp), champ['version'], *ev['gate_window'])
    assert res.returncode == 0, res.stderr[-3000:]
    own = json.loads(res.stdout.splitlines()[-1])
    assert champ['roc_auc'] == pytest.approx(own['roc_auc'], abs=1e-12)   # the champion scored on its own columns
    preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    assert set(preds.symbol) == symbols and len(preds) == len(symbols)
    return dict(ev=ev, champion_features=own['features'])


def test_models_keep_their_feature_contract(tmp_path):
    root = copy_project(tmp_path / 'repo')
    tmp = tmp_path / 'build'
    run(root, tmp)
    assert versions(tmp) == ['1'] and ledger(tmp)[-1]['event'] == 'promoted', ledger(tmp)[-1]
    v1_preds = pd.read_csv(tmp / 'products/predict/predictions.csv')
    symbols = set(v1_preds.symbol)

    # A retrain identical to the champion (same data, code and parameters) is not registered again.
    run(root, tmp, '--set', 'retrain=always')
    ev = ledger(tmp)[-1]
    print('identical:', gate_line(ev))
    assert (ev['event'], ev['version'], versions(tmp)) == ('identical', '1', ['1'])
    assert json.loads((tmp / 'products/register/decision.json').read_text())['champion'] == '1'

    # A feature added and another dropped (what nbdev_export writes after an edit of nbs/03_features), then a retrain:
    # the new model trains on rel_mkt_5 and without gap; the champion
    # is still scored on its own list (with gap, no rel_mkt_5)
    edit(root, "    f['rel_mkt_20'] = f['ret_20'] - _span(mkt, dates, lag(dates, 20))\n",
         "    f['rel_mkt_20'] = f['ret_20'] - _span(mkt, dates, lag(dates, 20))\n"
         "    f['rel_mkt_5'] = f['ret_5'] - _span(mkt, dates, lag(dates, 5))\n")
    edit(root, "            'mkt_ret_1', 'mkt_ret_5', 'rel_mkt_20',",
         "            'mkt_ret_1', 'mkt_ret_5', 'rel_mkt_5', 'rel_mkt_20',")
    edit(root, "'turnover_z20', 'gap', 'range',", "'turnover_z20', 'range',")
    run(root, tmp, '--set', 'retrain=always')
    a = check_gate_and_predictions(root, tmp, ['1'], symbols)
    trained = json.loads((tmp / 'products/train/run.json').read_text())['features']
    assert 'rel_mkt_5' in trained and 'gap' not in trained
    assert 'rel_mkt_5' not in a['champion_features'] and 'gap' in a['champion_features']

    # (c) the old champion still answers through NepseDirectionModel after both changes, exactly as it did before them
    res = in_copy(root, tmp, ANSWER, str(tmp), '1')
    assert res.returncode == 0, res.stderr[-3000:]
    ans = pd.DataFrame(json.loads(res.stdout.splitlines()[-1])).set_index('symbol')
    assert set(ans.index) == symbols and (ans.model_version.astype(str) == '1').all()
    assert (ans.prob_up - v1_preds.set_index('symbol').prob_up).abs().max() < 1e-9

    # (d) once the code no longer computes `gap`, a model that needs it is refused when it loads, saying what to do
    edit(root, "        f['gap'] = px['open'] / lag(close, 1) - 1\n", "")
    res = in_copy(root, tmp, ANSWER, str(tmp), '1')
    print('refused:', res.stderr.strip().splitlines()[-1])
    assert res.returncode != 0 and ("model version 1 needs features ['gap'] that this nepse_mlops no longer computes: "
                                    "retrain with `nepse-mlops run --set retrain=always`, or reinstall the code it was "
                                    "trained with (git commit") in res.stderr
