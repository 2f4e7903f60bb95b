# `make demo` and `make test` each set up .venv first (once; a second call installs nothing).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.neurodeploy-installed
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PYTHONDONTWRITEBYTECODE := 1
# The nets here are small: one torch thread per process is faster than two fighting over 2 cores
# (measured 6-10x faster when anything else runs). Override: make demo OMP_NUM_THREADS=2
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test test-slow test-all bench clean

setup: $(STAMP)

$(STAMP): requirements/lock.txt requirements/no-deps.txt requirements/test-refs.txt pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh
	touch $@

# A second `make demo` reuses runs/demo (training is skipped); `make demo FORCE=1` starts it over.
demo: $(STAMP)
	$(VENV)/bin/neurodeploy run models/digits.toml --out runs/demo $(if $(FORCE),--force)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q

BENCH_STAMP := $(VENV)/.bench-installed

# benchmark contenders: without their declared requirements (they would replace our torch), see requirements/README.md
$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(VENV)/bin/pip install --no-deps --ignore-requires-python -r requirements/bench.txt
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs .cache .pytest_cache
