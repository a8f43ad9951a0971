# featureledger tasks. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup services demo test lint typecheck bench fuzz clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with featureledger and the dev tools

services:  ## install the servers the tests run against (redis-server, from Debian)
	sh scripts/install-services.sh

demo: $(STAMP)  ## run `featureledger demo` in a new temporary folder (or in DIR=folder, starting over)
	$(VENV)/bin/featureledger demo $(if $(DIR),$(DIR) --fresh)

# one pytest-xdist worker per logical CPU (`-n logical`: unlike `-n auto` it does not drop to
# physical cores when psutil happens to be installed, which halves the workers on SMT VMs);
# each worker starts its own servers (tests/conftest.py says how). PYTEST_ARGS=-n0 runs
# serially, e.g. to debug one test.
# A wall limit below CI's 90 minutes: on SIGINT pytest still prints what failed and the
# slowest tests, where CI's own limit would print nothing. Each test also has a limit
# (pyproject.toml's `timeout`), so one hung test costs minutes, not the run.
test: $(STAMP) services  ## run the whole test suite, in parallel
	timeout -s INT -k 120 4500 $(PY) -m pytest -q -n logical --durations=30 $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)  ## the point-in-time benchmark on size s (docs/benchmarks.md has the full set)
	$(PY) benchmarks/bench_pit.py --size s
	$(PY) benchmarks/bench_online.py

# tests/fuzz runs a short fuzz in `make test`; FEATURELEDGER_FUZZ_EXAMPLES=N makes it longer
fuzz: $(STAMP)  ## 10,000 fuzz cases (ingest, contract YAML, definitions, HTTP) with counts
	$(PY) scripts/fuzz.py

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
