"""Scale-out on Kubernetes: `nepse-mlops export argo` validated offline, and the Dockerfile its steps run in.

No `argo` binary or cluster is reachable here, so the CronWorkflow is checked against Argo's own types as the `hera`
package models them (generated from Argo's API). Pydantic drops fields it does not know, so a document that survives
validate -> dump unchanged has no misspelled field either; `test_the_validator_catches_mistakes` shows that it would
notice one. Fast (one export, about 8 s): these run in `make test`."""
import copy, json, os, re, shlex, subprocess
from pathlib import Path
import pytest, yaml
from conftest import ROOT, BIN, QUIET
from nepse_mlops.export import ARGO_ROOT, ARGO_MOUNT, pipeline_graph, task_command
from nepse_mlops.ops import DAILY_RUN, daily_cron

hera = pytest.importorskip('hera.workflows.models', reason='hera is in the dev extra (make install)')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp('argo')
    res = subprocess.run([str(BIN / 'nepse-mlops'), '--root', str(ROOT), 'export', 'argo', str(out),
                          '--set', 'image=registry.example.org/nepse-mlops:0.1.0', '--set', 'sample=true'],
                         cwd=ROOT, env=os.environ | QUIET, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return yaml.safe_load((out / 'cronworkflow.yaml').read_text()), yaml.safe_load((out / 'pvc.yaml').read_text())


def strict(model, doc: dict) -> dict:
    "Validate `doc` as `model` and require that nothing was dropped or coerced on the way (an unknown field would be)."
    back = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode='json')
    assert back == doc, 'fields Argo does not know, or values of another type: ' + json.dumps(back)[:500]
    return back


def test_the_validator_catches_mistakes(exported):
    cw, _ = exported
    misspelled = copy.deepcopy(cw); misspelled['spec']['workflowSpec']['templates'][1]['container']['workDir'] = '/app'
    with pytest.raises(AssertionError, match='fields Argo does not know'): strict(hera.CronWorkflow, misspelled)
    wrong_type = copy.deepcopy(cw); wrong_type['spec']['workflowSpec']['parallelism'] = 'one'
    with pytest.raises(Exception, match='parallelism'): strict(hera.CronWorkflow, wrong_type)


def test_cronworkflow_is_valid_argo_with_ploomber_dag(exported):
    cw, pvc = exported
    strict(hera.CronWorkflow, cw)
    strict(hera.PersistentVolumeClaim, pvc)
    assert (cw['apiVersion'], cw['kind'], pvc['kind']) == ('argoproj.io/v1alpha1', 'CronWorkflow',
                                                           'PersistentVolumeClaim')
    spec = cw['spec']
    assert (spec['schedules'] == [daily_cron()] and spec['timezone'] == DAILY_RUN['timezone']
            and spec['concurrencyPolicy'] == 'Forbid')
    wf = spec['workflowSpec']
    dag = next(t for t in wf['templates'] if t['name'] == wf['entrypoint'])['dag']['tasks']
    # Ploomber's tasks and edges
    assert {t['name']: sorted(t.get('dependencies', [])) for t in dag} == pipeline_graph(ROOT)
    assert all(t['arguments']['parameters'] == [{'name': 'task', 'value': t['name']}] for t in dag)
    assert wf['parallelism'] == 1                                                       # the flock on the shared volume
    assert wf['volumes'][0]['persistentVolumeClaim']['claimName'] == pvc['metadata']['name']


def test_each_step_runs_one_task_in_the_image_on_the_volume(exported):
    cw, _ = exported
    step = next(t for t in cw['spec']['workflowSpec']['templates'] if t['name'] == 'task')
    c = step['container']
    assert c['image'] == 'registry.example.org/nepse-mlops:0.1.0'   # --set image=..., not passed on to the tasks
    sets = ['products=/data/products', 'reports=/data/reports', 'tracking_uri=sqlite:////data/products/mlflow.db',
            'sample=true']
    assert c['command'] + c['args'] == task_command('{{inputs.parameters.task}}', ARGO_ROOT, sets)
    assert c['volumeMounts'] == [{'name': 'data', 'mountPath': ARGO_MOUNT}] and c['workingDir'] == ARGO_ROOT
    assert {'name': 'NEPSE_MLOPS_TRIGGER', 'value': 'argo'} in c['env'] and step['retryStrategy']['limit'] == 2


def test_dockerfile_builds_from_the_lock_as_a_non_root_user():
    "No docker here: the Dockerfile is read, its COPY sources must exist, and it must agree with the Argo export."
    text = (ROOT / 'Dockerfile').read_text()
    lines = [l.strip() for l in re.sub(r'\\\n', ' ', text).splitlines() if l.strip() and not l.lstrip().startswith('#')]
    assert lines[0] == 'FROM python:3.11-slim'
    copies = [shlex.split(l)[1:] for l in lines if l.startswith('COPY ')]
    sources = [s for c in copies for s in c[:-1] if not s.startswith('--')]
    assert sources and all((ROOT / s).exists() for s in sources), [s for s in sources if not (ROOT / s).exists()]
    assert 'requirements.lock' in sources and any('-r requirements.lock' in l for l in lines if l.startswith('RUN '))
    assert f'WORKDIR {ARGO_ROOT}' in lines                                               # where the exported steps look
    user = [l.split()[1] for l in lines if l.startswith('USER ')]
    assert user and user[-1] not in ('root', '0')
    assert json.loads(lines[-1].removeprefix('CMD ')) == ['nepse-mlops', 'run']
    ignored = (ROOT / '.dockerignore').read_text().split()
    assert {'.venv', '.venv-airflow', 'products', '.git'} <= set(ignored)
