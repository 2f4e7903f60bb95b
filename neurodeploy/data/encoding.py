"""Input codings: how an image batch becomes a sequence of T inputs ``[T, B, ...]``.

- direct: the analog image at every time step (HIRE-SNN's direct input coding);
- rate: Bernoulli — one spike per pixel and step with probability p = clip(x, 0, 1),
  s[t] ~ Bernoulli(p), so E[s[t]] = p;
- poisson: Poisson counts — s[t] ~ Poisson(λ = max(x, 0)) spikes per pixel and step (a Poisson
  process of rate x per step; several spikes per step possible), E[s[t]] = λ;
- phase: weighted phase coding (Kim et al., "Deep neural networks with weighted spikes",
  Neurocomputing 311, 2018), as Luu et al. 2025 (paper 2) use it through SpikingJelly: the pixel
  as an 8-bit binary fraction, one bit per step, most significant first, repeating with period
  K = 8 (:func:`phase_code`);
- events: the input already is a sequence ``[B, T, C, H, W]`` of event frames.

The stochastic codings' backward pass is the identity (the derivative of their expectation), so
attacks and HIRE-SNN's crafted noise get input gradients.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..registry import Registry

#: The input codings by name (``data.encoding``): ``(x, timesteps, generator) -> [T, B, ...]``.
ENCODINGS: Registry[Callable[[torch.Tensor, int, "torch.Generator | None"], torch.Tensor]] = Registry("encoding")


class _StraightThrough(torch.autograd.Function):
    """Forward: a sample; backward: the identity (d E[sample] / dx = 1)."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sample

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def rate_code(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None,
              time_dim: int = 0) -> torch.Tensor:
    """Rate coding: T Bernoulli spike frames s = 1[u < p], p = clip(x, 0, 1), one uniform draw
    u ~ U[0, 1) per element in the returned layout (``time_dim`` 0: ``[T, B, ...]``; 1: ``[B, T, ...]``),
    dtype and device of ``x`` (the global generator when ``generator`` is None).

    The one rate coder of the package: the source network, the Loihi and Speck inputs, the ONNX
    target and Loihi fine-tuning all draw here. No gradient (the ``rate`` encoding adds one)."""
    p = x.detach().clamp(0.0, 1.0).unsqueeze(time_dim)
    shape = list(p.shape)
    shape[time_dim] = timesteps
    p = p.expand(*shape)
    return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)


@ENCODINGS.register("direct")
def _direct(x: torch.Tensor, timesteps: int, generator: torch.Generator | None) -> torch.Tensor:
    """The analog input at every step (HIRE-SNN's direct coding)."""
    return x.unsqueeze(0).expand(timesteps, *x.shape)


@ENCODINGS.register("rate")
def _rate(x: torch.Tensor, timesteps: int, generator: torch.Generator | None) -> torch.Tensor:
    """Bernoulli rate coding with a straight-through gradient (identity to x, the expectation's)."""
    p = x.clamp(0.0, 1.0).unsqueeze(0).expand(timesteps, *x.shape)
    return _StraightThrough.apply(p, rate_code(x, timesteps, generator))


@ENCODINGS.register("poisson")
def _poisson(x: torch.Tensor, timesteps: int, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson counts of rate max(x, 0) per step, straight-through gradient."""
    lam = x.clamp(min=0.0).unsqueeze(0).expand(timesteps, *x.shape)
    with torch.no_grad():
        if generator is not None:
            sample = torch.poisson(lam.detach().cpu().contiguous(), generator=generator).to(x.device)
        else:
            sample = torch.poisson(lam.detach().contiguous())
    return _StraightThrough.apply(lam, sample)


#: Phases of the phase coding (SpikingJelly ``WeightedPhaseEncoder(K=8)`` in Luu et al.'s code).
PHASE_K = 8


def phase_code(x: torch.Tensor, timesteps: int, k: int = PHASE_K) -> torch.Tensor:
    """Phase coding ``[T, B, ...]`` of images ``x`` in [0, 1]: the spike at step t (0-based) is bit
    φ = (t mod K) + 1 (most significant first) of the K-bit fraction q = ⌊255·x + ½⌋ / 256,

        s[t] = ⌊q · 2^φ⌋ mod 2,   φ = (t mod K) + 1,   so   Σ_{φ=1..K} 2^−φ · s_φ = q.

    Source: Luu et al. 2025's code (luutn2002/grad-obf-snn ``source/encoder.py``) maps the 8-bit
    pixel p ∈ {0..255} to p/256 and feeds SpikingJelly's ``WeightedPhaseEncoder(K=8)``
    (``activation_based/encoding.py``: bit i is ``inputs >= w`` then ``inputs -= w·spike`` with
    w = 2^−(i+1)), calling it T times, so the phase repeats every K steps (T = 10 gives bits
    1..8, 1, 2). The spikes are binary: that encoder does not multiply them by Kim et al.'s
    weight ω(t) = 2^−(1+mod(t−1, K)), and neither does the authors' network. Our images are
    p/255, so p = ⌊255·x + ½⌋ recovers the pixel."""
    p = torch.floor(x.detach().clamp(0.0, 1.0) * 255.0 + 0.5)  # the 8-bit pixel
    q = p.to(torch.int64)  # q / 256 is the fraction; bit φ of it is bit (8 − φ) of p for K = 8
    phases = torch.arange(timesteps, device=x.device) % k + 1  # φ = 1..K, repeating
    shift = (8 - phases).clamp(min=0)  # bits past the 8th are 0 (p has 8 bits)
    view = (timesteps,) + (1,) * x.dim()
    bits = (q.unsqueeze(0) >> shift.view(view)) & 1
    return torch.where((phases <= 8).view(view), bits, torch.zeros_like(bits)).to(x.dtype)


@ENCODINGS.register("phase")
def _phase(x: torch.Tensor, timesteps: int, generator: torch.Generator | None) -> torch.Tensor:
    """Weighted phase coding (:func:`phase_code`), deterministic, straight-through gradient: the
    identity to x at every step, as for the rate coding (the bits' own derivative is zero almost
    everywhere; Luu et al. attack the encoded spikes instead, which our pixel-space attacks do not)."""
    xs = x.clamp(0.0, 1.0).unsqueeze(0).expand(timesteps, *x.shape)
    return _StraightThrough.apply(xs, phase_code(x, timesteps))


@ENCODINGS.register("events")
def _events(x: torch.Tensor, timesteps: int, generator: torch.Generator | None) -> torch.Tensor:
    """Event frames ``[B, T, ...]`` -> ``[T, B, ...]``."""
    if x.dim() < 3 or x.shape[1] != timesteps:
        raise ValueError(f"event input must be [B, T={timesteps}, ...], got {tuple(x.shape)}")
    return x.transpose(0, 1)


def encode(x: torch.Tensor, timesteps: int, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return the input sequence ``[T, B, ...]`` for an input batch ``x`` (``kind`` in ``ENCODINGS``)."""
    return ENCODINGS.get(kind)(x, timesteps, generator)
