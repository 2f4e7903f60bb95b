"""The finetune stage: deployment-aware fine-tuning for the targets that declare ``finetunable``
(the fixed-point Loihi ones): a few epochs with the fixed-point neuron and 8-bit weights in the
loop (straight-through estimator), then those targets run again.

Inputs: the source SNN, the training set, the recipe's ``deploy.finetune_*``. Outputs:
``snn_deploy.safetensors``, ``model_deploy.nir`` and ``report.json``:
``targets.<name>.finetuned{accuracy_before, accuracy, agreement_with_source, ...}``.
"""
from __future__ import annotations

import logging
from typing import Any

from ..ir import to_nir, write_nir
from ..run import Run
from ..targets import get_target
from ..train import load_checkpoint, save_checkpoint
from . import resume
from .deploy import EvalSet, deploy_and_score, target_options
from .export import deploy_meta

log = logging.getLogger(__name__)

FINETUNED_NIR = "model_deploy.nir"


def finetune_stage(run: Run, targets: list[str], progress: bool = True, resume_done: bool = False
                   ) -> dict[str, Any]:
    """Fine-tune for the finetunable ``targets`` and score them again; the report keeps the accuracy
    before (``accuracy``) and after (``finetuned.accuracy``). Nothing when the recipe's
    ``deploy.finetune_epochs`` is 0 or no target is finetunable. ``resume_done``: skip the targets
    whose fine-tuned score is recorded and current (:mod:`.resume`)."""
    from ..train.deploy_finetune import deploy_finetune

    r = run.recipe
    if r.deploy.finetune_epochs <= 0:
        return run.report()
    chosen = {name: t for name, t in ((n, get_target(n)) for n in targets) if t.finetunable}
    if not chosen:
        return run.report()
    if run.imported:
        log.warning("deployment-aware fine-tuning needs a network trained here; skipped for the imported %s",
                    run.nir_path)
        return run.report()
    path = run.dir / "snn_deploy.safetensors"
    # one fine-tuned network for every chosen target: the first one's options shape the fixed-point loop
    name, target = next(iter(chosen.items()))
    net_fp = resume.finetune_net_fp(run, name)
    ft = run.new_snn()
    if path.is_file() and not resume.stale(run, "finetune-net", net_fp):
        load_checkpoint(ft, path)
        for _, m in ft.neurons():
            m.reset = "zero"
    else:
        opts = target.resolve_options(target_options(run, name), target.load_profile())
        ft = deploy_finetune(run.model, run.data.x_train, run.data.y_train, opts,
                             epochs=r.deploy.finetune_epochs, lr=r.deploy.finetune_lr, batch_size=r.data.batch_size,
                             seed=r.seed, progress=progress)
        save_checkpoint(ft, path, {"stage": "deploy-finetune", "epochs": r.deploy.finetune_epochs, "reset": "zero"})
        resume.record(run, "finetune-net", net_fp, files=["snn_deploy.safetensors"])
    if resume_done:
        for n in [n for n in chosen if resume.is_done(run, f"finetune:{n}", resume.finetune_fp(run, n))]:
            resume.skip(f"finetune:{n}")
            del chosen[n]
        if not chosen:
            return run.report()
    ft.eval()
    meta = deploy_meta(run)
    graph = to_nir(ft, meta)
    write_nir(graph, run.dir / FINETUNED_NIR)
    data = EvalSet.of(run)
    for name, target in chosen.items():
        fp = resume.finetune_fp(run, name)
        s = deploy_and_score(run, target, graph, meta, data, progress, run.dir / FINETUNED_NIR)

        def change(report: dict[str, Any], name: str = name, s: Any = s) -> None:
            entry = report.setdefault("targets", {}).setdefault(name, {})
            entry["finetuned"] = {
                "epochs": r.deploy.finetune_epochs,
                "accuracy_before": entry.get("accuracy"),
                "accuracy": s.accuracy,
                "agreement_with_source": s.agreement_with_source,
                "model": FINETUNED_NIR,
            }
            log.info("target %s after deployment-aware fine-tuning: accuracy %.4f (before %.4f)", name, s.accuracy,
                     entry.get("accuracy") or float("nan"))

        with run.locked():
            run.update_report(change)
            resume.record(run, f"finetune:{name}", fp, sections=[["targets", name, "finetuned"]])
    return run.report()
