"""Model-zoo building blocks for the network executor: time-dropout and :func:`build_layers`.

The executor itself (graphs and chains, time batching, recurrence) is
:class:`~neurodeploy.snn.graph.SpikingNetwork`, re-exported here: a chain network is
``SpikingNetwork(layers, timesteps, ...)`` without edges.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .neuron import NeuronSpec, SpikingNeuron


class TimeDropout(nn.Module):
    """Dropout with one mask per sample, reused at every time step (DIET-SNN / HIRE-SNN)."""

    sequence_aware = True

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, B, ...]
        if not self.training or self.p == 0.0:
            return x
        mask = torch.bernoulli(torch.full_like(x[0], 1.0 - self.p)) / (1.0 - self.p)
        return x * mask.unsqueeze(0)


def build_layers(
    spec: list[tuple[str, nn.Module | None]], neuron: NeuronSpec, surrogate, ann: bool = False, dropout: float = 0.0
) -> list[tuple[str, nn.Module]]:
    """Instantiate a model-zoo spec: ``None`` slots become neurons (SNN) or ReLU (ANN twin)."""
    out: list[tuple[str, nn.Module]] = []
    for name, mod in copy.deepcopy(spec):
        if mod is not None and hasattr(mod, "build"):  # composite block with its own neuron slots
            out.append((name, mod.build(neuron, surrogate, ann)))
        elif mod is None:
            out.append((name, nn.ReLU() if ann else SpikingNeuron(neuron, surrogate)))
            if dropout > 0 and not name.startswith("out"):
                out.append((f"{name}_drop", nn.Dropout(dropout) if ann else TimeDropout(dropout)))
        else:
            out.append((name, mod))
    return out


from .graph import SpikingNetwork  # noqa: E402  (re-export: the one executor)

__all__ = ["SpikingNetwork", "TimeDropout", "build_layers"]
