"""The spiking neuron: a pure step function and a thin module around it.

HIRE-SNN (Kundu et al., ICCV 2021) eq. 1-2, DIET-SNN style, reset by subtraction:

    u_i[t+1] = λ · u_i[t] + Σ_j w_ij · O_j[t] − v_th · O_i[t]
    O_i[t]   = 1 if u_i[t] / v_th − 1 > 0 else 0

λ = 1 gives integrate-and-fire. With reset to zero the subtraction becomes u · (1 − O).
The state is (u, O) of the previous step; the step's output spikes come from the potential that
already includes the step's input, so there is no extra delay per layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from .surrogate import LinearSurrogate


class NeuronState(NamedTuple):
    u: torch.Tensor  # membrane potential after the last step (before its reset)
    s: torch.Tensor  # spikes of the last step


def neuron_step(
    x: torch.Tensor,
    state: NeuronState | None,
    threshold: torch.Tensor,
    leak: torch.Tensor,
    reset: str,
    surrogate: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, NeuronState]:
    """One time step of HIRE-SNN eq. 1-2. ``x`` is Σ_j w_ij O_j[t]; returns (spikes, new state)."""
    if state is None:
        u = x
    elif reset == "subtract":
        u = leak * state.u + x - threshold * state.s
    else:
        u = leak * state.u * (1.0 - state.s) + x
    s = surrogate(u / threshold - 1.0)
    return s, NeuronState(u, s)


@dataclass
class NeuronSpec:
    """Everything that defines a neuron layer; maps one-to-one onto NIR IF/LIF + metadata."""

    threshold: float = 1.0
    leak: float = 1.0
    reset: str = "subtract"
    train_threshold: bool = True
    train_leak: bool = True


class SpikingNeuron(nn.Module):
    """A layer of neurons with a per-layer trainable threshold and leak (leak clamped to ≤ 1).

    ``forward`` takes the whole sequence ``[T, B, ...]`` and returns spikes of the same shape; the
    time loop lives here and nowhere else.
    """

    def __init__(self, spec: NeuronSpec | None = None, surrogate: Callable | None = None) -> None:
        super().__init__()
        spec = spec or NeuronSpec()
        self.reset = spec.reset
        self.surrogate = surrogate or LinearSurrogate()
        self.threshold = nn.Parameter(torch.tensor(float(spec.threshold)), requires_grad=spec.train_threshold)
        self.leak = nn.Parameter(torch.tensor(float(spec.leak)), requires_grad=spec.train_leak)
        self.state: NeuronState | None = None  # kept only when carry_state is set (HIRE periods)
        self.carry_state = False

    def clamp_(self) -> None:
        """Keep parameters in their valid range (leak ≤ 1, threshold > 0); call after each update."""
        with torch.no_grad():
            self.leak.clamp_(min=0.0, max=1.0)
            self.threshold.clamp_(min=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state if self.carry_state else None
        out = []
        for t in range(x.shape[0]):
            s, state = neuron_step(x[t], state, self.threshold, self.leak, self.reset, self.surrogate)
            out.append(s)
        if self.carry_state and state is not None:
            self.state = NeuronState(state.u.detach(), state.s.detach())
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold):.4g}, leak={float(self.leak):.4g}, reset={self.reset}"
