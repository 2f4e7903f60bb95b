"""NIR graph -> torch SNN, by a table keyed by NIR node type (user-extendable, NIRTorch style).

The network is rebuilt from the file alone: weights, neuron parameters and, from the metadata,
time steps, coding, readout and reset mode, as one :class:`~neurodeploy.snn.graph.SpikingNetwork`
over the file's graph (chains, branches, residual sums and recurrent cycles alike; nested
subgraphs are flattened into ``outer.inner`` names first).

Continuous-time parameters are discretised with step ``dt`` (``meta.dt``, default 1.0). With the
``"nir"`` convention (forward Euler, what snnTorch and Norse write):

- IF (r, v_th): λ = 1, input gain g = r·dt;
- LIF (τ, r, v_leak = 0, v_th): λ = 1 − dt/τ, g = r·dt/τ (needs dt ≤ τ);
- CubaLIF: synaptic current i ← (1 − dt/τ_syn)·i + (dt/τ_syn)·w_in·x, then the LIF above on i
  with g = r·dt/τ_mem;
- LI (τ, r, v_leak = 0): v ← (1 − dt/τ)·v + (r·dt/τ)·x, output v (non-spiking); I: λ = 1, g = r·dt.

Other producers run the same nodes differently (exp decay, several spikes per step, a membrane
floor, reset before the leak, a fixed dt): ``meta.convention`` names a row of
:data:`~neurodeploy.ir.conventions.CONVENTIONS` (chosen by the importer from the file, else by the
user) and the neuron gets that row's strategies. With ``"sinabs"`` (what ``sinabs.from_nir`` runs):
λ = exp(−dt/τ), g = r, IF as MultiSpike with the floor −v_th, reset by subtraction right after
the spike (sinabs/nir.py:86-108). A spiking neuron's gain is folded into its threshold (v_th / g),
which leaves the spike train unchanged (the floor is folded with it). The ``"snntorch"`` row adds
snnTorch's CubaLIF reset to zero (Synaptic / RSynaptic, ``reset_delay=True``: the step after a spike
is discarded, see :class:`~neurodeploy.snn.kinds.CubaSpikingNeuron`). Every node's mapping
is recorded in ``meta.mapping``. Nodes or parameters that cannot be run raise
:class:`~neurodeploy.errors.UnsupportedLayerError` naming the node, its type and why.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import nir
import numpy as np
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.graph import SpikingNetwork
from ..snn.neuron import SpikingNeuron
from ..snn.topology import cyclic_edges
from .conventions import CONVENTIONS, nir_version, resolve
from .metadata import DeployMeta, read_meta
from .modules import Heaviside, Scale, SumPool2d
from .nir_fields import _arr, _kind, _note, _refuse, _scalar_or_tensor, _t, _tuple
from .nir_neurons import _fmt, _integrator, _spiking
from .nir_file import read_graph

log = logging.getLogger(__name__)

__all__ = ["NODE_MAP", "SumPool2d", "chain_order", "from_nir", "load_nir_network", "read_nir"]

# ---------------------------------------------------------------------------------------- synapses
def _conv(node: nir.Conv2d, name: str, meta: DeployMeta) -> nn.Module:
    w = _arr(node.weight)
    if w.ndim != 4:
        raise _refuse(name, node, f"weight must be 4-D (C_out, C_in, kH, kW), got shape {w.shape}")
    dil = _tuple(node.dilation)
    pad = node.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        elif pad == "same" and all(k % 2 == 1 for k in w.shape[2:]) and _tuple(node.stride) == (1, 1):
            pad = tuple(d * (k - 1) // 2 for d, k in zip(dil, w.shape[2:]))
        else:
            raise _refuse(name, node, f"padding {pad!r} with kernel {w.shape[2:]} and stride {node.stride} "
                                      "has no symmetric explicit padding")
    norm = _normalize(node, name, meta)
    if norm is not None:
        return norm
    bias = node.bias is not None and np.any(_arr(node.bias) != 0)
    m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], w.shape[2:], _tuple(node.stride), _tuple(pad),
                  dil, int(node.groups), bias=bool(bias))
    m.weight.data = _t(w)
    if bias:
        m.bias.data = _t(node.bias)
    return m


def _normalize(node: nir.Conv2d, name: str, meta: DeployMeta) -> nn.Module | None:
    """Our input normalisation (:func:`.to_nir._normalize`): a 1×1 Conv2d with weight diag(1/std)
    whose metadata holds mean and std, rebuilt as :class:`~neurodeploy.snn.models.Normalize` from
    them; None for any other Conv2d. The metadata must agree with the weights (weight = diag(1/std),
    bias = −mean/std to float32 rounding), else the file is refused: the node would mean two things."""
    md = getattr(node, "metadata", None) or {}
    if str(md.get("neurodeploy", "")) != "normalize":
        return None
    from ..snn.models import Normalize

    mean, std = np.asarray(md.get("mean"), np.float32).reshape(-1), np.asarray(md.get("std"), np.float32).reshape(-1)
    w, c = _arr(node.weight), len(mean)
    b = _arr(node.bias) if node.bias is not None else np.zeros(c, np.float32)
    ok = (len(std) == c and w.shape == (c, c, 1, 1) and int(node.groups) == 1 and b.shape == (c,)
          and np.all(std > 0) and np.allclose(w.reshape(c, c), np.diag(1.0 / std), rtol=1e-5, atol=0)
          and np.allclose(b, -mean / std, rtol=1e-5, atol=1e-6))
    if not ok:
        raise _refuse(name, node, "its metadata says input normalisation, but mean/std do not match the "
                                  "1×1 weights (weight = diag(1/std), bias = −mean/std)")
    _note(meta, name, f"1×1 Conv2d with diagonal weight read as the input normalisation (x − mean)/std, mean "
                      f"{[round(float(v), 4) for v in mean]}, std {[round(float(v), 4) for v in std]}")
    return Normalize(mean.tolist(), std.tolist())


def _linear(node, name: str, meta: DeployMeta) -> nn.Module:
    w = _arr(node.weight)
    if w.ndim != 2:
        raise _refuse(name, node, f"weight must be 2-D (out, in), got shape {w.shape}")
    bias = isinstance(node, nir.Affine) and np.any(_arr(node.bias) != 0)
    m = nn.Linear(w.shape[1], w.shape[0], bias=bool(bias))
    m.weight.data = _t(w)
    if bias:
        m.bias.data = _t(node.bias)
    return m


def _pad(node) -> tuple[int, int]:
    return (0, 0) if getattr(node, "padding", None) is None else _tuple(node.padding)


def _avgpool(node: nir.AvgPool2d, name, meta) -> nn.Module:
    k = _tuple(node.kernel_size)
    return nn.AvgPool2d(k, _tuple(node.stride) if node.stride is not None else k, _pad(node))


def _sumpool(node: nir.SumPool2d, name, meta) -> nn.Module:
    k = _tuple(node.kernel_size)
    return SumPool2d(k, _tuple(node.stride) if node.stride is not None else k, _pad(node))


def _flatten(node: nir.Flatten, name, meta) -> nn.Module:
    start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
    end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
    return nn.Flatten(start, end)


def _scale(node: nir.Scale, name, meta) -> nn.Module:
    return Scale(_scalar_or_tensor(_arr(node.scale)))


def _threshold(node: nir.Threshold, name, meta) -> nn.Module:
    pools = [p for p, d in meta.max_pools.items() if d.get("threshold") == name]
    if pools:  # our metadata: this Threshold and the SumPool2d before it are a max pool of binary spikes
        d = meta.max_pools[pools[0]]
        _note(meta, name, f"Threshold after SumPool2d {d.get('sum_pool')!r}: max pool {pools[0]!r} of binary spikes "
                          f"as an OR (Σ window > {_fmt(_arr(node.threshold))}; exact for spikes in {{0, 1}} from "
                          f"{d.get('input')!r})")
    return Heaviside(_scalar_or_tensor(_arr(node.threshold)))


def _identity(node, name, meta) -> nn.Module:
    return nn.Identity()


NodeConverter = Callable[[nir.NIRNode, str, DeployMeta], nn.Module]
_IDENTITY = getattr(nir.ir.graph, "Identity", None)  # defined in nir 1.0.8 but not exported
NODE_MAP: dict[type, NodeConverter] = {
    nir.Conv2d: _conv,
    nir.Linear: _linear,
    nir.Affine: _linear,
    nir.AvgPool2d: _avgpool,
    nir.SumPool2d: _sumpool,
    nir.Flatten: _flatten,
    nir.Scale: _scale,
    nir.Threshold: _threshold,
    nir.IF: _spiking,
    nir.LIF: _spiking,
    nir.CubaLIF: _spiking,
    nir.LI: _integrator,
    nir.I: _integrator,
}
if _IDENTITY is not None:
    NODE_MAP[_IDENTITY] = _identity

_WHY = {
    "Delay": "delays are not simulated (every synapse has a delay of one time step or none)",
    "Conv1d": "1-D convolutions are not supported; reshape to Conv2d with a 1-pixel dimension",
    "CubaLI": "non-spiking current-based integrators are not supported; use LI",
}


# ---------------------------------------------------------------------------------------- graphs
def _io(graph: nir.NIRGraph, source: str) -> tuple[str, str]:
    ins = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(ins) != 1:
        raise IRError(f"{source}: expected one Input node, found {len(ins)} ({ins})")
    if len(outs) != 1:
        raise UnsupportedLayerError(f"{source}: expected one Output node, found {len(outs)} ({outs}); "
                                    "a classifier has a single output")
    return ins[0], outs[0]


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


def refuse_recurrent(graph: nir.NIRGraph, target: str) -> None:
    """UnsupportedLayerError naming the first recurrent edge, for a target that runs feed-forward graphs only."""
    from .passes import inline_subgraphs

    flat = inline_subgraphs(graph)
    cyc = cyclic_edges(flat.nodes, flat.edges)
    if cyc:  # name the recurrent edge as the executor delays it: the one leaving a neuron
        spiking = [e for e in cyc if isinstance(flat.nodes[e[0]], (nir.IF, nir.LIF, nir.CubaLIF))]
        a, b = (spiking or cyc)[0]
        others = ", ".join(f"{x}→{y}" for x, y in cyc if (x, y) != (a, b))
        raise UnsupportedLayerError(f"recurrent graphs are not supported on {target} yet: edge {a}→{b} (the cycle "
                                    f"also runs through {others})")


def build_module(node: nir.NIRNode, name: str, meta: DeployMeta, table: dict[type, NodeConverter],
                 source: str = "<graph>") -> nn.Module:
    """One node through the table; UnsupportedLayerError naming the file, node, type and why."""
    conv = table.get(type(node))
    if conv is None:
        why = _WHY.get(_kind(node), "no converter for this node type")
        raise UnsupportedLayerError(f"{source}: node {name!r} of type {_kind(node)} cannot be run: {why} "
                                    f"(supported: {', '.join(sorted(t.__name__ for t in table))})")
    try:
        return conv(node, name, meta)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{source}: {e}") from None
    except (ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise UnsupportedLayerError(f"{source}: node {name!r} ({_kind(node)}): malformed parameters ({e})") from None


def _ends_with_spikes(net: SpikingNetwork) -> bool:
    last = [net.module(p) for p in net.preds[net.output_node] if p != net.input_node]
    return bool(last) and all(isinstance(m, (SpikingNeuron, Heaviside)) for m in last)


def check_shapes(net: SpikingNetwork, source: str = "<graph>") -> dict[str, tuple[int, ...]]:
    """Dry-run the network on zeros; each node's output shape, or IRError naming the node that does not fit."""
    return net.infer_shapes(source)


def from_nir(graph: nir.NIRGraph, meta: DeployMeta | None = None, source: str = "<graph>",
             node_map: dict[type, NodeConverter] | None = None, *, dt: float | None = None,
             check: bool = True) -> SpikingNetwork:
    """Build the network of a NIR graph (nested subgraphs flattened, cycles run step by step).

    ``meta`` defaults to the graph's metadata, or for a foreign graph to ``DeployMeta(producer=
    "unknown")`` (reset to zero as NIR defines it, readout "count" when the last layer spikes).
    ``dt`` overrides ``meta.dt``. The mapping of every node is recorded in ``meta.mapping``.
    """
    from .passes import inline_subgraphs

    table = {**NODE_MAP, **(node_map or {})}
    meta = meta or read_meta(graph, source) or DeployMeta(producer="unknown")
    if dt is not None:
        meta.dt, meta.dt_source = float(dt), "user"
    if not meta.dt > 0:
        raise IRError(f"{source}: dt must be positive, got {meta.dt}")
    graph = inline_subgraphs(graph)
    inp, out = _io(graph, source)
    layers = [(n, build_module(v, n, meta, table, source)) for n, v in graph.nodes.items() if n not in (inp, out)]
    shape = list(meta.input_shape) or [int(v) for v in _arr(graph.nodes[inp].input_type["input"]).reshape(-1)]
    if not shape:
        raise IRError(f"{source}: the Input node {inp!r} has no shape; give input_shape")
    net = SpikingNetwork(layers, meta.timesteps, meta.encoding, meta.readout, tuple(shape), edges=graph.edges,
                         input_node=inp, output_node=out, source=source)
    for a, b in net.recurrent_edges:
        log.info("%s: recurrent edge %s → %s: %s reads %s's output of the previous step (zero at t = 0)",
                 source, a, b, b, a)
    if meta.producer != "neurodeploy":
        meta.readout = net.readout = "count" if _ends_with_spikes(net) else "sum"
    if check:
        check_shapes(net, source)
    return net


def read_nir(path: str | Path) -> tuple[nir.NIRGraph, DeployMeta | None]:
    """Read a NIR file (published quirks repaired with a warning, see :mod:`.nir_file`); IRError
    naming the file for anything unreadable."""
    graph, _ = read_graph(path)
    if not isinstance(graph, nir.NIRGraph):
        raise IRError(f"{path}: holds a single {type(graph).__name__} node, not a graph")
    return graph, read_meta(graph, str(path))


def load_nir_network(path: str | Path, dt: float | None = None) -> tuple[SpikingNetwork, nir.NIRGraph, DeployMeta]:
    """Read a NIR file and build its network (``dt`` overrides the metadata's)."""
    graph, meta = read_nir(path)
    if meta is None:  # a foreign file: read it the way its producer runs it, when it says who that is
        meta = DeployMeta(producer="unknown")
        meta.convention, why = resolve(graph, None, nir_version(path), str(path))
        meta.read_as = f"{meta.convention}: {why}"
        fixed = CONVENTIONS[meta.convention].dt
        if fixed is not None and dt is None:
            meta.dt, meta.dt_source = fixed, f"convention {meta.convention}"
        log.info("%s: %s", path, meta.read_as)
    return from_nir(graph, meta, str(path), dt=dt), graph, meta
