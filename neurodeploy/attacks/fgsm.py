"""FGSM — Fast Gradient Sign Method.

Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015:

    x̂ = clip_[0,1]( x + ε · sign(∇ₓ L(f(x), y)) )

One step of size ε along the sign of the input gradient of the cross-entropy loss. For an SNN the
gradient flows through the surrogate over all T steps (HIRE-SNN, Kundu et al. ICCV 2021, §4).
Needs an estimator that gives gradients (:class:`LossGradientsMixin`).
"""
from __future__ import annotations

import torch

from .base import Attack, register_attack
from .estimators import LossGradientsMixin, accuracy
from .sections import AttackContext, register_section


@register_attack
class FGSM(Attack):
    """Single-step L∞ attack: ``FGSM(epsilon).generate(estimator, x, y)``."""

    needs = (LossGradientsMixin,)
    name = "fgsm"

    def __init__(self, epsilon: float = 8 / 255, *, batch_size: int = 256, progress: bool = False) -> None:
        super().__init__(epsilon, seed=0, batch_size=batch_size, progress=progress)

    def _generate_batch(self, estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        grad = estimator.loss_gradient(x, y)
        return x + self.epsilon * grad.sign()


def fgsm_images(ctx: AttackContext, estimator: LossGradientsMixin) -> torch.Tensor:
    """FGSM(ε) images of the attacked samples, crafted on ``estimator``."""
    return ctx.attack(FGSM(ctx.cfg.epsilon, batch_size=ctx.batch_size)).generate(estimator, ctx.x, ctx.y)


def source_fgsm(ctx: AttackContext) -> torch.Tensor:
    """The source's white-box FGSM images (crafted once per run; transfer reuses them)."""
    return ctx.memo("fgsm", lambda: fgsm_images(ctx, ctx.est))


@register_section("fgsm")
def fgsm_section(ctx: AttackContext) -> dict:
    """``source.fgsm``: white-box FGSM accuracy at the recipe's ε."""
    acc = accuracy(ctx.est, source_fgsm(ctx), ctx.y, ctx.batch_size)
    return {"source": {"fgsm": {"epsilon": ctx.cfg.epsilon, "accuracy": acc}}}
