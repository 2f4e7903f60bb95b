"""Input codings: how an image batch becomes a sequence of T inputs.

- direct: the analog image at every time step (HIRE-SNN's direct input coding);
- rate: a Bernoulli spike per pixel and step with probability equal to the pixel value; the
  backward pass is the identity (the expectation of the coding), so attacks get gradients;
- events: the input already is a sequence ``[B, T, C, H, W]`` of event frames.
"""
from __future__ import annotations

import torch

ENCODINGS = ("direct", "rate", "events")


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
    if kind == "events":
        if x.dim() < 3 or x.shape[1] != timesteps:
            raise ValueError(f"event input must be [B, T={timesteps}, ...], got {tuple(x.shape)}")
        return x.transpose(0, 1)
    raise ValueError(f"unknown encoding {kind!r}; choose one of {', '.join(ENCODINGS)}")
