"""Train the ANN twin (ReLU in the neuron slots) with cross-entropy.

HIRE-SNN's ANN stage: SGD (or Adam), step decay at fractions of the epochs (×0.1 at 150/180/210 of
240). Resumable: with ``checkpoint`` the training state is rewritten after every epoch and an
existing file is resumed from (see :mod:`.state`). CUDA is used when present.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset
from ..recipe import AnnTrainConfig
from .common import accuracy, default_device, make_optimizer, make_scheduler, maybe_ddp, move_batch, rank_and_world, shard
from .state import load_training_state, save_training_state

log = logging.getLogger(__name__)


def train_ann(model: nn.Module, data: Dataset, cfg: AnnTrainConfig, batch_size: int, seed: int,
              progress: bool = True, checkpoint: str | Path | None = None, info: dict[str, Any] | None = None,
              stop_after: int | None = None) -> float:
    """Train in place (batches drawn with seed ``seed + epoch``); returns test accuracy.

    The model ends on the CPU. ``stop_after`` stops after that many epochs of this call.
    """
    device = default_device()
    model.to(device)
    rank, world = rank_and_world()
    wrapped = maybe_ddp(model, device)
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.epochs, cfg.milestones, cfg.gamma)
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        start = load_training_state(checkpoint, model, opt, sched).epoch + 1
        log.info("resuming ANN training after epoch %d from %s", start, checkpoint)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(start, cfg.epochs), desc="ANN", disable=not progress or rank != 0, initial=start,
               total=cfg.epochs)
    done = 0
    try:
        for epoch in bar:
            model.train()
            for x, y in shard(data.loader("train", batch_size, shuffle=True, seed=seed + epoch), rank, world):
                x, y = move_batch(x, y, device)
                opt.zero_grad()
                loss = loss_fn(wrapped(x), y)
                loss.backward()
                opt.step()
            sched.step()
            bar.set_postfix(loss=float(loss.detach()))
            if checkpoint is not None and rank == 0:
                save_training_state(checkpoint, model, opt, sched, epoch, info=info)
            done += 1
            if stop_after is not None and done >= stop_after:
                break
        acc = accuracy(model, data.x_test, data.y_test)
    finally:
        model.to("cpu")
    log.info("ANN test accuracy %.4f", acc)
    return acc
