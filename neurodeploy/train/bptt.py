"""Surrogate-gradient backpropagation through time (traditional SNN training).

The loss is cross-entropy on the readout (the last layer's potential summed over T); weights,
thresholds and leaks are updated once per batch, leaks clamped to ≤ 1 after each update. This is
HIRE-SNN's Algorithm 1 with 𝒩 = 1 period and ε_s = 0 (no crafted noise), so it runs through the
same epoch loop (:func:`.hire.fit_snn`: resume, multi-process, CUDA when present).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..recipe import SnnTrainConfig
from ..snn.network import SpikingNetwork
from .common import default_device
from .hire import bptt_config, fit_snn

log = logging.getLogger(__name__)


def train_bptt(snn: SpikingNetwork, data: Dataset, cfg: SnnTrainConfig, batch_size: int, seed: int,
               progress: bool = True, checkpoint: str | Path | None = None,
               info: dict[str, Any] | None = None) -> float:
    """Fine-tune in place with BPTT (𝒩 = 1, ε_s = 0 whatever ``cfg`` says); returns test accuracy."""
    snn.to(default_device())
    try:
        return fit_snn(snn, data, bptt_config(cfg), batch_size, seed, progress, checkpoint, info,
                       desc="SNN (BPTT)")
    finally:
        snn.to("cpu")
