"""A model logged before the served model left `nepse_mlops.train` still loads and answers the same.

MLflow pickles a pyfunc model's class by reference, and joblib an estimator's: models registered before the split
name `nepse_mlops.train.NepseDirectionModel`, `nepse_mlops.train.RecencyBoosting` and (a baseline rule's)
`nepse_mlops.train.SignRule`. The fixture was saved with the code at commit 0f8eca1 (make_fixture.py beside it)."""
import json
from pathlib import Path
import joblib, numpy as np, pandas as pd

FX = Path(__file__).parent / 'fixtures' / 'model_before_split'


def test_pyfunc_logged_before_the_split_loads_and_predicts():
    import mlflow.pyfunc
    assert b'nepse_mlops.train' in (FX / 'pyfunc' / 'python_model.pkl').read_bytes()   # really the old path
    m = mlflow.pyfunc.load_model(str(FX / 'pyfunc'))
    py = m.unwrap_python_model()
    assert (type(py).__module__, type(py.est).__module__) == ('nepse_mlops.model', 'nepse_mlops.evaluation')
    got = m.predict(pd.read_csv(FX / 'request.csv'))
    want = json.loads((FX / 'expected.json').read_text())['answer']
    assert got[['symbol', 'date', 'direction']].to_dict('list') == {k: want[k] for k in ('symbol', 'date', 'direction')}
    assert got.prob_up.tolist() == want['prob_up']


def test_baseline_rule_pickled_before_the_split_loads():
    rule = joblib.load(FX / 'rule.joblib')
    want = json.loads((FX / 'expected.json').read_text())
    assert type(rule).__module__ == 'nepse_mlops.evaluation'
    p = rule.predict_proba(pd.DataFrame(want['rule_rows']))[:, 1]
    assert np.array_equal(p, np.array(want['rule_p_up']))
