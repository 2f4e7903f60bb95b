"""Random sampling in the ε-ball: the query-only sanity baseline of the obfuscation checklist.

Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018, §3.1:
if random points in the ε-ball find adversarial examples that a gradient attack does not, the
gradients are masked. We sample the vertices of the L∞ ball (the strongest random points):

    x̂ⱼ = clip_[0,1]( x + ε · sⱼ ),   sⱼ ~ U{−1, +1}ⁿ,   j = 1..n_samples

(clipped to the input domain and rounded to whole events for event data, :class:`.base.InputDomain`)

and keep, per sample, the first x̂ⱼ that is misclassified (else the one with the lowest margin
f_y − max_{k≠y} f_k). Needs queries only (:class:`ClassifierMixin`): n_samples per input.
"""
from __future__ import annotations

import torch

from .base import Attack, register_attack
from .estimators import ClassifierMixin, accuracy
from .sections import AttackContext, register_section


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f_y − max_{k≠y} f_k per sample (negative = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return true - other.max(1).values


@register_attack
class RandomSampling(Attack):
    """``RandomSampling(epsilon, n_samples=20, seed=0).generate(est, x, y)`` (queries only)."""

    needs = (ClassifierMixin,)
    name = "random"

    def __init__(self, epsilon: float = 8 / 255, n_samples: int = 20, seed: int = 0, *,
                 batch_size: int = 256, progress: bool = False) -> None:
        super().__init__(epsilon, seed=seed, batch_size=batch_size, progress=progress)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.n_samples = int(n_samples)

    def _generate_batch(self, estimator: ClassifierMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        best = x.clone()
        best_margin = torch.full((len(x),), float("inf"))
        for _ in range(self.n_samples):
            active = best_margin >= 0
            if not active.any():
                break
            sign = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
            cand = self.finish(x + self.epsilon * sign, x)
            m = margin(estimator.predict(cand[active]), y[active]).cpu()
            idx = active.nonzero().squeeze(1)
            better = m < best_margin[idx]
            best[idx[better]] = cand[idx[better]]
            best_margin[idx[better]] = m[better]
        return best


@register_section("random")
def random_section(ctx: AttackContext) -> dict:
    """``source.random``: accuracy under ``attack.random_samples`` random vertices of the ε-ball."""
    c = ctx.cfg
    rnd = ctx.attack(RandomSampling(c.epsilon, c.random_samples, ctx.seed, batch_size=ctx.batch_size))
    x_r = ctx.memo("random", lambda: rnd.generate(ctx.est, ctx.x, ctx.y))
    return {"source": {"random": {"epsilon": c.epsilon, "samples_per_input": c.random_samples,
                                  "accuracy": accuracy(ctx.est, x_r, ctx.y, ctx.batch_size)}}}
