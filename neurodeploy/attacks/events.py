"""Event data attacked in its own units: a budget of whole events inserted or deleted per sample.

Event frames hold integer counts (events per pixel, polarity and time bin; :class:`.base.InputDomain`
with ``integer``): an event camera cannot emit 0.05 events, so the threat model counts events. On
binary frames (event-digits) an L∞ ball of one event per entry already allows any frame, so the
budget that means something is the ℓ1 count of changed events,

    ‖x' − x‖₁ ≤ k,  x' integer,  lo ≤ x' ≤ hi,  ‖x' − x‖∞ ≤ ε  (ε in events; 1 for binary frames)

attacked greedily along the input gradient in the manner of JSMA (Papernot et al., EuroS&P 2016)
and of the event-based attacks of Marchisio et al. (IJCNN 2021, "DVS-Attacks"): every step takes
the gradient g = ∇ₓ CE at the current frames, scores inserting one event at an entry by g and
deleting one by −g (where the bounds allow), and applies the ⌈k/steps⌉ best-scoring changes with a
positive score; a sample stops once misclassified (early exit). The gradient comes from any
estimator of :mod:`.gradients`. Robust accuracy under the budget = samples no estimator broke
(section ``event_budget``, the ensemble's per-sample worst case over ``flip@<estimator>`` members).
"""
from __future__ import annotations

import math

import torch

from .base import Attack
from .estimators import LossGradientsMixin


class EventBudgetAttack(Attack):
    """``EventBudgetAttack(budget, epsilon=1, steps=0).generate(est, x, y)``: at most ``budget``
    events changed per sample (ℓ1), at most ⌊ε⌋ per entry; ``steps`` = 0: min(budget, 16) steps."""

    needs = (LossGradientsMixin,)
    name = "event_budget"

    def __init__(self, budget: int, epsilon: float = 1.0, steps: int = 0, *, batch_size: int = 256,
                 progress: bool = False) -> None:
        super().__init__(epsilon, seed=0, batch_size=batch_size, progress=progress)
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.budget = int(budget)
        self.steps = int(steps) or min(max(self.budget, 1), 16)

    def _generate_batch(self, estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        dom, eps = self.domain, float(math.floor(self.epsilon + 1e-9))
        per_step = math.ceil(self.budget / self.steps) if self.budget else 0
        xa = x.clone()
        used = torch.zeros(len(x), dtype=torch.long)
        act = torch.arange(len(x))
        for _ in range(self.steps + 1):
            if len(act) == 0 or per_step == 0:
                break
            logits, _, g = estimator.loss_and_gradient(xa[act], y[act])  # type: ignore[attr-defined]
            keep = (logits.argmax(1) == y[act]) & (used[act] < self.budget)
            act, g = act[keep], g[keep]
            if len(act) == 0:
                break
            cur, orig = xa[act].flatten(1), x[act].flatten(1)
            g = g.flatten(1)
            up = torch.where((cur + 1 <= dom.hi) & (cur + 1 - orig <= eps), g, torch.full_like(g, -math.inf))
            down = torch.where((cur - 1 >= dom.lo) & (orig - (cur - 1) <= eps), -g, torch.full_like(g, -math.inf))
            score, sign = torch.maximum(up, down), torch.where(up >= down, 1.0, -1.0)
            m = min(per_step, cur.shape[1])
            top, idx = score.topk(m, dim=1)
            room = (self.budget - used[act]).clamp(max=m)
            take = (top > 0) & (torch.arange(m)[None, :] < room[:, None])
            step = torch.zeros_like(cur)
            step.scatter_(1, idx, sign.gather(1, idx) * take.to(cur.dtype))
            xa[act] = (cur + step).view_as(xa[act])
            used[act] += take.sum(1)
            act = act[take.any(1)]  # nothing left to gain: stop
        return xa
