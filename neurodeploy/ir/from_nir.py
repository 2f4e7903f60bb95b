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
import math
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.graph import SpikingNetwork
from ..snn.kinds import CubaSpikingNeuron, LeakyIntegrator
from ..snn.neuron import Dynamics, NeuronSpec, SpikingNeuron
from ..snn.topology import cyclic_edges
from .conventions import CONVENTIONS, nir_version, resolve
from .metadata import DeployMeta, read_meta
from .modules import Heaviside, Scale, SumPool2d
from .nir_file import read_graph

log = logging.getLogger(__name__)

__all__ = ["NODE_MAP", "SumPool2d", "chain_order", "from_nir", "load_nir_network", "read_nir"]

OWN = ("neurodeploy", "imported")  # producers whose parameters are in our canonical form


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
MIN_DECAY = 1e-6  # a per-step decay below this forgets the membrane every step: dt is almost surely wrong


def _decay(node, name: str, tau, meta: DeployMeta, what: str) -> tuple[float, np.ndarray]:
    """(λ, dt/τ) for a time constant under the convention: Euler 1 − dt/τ or exp(−dt/τ).

    A dt that makes the dynamics meaningless is loud: Euler with dt > τ (λ < 0, unstable) and a
    per-step decay below ``MIN_DECAY`` with dt never given (the default 1.0) are errors asking for
    ``--dt``; dt/τ > 1 or a decay below ``MIN_DECAY`` with a dt the user or file gave are warnings
    (in the log and in the node's mapping line).
    """
    dt, conv = meta.dt, CONVENTIONS[meta.convention]
    tau = _arr(tau)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise _refuse(name, node, f"{what} must be finite and positive, got {np.unique(tau)[:4]}")
    lam = _uniform(np.exp(-dt / tau) if conv.decay == "exp" else 1.0 - dt / tau)
    if not math.isfinite(lam):
        raise _refuse(name, node, f"{what} differs between neurons ({tau.min():.4g}..{tau.max():.4g}); "
                                  "our neuron layers have one leak")
    hint = f"dt = {dt:g} ({meta.dt_source}); pass --dt in the file's time unit (e.g. the producer's step)"
    if not 0.0 <= lam <= 1.0:
        raise _refuse(name, node, f"{what} = {tau.min():.4g} is smaller than dt: forward Euler "
                                  f"(λ = 1 − dt/τ = {lam:.4g}) is unstable; {hint}")
    ratio = float(np.max(dt / tau))
    if lam < MIN_DECAY and meta.dt_source == "default":
        raise _refuse(name, node, f"{what} = {tau.min():.4g} with the default dt decays the membrane by "
                                  f"{lam:.3g} per step (dt/τ = {ratio:.3g}): the neuron forgets every step; {hint}")
    if lam < MIN_DECAY or ratio > 1.0:
        warn = f"WARNING dt/τ = {ratio:.3g}, per-step decay {lam:.3g} ({hint})"
        log.warning("NIR node %s (%s): %s", name, what, warn)
        meta.mapping[name + ".warning"] = warn
    return lam, dt / tau


def _zero(node, name: str, field: str) -> None:
    v = getattr(node, field, None)
    if v is not None and np.any(_arr(v) != 0):
        raise _refuse(name, node, f"{field} != 0 is not supported (our neurons rest at 0 and reset to 0 "
                                  "or by subtraction)")


def _reset(node, name: str, meta: DeployMeta) -> str:
    """The user's override, else the convention's reset, else the metadata's (NIR: zero)."""
    if name in meta.reset:
        return meta.reset[name]
    conv = CONVENTIONS[meta.convention]
    return conv.reset if conv.reset is not None and meta.producer not in OWN else meta.reset_of(name)


def _dynamics(node, name: str, meta: DeployMeta, th: np.ndarray, reset: str) -> tuple[Dynamics, str]:
    """The spike function, floor and reset timing: our metadata's entry, else the convention's."""
    if name in meta.neurons:
        d = dict(meta.neurons[name])
        return Dynamics(d.get("spike", "single"), d.get("min_v"), d.get("reset_at", "next")), "metadata"
    conv = CONVENTIONS[meta.convention]
    min_v = None
    if conv.floor == "-v_th" and isinstance(node, nir.IF):
        t = _uniform(th)
        if not math.isfinite(t):
            raise _refuse(name, node, "the membrane floor −v_th needs one threshold per layer "
                                      f"({th.min():.4g}..{th.max():.4g})")
        min_v = -t
    reset_at = conv.reset_at
    if reset == "zero" and conv.spike == "single" and min_v is None:
        reset_at = "next"  # u·[O = 0] before or after the leak: the same numbers (×0 and ×1 are exact)
    return Dynamics(conv.spike, min_v, reset_at), f"convention {conv.name}"


def _spiking(node, name: str, meta: DeployMeta) -> nn.Module:
    """IF, LIF and CubaLIF -> :class:`SpikingNeuron` (CubaLIF: :class:`CubaSpikingNeuron`), read
    with the producer's convention (:mod:`neurodeploy.ir.conventions`)."""
    dt, conv_name = meta.dt, meta.convention
    if conv_name not in CONVENTIONS:
        raise IRError(f"unknown parameter convention {conv_name!r}; choose one of {', '.join(CONVENTIONS)}")
    conv = CONVENTIONS[conv_name]
    exp = conv.decay == "exp"
    _zero(node, name, "v_reset")
    vth = _arr(node.v_threshold)
    r = _arr(node.r)
    syn = None
    if isinstance(node, nir.IF):
        leak, gain = 1.0, r * (1.0 if exp else dt)
        text = f"λ = 1, gain = r·dt = {_fmt(gain)}" if not exp else f"λ = 1, gain = r = {_fmt(gain)} ({conv_name})"
        if conv_name == "sinabs" and np.any(r != 1):
            text += " (NB sinabs.from_nir ignores r, sinabs/nir.py:87-92: our reading keeps it)"
    else:
        _zero(node, name, "v_leak")
        tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
        leak, f = _decay(node, name, tau, meta, "τ" if isinstance(node, nir.LIF) else "τ_mem")
        gain = r if exp else r * f
        text = (f"λ = exp(−dt/τ) = {leak:.6g}, gain = r = {_fmt(gain)}" if exp
                else f"λ = 1 − dt/τ = {leak:.6g}, gain = r·dt/τ = {_fmt(gain)}")
        if isinstance(node, nir.CubaLIF):
            a_s, f_s = _decay(node, name, node.tau_syn, meta, "τ_syn")
            w_in = _arr(node.w_in)
            g_s = a_s * w_in if exp else w_in * f_s
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
    dyn, origin = _dynamics(node, name, meta, np.asarray(th), reset)
    if syn and meta.convention == "snntorch":
        # snnTorch runs CubaLIF as Synaptic/RSynaptic with reset_delay=True (its default, used in
        # training; the importer's reset_delay=False path fails with init_hidden=True,
        # rsynaptic.py:366-370): the reset of a spike at t−1 is applied in step t ("next"), and a
        # reset to zero discards step t's whole membrane update
        dyn = Dynamics(dyn.spike, dyn.min_v, "next")
        if reset == "zero":
            reset = "zero_late"
            text += "; snnTorch reset: v[t] = (λ·v[t−1] + i[t])·(1 − s[t−1]) (rsynaptic.py:441-448)"
        else:
            text += "; snnTorch reset_delay=True: v[t] = λ·v[t−1] + i[t] − θ·s[t−1] (rsynaptic.py:441-448)"
    spec = NeuronSpec(threshold=1.0, leak=leak, reset=reset, spike=dyn.spike, min_v=dyn.min_v, reset_at=dyn.reset_at)
    m = CubaSpikingNeuron(spec, syn[0], _scalar_or_tensor(syn[1])) if syn else SpikingNeuron(spec)
    m.threshold = nn.Parameter(_scalar_or_tensor(th), requires_grad=m.threshold.requires_grad)
    note = (f"{text}; threshold v_th/gain = {_fmt(th)}; reset {reset} ({dyn.reset_at}); spike {dyn.spike}; "
            f"floor {dyn.min_v} ({origin}); dt = {dt}")
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
        leak, f = _decay(node, name, node.tau, meta, "τ")
        gain = r if CONVENTIONS[conv].decay == "exp" else r * f
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
