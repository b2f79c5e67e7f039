# Developer commands. The work lives in the tools and in devstack/runstack.py; this file only
# makes sure the virtual environment exists and matches pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install, so pip runs again only when pyproject.toml changes.
STAMP := $(VENV)/.installed

.PHONY: run test test-faults bench install

run: $(STAMP)
	$(BIN)/python -m devstack.runstack run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m 'not faults'

# The long fault and scale scenarios (tests/faults/, tests marked `faults`) and the property
# tests at full strength. CI runs both targets.
test-faults: $(STAMP)
	$(BIN)/pytest -m faults
	HYPOTHESIS_PROFILE=thorough $(BIN)/pytest -m hypothesis

# Every benchmark in bench/ in turn, each against its baseline measured in the same run
# (README, "Benchmarks"): over an hour at full size. BENCH_OPTIONS=--quick for tiny sizes.
BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
BENCH_REDIS_URL ?= redis://127.0.0.1:6379
bench: $(STAMP)
	$(BIN)/python -m bench --database-url $(BENCH_DATABASE_URL) --redis-url $(BENCH_REDIS_URL) $(BENCH_OPTIONS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@
