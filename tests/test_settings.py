"""One home for every setting: env.yaml holds the values, nepse_mlops.settings their types, no dataclass a default."""
import subprocess, sys
from dataclasses import fields, MISSING
from pathlib import Path
import yaml
from nepse_mlops.settings import SCHEMA, FROM_ENV, check_env, env_values

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_schema_choices_are_the_code_s():
    from nepse_mlops.features import FEATURE_SETS, LABELS
    assert set(SCHEMA['feature_set'].choices) == {*FEATURE_SETS, 'auto'}
    assert set(SCHEMA['label'].choices) == {*LABELS, 'auto'}


def test_no_settings_dataclass_restates_a_value():
    from nepse_mlops.ingest import IngestSettings
    from nepse_mlops.validate import ValidateSettings
    from nepse_mlops.train import TrainSettings
    from nepse_mlops.register import RegisterSettings
    from nepse_mlops.predict import PredictSettings
    from nepse_mlops.monitor import MonitorSettings, RetrainPolicy
    from nepse_mlops.replay import ReplaySettings, ReplayTask
    for cls in (IngestSettings, ValidateSettings, TrainSettings, RegisterSettings, PredictSettings, MonitorSettings,
                RetrainPolicy, ReplaySettings, ReplayTask):
        for f in fields(cls):   # FROM_ENV (env.yaml's value) or None (a path pipeline.yaml gives), never a number
            assert f.default is FROM_ENV or f.default is None, (cls.__name__, f.name, f.default)
            assert f.default_factory is MISSING, (cls.__name__, f.name)
    env = env_values(ROOT)
    assert RetrainPolicy() == RetrainPolicy.of(MonitorSettings())   # one place: env.yaml's top-level keys
    assert TrainSettings(n_windows=2).n_windows == 2 and TrainSettings().n_windows == env['n_windows']
    assert ReplaySettings().n_windows == env['replay_policy']['n_windows'] and ReplaySettings().margin == env['margin']
    assert IngestSettings().seed == env['seed']


def test_pipeline_tasks_share_their_options():
    spec = yaml.safe_load((ROOT / 'pipeline.yaml').read_text())   # Ploomber reads it with yaml.safe_load: <<: merges
    stages = [t for t in spec['tasks'] if t['name'] != 'dashboard']
    assert all(t['static_analysis'] == 'disable' and t['nb_product_key'] == ['nb', 'nb_html'] for t in stages)
    assert 'nb_product_key: [nb, nb_html]' in (ROOT / 'pipeline.yaml').read_text().replace('  ', ' ') \
        and (ROOT / 'pipeline.yaml').read_text().count('nb_product_key: [nb, nb_html]') == 1
    assert check_env(yaml.safe_load((ROOT / 'env.yaml').read_text().replace('{{root}}', str(ROOT))))


def test_cli_names_a_bad_setting():
    res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'params', 'train', '--set', 'n_windows=ten',
                          '--set', 'min_setled=5'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "--set: n_windows: expected an integer, got 'ten'" in res.stderr
    assert "--set: unknown key 'min_setled' (did you mean min_settled?)" in res.stderr


def test_papermill_knows_every_parameter_and_none_is_restated():
    """A scheduler's `papermill` on one stage warns of no parameter ("Passed unknown parameter"): each stage's
    parameters cell names every parameter of its task in pipeline.yaml, and takes its value from env.yaml."""
    import json
    from papermill.execute import _infer_parameters   # what papermill's warning compares the passed names with
    from papermill.iorw import load_notebook_node
    spec = yaml.safe_load((ROOT / 'pipeline.yaml').read_text())
    stages = [t for t in spec['tasks'] if t.get('params')]
    assert len(stages) == 8
    for t in stages:
        path = str(ROOT / t['source'])
        known = {p.name for p in _infer_parameters(load_notebook_node(path), name='python3', language='python')}
        assert set(t['params']) | {'upstream', 'product'} <= known, (t['name'], set(t['params']) - known)
        cell = next(''.join(c['source']) for c in json.loads(Path(path).read_text())['cells']
                    if 'parameters' in c['metadata'].get('tags', []))
        assert [l for l in cell.splitlines() if l.split(' = ')[0] in t['params']] == \
            [f"{n} = env_['{n}']" for n in t['params']], t['name']
