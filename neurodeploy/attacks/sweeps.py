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

from .estimators import ClassifierMixin, LossGradientsMixin, accuracy
from .pgd import PGD

log = logging.getLogger(__name__)

DEFAULT_EPSILONS: tuple[float, ...] = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255, 1.0)
DEFAULT_STEPS: tuple[int, ...] = (0, 1, 2, 3, 5, 7, 10, 20, 40)

Evaluator = Callable[[torch.Tensor], float]


def sweep_step_size(epsilon: float, step_size: float, base_epsilon: float) -> float:
    """α(ε) = α · max(1, ε / ε₀)."""
    return step_size * max(1.0, epsilon / base_epsilon) if base_epsilon > 0 else step_size


def epsilon_sweep(estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                  epsilons: Sequence[float] = DEFAULT_EPSILONS, *, step_size: float = 0.01, steps: int = 7,
                  base_epsilon: float = 8 / 255, random_start: bool = False, seed: int = 0, batch_size: int = 256,
                  others: Mapping[str, Evaluator] | None = None, progress: bool = False) -> list[dict]:
    """PGD-K accuracy at each ε: ``[{epsilon, step_size, steps, accuracy, others: {name: acc}}]``.

    ``base_epsilon`` is ε₀ of the step-size rule α(ε) = α · max(1, ε / ε₀).

    ``others`` maps a name (a deployment target) to a function giving its accuracy on the
    source's adversarial images (transfer), so source and targets share one curve per ε.
    """
    rows = []
    for eps in tqdm(list(epsilons), desc="eps sweep", disable=not progress, leave=False):
        alpha = sweep_step_size(eps, step_size, base_epsilon)
        pgd = PGD(eps, alpha, steps, random_start, seed, batch_size=batch_size)
        x_adv = x if eps == 0 else pgd.generate(estimator, x, y)
        row = {"epsilon": float(eps), "step_size": alpha, "steps": steps,
               "accuracy": accuracy(estimator, x_adv, y, batch_size)}  # type: ignore[arg-type]
        if others:
            row["others"] = {name: float(fn(x_adv)) for name, fn in others.items()}
        log.debug("eps sweep %s", row)
        rows.append(row)
    return rows


def steps_sweep(estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor, epsilon: float = 8 / 255,
                step_size: float = 0.01, steps: Sequence[int] = DEFAULT_STEPS, *, random_start: bool = False,
                seed: int = 0, batch_size: int = 256, progress: bool = False) -> list[dict]:
    """PGD accuracy at each K from one run of K = max(steps): ``[{steps, accuracy, epsilon, step_size}]``."""
    pgd = PGD(epsilon, step_size, max(steps), random_start, seed, batch_size=batch_size, progress=progress)
    path = pgd.generate_path(estimator, x, y, steps)
    est: ClassifierMixin = estimator  # type: ignore[assignment]
    return [{"steps": k, "accuracy": accuracy(est, path[k], y, batch_size), "epsilon": float(epsilon),
             "step_size": float(step_size)} for k in sorted(path)]
