"""The train stage: ANN, conversion (threshold initialisation), SNN (BPTT or HIRE-SNN).

Inputs: the run's recipe and data. Outputs: ``ann.safetensors`` (when the recipe trains an ANN)
and ``snn.safetensors``; the black-box surrogate (``surrogate.safetensors``) on request.
"""
from __future__ import annotations

import logging
import shutil
import time

import torch

from ..run import Run
from ..train import load_checkpoint, save_checkpoint
from . import resume

log = logging.getLogger(__name__)


def train_stage(run: Run, progress: bool = True) -> None:
    """Train the recipe's networks into the run folder (nothing for an imported NIR network).

    Resumable: per-epoch training state lives in the run folder, so an interrupted training goes
    on from its last completed epoch; finished checkpoints are not retrained unless a recipe field
    training reads (seed, timesteps, data, model, train) changed since (:mod:`.resume`).
    """
    from ..train.run import train_recipe

    if run.imported:
        return
    snn_path, ann_path = run.dir / "snn.safetensors", run.dir / "ann.safetensors"
    states = [run.dir / s for s in ("ann.state.safetensors", "snn.state.safetensors")]
    fp = resume.train_fp(run)
    if snn_path.is_file() and not resume.stale(run, "train", fp):
        log.info("train: %s exists for this recipe, skipping (use --force to retrain)", snn_path)
        if resume.stamp(run, "train") is None:  # a folder from before the ledger: adopt the checkpoints
            resume.record(run, "train", fp)
        return
    if resume.stale(run, "train", fp) or resume.stale(run, "train-state", fp):
        log.warning("train: the recipe's training fields changed; retraining from scratch")
        for p in (snn_path, ann_path, *states):
            p.unlink(missing_ok=True)
    resume.record(run, "train-state", fp)  # the per-epoch state files below belong to these fields
    t0 = time.time()
    res = train_recipe(run.recipe, run.data, out_dir=run.dir, progress=progress)
    info = {"recipe": run.digest, "converted_accuracy": res.converted_accuracy, "thresholds": res.thresholds}
    if res.ann is not None:
        save_checkpoint(res.ann, ann_path, {"stage": "ann", "recipe": run.digest, "test_accuracy": res.ann_accuracy})
    save_checkpoint(res.snn, snn_path, {"stage": "snn", "test_accuracy": res.snn_accuracy,
                                        "seconds": time.time() - t0, **info})
    for state in states:
        state.unlink(missing_ok=True)
    resume.record(run, "train", fp)
    run.invalidate()


def train_surrogate(run: Run, progress: bool = True, background: bool = True) -> torch.nn.Module:
    """The black-box attacker's model: the same recipe trained with seed + 1 (HIRE-SNN §5), kept in
    ``surrogate.safetensors``. With ``background``, a child started by
    :func:`.background.start_surrogate` is waited for first (it trains the same checkpoint)."""
    from ..train.run import train_recipe
    from .background import wait_surrogate

    if background:
        wait_surrogate(run)
    path = run.dir / "surrogate.safetensors"
    model = run.new_snn()
    fp = resume.surrogate_fp(run)
    if resume.stale(run, "surrogate", fp):
        path.unlink(missing_ok=True)
        shutil.rmtree(run.dir / "surrogate", ignore_errors=True)
    if not path.is_file():
        res = train_recipe(run.recipe, run.data, out_dir=run.dir / "surrogate", seed=run.recipe.seed + 1,
                           progress=progress)
        save_checkpoint(res.snn, path, {"stage": "surrogate", "seed": run.recipe.seed + 1,
                                        "test_accuracy": res.snn_accuracy})
        shutil.rmtree(run.dir / "surrogate", ignore_errors=True)
        resume.record(run, "surrogate", fp)
    load_checkpoint(model, path)
    return model.eval()
