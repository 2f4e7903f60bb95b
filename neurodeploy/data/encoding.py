"""Input codings: how an image batch becomes a sequence of T inputs ``[T, B, ...]``.

- direct: the analog image at every time step (HIRE-SNN's direct input coding);
- rate: Bernoulli — one spike per pixel and step with probability p = clip(x, 0, 1),
  s[t] ~ Bernoulli(p), so E[s[t]] = p;
- poisson: Poisson counts — s[t] ~ Poisson(λ = max(x, 0)) spikes per pixel and step (a Poisson
  process of rate x per step; several spikes per step possible), E[s[t]] = λ;
- events: the input already is a sequence ``[B, T, C, H, W]`` of event frames.

The stochastic codings' backward pass is the identity (the derivative of their expectation), so
attacks and HIRE-SNN's crafted noise get input gradients.
"""
from __future__ import annotations

import torch

ENCODINGS = ("direct", "rate", "poisson", "events")


class _StraightThrough(torch.autograd.Function):
    """Forward: a sample; backward: the identity (d E[sample] / dx = 1)."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sample

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class _BernoulliST(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return (noise < p).to(p.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def encode(x: torch.Tensor, timesteps: int, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return the input sequence ``[T, B, ...]`` for an input batch ``x``."""
    if kind == "direct":
        return x.unsqueeze(0).expand(timesteps, *x.shape)
    if kind == "rate":
        p = x.clamp(0.0, 1.0).unsqueeze(0).expand(timesteps, *x.shape)
        noise = torch.rand(p.shape, generator=generator, device=x.device, dtype=x.dtype) if generator is not None \
            else torch.rand_like(p)
        return _BernoulliST.apply(p, noise)
    if kind == "poisson":
        lam = x.clamp(min=0.0).unsqueeze(0).expand(timesteps, *x.shape)
        with torch.no_grad():
            if generator is not None:
                sample = torch.poisson(lam.detach().cpu().contiguous(), generator=generator).to(x.device)
            else:
                sample = torch.poisson(lam.detach().contiguous())
        return _StraightThrough.apply(lam, sample)
    if kind == "events":
        if x.dim() < 3 or x.shape[1] != timesteps:
            raise ValueError(f"event input must be [B, T={timesteps}, ...], got {tuple(x.shape)}")
        return x.transpose(0, 1)
    raise ValueError(f"unknown encoding {kind!r}; choose one of {', '.join(ENCODINGS)}")
