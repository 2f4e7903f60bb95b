"""The attack stage: robustness on both sides — white-box, black-box, baselines, sweeps and audits
on the source; transfer and query-only attacks on each deployed target.

Inputs: the source SNN (and its ANN twin or the black-box surrogate), ``model.nir`` compiled for
each target, the recipe's ``[attack]``. Outputs: ``report.json``: ``robustness``;
``figures/robustness_*.png``. A target that declares an ``attack_stand_in`` (too slow for
thousands of queries) gets its query attack and ε sweep from that stand-in (tested to match it
spike for spike); transfer attacks still run on the target itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..ir import read_nir
from ..run import Run
from ..targets import get_target
from ..util import seed_everything
from . import background, resume
from .deploy import deploy
from .train import train_surrogate


def _deployed_on_demand(run: Run, target: Any, graph: Any, meta: Any) -> Callable[[Any], Any]:
    """``target_query_fn`` of ``target`` deployed at its first call."""
    from ..attacks.stage import target_query_fn

    fn: list[Callable[[Any], Any]] = []

    def query(x: Any) -> Any:
        if not fn:
            fn.append(target_query_fn(target, deploy(run, target, graph, meta)))
        return fn[0](x)

    return query


def attack_stage(run: Run, targets: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """The recipe's ``[attack] sections`` on the source and on every target in ``targets`` (default:
    every simulated target); the stage itself notes and routes each target's stand-in."""
    from ..attacks.base import InputDomain
    from ..attacks.stage import AttackInputs, robustness_report, target_query_fn
    from ..report.figures_robustness import write_robustness_figures

    r, a = run.recipe, run.recipe.attack
    targets = list(run.report().get("targets", {})) if targets is None else targets
    helper = background.start_target_helper(run, targets)  # deploys the targets meanwhile
    try:
        x, y = run.test_data()
        seed_everything(r.seed)
        queries = {}
        stand_ins: dict[str, str] = {}
        if targets:
            graph, meta = read_nir(run.nir_path)
            for name in targets:
                target = get_target(name)
                # with a helper, this process runs a target only if the helper fails
                queries[name] = (_deployed_on_demand(run, target, graph, meta) if helper is not None
                                 else target_query_fn(target, deploy(run, target, graph, meta)))
                if target.attack_stand_in:
                    stand_ins[name] = target.attack_stand_in
        surrogate = None
        if a.blackbox == "seed" and not run.imported:
            surrogate = train_surrogate(run, progress)
        elif run.has_ann:
            surrogate = run.ann
        inputs = AttackInputs(run.model, x, y, n_classes=run.data.num_classes, seed=r.seed,
                              ann=run.ann if run.has_ann else None, surrogate_model=surrogate, targets=queries,
                              stand_ins=stand_ins, domain=InputDomain.of(run.data))
        rob = robustness_report(inputs, a, progress=progress, helper=helper)
    finally:
        if helper is not None:
            helper.close()
    fp = resume.attack_fp(run, targets)  # after the surrogate: its stamp is an input
    with run.locked():
        figs = write_robustness_figures(rob, run.dir / "figures")

        def change(report: dict[str, Any]) -> None:
            report["robustness"] = rob
            report["figures"] = sorted(set(report.get("figures", [])) | {str(Path(p).relative_to(run.dir))
                                                                         for p in figs})

        report = run.update_report(change)
        resume.record(run, "attack", fp, sections=[["robustness"]])
    return report
