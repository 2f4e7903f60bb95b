"""Checkpoints: safetensors (never pickle) with the recipe stored in the file's metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError
from ..util import atomic_path


def save_checkpoint(model: nn.Module, path: str | Path, info: dict[str, Any] | None = None) -> None:
    """Write the model's state dict atomically; ``info`` (recipe, epoch, ...) goes into the metadata."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"neurodeploy": json.dumps(info or {}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the info dict of a safetensors file (a checkpoint, or ``what`` it is);
    CheckpointError naming the file on any problem. Never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        state = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        info = json.loads(meta.get("neurodeploy", "{}"))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors {what} ({e})") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: metadata 'neurodeploy' must be a table (a JSON object), "
                              f"got {type(info).__name__}")
    return state, info


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint into ``model`` strictly; returns its info dict. A tensor holding NaN/inf
    (a diverged training, a damaged file) is refused with its name: every target would score it
    as a constant class or crash."""
    state, info = read_checkpoint(path)
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: tensor {name!r} has {bad} non-finite value(s) (NaN/inf) of {t.numel()}")
    expected = model.state_dict()
    for name, t in state.items():
        if name in expected and t.dtype != expected[name].dtype:
            raise CheckpointError(f"{path}: tensor {name!r} is {t.dtype}, the model holds {expected[name].dtype}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: does not fit the model ({first})") from None
    return info
