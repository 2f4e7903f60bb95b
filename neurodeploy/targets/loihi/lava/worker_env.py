"""Where the Lava worker environment is: a separate Python 3.10 with lava-nc and lava-dl's netx.

Lava 0.10 imports on Python 3.10 only, while the toolkit runs on 3.11+; so :mod:`.runner` runs
under another interpreter, found in this order:

1. ``NEURODEPLOY_LAVA_PYTHON``: the path of that interpreter (an error if it is set but unusable);
2. ``.venv-lava/bin/python`` next to the running environment (``sys.prefix/../.venv-lava``: the
   set-up's layout, ``.venv`` and ``.venv-lava`` side by side in the checkout);
3. ``.venv-lava/bin/python`` in the source checkout this package is imported from.

The check runs the interpreter once (``find_spec`` of ``lava.magma`` and ``lava.lib.dl.netx``, which
imports nothing of Lava) and is cached per process. The main process never imports Lava.
"""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "NEURODEPLOY_LAVA_PYTHON"
VENV_NAME = ".venv-lava"
HOW_TO = (f"create it with `make setup-lava` in a source checkout (scripts/setup-lava.sh), or set {ENV_VAR} to a "
          "Python 3.10 holding requirements/lava-worker.txt")
_PROBE = """import sys, importlib.util as u
def found(m):
    try:
        return u.find_spec(m) is not None
    except ImportError:  # a parent package is missing
        return False
print('%d.%d' % sys.version_info[:2], int(all(found(m) for m in ('lava.magma', 'lava.lib.dl.netx', 'h5py', 'scipy'))))
"""


def _candidates() -> list[tuple[str, Path]]:
    env = os.environ.get(ENV_VAR)
    if env:
        return [(ENV_VAR, Path(env))]
    found = [("next to the running environment", Path(sys.prefix).parent / VENV_NAME / "bin" / "python")]
    checkout = Path(__file__).resolve().parents[4]  # neurodeploy/targets/loihi/lava/ -> the checkout
    if (checkout / "pyproject.toml").is_file():
        found.append(("in the source checkout", checkout / VENV_NAME / "bin" / "python"))
    return found


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> tuple[bool, str]:
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=worker_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{python} does not run ({e})"
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2:
        return False, f"{python} does not run (exit code {out.returncode})"
    if parts[0] != "3.10":
        return False, f"{python} is Python {parts[0]}; Lava 0.10 runs on Python 3.10 only"
    if parts[1] != "1":
        return False, f"{python} lacks lava-nc, lava-dl's netx, h5py or scipy"
    return True, ""


def find_worker_python() -> tuple[str | None, str]:
    """(path of the worker interpreter, "") or (None, one line saying why not and how to create it)."""
    tried = []
    for where, path in _candidates():
        if where == ENV_VAR or path.exists():
            ok, why = _probe(str(path))
            if ok:
                return str(path), ""
            if where == ENV_VAR:
                return None, f"{ENV_VAR}={path}: {why}; {HOW_TO}"
            tried.append(why)
        else:
            tried.append(f"no {path}")
    return None, f"Lava's Python 3.10 worker environment was not found ({'; '.join(tried)}): {HOW_TO}"


def worker_env() -> dict[str, str]:
    """The environment for the worker: ours, without what would point a 3.10 interpreter at this
    environment's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
