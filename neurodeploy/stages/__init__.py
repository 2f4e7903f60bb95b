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

import logging
from pathlib import Path
from typing import Any, Callable

from ..errors import NeurodeployError
from ..recipe import resolve_recipe_path
from ..run import RECIPE_FILE, Run, discard_new_run_dir, prepare_run_dir
from ..targets import get_target, list_targets
from . import background, resume
from .attack import attack_stage
from .deploy import EvalSet, Scored, deploy, deploy_and_score, target_options
from .energy import energy_stage
from .export import export_stage
from .finetune import finetune_stage
from .nir_import import import_stage
from .simulate import simulate_stage
from .source import source_done, source_predictions, source_stage
from .train import train_stage, train_surrogate

log = logging.getLogger(__name__)


def run_all(recipe: str | Path, out: str | Path, targets: list[str] | None = None, force: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """The whole chain: (import | train), export, source, simulate, energy, finetune, attack.

    Resumes stage by stage (:mod:`.resume`): on a folder an interrupted run left behind, every stage
    (and every target) whose artifacts are complete and whose inputs are unchanged is skipped, the
    rest is redone. A recipe edited in place (same ``name``) redoes the stages that read the edited
    fields and those after them. A folder this call created is removed again when the recipe is
    refused before any artifact was written."""
    fresh = not (Path(out) / RECIPE_FILE).exists()
    run = prepare_run_dir(recipe, out, force)
    try:
        targets = targets if targets is not None else list(run.recipe.deploy.targets)
        for t in targets:  # fail early on a typo, before any training
            get_target(t)
        background.start_surrogate(run)  # on a second core while the chain trains, deploys, simulates
        _chain(run, recipe, targets, progress)
    except NeurodeployError:
        background.stop_all()
        if fresh:
            discard_new_run_dir(run.dir)
        raise
    finally:
        background.stop_all()  # a chain that ended without the attack stage (or failed otherwise)
    return run.report()


def _chain(run: Run, recipe: str | Path, targets: list[str], progress: bool) -> None:
    def step(key: str, fp: str, fn: Callable[[], Any]) -> None:
        if resume.is_done(run, key, fp):
            resume.skip(key)
        else:
            fn()

    if run.imported:
        src = Path(run.recipe.model.nir)
        if not src.is_absolute():
            src = resolve_recipe_path(recipe).resolve().parent / src
        step("import", resume.import_fp(run, src), lambda: import_stage(run, src))
    train_stage(run, progress)
    if not run.imported:
        step("export", resume.export_fp(run), lambda: export_stage(run))
    step("source", resume.source_fp(run), lambda: source_stage(run))
    _drop_stale_targets(run, targets)
    todo = []
    for t in targets:
        if resume.is_done(run, f"simulate:{t}", resume.simulate_fp(run, t)):
            resume.skip(f"simulate:{t}")
        else:
            todo.append(t)
    if todo:
        simulate_stage(run, todo, progress)
    step("energy", resume.energy_fp(run), lambda: energy_stage(run))
    finetune_stage(run, targets, progress, resume_done=True)
    step("attack", resume.attack_fp(run, targets), lambda: attack_stage(run, targets, progress))


def _drop_stale_targets(run: Run, targets: list[str]) -> None:
    """Targets in report.json that this run does not simulate again, whose recorded inputs are not
    today's (another model.nir, another recipe): their entries and outputs would mix two networks."""
    report = run.report()
    stale = [n for n in report.get("targets", {}) if n not in targets and n in list_targets()
             and resume.stale(run, f"simulate:{n}", resume.simulate_fp(run, n))]
    if not stale:
        return
    log.warning("resume: dropping the stale results of %s (computed from other inputs)", ", ".join(stale))
    with run.locked():
        run.update_report(lambda r: [r["targets"].pop(n, None) for n in stale])
        for n in stale:
            run.outputs_path(n).unlink(missing_ok=True)
        resume.forget(run, *[f"{k}:{n}" for n in stale for k in ("simulate", "finetune")])


__all__ = ["EvalSet", "Scored", "attack_stage", "deploy", "deploy_and_score", "energy_stage", "export_stage",
           "finetune_stage", "import_stage", "run_all", "simulate_stage", "source_done", "source_predictions",
           "source_stage", "target_options", "train_stage", "train_surrogate"]
