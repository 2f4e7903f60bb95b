"""Gradient estimators of a spiking network, swapped in at attack time (the forward pass unchanged).

A white-box attack on an SNN follows whichever gradient it is given, and the training surrogate
is one choice among many: a surrogate that vanishes where the attack needs it starves the attack
and overstates robustness (Athalye et al. ICML 2018; Bu/Liu et al. on surrogate choice; arXiv
2512.22522, "Towards Reliable Evaluation of Adversarial Robustness for SNNs"). Each estimator here
is a context manager ``variant(model)`` given to :class:`~.estimators.SourceEstimator` as its
``gradient_variant``: it is entered around the gradient computations only, so predictions, and
with them the per-sample verdict "broken or not", always come from the model as it is.

- ``train``: the surrogate the model was trained with (no change);
- ``atan0.5`` / ``atan2`` / ``atan8``: ATan, dO/dz = (α/2) / (1 + (π/2·α·z)²) (Fang et al.;
  spikingjelly's default α = 2), wide to sharp;
- ``tri2``: a unit-area triangle of half-width w = 2, dO/dz = (1/w)·max(0, 1 − |z|/w) (wider than
  HIRE-SNN's w = 1: gradient also from neurons far from threshold);
- ``sig1``: the sigmoid derivative k·σ(kz)(1 − σ(kz)) with k = 1 (very wide, never zero);
- ``rect0.5``: a rectangle (1/(2w))·1[|z| < w], w = 0.5 (a narrow straight-through estimator);
- ``adaptive``: in the spirit of ASSG (arXiv 2512.22522, adaptive sharpness): the triangle's
  half-width is set per sample, per layer and per time step from that sample's membrane
  distribution — w = the q-quantile (q = 0.5) of |z| over the layer's neurons, floored at 0.05 —
  so a fixed fraction q of the neurons passes gradient whatever the spread of the potentials
  (the published method adapts with a learned/schedule rule; this is the plain quantile rule);
- ``bptr``: backward pass through rates (Ding et al., NeurIPS 2022, SNN-RAT: BPTR): each spiking
  layer's backward is that of its rate r = clip(mean_t(x)/v_th, 0, 1) — the firing rate of an IF
  neuron with reset by subtraction driven by the mean input current — spread evenly over the T
  steps; exact in rate for IF, an approximation for leaky neurons (λ < 1).

Every estimator but ``train`` needs the model's spiking layers to be
:class:`~neurodeploy.snn.neuron.SpikingNeuron` modules (:func:`applicable`). A stochastic input
coding is handled by the estimator's EOT, whatever the variant (:mod:`.estimators`).
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import AttackError
from ..snn.neuron import SpikingNeuron
from ..snn.surrogate import ATanSurrogate

log = logging.getLogger(__name__)

Variant = Callable[[nn.Module], ContextManager]


class _AnySpike(torch.autograd.Function):
    """Forward H(z) (as the model's spike function); backward ``grad · sur.derivative(z)``."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, sur: "ShapeSurrogate") -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.sur = sur
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return grad * ctx.sur.derivative(z), None


@dataclass(frozen=True)
class ShapeSurrogate:
    """A surrogate dO/dz of shape ``triangle`` | ``sigmoid`` | ``rect`` | ``adaptive`` and width ``w``
    (the sigmoid's k = 1/w; ``adaptive``: w is the quantile ``w`` of |z| per sample, see the module)."""

    shape: str
    width: float

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return _AnySpike.apply(z, self)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        w = self.width
        if self.shape == "triangle":
            return torch.clamp(1.0 - z.abs() / w, min=0.0) / w
        if self.shape == "sigmoid":
            s = torch.sigmoid(z / w)
            return s * (1 - s) / w
        if self.shape == "rect":
            return (z.abs() < w).to(z.dtype) / (2 * w)
        if self.shape == "adaptive":
            return adaptive_derivative(z, w)
        raise AttackError(f"unknown surrogate shape {self.shape!r}")


def adaptive_derivative(z: torch.Tensor, q: float = 0.5, floor: float = 0.05) -> torch.Tensor:
    """Unit-area triangle (1/w_b)·max(0, 1 − |z|/w_b) with w_b = max(floor, q-quantile of |z_b|) per
    sample b (the first dimension; one layer at one time step)."""
    a = z.detach().abs().reshape(len(z), -1)
    k = max(1, min(a.shape[1], int(math.ceil(q * a.shape[1]))))
    if a.dtype == torch.float32 and a.device.type == "cpu" and not torch.isnan(a).any():
        # the k-th smallest by numpy's introselect: the same value as torch's kthvalue, ~1.8x faster here
        kth = torch.from_numpy(np.partition(a.numpy(), k - 1, axis=1)[:, k - 1].copy())
    else:
        kth = a.kthvalue(k, dim=1).values
    w = kth.clamp(min=floor).view(-1, *([1] * (z.dim() - 1)))
    return torch.clamp(1.0 - z.abs() / w, min=0.0) / w


def spiking_layers(model: nn.Module) -> list[SpikingNeuron]:
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def applicable(name: str, model: nn.Module) -> bool:
    """Whether the estimator ``name`` changes anything on ``model`` (``train`` always applies)."""
    return name == "train" or bool(spiking_layers(model))


@contextlib.contextmanager
def _swapped(model: nn.Module, surrogate: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    saved = [(m, m.surrogate) for m in spiking_layers(model)]
    for m, _ in saved:
        m.surrogate = surrogate
    try:
        yield
    finally:
        for m, s in saved:
            m.surrogate = s


def _rate_forward(neuron: SpikingNeuron, forward: Callable[[torch.Tensor], torch.Tensor]
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    def rate_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            spikes = forward(x)
        rate = torch.clamp(x.mean(0) / neuron.threshold, 0.0, 1.0)
        return spikes + (rate - rate.detach()).unsqueeze(0)  # the spikes' value, the rate's gradient

    return rate_forward


@contextlib.contextmanager
def _bptr(model: nn.Module) -> Iterator[None]:
    layers = spiking_layers(model)
    for m in layers:
        m.forward = _rate_forward(m, type(m).forward.__get__(m))  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in layers:
            del m.forward


def _swap(make: Callable[[], Callable[[torch.Tensor], torch.Tensor]]) -> Variant:
    return lambda model: _swapped(model, make())


#: The swapped-in surrogates by estimator name (each call makes a fresh one).
SURROGATES_BY_NAME: dict[str, Callable[[], Callable[[torch.Tensor], torch.Tensor]]] = {
    "atan0.5": lambda: ATanSurrogate(0.5),
    "atan2": lambda: ATanSurrogate(2.0),
    "atan8": lambda: ATanSurrogate(8.0),
    "tri2": lambda: ShapeSurrogate("triangle", 2.0),
    "sig1": lambda: ShapeSurrogate("sigmoid", 1.0),
    "rect0.5": lambda: ShapeSurrogate("rect", 0.5),
    "adaptive": lambda: ShapeSurrogate("adaptive", 0.5),
}

#: The gradient estimators by name (``None``: the training surrogate, no variant).
ESTIMATORS: dict[str, Variant | None] = {
    "train": None,
    **{name: _swap(make) for name, make in SURROGATES_BY_NAME.items()},
    "bptr": _bptr,
}


def gradient_variant(name: str) -> Variant | None:
    """The context manager of estimator ``name`` (AttackError naming the choices if unknown)."""
    if name not in ESTIMATORS:
        raise AttackError(f"unknown gradient estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name]
