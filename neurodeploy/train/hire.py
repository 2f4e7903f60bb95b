"""HIRE-SNN training (Kundu, Pedram, Beerel, ICCV 2021, Algorithm 1) and its BPTT special case.

Algorithm 1 (inputs: noise bound ε_t, noise step ε_s, learning rate η, time steps T, periods 𝒩)::

    κ ← 0                                           (weights from the ANN, thresholds from conversion)
    for each epoch, for each batch (x, y):
        for p = 1 .. 𝒩:
            run the SNN on x + κ for ⌊T/𝒩⌋ steps   (neuron state carried, detached, from period p−1)
            L ← CE(readout, y)
            W, v_th, λ ← W, v_th, λ − η ∇L           (one optimiser step per period)
            κ ← clip(κ + ε_s · sign(∇ₓL), −ε_t, +ε_t)
        (κ is carried to the next batch: its first period starts from the previous batch's last κ)

Readout: the output layer is a non-spiking accumulator (u_L = Σ_t W·O[t]). Its value is carried
over the periods like every other state: the loss of period p is taken on the accumulated
readout of periods 1..p, with the earlier periods' part detached (so only period p's graph is
differentiated and kept in memory — the source of HIRE's memory saving).

Variants: ``noise = "gaussian"`` (ablation: κ ~ N(0, ε_s²) drawn fresh every period, no gradient
needed); frozen threshold/leak (paper Table 5: ``model.train_threshold = false``, ``model.train_leak
= false``; frozen parameters are left out of the optimiser). Traditional BPTT is 𝒩 = 1, ε_s = 0:
one period of T steps, no noise, no input gradient.

For event input ``[B, T, C, H, W]``, κ has the shape of the whole event tensor and period p sees
frames ``[(p−1)·⌊T/𝒩⌋, p·⌊T/𝒩⌋)`` of x + κ.

The epoch loop supports resume (a training-state file rewritten atomically after every epoch:
weights, optimiser, scheduler, κ, RNG states; see :mod:`.state`) and data-parallel training with
``torch.distributed`` (each rank takes an equal slice of every global batch; gradients are averaged
by DistributedDataParallel). CUDA is used when present.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset
from ..recipe import SnnTrainConfig
from ..snn.network import SpikingNetwork
from .common import accuracy, default_device, make_optimizer, make_scheduler, maybe_ddp, move_batch, rank_and_world, shard
from .state import load_training_state, save_training_state

log = logging.getLogger(__name__)


class KappaBuffer:
    """HIRE-SNN's crafted noise κ, kept at the size of the largest batch seen.

    A smaller batch (the last of an epoch) uses and updates ``κ[:B]``; the remaining rows are kept,
    so the next full batch still starts from the previous κ everywhere (Algorithm 1: κ carried).
    """

    def __init__(self, value: torch.Tensor | None = None) -> None:
        self.value = value

    def get(self, x: torch.Tensor) -> torch.Tensor:
        """κ for a batch shaped like ``x`` (zeros where nothing has been accumulated yet)."""
        v = self.value
        if v is None or v.shape[1:] != x.shape[1:]:
            v = torch.zeros_like(x)
        elif v.shape[0] < x.shape[0]:
            v = torch.cat([v, torch.zeros_like(x[v.shape[0]:])])
        self.value = v.to(device=x.device, dtype=x.dtype)
        return self.value[: x.shape[0]]

    def set(self, k: torch.Tensor) -> None:
        """Store the κ of a batch (rows ``[:B]``) after its last period."""
        if self.value is None:
            raise RuntimeError("KappaBuffer.set before get: κ has no shape yet")
        self.value[: k.shape[0]] = k.detach()


def _unwrap(model: nn.Module) -> SpikingNetwork:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model  # type: ignore[return-value]


def hire_batch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               cfg: SnnTrainConfig, kappa: KappaBuffer, loss_fn: nn.Module | None = None,
               generator: torch.Generator | None = None) -> list[float]:
    """One batch of Algorithm 1: 𝒩 periods of ⌊T/𝒩⌋ steps, an optimiser step after each period.

    ``model`` is a :class:`SpikingNetwork` (or DistributedDataParallel around one); ``kappa`` is
    updated in place. Returns the loss of every period.
    """
    net = _unwrap(model)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    T, N = net.timesteps, cfg.periods
    tp = T // N
    if tp < 1:
        raise ValueError(f"HIRE-SNN: {N} periods need at least {N} time steps, the network has T={T}")
    events = net.encoding == "events"
    crafted = cfg.noise == "crafted"
    need_grad = crafted and cfg.noise_step > 0
    k = kappa.get(x) if crafted else None
    losses: list[float] = []
    acc: torch.Tensor | None = None
    net.set_carry_state(True)  # also clears the state left by the previous batch
    net.timesteps = tp
    try:
        for p in range(N):
            optimizer.zero_grad(set_to_none=True)
            if crafted:
                xk = (x + k).detach().requires_grad_(need_grad)
            else:  # Gaussian ablation: fresh κ ~ N(0, ε_s²) per period
                noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if generator is not None \
                    else torch.randn(x.shape, dtype=x.dtype)
                xk = x + cfg.noise_step * noise.to(x.device)
            inp = xk[:, p * tp:(p + 1) * tp] if events else xk
            out = model(inp)
            logits = out if acc is None else acc + out
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            net.clamp_()
            acc = logits.detach()
            losses.append(float(loss.detach()))
            if need_grad:
                k = (k + cfg.noise_step * xk.grad.sign()).clamp(-cfg.noise_bound, cfg.noise_bound)
        if crafted:
            kappa.set(k)
    finally:
        net.timesteps = T
        net.set_carry_state(False)
    return losses


def _batches(data: Dataset, batch_size: int, seed: int, rank: int, world: int):
    """The global batches of one epoch; with ``world`` > 1 each rank keeps rows ``rank::world``."""
    return shard(data.loader("train", batch_size, shuffle=True, seed=seed), rank, world)


def fit_snn(model: nn.Module, data: Dataset, cfg: SnnTrainConfig, batch_size: int, seed: int,
            progress: bool = True, checkpoint: str | Path | None = None, info: dict[str, Any] | None = None,
            stop_after: int | None = None, desc: str | None = None) -> float:
    """The epoch loop of Algorithm 1 with resume; returns test accuracy (rank 0's view).

    ``checkpoint``: training-state file; if it exists, training resumes after its last completed
    epoch (weights, optimiser, scheduler, κ, RNG states restored), and it is rewritten after every
    epoch. ``stop_after``: stop after this many epochs of this call (used to test resume).
    Batches are drawn with seed ``seed + 1000 + epoch`` (same order as :func:`train_bptt` always had).
    """
    net = _unwrap(model)
    rank, world = rank_and_world()
    device = next(net.parameters()).device
    if world > 1 and model is net:
        model = maybe_ddp(net, device)
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.epochs, cfg.milestones, cfg.gamma)
    kappa = KappaBuffer()
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        st = load_training_state(checkpoint, net, opt, sched, net.generator)
        kappa = KappaBuffer(st.kappa[rank].to(device) if rank in st.kappa else None)
        start = st.epoch + 1
        log.info("resuming SNN training after epoch %d from %s", st.epoch + 1, checkpoint)
    loss_fn = nn.CrossEntropyLoss()
    name = desc or ("SNN (HIRE)" if (cfg.periods > 1 or cfg.noise_step > 0) else "SNN (BPTT)")
    bar = tqdm(range(start, cfg.epochs), desc=name, disable=not progress or rank != 0,
               initial=start, total=cfg.epochs)
    done = 0
    for epoch in bar:
        model.train()
        losses: list[float] = []
        for x, y in _batches(data, batch_size, seed + 1000 + epoch, rank, world):
            x, y = move_batch(x, y, device)
            losses += hire_batch(model, opt, x, y, cfg, kappa, loss_fn, None)
        sched.step()
        if losses:
            bar.set_postfix(loss=sum(losses) / len(losses))
            log.debug("%s epoch %d mean loss %.4f", name, epoch + 1, sum(losses) / len(losses))
        if checkpoint is not None:
            kap = _gather_kappa(kappa, rank, world)
            if rank == 0:
                save_training_state(checkpoint, net, opt, sched, epoch, kap, net.generator, info)
        done += 1
        if stop_after is not None and done >= stop_after:
            break
    acc = accuracy(net, data.x_test, data.y_test)
    log.info("%s test accuracy %.4f", name, acc)
    return acc


def _gather_kappa(kappa: KappaBuffer, rank: int, world: int) -> dict[int, torch.Tensor]:
    if world == 1:
        return {0: kappa.value} if kappa.value is not None else {}
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, kappa.value.cpu() if kappa.value is not None else None)
    return {r: v for r, v in enumerate(out) if v is not None}


def train_hire(snn: SpikingNetwork, data: Dataset, cfg: SnnTrainConfig, batch_size: int, seed: int,
               progress: bool = True, checkpoint: str | Path | None = None,
               info: dict[str, Any] | None = None) -> float:
    """HIRE-SNN Algorithm 1 in place (on CUDA when present; the model is returned to the CPU);
    returns test accuracy. See the module docstring for the algorithm."""
    device = default_device()
    snn.to(device)
    try:
        return fit_snn(snn, data, cfg, batch_size, seed, progress, checkpoint, info)
    finally:
        snn.to("cpu")


def bptt_config(cfg: SnnTrainConfig) -> SnnTrainConfig:
    """The traditional-training special case of a config: 𝒩 = 1, ε_s = 0 (no crafted noise)."""
    return dataclasses.replace(cfg, periods=1, noise_step=0.0, noise_bound=0.0, noise="crafted")
