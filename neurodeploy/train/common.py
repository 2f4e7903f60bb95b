"""Pieces shared by the training loops: optimisers, schedules, evaluation."""
from __future__ import annotations

import torch
from torch import nn


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or Adam over the trainable ``params``.

    Adam runs as torch's fused kernel (``fused=True``: one pass over parameter, gradient and both
    moments instead of the multi-tensor path's separate ops and temporaries) when every parameter
    is a float tensor on the CPU or CUDA. The update is the same formula (torch/optim/adam.py); only
    float rounding differs (measured ≤ 1.2e-8 absolute after one step on VGG5's weights). Measured
    on VGG5's 50 M parameters, 1 thread: 1.8-2.1 s → 0.30-0.36 s per step.
    """
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    raise ValueError(f"unknown optimizer {name!r}; choose adam or sgd")


def make_scheduler(opt: torch.optim.Optimizer, epochs: int, milestones: list[float], gamma: float):
    """Step decay at fractions of the epochs (HIRE-SNN: ×0.1 at 150/180/210 of 240 → 0.625/0.75/0.875)."""
    steps = sorted({max(1, int(round(f * epochs))) for f in milestones})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=gamma)


def default_device() -> torch.device:
    """CUDA when present (the first visible device, or this rank's under torchrun), else the CPU."""
    if torch.cuda.is_available():
        import os

        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def move_batch(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device``; compact storage (uint8 event counts, float16) becomes float32."""
    if not torch.is_floating_point(x) or x.dtype != torch.float32:
        x = x.float()
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current torch.distributed group, (0, 1) when not distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy, streamed in batches (on the model's device)."""
    was = model.training
    model.eval()
    device = model_device(model)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = move_batch(x[i:i + batch_size], y[i:i + batch_size], device)
        correct += int((model(xb).argmax(1) == yb).sum())
    model.train(was)
    return correct / max(1, len(x))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    model.train(was)
    return out


def shard(batches, rank: int, world: int):
    """Data parallelism over global batches: rank r keeps rows ``r::world`` of every batch.

    Every rank iterates the same seeded global order, so all ranks skip a batch smaller than
    ``world`` together (DistributedDataParallel needs every rank in every backward).
    """
    for x, y in batches:
        if world > 1:
            if len(x) < world:
                continue
            x, y = x[rank::world], y[rank::world]
        yield x, y


def maybe_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when a process group is running, else itself."""
    _, world = rank_and_world()
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
