"""Small helpers shared across stages: atomic writes, seeding, the one JSON sanitiser."""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On failure the temporary file is removed and whatever was at ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def jsonable(o: Any, finite: bool = True) -> Any:
    """``o`` made JSON-safe, recursively: dict keys to ``str``, tuples to lists, numpy arrays and
    torch tensors to (nested) lists, numpy/torch scalars to Python numbers, anything else that
    JSON cannot hold to ``str``. With ``finite`` (strict JSON, the default) NaN and ±inf become
    ``None``; ``finite=False`` keeps them (``json`` writes them as ``NaN``/``Infinity``)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v, finite) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v, finite) for v in o]
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return jsonable(o.tolist(), finite)
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return o if (not finite or math.isfinite(o)) else None
    if isinstance(o, (str, int, bool)) or o is None:
        return o
    return str(o)
