"""APGD — Auto-PGD (L∞) with the cross-entropy or the DLR loss.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, Algorithm 1 (written from the paper; the reference code is
fra31/auto-attack ``autopgd_base.py``; torchattacks' APGD is a test-only comparison):

    x⁰ = P(x + ε·t/‖t‖∞), t ~ U(−1, 1)ⁿ;  η⁰ = 2ε
    z^{k+1} = P(x^k + η^k · sign(∇f(x^k)))
    x^{k+1} = P(x^k + α(z^{k+1} − x^k) + (1 − α)(x^k − x^{k−1})),  α = 0.75 (α = 1 at k = 0)

with P the projection onto B∞(x, ε) ∩ the input domain. Checkpoints w_j = ⌈p_j·N⌉,
p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06). At a checkpoint the step is
halved and the iterate restarted from the best point so far, per sample, if

 (1) the loss rose in fewer than ρ = 0.75 of the steps since the last checkpoint, or
 (2) the step was not halved at the last checkpoint and the best loss did not improve since.

DLR loss (their eq. 6), π the logits sorted in decreasing order:

    DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)

scale- and shift-invariant in the logits, which matters for SNNs whose logits are spike counts.
A sample is returned at the first iterate that misclassifies it (it is no longer updated: the
early exit), else at the iterate of highest loss. Needs gradients (:class:`LossGradientsMixin`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import AttackError
from .base import Attack, register_attack
from .estimators import LossGradientsMixin


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DLR per sample (Croce & Hein 2020, eq. 6); needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise AttackError(f"the DLR loss needs at least 3 classes, got {logits.shape[1]}")
    srt = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return -(z_y - other.max(1).values) / (srt[:, 0] - srt[:, 2] + 1e-12)


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


LOSSES = {"ce": ce_loss, "dlr": dlr_loss}


def checkpoints(n_iter: int) -> list[int]:
    """The iterations w_j = ⌈p_j·N⌉ (j ≥ 1) at which APGD may halve its step."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(math.ceil(q * n_iter - 1e-9)) for q in p[1:] if q < 1} - {0})


@register_attack
class APGD(Attack):
    """``APGD(epsilon, steps=100, loss="ce"|"dlr", seed=0).generate(estimator, x, y)``."""

    needs = (LossGradientsMixin,)
    name = "apgd"

    def __init__(self, epsilon: float = 8 / 255, steps: int = 100, loss: str = "ce", seed: int = 0, *,
                 rho: float = 0.75, momentum: float = 0.75, batch_size: int = 256, progress: bool = False) -> None:
        super().__init__(epsilon, seed=seed, batch_size=batch_size, progress=progress)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if loss not in LOSSES:
            raise AttackError(f"unknown APGD loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.steps, self.loss, self.rho, self.momentum = int(steps), loss, float(rho), float(momentum)

    def _generate_batch(self, estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        t = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device) * 2 - 1
        t = t / t.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *([1] * (x.dim() - 1)))
        return self.run_from(estimator, x, y, x + self.epsilon * t)

    def run_from(self, est: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, *,
                 groups: torch.Tensor | None = None, on_rows=None) -> torch.Tensor:
        """Algorithm 1 from the start ``x0`` (projected first); returns one image per row.

        ``groups`` [rows]: the sample each row attacks (rows of several lanes, :mod:`.lanes`): once a
        row breaks its sample, every row of that sample stops (the early exit across lanes).
        ``on_rows(rows)`` is called with the row indices before each gradient call (the lane
        estimator's :meth:`~.lanes.LaneEstimator.select`)."""
        loss_fn, eps, n_iter = LOSSES[self.loss], self.epsilon, self.steps
        proj = lambda z: self.project(z, x, eps)  # noqa: E731
        view = (-1,) + (1,) * (x.dim() - 1)
        out = proj(x0)
        x_k = out.clone()
        if on_rows is not None:
            on_rows(None)
        logits, f_k, g_k = est.loss_and_gradient(x_k, y, loss_fn)  # type: ignore[attr-defined]
        broken = logits.argmax(1) != y
        stop = broken.clone()  # rows no longer updated: broken, or another row of their sample broke it
        if groups is not None:
            stop = _spread(stop, groups)
        best_x, best_f, best_g = x_k.clone(), f_k.clone(), g_k.clone()
        eta = torch.full((len(x),), 2 * eps, dtype=x.dtype)
        checks = set(checkpoints(n_iter))
        last_w, last_best = 0, best_f.clone()
        halved_last = torch.zeros(len(x), dtype=torch.bool)
        rises = torch.zeros(len(x))
        x_prev = x_k.clone()
        for k in range(n_iter):
            a = torch.ones(len(x)) if k == 0 else torch.full((len(x),), self.momentum)
            act = (~stop).nonzero().squeeze(1)
            if len(act) == 0:
                break
            xa, xp = x_k[act], x_prev[act]
            z = self.project(xa + eta[act].view(view) * g_k[act].sign(), x[act], eps)
            aa = a[act].view(view)
            x_new = self.project(xa + aa * (z - xa) + (1 - aa) * (xa - xp), x[act], eps)
            x_prev[act] = xa
            x_k[act] = x_new
            if on_rows is not None:
                on_rows(act)
            logits, f_new, g_new = est.loss_and_gradient(x_new, y[act], loss_fn)  # type: ignore[attr-defined]
            rises[act] += (f_new > f_k[act]).float()
            f_k[act], g_k[act] = f_new, g_new
            now = logits.argmax(1) != y[act]
            out[act[now]] = x_new[now]
            broken[act[now]] = True
            stop[act[now]] = True
            if groups is not None and bool(now.any()):
                stop = _spread(stop, groups)
            up = f_new > best_f[act]
            best_x[act[up]], best_f[act[up]], best_g[act[up]] = x_new[up], f_new[up], g_new[up]
            if k + 1 in checks:
                span = k + 1 - last_w
                cond1 = rises <= self.rho * span
                cond2 = (~halved_last) & (best_f <= last_best)
                halve = (cond1 | cond2) & ~stop
                eta[halve] /= 2
                x_k[halve], g_k[halve], f_k[halve] = best_x[halve], best_g[halve], best_f[halve]
                x_prev[halve] = best_x[halve]
                halved_last, last_best, last_w = halve, best_f.clone(), k + 1
                rises.zero_()
        out[~broken] = best_x[~broken]
        return out


def _spread(stop: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Rows whose sample (``groups``) has any stopped row."""
    hit = torch.zeros(int(groups.max()) + 1 if len(groups) else 0, dtype=torch.bool)
    hit[groups[stop]] = True
    return hit[groups]

    def __repr__(self) -> str:
        return f"APGD(epsilon={self.epsilon:.4g}, steps={self.steps}, loss={self.loss})"
