"""Expected time per epoch of a (CIFAR) recipe, measured on one batch of synthetic tensors.

No dataset is read: a batch of ``data.batch_size`` random images (or event frames) of the dataset's
shape and random labels goes once through the ANN twin's SGD step and once through the SNN stage's
batch (HIRE-SNN Algorithm 1: 𝒩 periods, one optimiser step each; BPTT: one), after one untimed
warm-up batch, in wall and in CPU seconds (on a shared machine the CPU time is the honest figure
for one free core). Epoch time = batch time × ⌈train samples / batch size⌉. The figure is for the
device it ran on (CUDA when present, else CPU with the current torch thread count), and the cost
per batch does not depend on the pixel values, so synthetic tensors time it faithfully.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from ..errors import RecipeError
from ..recipe import Recipe

#: (input shape, classes, training samples) of the datasets that are never downloaded here.
SHAPES: dict[str, tuple[tuple[int, ...], int, int]] = {
    "cifar10": ((3, 32, 32), 10, 50_000),
    "cifar100": ((3, 32, 32), 100, 50_000),
    "cifar10-dvs": ((2, 64, 64), 10, 9_000),  # 10,000 recordings, 10 % held out (the recipes' test_fraction)
}


def _batch(recipe: Recipe, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], int, int]:
    if recipe.data.name not in SHAPES:
        raise RecipeError(f"{recipe.name}: no synthetic shape for dataset {recipe.data.name!r}; "
                          f"choose one of {', '.join(SHAPES)}")
    shape, classes, n_train = SHAPES[recipe.data.name]
    if recipe.data.resolution and recipe.data.encoding == "events":
        shape = (shape[0], recipe.data.resolution, recipe.data.resolution)
    bs = recipe.data.batch_size
    g = torch.Generator().manual_seed(0)
    frames = (recipe.data.time_bins or recipe.timesteps,) if recipe.data.encoding == "events" else ()
    x = torch.rand((bs, *frames, *shape), generator=g).to(device)
    y = torch.randint(0, classes, (bs,), generator=g).to(device)
    return x, y, shape, classes, n_train


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call after a warm-up call. On a shared
    machine the wall time includes waiting for a core; the CPU time is what one free core takes."""
    fn()  # warm-up (allocator, cudnn autotune)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def epoch_time(recipe: Recipe) -> dict[str, Any]:
    """Seconds per batch and per epoch of the recipe's ANN stage (if any) and SNN stage."""
    from ..snn.models import create_ann, create_snn
    from ..train.common import default_device, make_optimizer
    from ..train.hire import KappaBuffer, bptt_config, hire_batch

    device = default_device()
    x, y, shape, classes, n_train = _batch(recipe, device)
    batches = math.ceil(n_train / recipe.data.batch_size)
    out: dict[str, Any] = {"recipe": recipe.name, "device": str(device), "threads": torch.get_num_threads(),
                           "batch_size": recipe.data.batch_size, "batches_per_epoch": batches,
                           "timesteps": recipe.timesteps}
    loss = nn.CrossEntropyLoss()
    if recipe.train.convert.enabled:
        ann = create_ann(recipe, shape, classes).to(device).train()
        a = recipe.train.ann
        opt = make_optimizer(ann.parameters(), a.optimizer, a.lr, a.weight_decay)

        def ann_step() -> None:
            opt.zero_grad(set_to_none=True)
            loss(ann(x), y).backward()
            opt.step()

        _put(out, "ann", _timed(ann_step), batches)
    snn = create_snn(recipe, shape, classes).to(device).train()
    cfg = recipe.train.snn if recipe.train.snn.method == "hire" else bptt_config(recipe.train.snn)
    opt = make_optimizer(snn.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    kappa = KappaBuffer()
    _put(out, "snn", _timed(lambda: hire_batch(snn, opt, x, y, cfg, kappa, loss)), batches)
    return out


def _put(out: dict[str, Any], stage: str, wall_cpu: tuple[float, float], batches: int) -> None:
    wall, cpu = wall_cpu
    out[f"{stage}_batch_s"], out[f"{stage}_batch_cpu_s"] = round(wall, 4), round(cpu, 4)
    out[f"{stage}_epoch_s"], out[f"{stage}_epoch_cpu_s"] = round(wall * batches, 1), round(cpu * batches, 1)
