# The two commands: `make run` (set up, ingest every table on the embedded default) and `make test` (every check).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# The underscore spellings of nbdev 3's commands (it ships only nbdev-export ...), made by `make dev`.
NBDEV_ALIASES := export test clean prepare install_hooks
# pytest-xdist workers: most tests wait on servers, kernels and subprocesses, so 6 fit on 2 cores (a fresh clone's
# make test: 13.5-16.5 min with 6, 17-19.5 min with 4, on the same machine the same day)
PYTEST_WORKERS ?= 6
# Prefect's settings (state under .prefect/, no telemetry, start-up timeout) are applied by the kit itself.

.DEFAULT_GOAL := help
.PHONY: help install dev run test browser bench reports wheel worker server setup lint sync-check nbtest pytest lab export clean-notebooks deploy deployments server-stop clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# pip installs uv, and uv the rest: the same packages as pip, from pip's configured sources, in half the time
# (tools/uv_install.py). pip -qq: errors only.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the package and its dependencies into $(VENV)..."
	@$(PY) -m pip install -qq uv
	@$(PY) tools/uv_install.py -e .
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	@echo "Installing the dev extras (nbdev, JupyterLab, pytest, ruff, pre-commit) into $(VENV)..."
	@$(PY) tools/uv_install.py -e '.[dev]'
	@for c in $(NBDEV_ALIASES); do ln -sf "nbdev-$${c//_/-}" "$(BIN)/nbdev_$$c"; done
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the package

dev: $(VENV)/.dev-installed ## Install the package with the dev extras

# The project's local Prefect server and its runner are started (unless PREFECT_API_URL names another server) and
# left up: the next command reuses the server instead of paying for a temporary one (about 15 s), its UI shows the
# runs, and each command runs in a fork of the runner, which holds the kit's libraries imported (my_package/runner.py).
run: install ## Build the demo source if missing, start the local Prefect server, run every flow, print a summary
	$(PY) -m my_package demo
	@test -n "$$PREFECT_API_URL" || $(PY) -m my_package server start
	$(PY) -m my_package run --all --wait
	@test -n "$$PREFECT_API_URL" || echo "The project's Prefect server stays up for the next commands (stop it: make server-stop)."

test: dev browser lint sync-check pytest ## Every check: ruff, notebook sync, pytest (nbdev_test runs inside it)

browser: ## Debian's chromium for the JupyterLab browser test (apt-get install when missing; needs root)
	@command -v chromium > /dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
	  || { echo "The browser test needs Debian's chromium: apt-get install chromium"; exit 1; }

lint: dev ## ruff, unused imports, an example after each function, the floors, the paths the docs name, kind tests outside the seams
	$(BIN)/ruff check nbs tests bench tools
	$(BIN)/ruff format --check nbs tests bench tools
	$(BIN)/ruff check --select F401,F821 my_package
	$(PY) tools/count_examples.py
	$(PY) tools/check_layers.py
	$(PY) tools/check_doc_paths.py
	$(PY) tools/count_kind_tests.py

sync-check: dev ## Fail when a notebook is not clean or my_package/ is not what the notebooks export
	BIN=$(BIN) bash tools/check_notebooks.sh

nbtest: dev ## Run the notebooks' examples and tests alone (against a throwaway Prefect server, stopped after)
	$(PY) tools/with_prefect_server.py $(BIN)/nbdev_test

pytest: dev ## Integration tests (real SQLite, PostgreSQL and Prefect) and nbdev_test, 6 at a time, longest first; the 10 slowest listed
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxschedchunk 1 --durations=10

bench: install ## Benchmarks (not part of make test): kit vs naive pandas vs the floor on SQLite, PostgreSQL and DuckDB, memory at 1x/2x/4x rows, a team's production
	$(PY) bench/bench_loads.py
	$(PY) bench/bench_reports.py
	$(PY) bench/bench_deploy.py
	$(PY) bench/bench_cli.py
	$(PY) bench/bench_transforms.py
	$(PY) bench/bench_fast_loop.py
	$(PY) bench/bench_checks.py
	$(PY) bench/bench_incremental.py
	$(PY) bench/bench_warehouses.py
	$(PY) bench/bench_index.py
	$(PY) bench/bench_files.py
	$(PY) bench/bench_changes.py
	$(PY) bench/bench_team.py

setup: dev ## nbdev's git and Jupyter hooks (clean on save, notebook merges), and the pre-commit hooks
	$(BIN)/nbdev_install_hooks
	$(BIN)/pre-commit install

lab: setup ## Start the local Prefect server and JupyterLab on nbs/ (its python3 kernel imports my_package)
	$(PY) -m my_package lab

export: dev ## Export the notebooks into my_package/ (nbdev_export; installs the dev extras first)
	$(BIN)/nbdev_export

clean-notebooks: dev ## Strip outputs and metadata from the notebooks (nbdev_clean)
	$(BIN)/nbdev_clean

reports: install ## Render every table's report into reports/ (after make run)
	$(PY) -m my_package report --all

deployments: install ## Regenerate prefect.yaml from settings.ini
	$(PY) -m my_package deployments --write

wheel: install ## Build the wheel that workers install (dist/)
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	@ls dist/*.whl

deploy: install ## Deploy every flow to PREFECT_API_URL, or to the project's local server (started if needed)
	$(PY) -m my_package deploy

worker: install ## Start a Prefect worker on the work pool (PREFECT_API_URL, default the local server)
	$(PY) -m my_package worker

server: install ## Start the project's local Prefect server (UI: 127.0.0.1:4200) and its runner (stop: make server-stop)
	$(PY) -m my_package server start

server-stop: install ## Stop the project's local Prefect server and its runner
	$(PY) -m my_package server stop

clean: ## Stop the local Prefect server; remove data/, reports/ and Prefect's local state (keeps .venv)
	@! test -x $(PY) || $(PY) -m my_package server stop
	rm -rf data reports .prefect
