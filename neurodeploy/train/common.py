"""Pieces shared by the training loops: optimisers, schedules, evaluation."""
from __future__ import annotations

import torch
from torch import nn


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam or sgd")


def make_scheduler(opt: torch.optim.Optimizer, epochs: int, milestones: list[float], gamma: float):
    """Step decay at fractions of the epochs (HIRE-SNN: ×0.1 at 150/180/210 of 240 → 0.625/0.75/0.875)."""
    steps = sorted({max(1, int(round(f * epochs))) for f in milestones})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=gamma)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy, streamed in batches."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was)
    return correct / max(1, len(x))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    model.train(was)
    return out
