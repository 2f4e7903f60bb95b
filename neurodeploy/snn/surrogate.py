"""Surrogate gradients for the spike function, as small strategy objects.

Forward: Heaviside(z) with z = u / v_th - 1. Backward: a smooth stand-in for dH/dz.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..registry import Registry


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, kind: int, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.kind, ctx.scale = kind, scale
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        if ctx.kind == 0:  # linear (triangle)
            d = ctx.scale * torch.clamp(1.0 - z.abs(), min=0.0)
        else:  # atan
            a = ctx.scale
            d = (a / 2) / (1 + (math.pi / 2 * a * z) ** 2)
        return grad * d, None, None


@dataclass(frozen=True)
class LinearSurrogate:
    """HIRE-SNN eq. 5 / DIET-SNN: dO/dz = γ · max(0, 1 − |z|), γ = 0.3."""

    gamma: float = 0.3

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(z, 0, self.gamma)


@dataclass(frozen=True)
class ATanSurrogate:
    """Fang et al. (SEW-ResNet): dO/dz = (α/2) / (1 + (π/2 · α · z)²), α = 2."""

    alpha: float = 2.0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(z, 1, self.alpha)


#: Surrogates by recipe name (``model.surrogate``); each class's default is the paper's scale.
SURROGATES: Registry[type] = Registry("surrogate")
SURROGATES.add("linear", LinearSurrogate)
SURROGATES.add("atan", ATanSurrogate)


def make_surrogate(name: str, scale: float | None = None) -> LinearSurrogate | ATanSurrogate:
    """Surrogate by recipe name (``SURROGATES``: 'linear' | 'atan'); ``scale`` is γ or α (default:
    the class's, γ = 0.3 / α = 2)."""
    cls = SURROGATES.get(name)
    return cls() if scale is None else cls(scale)
