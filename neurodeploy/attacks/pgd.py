"""PGD — Projected Gradient Descent (L∞).

Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018; with HIRE-SNN's settings by default (Kundu et al. ICCV 2021: ε = 8/255,
α = 0.01, K = 7):

    x̂⁰   = x                     (or x + U(−ε, ε)ⁿ with ``random_start``)
    x̂ᵏ   = Proj_{B∞(x, ε) ∩ [0,1]ⁿ}( x̂ᵏ⁻¹ + α · sign(∇ₓ L(f(x̂ᵏ⁻¹), y)) ),   k = 1..K

Needs an estimator that gives gradients (:class:`LossGradientsMixin`).
"""
from __future__ import annotations

from typing import Iterable

import torch
from tqdm.auto import tqdm

from .base import Attack, register_attack
from .estimators import LossGradientsMixin, accuracy
from .sections import AttackContext, register_section


@register_attack
class PGD(Attack):
    """Iterative L∞ attack: ``PGD(epsilon, step_size, steps, random_start, seed).generate(est, x, y)``."""

    needs = (LossGradientsMixin,)
    name = "pgd"

    def __init__(self, epsilon: float = 8 / 255, step_size: float = 0.01, steps: int = 7,
                 random_start: bool = False, seed: int = 0, *, batch_size: int = 256,
                 progress: bool = False) -> None:
        super().__init__(epsilon, seed=seed, batch_size=batch_size, progress=progress)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.step_size = float(step_size)
        self.steps = int(steps)
        self.random_start = bool(random_start)

    def _start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.random_start:
            return x.clone()
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1
        return self.project(x + self.epsilon * noise.to(x.device), x)

    def _step(self, estimator: LossGradientsMixin, x_adv: torch.Tensor, x: torch.Tensor,
              y: torch.Tensor) -> torch.Tensor:
        grad = estimator.loss_gradient(x_adv, y)
        return self.project(x_adv + self.step_size * grad.sign(), x)

    def _generate_batch(self, estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        x_adv = self._start(x, gen)
        for _ in range(self.steps):
            x_adv = self._step(estimator, x_adv, x, y)
        return x_adv

    def generate_path(self, estimator: object, x: torch.Tensor, y: torch.Tensor,
                      record: Iterable[int], batch_size: int | None = None) -> dict[int, torch.Tensor]:
        """The iterates x̂ᵏ for every k in ``record`` from one run of K = max(record) (``steps`` is not used).

        PGD-k is the k-th iterate of PGD-K with the same α and start, so a sweep over K costs one
        run of the largest K (plus nothing).
        """
        self.check(estimator)
        ks = sorted({int(k) for k in record})
        if not ks or ks[0] < 0:
            raise ValueError(f"record must hold step counts >= 0, got {ks}")
        x, y = x.detach().float(), y.detach().long()
        bs = batch_size or self.batch_size
        gen = torch.Generator().manual_seed(self.seed)
        out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
        for i in tqdm(range(0, len(x), bs), desc=f"{self.name}-path", disable=not self.progress, leave=False):
            xb, yb = x[i:i + bs], y[i:i + bs]
            x_adv = self._start(xb, gen)
            for k in range(ks[-1] + 1):
                if k > 0:
                    x_adv = self._step(estimator, x_adv, xb, yb)
                if k in out:
                    out[k].append(self.finish(x_adv, xb).detach())
        return {k: torch.cat(v) for k, v in out.items()}

    def __repr__(self) -> str:
        return (f"PGD(epsilon={self.epsilon:.4g}, step_size={self.step_size:.4g}, steps={self.steps}, "
                f"random_start={self.random_start})")


def pgd_images(ctx: AttackContext, estimator: LossGradientsMixin) -> torch.Tensor:
    """PGD(ε, α, K) images of the attacked samples with the recipe's settings, crafted on ``estimator``."""
    c = ctx.cfg
    return ctx.attack(PGD(c.epsilon, c.step_size, c.steps, c.random_start, ctx.seed,
                          batch_size=ctx.batch_size)).generate(estimator, ctx.x, ctx.y)


def pgd_settings(ctx: AttackContext) -> dict:
    """The PGD settings every PGD entry of the report records."""
    c = ctx.cfg
    return {"epsilon": c.epsilon, "step_size": c.step_size, "steps": c.steps}


def source_pgd(ctx: AttackContext) -> torch.Tensor:
    """The source's white-box PGD images (crafted once per run; transfer and query reuse them)."""
    return ctx.memo("pgd", lambda: pgd_images(ctx, ctx.est))


@register_section("pgd")
def pgd_section(ctx: AttackContext) -> dict:
    """``source.pgd``: white-box PGD-K accuracy through the surrogate gradient."""
    acc = accuracy(ctx.est, source_pgd(ctx), ctx.y, ctx.batch_size)
    return {"source": {"pgd": {**pgd_settings(ctx), "random_start": ctx.cfg.random_start, "accuracy": acc}}}
