"""NIR graph -> torch SNN, by a table keyed by NIR node type (user-extendable, NIRTorch style).

The network is rebuilt from the file alone: weights, neuron parameters and, from the metadata,
time steps, coding, readout and reset mode. A chain becomes a sequential
:class:`~neurodeploy.snn.network.SpikingNetwork`; a graph with branches or skips a
:class:`~neurodeploy.ir.graph_network.GraphNetwork` (same interface).

Continuous-time parameters are discretised with step ``dt`` (``meta.dt``, default 1.0). With the
``"nir"`` convention (forward Euler, what snnTorch and Norse write):

- IF (r, v_th): λ = 1, input gain g = r·dt;
- LIF (τ, r, v_leak = 0, v_th): λ = 1 − dt/τ, g = r·dt/τ (needs dt ≤ τ);
- CubaLIF: synaptic current i ← (1 − dt/τ_syn)·i + (dt/τ_syn)·w_in·x, then the LIF above on i
  with g = r·dt/τ_mem;
- LI (τ, r, v_leak = 0): v ← (1 − dt/τ)·v + (r·dt/τ)·x, output v (non-spiking); I: λ = 1, g = r·dt.

With the ``"sinabs"`` convention (what sinabs' own layers do with the values it writes): λ =
exp(−dt/τ), g = r (no 1/τ normalisation), IF/LIF reset by subtraction. A spiking neuron's gain is
folded into its threshold (v_th / g), which leaves the spike train unchanged. Every node's mapping
is recorded in ``meta.mapping``. Nodes or parameters that cannot be run raise
:class:`~neurodeploy.errors.UnsupportedLayerError` naming the node, its type and why.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.network import SpikingNetwork
from ..snn.neuron import NeuronSpec, SpikingNeuron
from .graph_network import GraphNetwork, module_key, topological_order
from .metadata import DeployMeta, read_meta
from .modules import CubaSpikingNeuron, Heaviside, LeakyIntegrator, Scale, SumPool2d

log = logging.getLogger(__name__)

__all__ = ["NODE_MAP", "SumPool2d", "chain_order", "from_nir", "load_nir_network", "read_nir"]

CONVENTIONS = ("nir", "sinabs")


def _arr(a) -> np.ndarray:
    """A NIR field (numpy array, torch tensor or scalar) as a float64 numpy array."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(_arr(a), dtype=torch.float32)


def _tuple(v) -> tuple[int, int]:
    a = np.atleast_1d(_arr(v)).astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _kind(node) -> str:
    return type(node).__name__


def _refuse(name: str, node, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"node {name!r} ({_kind(node)}): {why}")


def _note(meta: DeployMeta, name: str, text: str) -> None:
    meta.mapping[name] = text
    log.debug("NIR node %s: %s", name, text)


def _scalar_or_tensor(a: np.ndarray) -> torch.Tensor:
    """A scalar tensor when every entry is equal, else the full tensor."""
    flat = a.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return torch.tensor(float(flat[0]), dtype=torch.float32)
    return torch.as_tensor(a, dtype=torch.float32)


def _uniform(a: np.ndarray) -> float:
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    return float(flat[0]) if flat.size and np.allclose(flat, flat[0], rtol=1e-6, atol=0) else float("nan")


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
    bias = node.bias is not None and np.any(_arr(node.bias) != 0)
    m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], w.shape[2:], _tuple(node.stride), _tuple(pad),
                  dil, int(node.groups), bias=bool(bias))
    m.weight.data = _t(w)
    if bias:
        m.bias.data = _t(node.bias)
    return m


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


# ---------------------------------------------------------------------------------------- neurons
def _decay(node, name: str, tau, dt: float, convention: str, what: str) -> tuple[float, np.ndarray]:
    """(λ, dt/τ-factor) for a time constant: Euler 1 − dt/τ or sinabs exp(−dt/τ)."""
    tau = _arr(tau)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise _refuse(name, node, f"{what} must be finite and positive, got {np.unique(tau)[:4]}")
    lam = _uniform(np.exp(-dt / tau) if convention == "sinabs" else 1.0 - dt / tau)
    if not math.isfinite(lam):
        raise _refuse(name, node, f"{what} differs between neurons ({tau.min():.4g}..{tau.max():.4g}); "
                                  "our neuron layers have one leak")
    if not 0.0 <= lam <= 1.0:
        raise _refuse(name, node, f"{what} = {tau.min():.4g} is smaller than dt = {dt}: forward Euler "
                                  f"(λ = 1 − dt/τ = {lam:.4g}) is unstable; import with a smaller dt")
    return lam, dt / tau


def _zero(node, name: str, field: str) -> None:
    v = getattr(node, field, None)
    if v is not None and np.any(_arr(v) != 0):
        raise _refuse(name, node, f"{field} != 0 is not supported (our neurons rest at 0 and reset to 0 "
                                  "or by subtraction)")


def _reset(node, name: str, meta: DeployMeta) -> str:
    if name in meta.reset:
        return meta.reset[name]
    return "subtract" if meta.convention == "sinabs" else meta.reset_of(name)


def _spiking(node, name: str, meta: DeployMeta) -> nn.Module:
    """IF, LIF and CubaLIF -> :class:`SpikingNeuron` (CubaLIF: :class:`CubaSpikingNeuron`)."""
    dt, conv = meta.dt, meta.convention
    if conv not in CONVENTIONS:
        raise IRError(f"unknown parameter convention {conv!r}; choose one of {', '.join(CONVENTIONS)}")
    _zero(node, name, "v_reset")
    vth = _arr(node.v_threshold)
    r = _arr(node.r)
    syn = None
    if isinstance(node, nir.IF):
        leak, gain = 1.0, r * (1.0 if conv == "sinabs" else dt)
        text = f"λ = 1, gain = r·dt = {_fmt(gain)}" if conv == "nir" else f"λ = 1, gain = r = {_fmt(gain)} (sinabs)"
    else:
        _zero(node, name, "v_leak")
        tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
        leak, f = _decay(node, name, tau, dt, conv, "τ" if isinstance(node, nir.LIF) else "τ_mem")
        gain = r if conv == "sinabs" else r * f
        text = (f"λ = exp(−dt/τ) = {leak:.6g}, gain = r = {_fmt(gain)}" if conv == "sinabs"
                else f"λ = 1 − dt/τ = {leak:.6g}, gain = r·dt/τ = {_fmt(gain)}")
        if isinstance(node, nir.CubaLIF):
            a_s, f_s = _decay(node, name, node.tau_syn, dt, conv, "τ_syn")
            w_in = _arr(node.w_in)
            g_s = a_s * w_in if conv == "sinabs" else w_in * f_s
            syn = (a_s, g_s)
            text += f"; synapse α = {a_s:.6g}, gain = {_fmt(g_s)}"
    text = f"{_kind(node)}: " + text
    gain = np.broadcast_to(gain, vth.shape) if vth.shape else gain
    if np.any(gain <= 0):
        raise _refuse(name, node, "r must be positive (the input gain r·dt/τ folds into the threshold)")
    if np.any(vth <= 0):
        raise _refuse(name, node, "v_threshold must be positive")
    th = vth / gain
    reset = _reset(node, name, meta)
    spec = NeuronSpec(threshold=1.0, leak=leak, reset=reset)
    m = CubaSpikingNeuron(spec, syn[0], _scalar_or_tensor(syn[1])) if syn else SpikingNeuron(spec)
    m.threshold = nn.Parameter(_scalar_or_tensor(th), requires_grad=m.threshold.requires_grad)
    note = f"{text}; threshold v_th/gain = {_fmt(th)}; reset {reset}; dt = {dt}"
    if conv == "sinabs" and reset == "subtract" and leak < 1.0:
        note += ("; NB sinabs subtracts v_th before the decay, this neuron (HIRE-SNN eq. 1) after it: "
                 "spike trains can differ (reset 'zero' matches sinabs' MembraneReset exactly)")
        log.warning("node %s: %s", name, note)
    _note(meta, name, note)
    return m


def _integrator(node, name: str, meta: DeployMeta) -> nn.Module:
    """LI and I -> :class:`LeakyIntegrator` (non-spiking)."""
    dt, conv = meta.dt, meta.convention
    r = _arr(node.r)
    if isinstance(node, nir.I):
        leak, gain = 1.0, r * dt
        text = f"I: λ = 1, gain = r·dt = {_fmt(gain)}"
    else:
        _zero(node, name, "v_leak")
        leak, f = _decay(node, name, node.tau, dt, conv, "τ")
        gain = r if conv == "sinabs" else r * f
        text = f"LI: λ = {leak:.6g}, gain = {_fmt(gain)} ({conv} convention)"
    _note(meta, name, f"{text}; dt = {dt}")
    return LeakyIntegrator(leak, _scalar_or_tensor(np.asarray(gain)))


def _fmt(a) -> str:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return "[]"
    return f"{a[0]:.6g}" if np.allclose(a, a[0]) else f"{a.min():.4g}..{a.max():.4g} (per neuron)"


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


def is_chain(graph: nir.NIRGraph) -> bool:
    """True when every node has at most one successor and one predecessor and all lie on one path."""
    try:
        chain_order(graph)
    except IRError:
        return False
    return all(sum(1 for _, b in graph.edges if b == n) <= 1 for n in graph.nodes)


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


def _ends_with_spikes(net: nn.Module) -> bool:
    if isinstance(net, GraphNetwork):
        last = [net.module(p) for p in net.preds[net.output_node]]
    else:
        last = [list(net.layers.values())[-1]] if len(net.layers) else []
    return bool(last) and all(isinstance(m, (SpikingNeuron, Heaviside)) for m in last)


def check_shapes(net: nn.Module, source: str = "<graph>") -> dict[str, tuple[int, ...]]:
    """Dry-run the network on zeros; each node's output shape, or IRError naming the node that does not fit."""
    if isinstance(net, GraphNetwork):
        return net.infer_shapes(source)
    x = torch.zeros(1, *net.input_shape)
    shapes = {"input": tuple(net.input_shape)}
    with torch.no_grad():
        for name, m in net.layers.items():
            try:
                x = m(x.unsqueeze(0))[0] if getattr(m, "sequence_aware", False) else m.eval()(x)
            except Exception as e:  # noqa: BLE001
                raise IRError(f"{source}: node {name!r} ({type(m).__name__}) cannot take its input of shape "
                              f"{tuple(x.shape[1:])}: {e}") from None
            shapes[name] = tuple(x.shape[1:])
    return shapes


def from_nir(graph: nir.NIRGraph, meta: DeployMeta | None = None, source: str = "<graph>",
             node_map: dict[type, NodeConverter] | None = None, *, dt: float | None = None,
             check: bool = True) -> SpikingNetwork | GraphNetwork:
    """Build the network of a NIR graph: a :class:`SpikingNetwork` for a chain whose node names are
    valid module names, a :class:`GraphNetwork` otherwise.

    ``meta`` defaults to the graph's metadata, or for a foreign graph to ``DeployMeta(producer=
    "unknown")`` (reset to zero as NIR defines it, readout "count" when the last layer spikes).
    ``dt`` overrides ``meta.dt``. The mapping of every node is recorded in ``meta.mapping``.
    """
    from .passes import inline_subgraphs

    table = {**NODE_MAP, **(node_map or {})}
    meta = meta or read_meta(graph, source) or DeployMeta(producer="unknown")
    if dt is not None:
        meta.dt = float(dt)
    if not meta.dt > 0:
        raise IRError(f"{source}: dt must be positive, got {meta.dt}")
    graph = inline_subgraphs(graph)
    inp, out = _io(graph, source)
    order = topological_order(graph.nodes, graph.edges, source)
    layers = [(n, build_module(graph.nodes[n], n, meta, table, source)) for n in order if n not in (inp, out)]
    shape = list(meta.input_shape) or [int(v) for v in _arr(graph.nodes[inp].input_type["input"]).reshape(-1)]
    if not shape:
        raise IRError(f"{source}: the Input node {inp!r} has no shape; give input_shape")
    if is_chain(graph) and all(module_key(n) == n for n, _ in layers):
        chain = chain_order(graph, source)
        mods = dict(layers)
        net: SpikingNetwork | GraphNetwork = SpikingNetwork(
            [(n, mods[n]) for n in chain if n in mods], meta.timesteps, meta.encoding, meta.readout, tuple(shape))
    else:
        net = GraphNetwork(layers, graph.edges, inp, out, meta.timesteps, meta.encoding, meta.readout,
                           tuple(shape), source)
    if meta.producer != "neurodeploy":
        meta.readout = net.readout = "count" if _ends_with_spikes(net) else "sum"
    if check:
        check_shapes(net, source)
    return net


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


def load_nir_network(path: str | Path, dt: float | None = None) -> tuple[SpikingNetwork | GraphNetwork,
                                                                         nir.NIRGraph, DeployMeta]:
    """Read a NIR file and build its network (``dt`` overrides the metadata's)."""
    graph, meta = read_nir(path)
    meta = meta or DeployMeta(producer="unknown")
    return from_nir(graph, meta, str(path), dt=dt), graph, meta
