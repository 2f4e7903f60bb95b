# `make demo` and `make test` each set up .venv (Python 3.13/3.12/3.11) and .venv-lava (Lava's
# Python 3.10 worker) first, once: a second call installs nothing (stamp files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.neurodeploy-installed
LAVA_STAMP := .venv-lava/.neurodeploy-installed
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PYTHONDONTWRITEBYTECODE := 1
# The nets here are small: one torch thread per process is faster than two fighting over 2 cores
# (measured 6-10x faster when anything else runs). Override: make demo OMP_NUM_THREADS=2
export OMP_NUM_THREADS ?= 1

.PHONY: setup setup-lava demo test test-slow test-all bench clean

setup: $(STAMP) $(LAVA_STAMP)

setup-lava: $(LAVA_STAMP)

$(STAMP): requirements/lock.txt requirements/no-deps.txt requirements/test-refs.txt pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh
	touch $@

# Without Python 3.10 the script warns and leaves no stamp: `lava` is then unavailable (and its tests skip).
$(LAVA_STAMP): requirements/lava-worker.txt requirements/lava-worker-no-deps.txt scripts/setup-lava.sh
	bash scripts/setup-lava.sh

# A second `make demo` reuses runs/demo (training is skipped); `make demo FORCE=1` starts it over.
# Without a Lava worker the demo runs the recipe's other targets (and says so).
HAS_LAVA = $(PY) -c 'import sys; from neurodeploy.targets.loihi.lava.worker_env import find_worker_python as f; p, why = f(); print(why, file=sys.stderr) if p is None else None; sys.exit(p is None)'
demo: setup
	@targets=; $(HAS_LAVA) || { targets="--targets torch,loihi-emu,speck"; echo "demo without lava: $$targets"; }; \
	set -x; $(VENV)/bin/neurodeploy run models/digits.toml --out runs/demo $(if $(FORCE),--force) $$targets

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
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
