"""The claims' attacks on event data, in whole events: a budget of events inserted or deleted.

On binary event frames (event-digits) an L∞ ball of ε events per entry is either empty (ε < 1
changes nothing once the input is rounded to whole events) or the whole frame space (ε = 1), so
FGSM/PGD at an L∞ ε say nothing there; a float perturbation smaller than one event vanishes
when a chip reads events (issue 19's finding). The threat model that means something is the ℓ1
count of changed events (:mod:`neurodeploy.attacks.events`, the greedy gradient attack in the
manner of JSMA, Papernot et al. EuroS&P 2016). A study measures HIRE-SNN's quantities with it:

- ``fgsm``: the single-step budget attack, all ``k`` changes chosen from one input gradient (the
  one-step analogue of FGSM: one gradient, the whole budget spent);
- ``pgd``: the iterative budget attack, ⌈k / K⌉ changes per step over K = min(k, 16) steps
  (the analogue of PGD: the gradient re-taken after every step);
- ``blackbox_fgsm`` / ``blackbox_pgd``: both crafted on the surrogate (same recipe, the study's
  next seed), run on the victim;
- ``eps=<k>``: the iterative attack at budget k (the ε sweep of Fig. 8, ε in events);
- ``k=<K>``: the iterative attack at the recipe's budget with K steps (the K sweep of Fig. 8);
- per deployed target: the source's images run through it (transfer), as on images.

k is the recipe's ``attack.event_budget``; the gradient is the training surrogate's (HIRE-SNN
attacks through the surrogate it trains with). Every image holds whole events in the dataset's
range, so what the source is attacked with is what the chip reads.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..attacks.base import InputDomain
from ..attacks.estimators import SourceEstimator, accuracy
from ..attacks.events import EventBudgetAttack
from ..attacks.sections import subset, subset_index, target_accuracies, target_accuracy
from ..recipe import AttackConfig

#: Event budgets of the ε sweep (events per sample) and step counts of the K sweep.
BUDGETS: tuple[int, ...] = (0, 2, 4, 8, 16, 32)
STEPS: tuple[int, ...] = (1, 2, 4, 8, 16)


def budget_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: int, steps: int,
                  domain: InputDomain, n_classes: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """Frames with at most ``budget`` events changed per sample (one per entry), crafted on ``model``
    by :class:`~neurodeploy.attacks.events.EventBudgetAttack` in ``steps`` steps."""
    if budget <= 0:
        return x.clone()
    att = EventBudgetAttack(budget, epsilon=1.0, steps=steps, batch_size=batch_size)
    att.domain = domain
    return att.generate(SourceEstimator(model, n_classes), x, y)


def event_metrics(model: nn.Module, surrogate: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                  cfg: AttackConfig, domain: InputDomain, seed: int, targets: Mapping[str, Callable] = {},
                  sweeps: bool = False, budgets: Sequence[int] = BUDGETS, steps: Sequence[int] = STEPS
                  ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """``(metrics, deployed)`` of one run on event data (see the module docstring): ``x``, ``y`` are
    the test set; the run attacks its seeded subset of ``attack.max_samples``, the sweeps the first
    ``attack.sweep_samples`` of those, each target the ``attack.target_samples`` subset."""
    k, bs = int(cfg.event_budget), cfg.batch_size
    if k <= 0:
        raise ValueError("event data needs attack.event_budget > 0 (events changed per sample)")
    xa, ya = subset(x.float(), y.long(), cfg.max_samples, seed)
    iterative = min(k, 16)
    est = SourceEstimator(model, None)
    on = lambda xs: accuracy(est, xs, ya, bs)  # noqa: E731
    x_f = budget_images(model, xa, ya, k, 1, domain, batch_size=bs)
    x_p = budget_images(model, xa, ya, k, iterative, domain, batch_size=bs)
    metrics = {"clean": on(xa), "fgsm": on(x_f), "pgd": on(x_p)}
    if surrogate is not None:
        metrics["blackbox_fgsm"] = on(budget_images(surrogate, xa, ya, k, 1, domain, batch_size=bs))
        metrics["blackbox_pgd"] = on(budget_images(surrogate, xa, ya, k, iterative, domain, batch_size=bs))
    it = subset_index(len(xa), cfg.target_samples or None, seed)
    deployed: dict[str, dict[str, Any]] = {}
    for name, fn in targets.items():
        clean, fgsm, pgd = target_accuracies(fn, [xa[it], x_f[it], x_p[it]], ya[it])  # one target run
        deployed[name] = {"clean": clean, "fgsm": fgsm, "pgd": pgd, "samples": len(it)}
    if sweeps:  # on the first sweep_samples of the attacked samples; points equal to fgsm/pgd reuse their images
        i_s = subset_index(len(xa), cfg.sweep_samples or None, seed)
        xs, ys = xa[i_s], ya[i_s]
        its = subset_index(len(xs), cfg.target_samples or None, seed)
        made = {(k, iterative): x_p[i_s], (k, 1): x_f[i_s]}  # the attack is per sample, so a subset's images

        def images(b: int, n: int) -> torch.Tensor:
            if (b, n) not in made:
                made[(b, n)] = budget_images(model, xs, ys, b, n, domain, batch_size=bs)
            return made[(b, n)]

        for b in budgets:
            xb = images(b, min(b, 16) or 1)
            metrics[f"eps={b:g}"] = accuracy(est, xb, ys, bs)
            for name, fn in targets.items():
                deployed[name][f"eps={b:g}"] = target_accuracy(fn, xb[its], ys[its])
        for n in steps:
            metrics[f"k={n}"] = accuracy(est, images(k, n), ys, bs)
    return metrics, deployed


__all__ = ["BUDGETS", "STEPS", "budget_images", "event_metrics"]
