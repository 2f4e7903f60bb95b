"""The attack stage: the ``robustness`` section of report.json, source side and target side.

What it measures (HIRE-SNN, Kundu et al. ICCV 2021, §5 and Table 4; DESIGN.md "attacks") is the
recipe's ``[attack] sections`` list, each name a registered :class:`~.sections.Section` built in
the file of its attack. The default list gives:

- ``source``: clean accuracy (``clean``); white-box FGSM and PGD through the surrogate gradient
  over all T steps (EOT over the coding when the input is rate-coded; ``fgsm``, ``pgd``);
  black-box FGSM/PGD crafted on a surrogate model (the same architecture from another seed, else
  the ANN twin; ``blackbox``); Gaussian noise of the same L∞ size (``gaussian``); random sampling
  in the ε-ball (``random``); the ANN twin attacked white-box the same way (``ann``); the Square
  attack (query-only) for comparison with the targets (``query``).
- one entry per deployed target, keyed by its name (a query function images -> logits): its
  clean accuracy, the source's FGSM/PGD images run through it (``transfer``: ``transfer_fgsm``,
  ``transfer_pgd``) and the Square attack against its simulation (``query``).
- ``sweeps``: accuracy against ε (up to ε = 1, "unbounded"; targets evaluated on the source's
  images; ``eps_sweep``) and against the PGD iterations K (up to 40; ``steps_sweep``).
- ``ensemble``: the per-sample worst case of the attack ensemble (APGD-CE/DLR, PGD with restarts,
  several gradient estimators, Square) on the source and each target, with the gap to the PGD-K
  protocol and the member that found each break (:mod:`.ensemble`, :mod:`.ensemble_section`).
- ``checklist``: the five gradient-obfuscation checks (:mod:`.checklist`).
- ``sparsity``: the input-gradient sparsity per layer; ``pooling``: the max- vs avg-pool table
  when pool variants are given (:mod:`.sparsity`).

Cost is set by the recipe: ``max_samples`` (0 = all) for the main attacks, ``sweep_samples`` for
the sweeps, ``query_samples`` × ``query_budget`` for the query attacks.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import AttackError
from ..recipe import AttackConfig
from . import checklist, ensemble_section, gaussian, random_search, sparsity, square, sweeps, transfer  # noqa: F401
from .estimators import SourceEstimator, accuracy
from .fgsm import fgsm_images, source_fgsm
from .pgd import pgd_images, pgd_settings, source_pgd
from .sections import (SECTIONS, AttackContext, AttackInputs, QueryFn, TargetHelper, check_sections, register_section,
                       resolve)

log = logging.getLogger(__name__)

#: Top-level keys of the robustness section a target name may not take.
RESERVED = frozenset({"source", "sweeps", "ensemble", "event_budget", "checklist", "sparsity", "theory", "pooling",
                      "seconds", "section_seconds"})


def target_query_fn(target: object, deployment: object, batch_size: int = 256) -> QueryFn:
    """A query function ``images -> logits`` over a deployed target's ``run`` (no gradients).

    Uses ``Outputs.logits`` (the target's readout per class); a target that reports only
    predictions gives one-hot scores, which a query attack can still use (hard-label).
    """

    def query(x: torch.Tensor) -> np.ndarray:
        out = target.run(deployment, x, batch_size=batch_size, progress=False)  # type: ignore[attr-defined]
        if out.logits is not None:
            return np.asarray(out.logits, dtype=np.float32)
        n = int(getattr(getattr(deployment, "meta", None), "num_classes", 0) or (int(out.predictions.max()) + 1))
        onehot = np.zeros((len(out.predictions), n), dtype=np.float32)
        onehot[np.arange(len(out.predictions)), out.predictions] = 1.0
        return onehot

    return query


@register_section("clean")
def clean_section(ctx: AttackContext) -> dict:
    """``source.clean`` (accuracy on the attacked samples), ``source.samples``, ``source.eot_samples``."""
    acc = accuracy(ctx.est, ctx.x, ctx.y, ctx.batch_size)
    return {"source": {"clean": {"accuracy": acc, "samples": len(ctx.x)}, "samples": len(ctx.x),
                       "eot_samples": ctx.est.eot_samples}}


@register_section("ann")
def ann_section(ctx: AttackContext) -> dict:
    """``source.ann``: the ANN twin attacked white-box like the source (clean, FGSM, PGD); ``None``
    without a twin."""
    if ctx.inputs.ann is None:
        return {"source": {"ann": None}}
    est, c, bs = SourceEstimator(ctx.inputs.ann, ctx.n_classes, seed=ctx.seed), ctx.cfg, ctx.batch_size
    x_f, x_p = fgsm_images(ctx, est), pgd_images(ctx, est)
    return {"source": {"ann": {
        "clean": {"accuracy": accuracy(est, ctx.x, ctx.y, bs), "samples": len(ctx.x)},
        "fgsm": {"epsilon": c.epsilon, "accuracy": accuracy(est, x_f, ctx.y, bs)},
        "pgd": {**pgd_settings(ctx), "random_start": c.random_start, "accuracy": accuracy(est, x_p, ctx.y, bs)},
    }}}


def robustness_report(inputs: AttackInputs, cfg: AttackConfig, *, progress: bool = False,
                      helper: TargetHelper | None = None) -> dict[str, Any]:
    """Attack the source model (and each target) and return the report's ``robustness`` section:
    the fragments of the sections ``cfg.sections`` built in order, plus ``seconds`` and
    ``section_seconds`` (each section's wall time).

    ``helper`` (:class:`~.sections.TargetHelper`: a process with the same targets deployed) runs the
    work that only queries the targets while this process runs the source's attacks; the report is
    the one without it (its target entries are resolved after the last section; a section's time
    is then the time this process spent in it).

    Target names must not clash with the section's own keys (``source``, ``sweeps``, ...).
    """
    t0 = time.perf_counter()
    clash = sorted(set(inputs.targets) & RESERVED)
    if clash:
        raise AttackError(f"target name {clash[0]!r} clashes with a key of the robustness section; rename it")
    check_sections(cfg.sections)
    ctx = AttackContext(inputs, cfg, helper)
    ctx.report["source"] = {}
    bar = tqdm(cfg.sections, desc="attacks", disable=not progress, leave=False)
    spent: dict[str, float] = {}
    for name in bar:
        bar.set_postfix_str(name)
        t_section = time.perf_counter()
        ctx.merge(SECTIONS.get(name).build(ctx))
        spent[name] = round(time.perf_counter() - t_section, 2)
    bar.close()
    t_wait = time.perf_counter()
    resolve(ctx.report)  # the target entries (computed meanwhile by the helper, if any)
    if helper is not None:
        log.info("robustness: waited %.1f s for the target helper", time.perf_counter() - t_wait)
    seconds = time.perf_counter() - t0
    s = ctx.report["source"]
    log.info("robustness: %s (%d samples, %.1f s)", ", ".join(
        f"{k} {s[k]['accuracy']:.3f}" for k in ("clean", "fgsm", "pgd") if isinstance(s.get(k), dict)),
        len(ctx.x), seconds)
    ctx.report["seconds"] = round(seconds, 2)
    ctx.report["section_seconds"] = spent  # where the stage's time went (wall clock, section by section)
    return ctx.report


__all__ = ["AttackInputs", "RESERVED", "robustness_report", "source_fgsm", "source_pgd", "target_query_fn"]
