# The two commands of README.md: `make run` (pipeline + Dagster UI) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# `dg` checks that the project's .venv is the active one; these recipes run its programs without activating it.
DG := VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/dg

.PHONY: setup run test lint typecheck check-defs bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# `dg dev` with the sandbox (or your CrateDB and S3 when CRATEDB_URL is set); see cratedb_export_tests/sandbox.py.
run: setup
	$(PY) -m cratedb_export_tests.sandbox

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

# The code location loads as `dg dev` and a deployment load it (exports.yaml, CRATEDB_EXPORT_CONFIG).
check-defs: setup
	$(DG) check defs

test: lint typecheck check-defs
	$(VENV)/bin/pytest

# `make bench BENCH_CRATEDB_URL=http://127.0.0.1:4200` measures against a CrateDB someone started.
bench: setup
	$(PY) benchmarks/backfill.py $(if $(BENCH_CRATEDB_URL),--crate-url $(BENCH_CRATEDB_URL))
