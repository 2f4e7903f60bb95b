"""Resumable training state: one safetensors file per run, rewritten atomically after every epoch.

The file holds everything a training loop needs to continue as if it had never stopped:

- ``model.<name>``: the model's state dict (weights, thresholds, leaks, BatchNorm statistics);
- ``optim.<param index>.<key>``: the optimiser's per-parameter tensors (Adam moments, step count,
  SGD momentum buffers); the rest of the optimiser state (param groups, lr) is JSON metadata;
- ``kappa`` (and ``kappa.<rank>`` in multi-process runs): HIRE-SNN's crafted noise κ, which is
  carried from batch to batch and therefore across epochs;
- ``rng.torch`` / ``rng.cuda.<i>`` / ``rng.net``: random-number generator states (dropout masks,
  rate coding), so the resumed run draws the same random numbers as an uninterrupted one;
- metadata ``neurodeploy`` (JSON): ``{"epoch": last completed epoch, "scheduler": ..., "optimizer":
  ..., "info": caller's info (recipe, stage)}``.

No pickle is involved anywhere (safetensors + JSON), so a checkpoint from an untrusted source
cannot execute code.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import CheckpointError
from ..util import atomic_path, jsonable
from .checkpoint import read_checkpoint

log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """What :func:`load_training_state` found: the last completed epoch, κ per rank and the info dict."""

    epoch: int
    kappa: dict[int, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def save_training_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, epoch: int, kappa: dict[int, torch.Tensor] | None = None,
                        generator: torch.Generator | None = None, info: dict[str, Any] | None = None) -> None:
    """Write the training state after ``epoch`` (0-based, completed) atomically to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().contiguous().cpu()
    osd = optimizer.state_dict()
    opt_meta: dict[str, Any] = {"param_groups": jsonable(osd["param_groups"]), "state": {}}
    for idx, st in osd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val.detach().contiguous().cpu()
            else:
                opt_meta["state"].setdefault(str(idx), {})[key] = jsonable(val)
    for r, k in (kappa or {}).items():
        if k is not None:
            tensors[f"kappa.{r}"] = k.detach().contiguous().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    if generator is not None:
        tensors["rng.net"] = generator.get_state()
    meta = {"epoch": epoch, "optimizer": opt_meta, "scheduler": jsonable(scheduler.state_dict()),
            "info": info or {}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"neurodeploy": json.dumps(meta, sort_keys=True)})
    log.debug("training state after epoch %d written to %s", epoch, path)


def load_training_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                        generator: torch.Generator | None = None) -> TrainingState:
    """Restore model, optimiser, scheduler and RNG states from ``path``; CheckpointError naming the file."""
    tensors, meta = read_checkpoint(path, "training state")
    try:
        epoch = int(meta["epoch"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid training-state file (no epoch: {e})") from None
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit the model ({str(e).splitlines()[0]})") from None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    opt_meta = meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v if key == "step" else v.to(device)
    for idx, st in opt_meta.get("state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
        sched_sd = scheduler.state_dict()  # structural entries (milestones: a Counter of ints) stay
        sched_sd.update({k: v for k, v in meta["scheduler"].items() if k not in ("milestones", "lr_lambdas")})
        scheduler.load_state_dict(sched_sd)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: optimiser state does not fit ({e})") from None
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "rng.net" in tensors:
        generator.set_state(tensors["rng.net"])
    kappa = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("kappa.")}
    return TrainingState(epoch=epoch, kappa=kappa, info=meta.get("info", {}))
