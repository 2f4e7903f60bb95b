"""The stages of a run, one small module each, and :func:`run_all`, the only place that orders them.

Each stage reads the previous stage's artifact in the run folder, so any stage can be rerun alone:

    import   -> model.nir, import.log                (an imported NIR network: no training)
    train    -> ann.safetensors, snn.safetensors    (skipped when they exist for this recipe)
    export   -> model.nir                           (NIR + deployment metadata)
    source   -> outputs/source.npz, report.json: dataset, source{clean_accuracy, layers, energy}
    simulate -> outputs/<target>.npz, report.json: targets{name: ...}  (each target built from model.nir)
    energy   -> report.json: energy, targets.<name>.energy; figures/energy_*.png
    finetune -> snn_deploy.safetensors, model_deploy.nir, report.json: targets.<name>.finetuned
    attack   -> report.json: robustness{...}; figures/robustness_*.png
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..recipe import resolve_recipe_path
from ..run import prepare_run_dir
from ..targets import get_target
from .attack import attack_stage
from .deploy import EvalSet, Scored, deploy, deploy_and_score, target_options
from .energy import energy_stage
from .export import export_stage
from .finetune import finetune_stage
from .nir_import import import_stage
from .simulate import simulate_stage
from .source import source_done, source_predictions, source_stage
from .train import train_stage, train_surrogate


def run_all(recipe: str | Path, out: str | Path, targets: list[str] | None = None, force: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """The whole chain: (import | train), export, source, simulate, energy, finetune, attack."""
    run = prepare_run_dir(recipe, out, force)
    targets = targets if targets is not None else list(run.recipe.deploy.targets)
    for t in targets:  # fail early on a typo, before any training
        get_target(t)
    if run.imported:
        src = Path(run.recipe.model.nir)
        if not src.is_absolute():
            src = resolve_recipe_path(recipe).resolve().parent / src
        import_stage(run, src)
    train_stage(run, progress)
    export_stage(run)
    source_stage(run)
    simulate_stage(run, targets, progress)
    energy_stage(run)
    finetune_stage(run, targets, progress)
    attack_stage(run, targets, progress)
    return run.report()


__all__ = ["EvalSet", "Scored", "attack_stage", "deploy", "deploy_and_score", "energy_stage", "export_stage",
           "finetune_stage", "import_stage", "run_all", "simulate_stage", "source_done", "source_predictions",
           "source_stage", "target_options", "train_stage", "train_surrogate"]
