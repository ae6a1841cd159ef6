# The two commands of README.md: `make run` (pipeline + Dagster UI) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m cratedb_export_tests.sandbox

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

# `make bench BENCH_CRATEDB_URL=http://127.0.0.1:4200` measures against a CrateDB someone started.
bench: setup
	$(PY) benchmarks/backfill.py $(if $(BENCH_CRATEDB_URL),--crate-url $(BENCH_CRATEDB_URL))
