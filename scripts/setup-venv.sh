#!/usr/bin/env bash
# Create .venv (the newest Python 3.13 / 3.12 / 3.11 found) and install the tested package set.
# Idempotent: an existing venv with a supported Python is reused; pip skips what is installed.
# Lava's worker environment is separate: scripts/setup-lava.sh (the Makefile runs both).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
VERSIONS="3.13 3.12 3.11"  # newest first; requirements/lock.txt was made and tested on 3.13

is_supported() {  # is_supported PYTHON: Python 3.11+ with venv and ensurepip
    "$1" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] >= (3, 11)' 2>/dev/null
}

find_python() {
    local v p
    for v in $VERSIONS; do
        if command -v "python$v" >/dev/null 2>&1 && is_supported "$(command -v "python$v")" \
            && "python$v" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$v'" 2>/dev/null; then
            command -v "python$v"; return
        fi
        for p in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$v".*/bin/"python$v" \
                 /usr/bin/"python$v" /usr/local/bin/"python$v"; do
            [ -x "$p" ] && is_supported "$p" && { echo "$p"; return; }
        done
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && is_supported "$VENV/bin/python"; then
    :
else
    PY=$(find_python) || {
        echo "error: no Python 3.11, 3.12 or 3.13 found (neurodeploy needs Python >= 3.11)." >&2
        echo "Install one, e.g. 'pyenv install 3.13' or 'apt-get install python3.12 python3.12-venv', then rerun." >&2
        exit 1
    }
    rm -rf "$VENV"
    echo "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi

PIP="$VENV/bin/python -m pip"
$PIP install --quiet -r requirements/lock.txt
$PIP install --quiet --no-deps -r requirements/no-deps.txt
$PIP install --quiet --no-deps -r requirements/test-refs.txt
$PIP install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import torch, nir, sinabs, onnxruntime, rockpool, xylosim, neurodeploy" \
    || { echo "error: the environment in $VENV does not import; see requirements/README.md" >&2; exit 1; }
echo "environment ready: $VENV ($("$VENV/bin/python" -V))"
