# The two commands of README.md: `make run` (pipeline + Dagster UI) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# `dg` checks that the project's .venv is the active one; these recipes run its programs without activating it.
DG := VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/dg

.PHONY: setup run test lint typecheck check-defs bench bench-real

$(VENV)/.installed: pyproject.toml testbed/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -e ./testbed
	touch $@

setup: $(VENV)/.installed

# `dg dev` with the sandbox (or your CrateDB and S3 when CRATEDB_URL is set); see testbed/cratedb_export_testbed/sandbox.py.
run: setup
	$(PY) -m cratedb_export_testbed.sandbox

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

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

# A day of >= 1 M rows on a real CrateDB: JSON, Parquet, and dlt (a peer that pulls the rows through its own
# process); then a range of days of real size (3 tables x 30 days x 100,000 rows) against its COPYs, and the
# daily run of 1,000 tables (one shard each: the cluster needs room for 1,000 more shards) against theirs.
# dlt lives in a virtualenv of its own: it is a yardstick, not a dependency of the project.
PEER_VENV ?= .venv-peer
$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet 'dlt[parquet,filesystem,s3]>=1.31' 'sqlalchemy-cratedb>=0.44'
	touch $@

bench-real: setup $(PEER_VENV)/.installed
	$(if $(BENCH_CRATEDB_URL),,$(error set BENCH_CRATEDB_URL to a CrateDB someone started, e.g. http://127.0.0.1:4200))
	$(PY) benchmarks/real_day.py --crate-url $(BENCH_CRATEDB_URL) --peer-python $(PEER_VENV)/bin/python
	$(PY) benchmarks/backfill.py --crate-url $(BENCH_CRATEDB_URL) --only real-size
	$(PY) benchmarks/backfill.py --crate-url $(BENCH_CRATEDB_URL) --only daily
