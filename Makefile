# nepse_mlops — the two commands: `make run` and `make test`. Everything installs into .venv from
# pyproject.toml + requirements.lock (resolved with uv; `make lock` refreshes it).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
PORT ?= 8866
DATA ?=
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# Python writes .pyc files into .venv on first import. Where PYTHONDONTWRITEBYTECODE is set (this image sets it) every
# notebook kernel would otherwise compile mlflow, evidently and sklearn from source again: their import 10.5 s -> 5.0 s.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: help install run test test-loop test-ops test-scale tracking-server airflow-venv airflow-lock nbdev-test pytest dashboard serve mlflow-ui lab status lock check deps clean clean-products benchmark

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'

$(VENV)/.installed: $(UV) requirements.lock pyproject.toml
	$(UV) pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock   # .pyc now, not in each first kernel
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked environment

run: install ## run the whole pipeline (embedded SYNTHETIC market; DATA=path for real files)
	$(BIN)/nepse-mlops run $(if $(DATA),--data $(abspath $(DATA)))

test: install ## nbdev_test over all notebooks, then pytest on two workers
	$(BIN)/nbdev_test --n_workers 2
	$(BIN)/pytest -q -n 2

test-loop: install ## the loop over time on the known-answer market (slow replays; CI runs it after make test)
	$(BIN)/pytest -q -m loop

test-ops: install ## crash safety: real runs killed at each named kill point, then the next run (about 12 minutes; CI runs it)
	$(BIN)/pytest -q -s -m ops   # -s: one line per kill point saying what the next run did

# Apache Airflow lives in its own venv: apache-airflow 3 pins fastapi and friends against the project's lock.
AIRFLOW_VENV := .venv-airflow

$(AIRFLOW_VENV)/.installed: $(UV) requirements-airflow.txt
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(AIRFLOW_VENV)
	$(UV) pip install --python $(AIRFLOW_VENV)/bin/python --quiet -r requirements-airflow.txt
	touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed ## Apache Airflow 3 in .venv-airflow/ (for make test-scale and exported DAGs)

airflow-lock: $(UV) ## re-resolve requirements-airflow.txt from requirements-airflow.in
	$(UV) pip compile requirements-airflow.in --python-version 3.11 -o requirements-airflow.txt

test-scale: install airflow-venv ## scale-out for real: Airflow 3 runs the exported DAG (cold, unchanged); PostgreSQL + tracking server + serve + rollback + basic auth (about 10 minutes; CI runs it)
	$(BIN)/pytest -q -m scale

dashboard: install ## serve the dashboard with Voila on 127.0.0.1:$(PORT)
	$(BIN)/nepse-mlops dashboard --port $(PORT)

serve: install ## serve the champion over REST on 127.0.0.1:5001 (/invocations, /metrics, a request log)
	$(BIN)/nepse-mlops serve

mlflow-ui: install ## MLflow UI on 127.0.0.1:5000
	$(BIN)/nepse-mlops ui

tracking-server: install ## MLflow tracking server on the PostgreSQL in NEPSE_MLOPS_BACKEND_URI, at 127.0.0.1:5000 (see nepse-mlops tracking-server --help)
	$(BIN)/nepse-mlops tracking-server

# The project's Jupyter configuration (.jupyter/: server extensions, contents manager, lab extensions, 127.0.0.1:8888,
# --allow-root when root); tests/test_lab.py starts JupyterLab with the same JUPYTER_CONFIG_DIR.
lab: install ## JupyterLab on 127.0.0.1:8888; a stage notebook opens with its upstream injected (runs write products/lab/)
	JUPYTER_CONFIG_DIR=$(CURDIR)/.jupyter $(BIN)/jupyter lab

status: install ## champion, last run, data freshness
	$(BIN)/nepse-mlops status

check: install ## what CI checks besides tests: notebooks exported and clean, env.yaml matches its schema, no line over 120 characters
	$(BIN)/nbdev_export && git diff --exit-code -- nepse_mlops
	$(BIN)/nbdev_clean && git diff --exit-code -- nbs
	$(BIN)/python -c 'import sys; from nepse_mlops.settings import check_env_file; sys.exit(check_env_file("env.yaml"))'
	$(BIN)/python tools/check_lines.py   # code cells of nbs/*.ipynb, nepse_mlops/, tests/, benchmarks/, tools/

deps: ## the dependency picture: each module, its notebook, lines and what it imports (tests/test_layout.py checks it)
	$(BIN)/python tests/test_layout.py

benchmark: install ## timings and memory (see benchmarks/README.md)
	$(BIN)/python benchmarks/bench_pipeline.py

lock: $(UV) ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean-products: ## delete pipeline products and executed reports (keeps .venv)
	rm -rf products reports/*.html reports/*.ipynb reports/.*.metadata reports/*.jsonl

clean: clean-products ## also delete .venv
	rm -rf $(VENV)
