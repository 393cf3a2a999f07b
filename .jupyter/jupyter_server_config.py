# The project's Jupyter configuration. `make lab` and tests/test_lab.py start JupyterLab with
# JUPYTER_CONFIG_DIR=<this folder>, so both run exactly this (plus labconfig/page_config.json).
import os
from pathlib import Path

c = get_config()  # noqa: F821 (defined by Jupyter when it loads this file)
c.ServerApp.ip = '127.0.0.1'
c.ServerApp.port = 8888
c.ServerApp.open_browser = False
c.ServerApp.allow_root = os.geteuid() == 0        # containers and CI run as root
c.ServerApp.root_dir = str(Path(__file__).resolve().parent.parent)   # the project: nbs/ in the file browser

# Ploomber 0.23.3's server extension injects a stage's upstream and product when its notebook opens. It wraps the
# configured contents manager with a synchronous `get`, so that manager must be synchronous: jupyter_server's default
# (AsyncLargeFileManager) and jupytext's server extension (installed by ploomber, not used here: notebooks are .ipynb)
# both make it a coroutine and every GET /api/contents answered 500.
c.ServerApp.contents_manager_class = 'jupyter_server.services.contents.largefilemanager.LargeFileManager'
c.ServerApp.jpserver_extensions = {
    'ploomber': True,              # on-open injection of upstream/product/params (removed again on save)
    'jupyterlab_jupytext': False,  # async contents manager: breaks Ploomber's
    'ploomber_extension': False,   # ploomber-engine's UI, broken in JupyterLab 4 (labconfig/page_config.json)
}

# On every save of a stage notebook (JupyterLab autosaves every 2 minutes, and it marks a freshly opened notebook
# modified) Ploomber deletes the task's product metadata under products/: the next scheduled run would then rebuild
# that stage and everything after it although nothing changed. Ploomber compares the stored source anyway, so a
# real edit still re-runs the stage; the deletion is only a write to the production products from Lab.
import logging  # noqa: E402
from ploomber.jupyter import manager as _ploomber_manager   # noqa: E402 (the extension imports it anyway)


def _keep_product_metadata(self, key):
    logging.getLogger('ServerApp').info(f'[nepse_mlops] kept the product metadata of {key} (saved in Lab)')


_ploomber_manager.DAGMapping.delete_metadata = _keep_product_metadata

# labconfig/page_config.json disables the lab extensions that are broken or reach the network: ploomber-extension
# ("Cannot read properties of undefined (reading 'toolbar')"), jupyterlab-plotly 5.24.1 (built for JupyterLab 3),
# jupytext's (its server half is off) and the news announcements; the extension manager does not query PyPI.
c.LabApp.extension_manager = 'readonly'

# Kernels started by this server run stage notebooks "in Lab": nepse_mlops.lab.stage_start sends their products to
# products/lab/<task>/ (production=True writes for real). Terminals do not get the flag, so `ploomber build` or
# `nepse-mlops run` typed in a Lab terminal writes the real products as anywhere else.
os.environ['NEPSE_MLOPS_LAB'] = '1'
_shell = os.environ.get('SHELL') or '/bin/bash'
c.ServerApp.terminado_settings = {'shell_command': ['env', '-u', 'NEPSE_MLOPS_LAB', _shell]}
