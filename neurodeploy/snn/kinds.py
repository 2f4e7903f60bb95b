"""Neuron kinds beyond HIRE-SNN's neuron: NIR's CubaLIF and the non-spiking LI / I integrators.

They are what :mod:`neurodeploy.ir.from_nir` builds for graphs written by other frameworks. Both
are ``sequence_aware`` (``forward`` takes ``[T, B, ...]``) and have ``step(x, state) -> (y, state)``
so the executor can run them inside a recurrent cycle. Discrete-time dynamics are forward-Euler
steps of NIR's continuous-time equations with step dt (the mapping is in :mod:`neurodeploy.ir.from_nir`).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .neuron import NeuronSpec, NeuronState, SpikingNeuron, neuron_step

RESETS = ("subtract", "zero", "zero_late")


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

    def step(self, x: torch.Tensor, v: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``v ← λ·v + g·x``; returns (v, v)."""
        v = self.gain * x if v is None else self.leak * v + self.gain * x
        return v, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, ...]
        v, out = torch.zeros_like(x[0]), []
        for t in range(x.shape[0]):
            y, v = self.step(x[t], v)
            out.append(y)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"leak={float(self.leak):.4g}"


class CubaSpikingNeuron(SpikingNeuron):
    """NIR CubaLIF: a synaptic current filter in front of our spiking neuron.

    ``i[t] = α·i[t−1] + g_s·x[t]`` (α = 1 − dt/τ_syn, g_s = w_in·dt/τ_syn), then the neuron of
    HIRE-SNN eq. 1–2 on ``i`` (membrane leak λ = 1 − dt/τ_mem; its input gain r·dt/τ_mem is folded
    into the threshold). Reset ``subtract`` / ``zero`` as :func:`neuron_step`; ``zero_late`` is
    snnTorch's Synaptic/RSynaptic reset to zero (``reset_delay=True``, rsynaptic.py:354-355,441-448):
    the spike of step t−1 discards step t's whole membrane update, ``v[t] = (λ·v[t−1] + i[t])·(1 −
    s[t−1])``, while the synaptic current keeps integrating. It is a :class:`SpikingNeuron`, so it
    counts as a neuron layer everywhere; a target that lowers neurons must handle (or refuse) its
    synaptic filter. The synaptic current starts from zero at every forward call.
    """

    def __init__(self, spec: NeuronSpec, syn_leak: float, syn_gain: torch.Tensor | float,
                 surrogate: Callable | None = None) -> None:
        if spec.reset not in RESETS:
            raise ValueError(f"CubaSpikingNeuron: reset must be one of {RESETS}, got {spec.reset!r}")
        super().__init__(spec, surrogate)
        self.register_buffer("syn_leak", torch.tensor(float(syn_leak)))
        self.register_buffer("syn_gain", torch.as_tensor(syn_gain, dtype=torch.float32))

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One step; ``state`` is ``(i, NeuronState)`` or None."""
        i, ns = (None, None) if state is None else state
        i = self.syn_gain * x if i is None else self.syn_leak * i + self.syn_gain * x
        if self.reset == "zero_late":
            u = i if ns is None else (self.leak * ns.u + i) * (1.0 - ns.s)
            s = self.surrogate(u / self.threshold - 1.0)
            ns = NeuronState(u, s)
        else:
            s, ns = neuron_step(i, ns, self.threshold, self.leak, self.reset, self.surrogate, self.dynamics)
        return s, (i, ns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, ...]
        if self.reset == "zero_late":
            state, out = None, []
            for t in range(x.shape[0]):
                s, state = self.step(x[t], state)
                out.append(s)
            return torch.stack(out)
        i = torch.zeros_like(x[0])
        cur = []
        for t in range(x.shape[0]):
            i = self.syn_leak * i + self.syn_gain * x[t]
            cur.append(i)
        return super().forward(torch.stack(cur))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", syn_leak={float(self.syn_leak):.4g}"
