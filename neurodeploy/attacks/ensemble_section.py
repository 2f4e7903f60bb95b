"""The report's ``ensemble`` section: per model and target, the per-sample worst case of the
attack ensemble (:mod:`.ensemble`), which member found each break, and the gap to the HIRE-SNN
protocol (PGD-K without random start, the paper's setting, kept as ``source.pgd``).

The source is attacked by every member (white-box members through their gradient estimator, the
query-only Square by queries). A target is only queried: a sample breaks on it if its clean input,
the protocol's PGD image (transfer), or the source ensemble's worst image for it (transfer) is
misclassified, or — when ``square`` is a member — if the Square attack with the preset's budget on
the target's simulation finds an image the target misclassifies. A slow target with a spike-exact
stand-in (Lava: loihi-emu) takes the stand-in's entry, marked ``via``, as in the ``query`` section.
"""
from __future__ import annotations

import logging
import time

import torch

from .base import InputDomain
from .ensemble import PRESETS, EnsembleResult, Settings, parse_members, run_ensemble, transfer_worst_case
from .estimators import STOCHASTIC_ENCODINGS, TargetEstimator
from .parallel import usable_cores
from .pgd import source_pgd
from .sections import AttackContext, Pending, register_section, subset_index
from .square import SquareAttack

log = logging.getLogger(__name__)


def ensemble_settings(ctx: AttackContext) -> tuple[list, Settings, int | None]:
    """(members, settings, EOT draws) from the recipe's ``[attack]`` (preset, then overrides)."""
    c = ctx.cfg
    p = PRESETS[c.preset]
    members = parse_members(list(c.ensemble) or p["members"])
    s = Settings(c.epsilon, protocol_step=c.step_size, protocol_steps=c.steps, steps=c.ensemble_steps or p["steps"],
                 restarts=p["restarts"], query_budget=c.ensemble_query_budget or p["query_budget"], seed=ctx.seed,
                 batch_size=ctx.batch_size, domain=ctx.domain, workers=c.ensemble_workers or usable_cores())
    stochastic = getattr(ctx.inputs.model, "encoding", "direct") in STOCHASTIC_ENCODINGS
    eot = c.eot_samples or (p["eot"] if stochastic else 0) or None  # EOT draws only for a random coding
    return members, s, eot


def _counts(by: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in by:
        if b:
            out[b] = out.get(b, 0) + 1
    return out


def _entry(broken: torch.Tensor, by: list[str], protocol: str) -> dict:
    n = len(by)
    acc = lambda hits: 1.0 - hits / n if n else float("nan")  # noqa: E731
    clean_wrong = sum(b == "clean" for b in by)
    worst = acc(int(broken.sum()))
    proto = acc(sum(b in ("clean", protocol) for b in by))
    return {"samples": n, "clean_accuracy": acc(clean_wrong), "protocol_accuracy": proto,
            "worst_case_accuracy": worst, "gap": proto - worst, "breaks": _counts(by), "broken_by": by}


def _target_entry(ctx: AttackContext, name: str, xe: torch.Tensor, ye: torch.Tensor, x_proto: torch.Tensor,
                  res: EnsembleResult, s: Settings, members: list) -> Pending:
    it = ctx.target_index(len(xe))
    cands = {"pgd7@train (transfer)": x_proto[it], "ensemble worst (transfer)": res.x_worst[it]}
    square = any(m.attack == "square" for m in members) and s.query_budget > 0
    return ctx.on_targets(target_ensemble_entry, name, xe[it], ye[it], cands, s, square, ctx.batch_size,
                          ctx.n_classes)


def target_ensemble_entry(targets, name: str, x: torch.Tensor, y: torch.Tensor, cands: dict[str, torch.Tensor],
                          s: Settings, square: bool, batch_size: int, n_classes: int) -> dict:
    """A target job (:meth:`AttackContext.on_targets`): target ``name``'s ensemble entry — broken by
    its clean input or a transfer candidate, else (``square``) by the Square attack on it."""
    fn = targets[name]
    broken, by = transfer_worst_case(fn, x, y, cands, batch_size)
    out_extra: dict = {}
    if square:
        act = (~broken).nonzero().squeeze(1)
        sq = SquareAttack(s.epsilon, s.query_budget, seed=s.seed, batch_size=batch_size)
        sq.domain = s.domain
        t0 = time.perf_counter()
        if len(act):
            r = sq.run(TargetEstimator(fn, n_classes), x[act], y[act])
            wrong = _wrong_on(fn, r.x_adv, y[act], batch_size)  # verified on the target itself
            for i in act[wrong].tolist():
                broken[i], by[i] = True, "square (on target)"
            out_extra = {"square_queries_mean": float(r.queries.float().mean()), "square_samples": len(act),
                         "square_seconds": round(time.perf_counter() - t0, 2)}
    return {**_entry(broken, by, "pgd7@train (transfer)"), **out_extra}


def _wrong_on(fn, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    from .ensemble import _wrong

    return _wrong(fn, x, y, batch_size)


@register_section("ensemble")
def ensemble_section(ctx: AttackContext) -> dict:
    """``ensemble``: ``source`` and one entry per target, each with ``clean_accuracy``,
    ``protocol_accuracy`` (clean errors + PGD-K protocol breaks), ``worst_case_accuracy`` (samples no
    member broke), ``gap`` (protocol − worst case), ``breaks`` (count per member that found a break
    first; ``clean``: misclassified unattacked), ``broken_by`` (per sample, in the ensemble's
    sample order); the source also ``members`` (samples attacked, breaks, seconds or why skipped);
    and the settings: preset, members, ε with its ``unit``, K, restarts, Square budget, EOT, seconds."""
    c = ctx.cfg
    t0 = time.perf_counter()
    members, s, eot = ensemble_settings(ctx)
    ie = subset_index(len(ctx.x), c.ensemble_samples or None, ctx.seed)
    xe, ye = ctx.x[ie], ctx.y[ie]
    x_proto = source_pgd(ctx)[ie] if not c.random_start else None
    res = run_ensemble(ctx.inputs.model, xe, ye, members, s, n_classes=ctx.n_classes, eot_samples=eot,
                       x_protocol=x_proto)
    if x_proto is None:  # the recipe's PGD has a random start: craft the protocol images for the targets
        from .pgd import PGD

        pgd = PGD(c.epsilon, c.step_size, c.steps, False, ctx.seed, batch_size=ctx.batch_size)
        pgd.domain = ctx.domain
        x_proto = pgd.generate(ctx.est, xe, ye)
    ctx.memo("ensemble", lambda: (ie, res, members))  # the checklist reads it per sample
    src = {**_entry(res.broken, res.broken_by, "pgd7@train"), "members": res.members}
    out: dict = {"preset": c.preset, "members": [m.label for m in members], "epsilon": c.epsilon,
                 "unit": s.domain.unit, "integer_inputs": s.domain.integer, "steps": s.steps,
                 "restarts": s.restarts, "query_budget": s.query_budget, "eot_samples": eot or 1,
                 "protocol": {"attack": "pgd", "step_size": c.step_size, "steps": c.steps, "random_start": False},
                 "source": src}
    stand_ins = ctx.inputs.stand_ins
    for name in ctx.targets:
        if stand_ins.get(name) not in ctx.targets:  # a slow target with a spike-exact stand-in takes its entry
            out[name] = _target_entry(ctx, name, xe, ye, x_proto, res, s, members)
    for name in ctx.targets:
        if stand_ins.get(name) in ctx.targets:
            out[name] = out[stand_ins[name]].then(lambda e, s=stand_ins[name]: {**e, "via": s})
    secs = time.perf_counter() - t0
    out["seconds"] = round(secs, 2)
    out["seconds_per_sample"] = round(secs / max(len(xe), 1), 4)
    log.info("ensemble (%s): worst case %.3f vs protocol %.3f on %d samples (%.1f s)", c.preset,
             src["worst_case_accuracy"], src["protocol_accuracy"], len(xe), secs)
    return {"ensemble": out}


#: the estimators the event-budget attack goes through (each a ``flip@<estimator>`` member)
EVENT_ESTIMATORS = ("train", "atan2", "tri2", "adaptive", "bptr")


@register_section("event_budget")
def event_budget_section(ctx: AttackContext) -> dict:
    """``event_budget`` (event data, ``attack.event_budget`` > 0; absent otherwise): robust accuracy
    when at most ``budget`` whole events per sample may be inserted or deleted (ℓ1; at most
    max(⌊ε⌋, 1) per entry), the per-sample worst case over the event-budget attack through each
    gradient estimator (:mod:`.events`), on the source and (transfer of the worst image) each target."""
    c = ctx.cfg
    if not ctx.domain.integer or c.event_budget <= 0:
        return {}
    t0 = time.perf_counter()
    members = parse_members([f"flip@{e}" for e in EVENT_ESTIMATORS], protocol=False)
    s = Settings(max(float(int(c.epsilon)), 1.0), seed=ctx.seed, batch_size=ctx.batch_size, domain=ctx.domain,
                 event_budget=c.event_budget)
    ie = subset_index(len(ctx.x), c.ensemble_samples or None, ctx.seed)
    xe, ye = ctx.x[ie], ctx.y[ie]
    res = run_ensemble(ctx.inputs.model, xe, ye, members, s, n_classes=ctx.n_classes,
                       eot_samples=c.eot_samples or None)
    first = members[0].label
    out: dict = {"budget": c.event_budget, "unit": "events inserted or deleted per sample (L1)",
                 "per_entry": s.epsilon, "members": [m.label for m in members],
                 "source": {**_entry(res.broken, res.broken_by, first), "members": res.members}}
    out["source"].pop("protocol_accuracy"), out["source"].pop("gap")  # no protocol attack under this threat model
    for name in ctx.targets:
        it = ctx.target_index(len(xe))
        out[name] = ctx.on_targets(target_event_entry, name, xe[it], ye[it], res.x_worst[it], ctx.batch_size)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    l1 = (res.x_worst - xe).abs().flatten(1).sum(1)
    out["max_events_changed"] = int(l1.max()) if len(l1) else 0
    return {"event_budget": out}


def target_event_entry(targets, name: str, x: torch.Tensor, y: torch.Tensor, x_worst: torch.Tensor,
                       batch_size: int) -> dict:
    """A target job (:meth:`AttackContext.on_targets`): target ``name``'s ``event_budget`` entry (the
    source's worst images transferred)."""
    broken, by = transfer_worst_case(targets[name], x, y, {"source worst (transfer)": x_worst}, batch_size)
    e = _entry(broken, by, "source worst (transfer)")
    e.pop("protocol_accuracy"), e.pop("gap")
    return e


__all__ = ["ensemble_section", "ensemble_settings", "event_budget_section", "InputDomain"]
