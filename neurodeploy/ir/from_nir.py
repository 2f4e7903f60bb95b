"""NIR graph -> torch SNN, by a table keyed by NIR node type (user-extendable).

The network is rebuilt from the file alone: weights, neuron parameters and, from the metadata,
time steps, coding, readout and reset mode. Continuous-time neuron parameters are discretised with
the metadata's dt: IF (r, v_th) -> λ = 1 and input gain r·dt; LIF (τ, r, v_leak = 0) ->
λ = 1 − dt/τ and input gain r·dt/τ. A gain other than 1 is folded into the threshold
(v_th / gain), which leaves the spike train unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.network import SpikingNetwork
from ..snn.neuron import NeuronSpec, SpikingNeuron
from .metadata import DeployMeta, read_meta


class SumPool2d(nn.Module):
    """Sum pooling (NIR SumPool2d, sinabs SumPool2d): average pooling times the window size."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        area = (k[0] * k[1]) if isinstance(k, tuple) else k * k
        return F.avg_pool2d(x, k, self.stride, self.padding) * area


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def _tuple(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _conv(node: nir.Conv2d, name: str, meta: DeployMeta) -> nn.Module:
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise UnsupportedLayerError(f"node {name!r} (Conv2d): weight must be 4-D, got shape {w.shape}")
    if isinstance(node.padding, str):
        raise UnsupportedLayerError(f"node {name!r} (Conv2d): padding {node.padding!r} is not supported")
    bias = node.bias is not None and np.any(np.asarray(node.bias) != 0)
    m = nn.Conv2d(w.shape[1] * node.groups, w.shape[0], w.shape[2:], _tuple(node.stride), _tuple(node.padding),
                  _tuple(node.dilation), node.groups, bias=bool(bias))
    m.weight.data = _t(w)
    if bias:
        m.bias.data = _t(node.bias)
    return m


def _linear(node, name: str, meta: DeployMeta) -> nn.Module:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise UnsupportedLayerError(f"node {name!r} ({type(node).__name__}): weight must be 2-D, got {w.shape}")
    bias = isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0)
    m = nn.Linear(w.shape[1], w.shape[0], bias=bool(bias))
    m.weight.data = _t(w)
    if bias:
        m.bias.data = _t(node.bias)
    return m


def _avgpool(node: nir.AvgPool2d, name, meta) -> nn.Module:
    return nn.AvgPool2d(_tuple(node.kernel_size), _tuple(node.stride), _tuple(node.padding))


def _sumpool(node: nir.SumPool2d, name, meta) -> nn.Module:
    return SumPool2d(_tuple(node.kernel_size), _tuple(node.stride), _tuple(node.padding))


def _flatten(node: nir.Flatten, name, meta) -> nn.Module:
    start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
    end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
    return nn.Flatten(start, end)


def _uniform(a, what: str, name: str) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(a.reshape(-1)[0]) if a.size and np.all(a == a.reshape(-1)[0]) else float("nan")


def _neuron(node, name: str, meta: DeployMeta) -> nn.Module:
    dt = meta.dt
    vth = np.asarray(node.v_threshold, dtype=np.float64)
    if isinstance(node, nir.IF):
        leak, gain = 1.0, np.asarray(node.r, dtype=np.float64) * dt
    else:
        if np.any(np.asarray(node.v_leak) != 0):
            raise UnsupportedLayerError(f"node {name!r} (LIF): v_leak != 0 is not supported")
        tau = np.asarray(node.tau, dtype=np.float64)
        leak = _uniform(1.0 - dt / tau, "leak", name)
        if not np.isfinite(leak) or not 0.0 <= leak <= 1.0:
            raise UnsupportedLayerError(f"node {name!r} (LIF): τ must be uniform and ≥ dt={dt} (λ = 1 − dt/τ)")
        gain = np.asarray(node.r, dtype=np.float64) * dt / tau
    if np.any(gain <= 0):
        raise UnsupportedLayerError(f"node {name!r} ({type(node).__name__}): r must be positive")
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise UnsupportedLayerError(f"node {name!r}: v_reset != 0 is not supported")
    th = vth / gain
    m = SpikingNeuron(NeuronSpec(threshold=1.0, leak=leak, reset=meta.reset_of(name)))
    uni = _uniform(th, "threshold", name)
    m.threshold = nn.Parameter(torch.tensor(uni, dtype=torch.float32) if np.isfinite(uni) else _t(th))
    return m


NodeConverter = Callable[[nir.NIRNode, str, DeployMeta], nn.Module]
NODE_MAP: dict[type, NodeConverter] = {
    nir.Conv2d: _conv,
    nir.Linear: _linear,
    nir.Affine: _linear,
    nir.AvgPool2d: _avgpool,
    nir.SumPool2d: _sumpool,
    nir.Flatten: _flatten,
    nir.IF: _neuron,
    nir.LIF: _neuron,
}


def chain_order(graph: nir.NIRGraph, source: str = "<graph>") -> list[str]:
    """Node names from input to output for a graph without branches; IRError otherwise."""
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise IRError(f"{source}: expected one Input node, found {len(inputs)}")
    order, cur, seen = [], inputs[0], set()
    while True:
        order.append(cur)
        seen.add(cur)
        nxt = succ.get(cur, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise UnsupportedLayerError(f"{source}: node {cur!r} branches to {nxt}; graphs with skips are "
                                        "not supported by the sequential builder")
        cur = nxt[0]
        if cur in seen:
            raise IRError(f"{source}: the graph has a cycle through {cur!r}")
    if len(order) != len(graph.nodes):
        missing = sorted(set(graph.nodes) - set(order))
        raise UnsupportedLayerError(f"{source}: nodes {missing} are not on the input-output chain")
    return order


def from_nir(graph: nir.NIRGraph, meta: DeployMeta | None = None, source: str = "<graph>",
             node_map: dict[type, NodeConverter] | None = None) -> SpikingNetwork:
    """Build a :class:`SpikingNetwork` from a NIR graph (and its metadata, or ``meta``)."""
    table = {**NODE_MAP, **(node_map or {})}
    meta = meta or read_meta(graph, source) or DeployMeta(producer="unknown")
    layers = []
    order = chain_order(graph, source)
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        conv = table.get(type(node))
        if conv is None:
            raise UnsupportedLayerError(f"{source}: node {name!r} of type {type(node).__name__} cannot be run "
                                        f"(supported: {', '.join(sorted(t.__name__ for t in table))})")
        layers.append((name, conv(node, name, meta)))
    in_node = graph.nodes[order[0]]
    shape = meta.input_shape or [int(v) for v in np.asarray(in_node.input_type["input"]).reshape(-1)]
    return SpikingNetwork(layers, meta.timesteps, meta.encoding, meta.readout, tuple(shape))


def read_nir(path: str | Path) -> tuple[nir.NIRGraph, DeployMeta | None]:
    """Read a NIR file; IRError naming the file for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: NIR file not found")
    try:
        graph = nir.read(str(path))
    except Exception as e:  # h5py/nir raise many types for corrupt files
        raise IRError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise IRError(f"{path}: holds a single {type(graph).__name__} node, not a graph")
    return graph, read_meta(graph, str(path))


def load_nir_network(path: str | Path) -> tuple[SpikingNetwork, nir.NIRGraph, DeployMeta]:
    """Read a NIR file and build its network."""
    graph, meta = read_nir(path)
    meta = meta or DeployMeta(producer="unknown")
    return from_nir(graph, meta, str(path)), graph, meta
