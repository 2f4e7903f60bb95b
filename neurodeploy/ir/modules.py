"""Torch modules for NIR node types that the model zoo does not use itself.

They are what :mod:`neurodeploy.ir.from_nir` builds for graphs written by other frameworks
(sinabs, snnTorch, Norse, hand-made). Every module follows the network's time scheme: stateless
ones take ``[N, ...]`` (N = T·B or B), stateful ones set ``sequence_aware = True`` and take the
whole sequence ``[T, B, ...]``. Discrete-time dynamics are forward-Euler steps of NIR's
continuous-time equations with step dt (see :mod:`neurodeploy.ir.from_nir` for the mapping).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..snn.neuron import NeuronSpec, SpikingNeuron
from ..snn.surrogate import LinearSurrogate


class SumPool2d(nn.Module):
    """Sum pooling (NIR SumPool2d, sinabs SumPool2d): average pooling times the window size."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        area = (k[0] * k[1]) if isinstance(k, tuple) else k * k
        return F.avg_pool2d(x, k, self.stride, self.padding) * area


class Scale(nn.Module):
    """NIR Scale: elementwise product ``y = x ⊙ s`` with ``s`` shaped like one sample."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Heaviside(nn.Module):
    """NIR Threshold: stateless spike ``z = 1 if x > θ else 0``; the backward pass uses a surrogate of x − θ."""

    def __init__(self, threshold: torch.Tensor, surrogate: Callable | None = None) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32))
        self.surrogate = surrogate or LinearSurrogate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.surrogate(x - self.threshold)


class LeakyIntegrator(nn.Module):
    """NIR LI (λ < 1) or I (λ = 1), non-spiking: ``v[t] = λ·v[t−1] + g·x[t]``, output v.

    Forward Euler of τ·dv/dt = −v + r·I gives λ = 1 − dt/τ and g = r·dt/τ; of dv/dt = r·I,
    λ = 1 and g = r·dt. As the last layer it is the readout: the network sums v over T.
    """

    sequence_aware = True

    def __init__(self, leak: float, gain: torch.Tensor | float) -> None:
        super().__init__()
        self.register_buffer("leak", torch.tensor(float(leak)))
        self.register_buffer("gain", torch.as_tensor(gain, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, ...]
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            v = self.leak * v + self.gain * x[t]
            out.append(v)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"leak={float(self.leak):.4g}"


class CubaSpikingNeuron(SpikingNeuron):
    """NIR CubaLIF: a synaptic current filter in front of our spiking neuron.

    ``i[t] = α·i[t−1] + g_s·x[t]`` (α = 1 − dt/τ_syn, g_s = w_in·dt/τ_syn), then the neuron of
    HIRE-SNN eq. 1–2 on ``i`` (membrane leak λ = 1 − dt/τ_mem; its input gain r·dt/τ_mem is folded
    into the threshold). It is a :class:`SpikingNeuron`, so it counts as a neuron layer everywhere;
    a target that lowers neurons must handle (or refuse) its synaptic filter. The synaptic current
    starts from zero at every forward call (it is not carried across HIRE-SNN periods).
    """

    def __init__(self, spec: NeuronSpec, syn_leak: float, syn_gain: torch.Tensor | float,
                 surrogate: Callable | None = None) -> None:
        super().__init__(spec, surrogate)
        self.register_buffer("syn_leak", torch.tensor(float(syn_leak)))
        self.register_buffer("syn_gain", torch.as_tensor(syn_gain, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, ...]
        i = torch.zeros_like(x[0])
        cur = []
        for t in range(x.shape[0]):
            i = self.syn_leak * i + self.syn_gain * x[t]
            cur.append(i)
        return super().forward(torch.stack(cur))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", syn_leak={float(self.syn_leak):.4g}"
