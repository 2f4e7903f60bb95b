"""Multi-process (multi-GPU / multi-node) training with PyTorch DistributedDataParallel.

Launch with ``torchrun``; every process runs the same recipe, takes rows ``rank::world`` of every
global batch (so a global batch is still ``data.batch_size``) and DDP averages the gradients, which
for equal shards equals the single-process gradient of the whole batch. HIRE-SNN's κ is kept per
rank (each rank crafts noise for its own rows) and all ranks' κ are saved in the training state.
The backend is NCCL on CUDA, gloo on CPU; each process uses GPU ``LOCAL_RANK`` when CUDA is present.

GPUs on one machine::

    torchrun --standalone --nproc_per_node=4 -m neurodeploy.train.distributed models/hire_vgg5_cifar10.toml --out runs/vgg5

Two machines (run on each, with its own ``--node_rank``)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m neurodeploy.train.distributed RECIPE --out runs/x

Rank 0 writes ``ann.safetensors``, ``snn.safetensors`` (checkpoints with the recipe in their
metadata), ``train.json`` (accuracies) and the per-epoch training-state files in ``--out``; a
relaunch with the same ``--out`` resumes from the last completed epoch.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch
import torch.distributed as dist

from ..data import load_dataset
from ..recipe import load_recipe
from ..util import write_json_atomic
from .checkpoint import save_checkpoint
from .common import rank_and_world
from .run import TrainResult, train_recipe

log = logging.getLogger(__name__)


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment; returns (rank, world).

    Without ``torchrun`` (no ``WORLD_SIZE``) nothing is initialised and (0, 1) is returned.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group(backend=backend)
    return rank_and_world()


def train_distributed(recipe_path: str | Path, out_dir: str | Path, seed: int | None = None,
                      progress: bool = True, save_all_ranks: bool = False) -> TrainResult:
    """Train one recipe in every process of the group; rank 0 writes the artifacts to ``out_dir``."""
    rank, world = init_distributed()
    recipe = load_recipe(recipe_path)
    seed = recipe.seed if seed is None else seed
    out = Path(out_dir)
    data = load_dataset(recipe.data, seed)
    log.info("rank %d/%d: training %s", rank, world, recipe.name)
    res = train_recipe(recipe, data, out, seed, progress and rank == 0)
    info = {"recipe": recipe.to_dict(), "seed": seed, "world_size": world}
    if rank == 0:
        if res.ann is not None:
            save_checkpoint(res.ann, out / "ann.safetensors", {**info, "stage": "ann"})
        save_checkpoint(res.snn, out / "snn.safetensors", {**info, "stage": "snn", "thresholds": res.thresholds})
        write_json_atomic(out / "train.json", {"ann_accuracy": res.ann_accuracy, "converted_accuracy":
                                               res.converted_accuracy, "snn_accuracy": res.snn_accuracy,
                                               "world_size": world})
    if save_all_ranks:
        save_checkpoint(res.snn, out / f"snn.rank{rank}.safetensors", info)
    if world > 1:
        dist.barrier()
    return res


def main(argv: list[str] | None = None) -> int:
    """``torchrun ... -m neurodeploy.train.distributed RECIPE --out DIR [--seed N]``."""
    ap = argparse.ArgumentParser(prog="neurodeploy.train.distributed", description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--save-all-ranks", action="store_true", help="also write snn.rank<r>.safetensors")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO,
                        format="%(asctime)s rank" + os.environ.get("RANK", "0") + " %(name)s: %(message)s")
    try:
        train_distributed(a.recipe, a.out, a.seed, progress=not a.quiet, save_all_ranks=a.save_all_ranks)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
