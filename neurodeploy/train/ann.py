"""Train the ANN twin (ReLU in the neuron slots) with cross-entropy."""
from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset
from ..recipe import AnnTrainConfig
from .common import accuracy, make_optimizer, make_scheduler

log = logging.getLogger(__name__)


def train_ann(model: nn.Module, data: Dataset, cfg: AnnTrainConfig, batch_size: int, seed: int,
              progress: bool = True) -> float:
    """Train in place; returns test accuracy."""
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.epochs, cfg.milestones, cfg.gamma)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(cfg.epochs), desc="ANN", disable=not progress)
    for epoch in bar:
        model.train()
        for x, y in data.loader("train", batch_size, shuffle=True, seed=seed + epoch):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        sched.step()
        bar.set_postfix(loss=float(loss.detach()))
    acc = accuracy(model, data.x_test, data.y_test)
    log.info("ANN test accuracy %.4f", acc)
    return acc
