"""Surrogate-gradient backpropagation through time (traditional SNN training).

The loss is cross-entropy on the readout (the last layer's potential summed over T); weights,
thresholds and leaks are updated once per batch, leaks clamped to ≤ 1 after each update.
"""
from __future__ import annotations

import logging

from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset
from ..recipe import SnnTrainConfig
from ..snn.network import SpikingNetwork
from .common import accuracy, make_optimizer, make_scheduler

log = logging.getLogger(__name__)


def train_bptt(snn: SpikingNetwork, data: Dataset, cfg: SnnTrainConfig, batch_size: int, seed: int,
               progress: bool = True) -> float:
    """Fine-tune in place; returns test accuracy."""
    opt = make_optimizer(snn.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.epochs, cfg.milestones, cfg.gamma)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(cfg.epochs), desc="SNN (BPTT)", disable=not progress)
    for epoch in bar:
        snn.train()
        for x, y in data.loader("train", batch_size, shuffle=True, seed=seed + 1000 + epoch):
            opt.zero_grad()
            loss = loss_fn(snn(x), y)
            loss.backward()
            opt.step()
            snn.clamp_()
        sched.step()
        bar.set_postfix(loss=float(loss.detach()))
    acc = accuracy(snn, data.x_test, data.y_test)
    log.info("SNN test accuracy %.4f", acc)
    return acc
