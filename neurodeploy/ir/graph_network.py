"""A spiking network that runs any NIR DAG (branches, skips, residual ADDs) with the time scheme of
:class:`~neurodeploy.snn.network.SpikingNetwork`.

NIR semantics: a node with several incoming edges receives the **sum** of its inputs (a residual
ADD is two edges into one node). Nodes run in topological order. Each value is either *constant*
over time (``[B, ...]``: direct input coding, before any stateful node) or a sequence
``[T, B, ...]``; stateless modules run on ``[T·B, ...]`` at once, modules with
``sequence_aware = True`` (neurons, leaky integrators) receive ``[T, B, ...]``. A constant value
meeting a sequence at a junction is broadcast over T.

The interface is the sequential network's: ``forward(x)`` returns the output node's input summed
over T (the logits), ``record`` fills ``spike_counts[name]`` ``[B]`` and ``spike_maps[name]``
``[B, ...]`` for every neuron node, and ``timesteps``, ``encoding``, ``readout``, ``input_shape``,
``neurons()``, ``clamp_()``, ``set_carry_state()`` behave the same. Node names are the NIR names
(``block1.sn1`` included): ``layers[name]``, ``layers.items()`` use them, while parameter names
use keys with ``.`` replaced (see :func:`module_key` and :class:`NodeDict`).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Iterable

import torch
from torch import nn

from ..data.encoding import encode
from ..errors import IRError
from ..snn.network import NeuronOps, apply_layer, record_spikes
from ..snn.neuron import SpikingNeuron

_RESERVED = set(dir(nn.ModuleDict()))


def module_key(name: str) -> str:
    """A valid ``nn.ModuleDict`` key for a NIR node name (``.`` and other separators become ``_``)."""
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "_"
    return f"_{key}" if key in _RESERVED else key


def topological_order(nodes: Iterable[str], edges: Iterable[tuple[str, str]], source: str = "<graph>") -> list[str]:
    """Kahn's algorithm, stable in the order ``nodes`` are given; IRError naming a node on a cycle."""
    nodes = list(nodes)
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a not in preds or b not in preds:
            raise IRError(f"{source}: edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
        preds[b].append(a)
    remaining = {n: len(p) for n, p in preds.items()}
    ready = [n for n in nodes if remaining[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succ[n]:
            remaining[s] -= 1
            if remaining[s] == 0:
                ready.append(s)
    if len(order) != len(nodes):
        stuck = sorted(n for n in nodes if remaining[n] > 0)
        raise IRError(f"{source}: the graph has a cycle through {stuck}; recurrent graphs are not supported")
    return order


class NodeDict(nn.ModuleDict):
    """A ``ModuleDict`` addressed by NIR node names (``block1.sn1``) though stored under valid keys
    (``block1_sn1``): ``layers[name]``, ``name in layers``, ``keys()``, ``items()`` and iteration use
    the NIR names; parameter names (``state_dict``) use the stored keys."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", names: dict[str, str]) -> None:
        super().__init__(modules)
        self._key_of = dict(names)  # NIR name -> stored key
        self._name_of = {k: n for n, k in names.items()}

    def __getitem__(self, name: str) -> nn.Module:  # type: ignore[override]
        return self._modules[self._key_of.get(name, name)]

    def __contains__(self, name: object) -> bool:  # type: ignore[override]
        return name in self._key_of or name in self._modules

    def __iter__(self):
        return iter(self.keys())

    def keys(self):  # type: ignore[override]
        return [self._name_of.get(k, k) for k in self._modules]

    def items(self):  # type: ignore[override]
        return [(self._name_of.get(k, k), m) for k, m in self._modules.items()]

    def values(self):  # type: ignore[override]
        return list(self._modules.values())


class GraphNetwork(NeuronOps, nn.Module):
    """An SNN over a directed acyclic graph of named modules (see the module docstring).

    ``layers`` is a list of (NIR node name, module) for the compute nodes, ``edges`` the NIR edges
    including those from ``input_node`` and into ``output_node``.
    """

    def __init__(
        self,
        layers: Iterable[tuple[str, nn.Module]],
        edges: Iterable[tuple[str, str]],
        input_node: str,
        output_node: str,
        timesteps: int,
        encoding: str = "direct",
        readout: str = "sum",
        input_shape: tuple[int, ...] | None = None,
        source: str = "<graph>",
    ) -> None:
        super().__init__()
        layers = list(layers)
        edges = [(str(a), str(b)) for a, b in edges]
        names = [input_node] + [n for n, _ in layers] + [output_node]
        if len(set(names)) != len(names):
            raise IRError(f"{source}: duplicate node names in {names}")
        order = topological_order(names, edges, source)
        mods = dict(layers)
        self.node_order: list[str] = [n for n in order if n in mods]
        self.preds: dict[str, list[str]] = {n: [] for n in names}
        for a, b in edges:
            self.preds[b].append(a)
        self.edges = edges
        self.input_node, self.output_node = input_node, output_node
        self._check_connected(names, source)
        self.keys: dict[str, str] = {}
        for n in self.node_order:
            k = module_key(n)
            while k in self.keys.values():
                k += "_"
            self.keys[n] = k
        self.layers = NodeDict(OrderedDict((self.keys[n], mods[n]) for n in self.node_order), self.keys)
        self._init_run(timesteps, encoding, readout, input_shape)

    def _check_connected(self, names: list[str], source: str) -> None:
        succ: dict[str, list[str]] = {n: [] for n in names}
        for a, b in self.edges:
            succ[a].append(b)
        fwd, stack = {self.input_node}, [self.input_node]
        while stack:
            for s in succ[stack.pop()]:
                if s not in fwd:
                    fwd.add(s)
                    stack.append(s)
        back, stack = {self.output_node}, [self.output_node]
        while stack:
            for p in self.preds[stack.pop()]:
                if p not in back:
                    back.add(p)
                    stack.append(p)
        dead = sorted(n for n in names if n not in fwd or n not in back)
        if dead:
            raise IRError(f"{source}: nodes {dead} are not on a path from {self.input_node!r} to {self.output_node!r}")

    # ------------------------------------------------------------------ the SpikingNetwork interface
    def module(self, name: str) -> nn.Module:
        """The module of NIR node ``name``."""
        return self.layers[self.keys[name]]

    def named_nodes(self) -> list[tuple[str, nn.Module]]:
        """(NIR node name, module) in execution order."""
        return [(n, self.layers[self.keys[n]]) for n in self.node_order]

    def neurons(self) -> list[tuple[str, SpikingNeuron]]:
        """Neuron nodes in execution order, by NIR name."""
        return [(n, m) for n, m in self.named_nodes() if isinstance(m, SpikingNeuron)]

    def _gather(self, name: str, vals: dict[str, tuple[torch.Tensor, bool]]) -> tuple[torch.Tensor, bool]:
        ins = [vals[p] for p in self.preds[name]]
        if len(ins) == 1:
            return ins[0]
        T = self.timesteps
        if all(c for _, c in ins):
            return torch.stack([h for h, _ in ins]).sum(0), True
        seq = [h.unsqueeze(0).expand(T, *h.shape) if c else h for h, c in ins]
        return torch.stack(seq).sum(0), False

    def run_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on an input; returns the output node's input sequence ``[T, B, ...]``."""
        T = self.timesteps
        const = self.encoding == "direct"
        h = x if const else encode(x, T, self.encoding, self.generator)
        self.spike_counts, self.spike_maps = {}, {}
        vals: dict[str, tuple[torch.Tensor, bool]] = {self.input_node: (h, const)}
        uses = {n: 0 for n in self.preds}
        for b, ps in self.preds.items():
            for p in ps:
                uses[p] += 1
        for name in self.node_order:
            h, const = self._gather(name, vals)
            for p in self.preds[name]:
                uses[p] -= 1
                if uses[p] == 0:
                    del vals[p]
            layer = self.layers[self.keys[name]]
            h, const = apply_layer(layer, h, const, T)
            if self.record and isinstance(layer, SpikingNeuron):
                record_spikes(self, name, h)
            vals[name] = (h, const)
        h, const = self._gather(self.output_node, vals)
        if const:
            h = h.unsqueeze(0).expand(T, *h.shape)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequence(x).sum(0)

    @torch.no_grad()
    def infer_shapes(self, source: str = "<graph>") -> dict[str, tuple[int, ...]]:
        """Output shape (without batch) of every node, from a dry run on zeros; IRError naming the node
        whose input does not fit."""
        if self.input_shape is None:
            raise IRError(f"{source}: the network has no input shape")
        vals: dict[str, tuple[torch.Tensor, bool]] = {self.input_node: (torch.zeros(1, *self.input_shape), True)}
        shapes = {self.input_node: tuple(self.input_shape)}
        for name in self.node_order:
            layer = self.layers[self.keys[name]]
            try:
                h, _ = self._gather(name, vals)
                h = layer(h.unsqueeze(0))[0] if getattr(layer, "sequence_aware", False) else layer.eval()(h)
            except Exception as e:  # noqa: BLE001 - shape errors surface as many types
                got = [tuple(vals[p][0].shape[1:]) for p in self.preds[name]]
                raise IRError(f"{source}: node {name!r} ({type(layer).__name__}) cannot take its input of shape "
                              f"{got if len(got) > 1 else got[0]}: {e}") from None
            vals[name] = (h, True)
            shapes[name] = tuple(h.shape[1:])
        try:
            h, _ = self._gather(self.output_node, vals)
        except RuntimeError as e:
            raise IRError(f"{source}: the inputs of {self.output_node!r} have different shapes: {e}") from None
        shapes[self.output_node] = tuple(h.shape[1:])
        return shapes

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, encoding={self.encoding}, nodes={len(self.node_order)}, edges={len(self.edges)}"
