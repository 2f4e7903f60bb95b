#!/usr/bin/env bash
# Create .venv-lava, the Lava worker environment (Python 3.10: Lava 0.10 imports on no other
# version), with only what neurodeploy/targets/loihi/lava/runner.py needs (no torch).
# Idempotent: an existing worker venv with Python 3.10 is reused; pip skips what is installed.
# Without Python 3.10 it says so and exits 0: every target but `lava` works without the worker.
# With NEURODEPLOY_LAVA_PYTHON set, that interpreter is the worker and nothing is created here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-lava

if [ -n "${NEURODEPLOY_LAVA_PYTHON:-}" ]; then
    echo "Lava worker: NEURODEPLOY_LAVA_PYTHON=$NEURODEPLOY_LAVA_PYTHON (nothing created here)"
    exit 0
fi

is_310() { "$1" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; }

find_python310() {
    local p
    if command -v python3.10 >/dev/null 2>&1 && is_310 "$(command -v python3.10)"; then
        command -v python3.10; return
    fi
    for p in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10.*/bin/python3.10 \
             /usr/bin/python3.10 /usr/local/bin/python3.10; do
        [ -x "$p" ] && is_310 "$p" && { echo "$p"; return; }
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && is_310 "$VENV/bin/python"; then
    :
else
    PY=$(find_python310) || {
        echo "warning: Python 3.10 not found: the lava target stays unavailable (every other target works)." >&2
        echo "To add it: install Python 3.10 (e.g. 'pyenv install 3.10'), then 'make setup-lava'." >&2
        exit 0
    }
    rm -rf "$VENV"
    echo "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi

PIP="$VENV/bin/python -m pip"
$PIP install --quiet -r requirements/lava-worker.txt
$PIP install --quiet --no-deps -r requirements/lava-worker-no-deps.txt
"$VENV/bin/python" -c "import lava.magma.core.run_configs, h5py, scipy, importlib.util as u; assert u.find_spec('lava.lib.dl.netx')" \
    || { echo "error: the Lava worker environment in $VENV does not import; see requirements/README.md" >&2; exit 1; }
touch "$VENV/.neurodeploy-installed"
echo "Lava worker environment ready: $VENV ($("$VENV/bin/python" -V))"
