#!/usr/bin/env bash
# Create .venv (Python 3.10: Lava supports no other) and install the tested package set.
# Idempotent: an existing venv with the right Python is reused; pip skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

find_python() {
    if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
        command -v python3.10; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        for p in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do
            [ -x "$p" ] && { echo "$p"; return; }
        done
    fi
    for p in /usr/bin/python3.10 /usr/local/bin/python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python3.10; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    :
else
    PY=$(find_python) || {
        echo "error: Python 3.10 not found (Lava runs only on 3.10)." >&2
        echo "Install it, e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv', then rerun." >&2
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
"$VENV/bin/python" -c "import torch, nir, lava.lib.dl.netx, sinabs, neurodeploy" \
    || { echo "error: the environment in $VENV does not import; see requirements/README.md" >&2; exit 1; }
echo "environment ready: $VENV"
