"""A whole recipe's training chain: ANN → conversion → SNN (BPTT | HIRE), resumable stage by stage.

``train_snn`` is the dispatcher the pipeline calls for the SNN stage; ``train_recipe`` runs the
three stages with per-epoch training-state files in ``out_dir`` (``ann.state.safetensors``,
``snn.state.safetensors``) so an interrupted run resumes from its last completed epoch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..data import Dataset
from ..recipe import Recipe, SnnTrainConfig
from ..snn.models import create_ann, create_snn
from ..snn.network import SpikingNetwork
from ..util import seed_everything
from .ann import train_ann
from .bptt import train_bptt
from .convert import convert
from .hire import train_hire

log = logging.getLogger(__name__)


def train_snn(snn: SpikingNetwork, data: Dataset, cfg: SnnTrainConfig, batch_size: int, seed: int,
              progress: bool = True, checkpoint: str | Path | None = None,
              info: dict[str, Any] | None = None) -> float:
    """Train the SNN with ``cfg.method``: ``"bptt"`` (traditional, 𝒩 = 1, ε_s = 0) or ``"hire"``
    (HIRE-SNN Algorithm 1 with 𝒩 = ``cfg.periods``, ε_s, ε_t, crafted | gaussian noise).
    Returns test accuracy."""
    if cfg.method == "bptt":
        return train_bptt(snn, data, cfg, batch_size, seed, progress, checkpoint, info)
    if cfg.method == "hire":
        return train_hire(snn, data, cfg, batch_size, seed, progress, checkpoint, info)
    raise ValueError(f"unknown SNN training method {cfg.method!r}; choose bptt or hire")


@dataclass
class TrainResult:
    """The trained networks and their clean test accuracies."""

    ann: nn.Module | None
    snn: SpikingNetwork
    ann_accuracy: float | None
    snn_accuracy: float
    converted_accuracy: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)


def train_recipe(recipe: Recipe, data: Dataset, out_dir: str | Path | None = None, seed: int | None = None,
                 progress: bool = True) -> TrainResult:
    """ANN (``train.ann``) → conversion (``train.convert``) → SNN (``train.snn``) for one recipe.

    With ``train.convert.enabled = false`` there is no ANN stage and the SNN trains from scratch
    (thresholds 1.0), as the SEW-ResNet papers do. With ``out_dir``, every stage resumes from its
    training-state file there.
    """
    from .common import accuracy

    seed = recipe.seed if seed is None else seed
    seed_everything(seed)
    out = Path(out_dir) if out_dir is not None else None
    info = {"recipe": recipe.to_dict(), "seed": seed}
    snn = create_snn(recipe, data.input_shape, data.num_classes)
    ann = None
    ann_acc = conv_acc = None
    thresholds: dict[str, float] = {}
    bs = recipe.data.batch_size
    if recipe.train.convert.enabled:
        ann = create_ann(recipe, data.input_shape, data.num_classes)
        ann_acc = train_ann(ann, data, recipe.train.ann, bs, seed, progress,
                            out / "ann.state.safetensors" if out else None, {**info, "stage": "ann"})
        c = recipe.train.convert
        n = max(1, c.batches) * bs
        seed_everything(seed)
        thresholds = convert(ann, snn, data.x_train[:n].float(), c.percentile, c.scale, c.rule)
        conv_acc = accuracy(snn, data.x_test, data.y_test)
        log.info("converted SNN accuracy %.4f (before SNN training)", conv_acc)
    seed_everything(seed + 1)
    snn_acc = train_snn(snn, data, recipe.train.snn, bs, seed, progress,
                        out / "snn.state.safetensors" if out else None, {**info, "stage": "snn"})
    return TrainResult(ann, snn, ann_acc, snn_acc, conv_acc, thresholds)
