"""Accuracy under attack as the budget grows: against ε (up to an unbounded ε) and against K.

HIRE-SNN (Kundu et al., ICCV 2021, Fig. 5 and Table 4) reads two curves: accuracy against ε
must fall monotonically and reach ~0 at an unbounded ε (ε = 1 covers the whole pixel range), and
accuracy against the PGD iterations K must fall and level off (the paper sees the asymptote by
K = 40). Both are inputs of the obfuscation checklist (:mod:`.checklist`).

Step size in the ε sweep: α(ε) = α · max(1, ε / ε₀), the recipe's α scaled with ε above the
recipe's ε₀, so that K steps can cross every ε-ball as they cross the recipe's (K·α ≥ 2ε₀ for
HIRE-SNN's ε₀ = 8/255, α = 0.01, K = 7) and the sweep point at ε₀ is exactly the recipe's PGD.
ε = 0 is the clean accuracy (no attack is run).
The K sweep runs PGD once with K = max(steps) and reads the intermediate iterates
(:meth:`PGD.generate_path`): PGD-k is the k-th iterate of PGD-K.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..recipe import SWEEP_EPSILONS, SWEEP_STEPS
from .base import IMAGE, InputDomain
from .estimators import ClassifierMixin, LossGradientsMixin, accuracy
from .pgd import PGD
from .sections import AttackContext, Pending, register_section, target_accuracy

log = logging.getLogger(__name__)

DEFAULT_EPSILONS: tuple[float, ...] = SWEEP_EPSILONS  # the recipe's default ``attack.sweep_epsilons``
DEFAULT_STEPS: tuple[int, ...] = SWEEP_STEPS  # the recipe's default ``attack.sweep_steps``

Evaluator = Callable[[torch.Tensor], float]


def sweep_step_size(epsilon: float, step_size: float, base_epsilon: float) -> float:
    """α(ε) = α · max(1, ε / ε₀)."""
    return step_size * max(1.0, epsilon / base_epsilon) if base_epsilon > 0 else step_size


def epsilon_sweep(estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                  epsilons: Sequence[float] = DEFAULT_EPSILONS, *, step_size: float = 0.01, steps: int = 7,
                  base_epsilon: float = 8 / 255, random_start: bool = False, seed: int = 0, batch_size: int = 256,
                  others: Mapping[str, Evaluator] | None = None, progress: bool = False,
                  domain: InputDomain = IMAGE) -> list[dict]:
    """PGD-K accuracy at each ε: ``[{epsilon, step_size, steps, accuracy, others: {name: acc}}]``.

    ``base_epsilon`` is ε₀ of the step-size rule α(ε) = α · max(1, ε / ε₀).

    ``others`` maps a name (a deployment target) to a function giving its accuracy on the
    source's adversarial images (transfer), so source and targets share one curve per ε.
    """
    rows = []
    for eps in tqdm(list(epsilons), desc="eps sweep", disable=not progress, leave=False):
        alpha = sweep_step_size(eps, step_size, base_epsilon)
        pgd = PGD(eps, alpha, steps, random_start, seed, batch_size=batch_size)
        pgd.domain = domain
        x_adv = x if eps == 0 else pgd.generate(estimator, x, y)
        row = {"epsilon": float(eps), "step_size": alpha, "steps": steps,
               "accuracy": accuracy(estimator, x_adv, y, batch_size)}  # type: ignore[arg-type]
        if others:
            row["others"] = {name: _number(fn(x_adv)) for name, fn in others.items()}
        log.debug("eps sweep %s", row)
        rows.append(row)
    return rows


def _number(v: "float | Pending") -> "float | Pending":
    """A float, or a target job's pending one (:meth:`AttackContext.on_targets`)."""
    return v if isinstance(v, Pending) else float(v)


def steps_sweep(estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor, epsilon: float = 8 / 255,
                step_size: float = 0.01, steps: Sequence[int] = DEFAULT_STEPS, *, random_start: bool = False,
                seed: int = 0, batch_size: int = 256, progress: bool = False,
                domain: InputDomain = IMAGE) -> list[dict]:
    """PGD accuracy at each K from one run of K = max(steps): ``[{steps, accuracy, epsilon, step_size}]``."""
    pgd = PGD(epsilon, step_size, max(steps), random_start, seed, batch_size=batch_size, progress=progress)
    pgd.domain = domain
    path = pgd.generate_path(estimator, x, y, steps)
    est: ClassifierMixin = estimator  # type: ignore[assignment]
    return [{"steps": k, "accuracy": accuracy(est, path[k], y, batch_size), "epsilon": float(epsilon),
             "step_size": float(step_size)} for k in sorted(path)]


def _sweep_samples(ctx: AttackContext) -> tuple[torch.Tensor, torch.Tensor]:
    return ctx.subset(ctx.cfg.sweep_samples)


@register_section("eps_sweep")
def eps_sweep_section(ctx: AttackContext) -> dict:
    """``sweeps.epsilon``: PGD-K accuracy at each ``attack.sweep_epsilons`` on ``attack.sweep_samples``
    samples; every target without a stand-in evaluated on the same images (``others``)."""
    c = ctx.cfg
    xs, ys = _sweep_samples(ctx)

    def on_target(name: str) -> Evaluator:
        i = ctx.target_index(len(xs))
        return lambda xa: ctx.on_targets(target_accuracy_job, name, xa[i], ys[i])  # type: ignore[return-value]

    others = {name: on_target(name) for name in ctx.queried_targets()}
    rows = epsilon_sweep(ctx.est, xs, ys, c.sweep_epsilons, step_size=c.step_size, steps=c.steps,
                         base_epsilon=c.epsilon, random_start=c.random_start, seed=ctx.seed,
                         batch_size=ctx.batch_size, others=others, domain=ctx.domain) if c.sweep_epsilons else []
    return {"sweeps": {"epsilon": rows, "samples": len(xs)}}


def target_accuracy_job(targets, name: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """A target job (:meth:`AttackContext.on_targets`): target ``name``'s accuracy on (x, y)."""
    return target_accuracy(targets[name], x, y)


@register_section("steps_sweep")
def steps_sweep_section(ctx: AttackContext) -> dict:
    """``sweeps.steps``: PGD accuracy at each ``attack.sweep_steps`` K (one run of the largest K)."""
    c = ctx.cfg
    xs, ys = _sweep_samples(ctx)
    rows = steps_sweep(ctx.est, xs, ys, c.epsilon, c.step_size, c.sweep_steps, random_start=c.random_start,
                       seed=ctx.seed, batch_size=ctx.batch_size, domain=ctx.domain) if c.sweep_steps else []
    return {"sweeps": {"steps": rows, "samples": len(xs)}}
