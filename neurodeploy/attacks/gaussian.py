"""Gaussian-noise baseline: a random, non-adversarial perturbation of the attacks' size.

A model that loses accuracy under an adversarial perturbation but not under random noise of the
same L∞ size is hurt by the direction the attack found, not by the size of the change. HIRE-SNN
(Kundu et al., ICCV 2021) contrasts crafted noise with Gaussian noise the same way:

    x̂ = clip_[0,1]( x + clip_[−ε,ε]( σ · n ) ),   n ~ N(0, I),   σ = ε by default

Needs nothing of the estimator: it never looks at the model.
"""
from __future__ import annotations

import torch

from .base import Attack, register_attack
from .estimators import accuracy
from .sections import AttackContext, register_section


@register_attack
class GaussianNoise(Attack):
    """``GaussianNoise(epsilon, sigma=None, seed=0).generate(est, x, y)``; σ defaults to ε."""

    needs = ()
    name = "gaussian"

    def __init__(self, epsilon: float = 8 / 255, sigma: float | None = None, seed: int = 0, *,
                 batch_size: int = 256, progress: bool = False) -> None:
        super().__init__(epsilon, seed=seed, batch_size=batch_size, progress=progress)
        self.sigma = float(epsilon if sigma is None else sigma)

    def _generate_batch(self, estimator: object, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return x + torch.clamp(self.sigma * noise, -self.epsilon, self.epsilon)


@register_section("gaussian")
def gaussian_section(ctx: AttackContext) -> dict:
    """``source.gaussian``: accuracy under Gaussian noise σ = ε, clipped to the ε-ball."""
    eps = ctx.cfg.epsilon
    x_g = ctx.attack(GaussianNoise(eps, seed=ctx.seed, batch_size=ctx.batch_size)).generate(ctx.est, ctx.x, ctx.y)
    acc = accuracy(ctx.est, x_g, ctx.y, ctx.batch_size)
    return {"source": {"gaussian": {"epsilon": eps, "sigma": eps, "accuracy": acc}}}
