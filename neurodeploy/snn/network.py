"""A feed-forward spiking network whose time loop lives in one place.

Stateless layers (conv, linear, pooling, flatten) process all T steps at once as one batch of
T·B; only the neuron recurrence runs step by step. With direct input coding the input is the same
at every step, so the layers before the first neuron run once and are broadcast over T.

Readout: ``sum`` — the last (non-spiking) layer's membrane potential, i.e. its input summed over
the T steps (the DIET-SNN/HIRE-SNN output layer: u[T] = Σ_t W·O[t], no leak, no threshold);
``count`` — the spike count of the last layer when it is spiking.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Iterable

import torch
from torch import nn

from ..data.encoding import encode
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


SpikingNeuron.sequence_aware = True  # type: ignore[attr-defined]


def apply_layer(layer: nn.Module, h: torch.Tensor, const: bool, timesteps: int) -> tuple[torch.Tensor, bool]:
    """Apply one layer to the running activation; the one place that decides how time is batched.

    ``const``: ``h`` is ``[B, ...]`` and the same at every step (direct coding before the first
    neuron); else ``h`` is ``[T, B, ...]``. Sequence-aware layers (neurons, time-dropout, blocks)
    get the whole sequence; stateless layers run on the ``T·B`` batch. Returns ``(h, const)``.
    """
    if getattr(layer, "sequence_aware", False):
        if const:
            h = h.unsqueeze(0).expand(timesteps, *h.shape)
        return layer(h), False
    if const:
        return layer(h), True
    t, b = h.shape[:2]
    y = layer(h.reshape(t * b, *h.shape[2:]))
    return y.reshape(t, b, *y.shape[1:]), False


def record_spikes(net: nn.Module, name: str, spikes: torch.Tensor) -> None:
    """Store a neuron layer's spike counts per neuron ``[B, ...]`` and per sample ``[B]`` on ``net``."""
    with torch.no_grad():
        m = spikes.detach().sum(0)
        net.spike_maps[name] = m
        net.spike_counts[name] = m.flatten(1).sum(1)


class NeuronOps(ABC):
    """What every spiking network shares: its run settings and recording state, and what training
    does to each neuron layer it lists with ``neurons()`` (SpikingNetwork, GraphNetwork)."""

    def _init_run(self, timesteps: int, encoding: str, readout: str, input_shape: Iterable[int] | None) -> None:
        self.timesteps = timesteps
        self.encoding = encoding
        self.readout = readout
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.record = False
        self.spike_counts: dict[str, torch.Tensor] = {}
        self.spike_maps: dict[str, torch.Tensor] = {}
        self.generator: torch.Generator | None = None

    @abstractmethod
    def neurons(self) -> list[tuple[str, SpikingNeuron]]:
        """(name, neuron layer) in forward order."""

    def clamp_(self) -> None:
        """Keep every layer's leak ≤ 1 and threshold > 0 (call after each optimiser step)."""
        for _, m in self.neurons():
            m.clamp_()

    def set_carry_state(self, on: bool) -> None:
        """Carry neuron state across forward calls (HIRE-SNN periods); off clears the state."""
        for _, m in self.neurons():
            m.carry_state = on
            m.state = None


class SpikingNetwork(NeuronOps, nn.Module):
    """Sequential SNN mapping an input batch to class logits (differentiable through the surrogate).

    ``layers`` is an ordered list of (name, module). After a forward pass with ``record=True``,
    ``spike_counts[name]`` holds each neuron layer's spikes per sample ``[B]`` and
    ``spike_maps[name]`` the spike count per neuron ``[B, ...]`` summed over T.
    """

    def __init__(
        self,
        layers: Iterable[tuple[str, nn.Module]],
        timesteps: int,
        encoding: str = "direct",
        readout: str = "sum",
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(OrderedDict(layers))
        self._init_run(timesteps, encoding, readout, input_shape)

    def neurons(self) -> list[tuple[str, SpikingNeuron]]:
        """All neuron layers in forward order, nested ones (residual blocks) as ``block.sn1``."""
        return [(n, m) for n, m in self.layers.named_modules() if isinstance(m, SpikingNeuron)]

    def run_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layers on an input; returns the last layer's output sequence ``[T, B, ...]``."""
        T = self.timesteps
        const = self.encoding == "direct"
        h = x if const else encode(x, T, self.encoding, self.generator)  # [B,...] if const else [T,B,...]
        self.spike_counts, self.spike_maps = {}, {}
        # neurons nested in composite blocks (``block.sn1``) are recorded through hooks
        hooks = [m.register_forward_hook(self._record_hook(n)) for n, m in self.neurons() if self.record and "." in n]
        for name, layer in self.layers.items():
            h, const = apply_layer(layer, h, const, T)
            if self.record and isinstance(layer, SpikingNeuron):
                record_spikes(self, name, h)
        for hk in hooks:
            hk.remove()
        if const:
            h = h.unsqueeze(0).expand(T, *h.shape)
        return h

    def _record_hook(self, name: str):
        def hook(module: nn.Module, inp, out: torch.Tensor) -> None:
            record_spikes(self, name, out)

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequence(x).sum(0)  # 'sum' and 'count' readouts both sum over T


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
