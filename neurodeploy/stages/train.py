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

log = logging.getLogger(__name__)


def train_stage(run: Run, progress: bool = True) -> None:
    """Train the recipe's networks into the run folder (nothing for an imported NIR network).

    Resumable: per-epoch training state lives in the run folder, so an interrupted training goes
    on from its last completed epoch; finished checkpoints are never retrained.
    """
    from ..train.run import train_recipe

    if run.imported:
        return
    snn_path, ann_path = run.dir / "snn.safetensors", run.dir / "ann.safetensors"
    if snn_path.is_file():
        log.info("train: %s exists, skipping (use --force to retrain)", snn_path)
        return
    t0 = time.time()
    res = train_recipe(run.recipe, run.data, out_dir=run.dir, progress=progress)
    info = {"recipe": run.digest, "converted_accuracy": res.converted_accuracy, "thresholds": res.thresholds}
    if res.ann is not None:
        save_checkpoint(res.ann, ann_path, {"stage": "ann", "recipe": run.digest, "test_accuracy": res.ann_accuracy})
    save_checkpoint(res.snn, snn_path, {"stage": "snn", "test_accuracy": res.snn_accuracy,
                                        "seconds": time.time() - t0, **info})
    for state in ("ann.state.safetensors", "snn.state.safetensors"):
        (run.dir / state).unlink(missing_ok=True)
    run.invalidate()


def train_surrogate(run: Run, progress: bool = True) -> torch.nn.Module:
    """The black-box attacker's model: the same recipe trained with seed + 1 (HIRE-SNN §5), kept in
    ``surrogate.safetensors``."""
    from ..train.run import train_recipe

    path = run.dir / "surrogate.safetensors"
    model = run.new_snn()
    if not path.is_file():
        res = train_recipe(run.recipe, run.data, out_dir=run.dir / "surrogate", seed=run.recipe.seed + 1,
                           progress=progress)
        save_checkpoint(res.snn, path, {"stage": "surrogate", "seed": run.recipe.seed + 1,
                                        "test_accuracy": res.snn_accuracy})
        shutil.rmtree(run.dir / "surrogate", ignore_errors=True)
    load_checkpoint(model, path)
    return model.eval()
