"""torch SNN -> NIR graph, by a table keyed by module type (NIRTorch style, user-extendable).

Any :class:`~neurodeploy.snn.graph.SpikingNetwork` is exported node by node with its edges (a chain,
a DAG, a recurrent graph); a composite node (a residual block exporting itself through
``nir_subgraph``) is inserted as its subgraph.

Shapes in NIR exclude the batch dimension. A neuron with leak λ and threshold v_th, discretised
with step dt, is NIR's LIF with τ = dt / (1 − λ), r = τ / dt, v_leak = 0 (forward Euler then gives
u ← λ·u + I), or NIR's IF with r = 1 / dt when λ = 1. Reset by subtraction is in the metadata.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.graph import SpikingNetwork
from ..snn.kinds import CubaSpikingNeuron, LeakyIntegrator
from ..snn.models import Normalize
from ..snn.network import TimeDropout
from ..snn.neuron import DEFAULT_DYNAMICS, SpikingNeuron
from .metadata import DeployMeta, write_meta
from .modules import Heaviside, Scale, SumPool2d

log = logging.getLogger(__name__)

Converter = Callable[[nn.Module, tuple[int, ...], float], "nir.NIRNode | None"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _conv(m: nn.Conv2d, in_shape, dt):
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    if isinstance(m.padding, str):
        raise UnsupportedLayerError(f"Conv2d padding={m.padding!r}: give explicit padding")
    return nir.Conv2d(
        input_shape=tuple(in_shape[1:]), weight=_np(m.weight), stride=m.stride, padding=m.padding,
        dilation=m.dilation, groups=m.groups, bias=bias,
    )


def _linear(m: nn.Linear, in_shape, dt):
    if m.bias is None:
        return nir.Linear(weight=_np(m.weight))
    return nir.Affine(weight=_np(m.weight), bias=_np(m.bias))


def _pair(v) -> np.ndarray:
    return np.array(v if isinstance(v, (tuple, list)) else (v, v))


def _avgpool(m: nn.AvgPool2d, in_shape, dt):
    stride = m.kernel_size if m.stride is None else m.stride
    return nir.AvgPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding))


def _flatten(m: nn.Flatten, in_shape, dt):
    start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
    end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start, end_dim=end)


def _neuron(m: SpikingNeuron, in_shape, dt):
    shape = tuple(in_shape)
    vth = np.broadcast_to(_np(m.threshold), shape).copy()
    lam = float(m.leak.detach().clamp(max=1.0))
    if lam >= 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, np.float32), v_threshold=vth, v_reset=np.zeros(shape, np.float32))
    tau = dt / (1.0 - lam)
    return nir.LIF(
        tau=np.full(shape, tau, np.float32), r=np.full(shape, tau / dt, np.float32),
        v_leak=np.zeros(shape, np.float32), v_threshold=vth, v_reset=np.zeros(shape, np.float32),
    )


def _skip(m, in_shape, dt):
    return None


OR_THRESHOLD = 0.5  # sum ≥ 1 ⇔ sum > 0.5 for integer spike counts


def _maxpool(m: nn.MaxPool2d, in_shape, dt):
    """Max pooling of binary spikes as an OR: NIR ``SumPool2d`` then a stateless ``Threshold`` (θ = 0.5).

    For spikes s ∈ {0, 1}, max over a window = 1 ⇔ Σ window ≥ 1 ⇔ Σ window > 0.5, so the pair is
    exact; for anything else (currents, spike counts) it is not, and :func:`_maxpool_inputs`
    refuses the export. Padding: max pooling pads with −∞, sum pooling with 0; for spikes ≥ 0 the
    two agree (PyTorch keeps padding ≤ k/2, so every window holds at least one real input).
    Returns a builder ``name -> (nodes, edges, entry, exit)`` (a composite of two nodes).
    """
    if m.ceil_mode or m.return_indices or _pair(m.dilation).tolist() != [1, 1]:
        raise UnsupportedLayerError("MaxPool2d with ceil_mode, return_indices or dilation has no exact sum-pool "
                                    "form; use ceil_mode=False, dilation=1")
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    pool = nir.SumPool2d(kernel_size=k, stride=s, padding=_pair(m.padding))
    out = tuple(m(torch.zeros(1, *in_shape)).shape[1:])
    thr = nir.Threshold(np.full(out, OR_THRESHOLD, np.float32))

    def build(name: str) -> tuple[dict, list, str, str]:
        return {name: pool, f"{name}_or": thr}, [(name, f"{name}_or")], name, f"{name}_or"

    return build


_BINARY = (SpikingNeuron, Heaviside, nn.MaxPool2d)  # outputs in {0, 1} when the neurons emit one spike per step


def _binary(m: nn.Module | None) -> bool:
    """Whether ``m``'s output is binary spikes: a multi-spike neuron (sinabs' ⌊v/θ⌋) is not."""
    dyn = getattr(m, "dynamics", None)
    return isinstance(m, _BINARY) and (dyn is None or dyn.spike == "single")
_PASS = (nn.Dropout, TimeDropout, nn.Identity)  # identity at inference


def _maxpool_inputs(net: nn.Module, previous: dict[str, dict] | None = None) -> dict[str, dict]:
    """The ``max_pools`` metadata: for every top-level ``MaxPool2d``, its NIR pair and its input neuron;
    ``previous`` entries (a network re-imported from NIR) are kept while their SumPool2d and
    Threshold layers are still there.

    UnsupportedLayerError naming the layer when its input is not binary spikes (then OR ≠ max).
    """
    items = list(net.named_nodes())
    pred = {n: list(net.preds[n]) for n, _ in items}
    mods = dict(items)

    def source(n: str) -> str:  # skip identity-at-inference layers
        while n in mods and isinstance(mods[n], _PASS) and len(pred.get(n, [])) == 1:
            n = pred[n][0]
        return n

    out = {k: v for k, v in (previous or {}).items()
           if isinstance(mods.get(v.get("sum_pool")), SumPool2d) and isinstance(mods.get(v.get("threshold")), Heaviside)}
    for n, m in items:
        if not isinstance(m, nn.MaxPool2d):
            continue
        srcs = [source(p) for p in pred[n]]
        bad = [p for p in srcs if not _binary(mods.get(p))]
        if bad:
            what = ", ".join(f"{p!r} ({type(mods[p]).__name__ if p in mods else 'the network input'})" for p in bad)
            raise UnsupportedLayerError(
                f"layer {n!r} (MaxPool2d): its input comes from {what}, not from a spiking neuron; max pooling "
                "is exported as an OR of binary spikes (SumPool2d + Threshold), which equals max only for spikes "
                "in {0, 1}: move the pooling after a neuron or use average pooling (model.pooling = 'avg')")
        k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
        out[n] = {"sum_pool": n, "threshold": f"{n}_or", "input": srcs[0], "kernel_size": k.tolist(),
                  "stride": s.tolist(), "padding": _pair(m.padding).tolist(), "exact": "binary spikes"}
    return out


#: ``metadata["neurodeploy"]`` of the Conv2d node an input normalisation exports as.
NORMALIZE_TAG = "normalize"


def _normalize(m: Normalize, in_shape, dt):
    """The input normalisation ``(x − mean) / std`` (:class:`~neurodeploy.snn.models.Normalize`) as
    NIR's 1×1 ``Conv2d`` with a diagonal C×C weight ``diag(1/std)`` and bias ``−mean/std``: the same
    per-channel affine map (the zero off-diagonal terms add exact zeros) in a node every NIR
    consumer runs (nir/ir/conv.py:72). Not NIR's ``Affine``: it assumes a 1-D input
    (nir/ir/linear.py:18), so on C×H×W it would be a dense (CHW)² matrix; not a depthwise conv
    (groups = C): nir 1.0's type inference takes C_in = weight.shape[1] and ignores groups
    (nir/ir/conv.py:123), so the graph would fail its own type check. The node's metadata keeps
    mean and std so that :mod:`.from_nir` rebuilds the module exactly (1/(1/std) need not be std)."""
    mean, std = _np(m.mean).reshape(-1), _np(m.std).reshape(-1)
    c = len(mean)
    if len(in_shape) != 3 or in_shape[0] != c:
        raise UnsupportedLayerError(f"Normalize of {c} channels needs a [C={c}, H, W] input, got {tuple(in_shape)}")
    w = np.diag(1.0 / std).astype(np.float32).reshape(c, c, 1, 1)
    log.info("lowering: input normalisation (x − mean)/std exported as a 1×1 Conv2d with weight diag(1/std) "
             "and bias −mean/std")
    return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w, stride=1, padding=0, dilation=1, groups=1,
                      bias=(-mean / std).astype(np.float32),
                      metadata={"neurodeploy": NORMALIZE_TAG, "mean": mean, "std": std})


def _refuse_bn(m, in_shape, dt):
    raise UnsupportedLayerError(f"{type(m).__name__}: BatchNorm has no NIR node; fold it into the preceding "
                                "conv/linear first (neurodeploy.ir.passes.fold_batchnorm)")


def _sumpool(m: SumPool2d, in_shape, dt):
    return nir.SumPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding))


def _scale(m: Scale, in_shape, dt):
    return nir.Scale(np.broadcast_to(_np(m.scale), tuple(in_shape)).copy())


def _heaviside(m: Heaviside, in_shape, dt):
    return nir.Threshold(np.broadcast_to(_np(m.threshold), tuple(in_shape)).copy())


def _integrator(m: LeakyIntegrator, in_shape, dt):
    shape = tuple(in_shape)
    lam = float(m.leak)
    gain = np.broadcast_to(_np(m.gain), shape).astype(np.float32)
    if lam >= 1.0:
        return nir.I(r=gain / dt)
    tau = dt / (1.0 - lam)
    return nir.LI(tau=np.full(shape, tau, np.float32), r=gain * tau / dt, v_leak=np.zeros(shape, np.float32))


def _cuba(m: CubaSpikingNeuron, in_shape, dt):
    shape = tuple(in_shape)
    lam, a_s = float(m.leak.detach().clamp(max=1.0)), float(m.syn_leak)
    if lam >= 1.0 or a_s >= 1.0:
        raise UnsupportedLayerError("CubaLIF with a leak of 1 (infinite τ) has no NIR form")
    tau_m, tau_s = dt / (1.0 - lam), dt / (1.0 - a_s)
    full = lambda v: np.full(shape, v, np.float32)  # noqa: E731
    return nir.CubaLIF(
        tau_syn=full(tau_s), tau_mem=full(tau_m), r=full(tau_m / dt), v_leak=full(0.0),
        v_threshold=np.broadcast_to(_np(m.threshold), shape).copy(), v_reset=full(0.0),
        w_in=np.broadcast_to(_np(m.syn_gain) * tau_s / dt, shape).astype(np.float32),
    )


MODULE_MAP: dict[type, Converter] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.AvgPool2d: _avgpool,
    SumPool2d: _sumpool,
    nn.Flatten: _flatten,
    SpikingNeuron: _neuron,
    CubaSpikingNeuron: _cuba,
    LeakyIntegrator: _integrator,
    Scale: _scale,
    Heaviside: _heaviside,
    nn.Dropout: _skip,
    TimeDropout: _skip,
    nn.Identity: _skip,
    nn.MaxPool2d: _maxpool,
    nn.BatchNorm1d: _refuse_bn,
    nn.BatchNorm2d: _refuse_bn,
    Normalize: _normalize,
}

Composite = Callable[[str, tuple, float], tuple[dict, list, "str | list[str]", str]]


def _node(table, name: str, m: nn.Module, in_shape: tuple[int, ...], dt: float):
    """One module through the table: a NIR node, None (identity at inference) or, for a composite
    module with ``nir_subgraph``, the tuple ``(nodes, edges, entry, exit)``."""
    conv = table.get(type(m))
    try:
        if conv is not None:
            out = conv(m, in_shape, dt)
            return out(name) if callable(out) else out  # a composite builder taking the layer's name
        if hasattr(m, "nir_subgraph"):
            return m.nir_subgraph(name, tuple(in_shape), dt)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"layer {name!r}: {e}") from None
    raise UnsupportedLayerError(f"layer {name!r} ({type(m).__name__}) has no NIR converter "
                                "(add it to MODULE_MAP or give the module a nir_subgraph method)")


def _graph(net: SpikingNetwork, table, shape, dt) -> tuple[dict, list, list[str]]:
    """Nodes and edges of the network's graph (without the ``output`` node and the edges into it);
    returns also the nodes feeding the output."""
    shapes = net.infer_shapes()
    nodes: dict[str, nir.NIRNode] = {net.input_node: nir.Input(input_type={"input": np.array(shape)})}
    edges = [e for e in net.edges if e[1] != net.output_node]  # to_nir adds the edges into "output"
    lasts = list(net.preds[net.output_node])
    for name, m in net.named_nodes():
        in_shape = shapes[net.preds[name][0]]
        node = _node(table, name, m, in_shape, dt)
        if node is None:  # identity at inference: join its in- and out-edges (NIR sums edges)
            log.debug("layer %s (%s) is the identity at inference; not exported", name, type(m).__name__)
            ins = [a for a, b in edges if b == name]
            outs = [b for a, b in edges if a == name]
            edges = [e for e in edges if name not in e] + [(a, b) for a in ins for b in outs]
            if name in lasts:
                lasts = [p for p in lasts if p != name] + ins
            continue
        if isinstance(node, tuple):  # composite: (nodes, edges, entry, exit)
            sub_nodes, sub_edges, entry, exit_ = node
            clash = set(sub_nodes) & (set(nodes) | set(net.node_order) - {name})
            if clash:
                raise UnsupportedLayerError(f"layer {name!r}: its subgraph reuses node names {sorted(clash)}")
            nodes.update(sub_nodes)
            entries = [entry] if isinstance(entry, str) else list(entry)
            new = [tuple(e) for e in sub_edges]
            for a, b in edges:
                if b == name:
                    new += [(a, e) for e in entries]
                elif a == name:
                    new.append((exit_, b))
                else:
                    new.append((a, b))
            edges = new
            lasts = [exit_ if p == name else p for p in lasts]
            continue
        nodes[name] = node
    return nodes, edges, lasts


def _fill_types(graph: nir.NIRGraph, meta: DeployMeta) -> None:
    """Give every node explicit input/output types from a dry run of the graph's own network."""
    from .from_nir import check_shapes, from_nir

    probe = copy.deepcopy(meta)
    probe.mapping = {}
    net = from_nir(graph, probe, "<export>", check=False)
    shapes = check_shapes(net, "<export>")
    preds: dict[str, list[str]] = {}
    for a, b in graph.edges:
        preds.setdefault(b, []).append(a)
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.Input, nir.Output)) or name not in shapes:
            continue
        ins = preds.get(name, [])
        if ins and ins[0] in shapes and _undefined(node.input_type):
            node.input_type = {"input": np.array(shapes[ins[0]])}
        if _undefined(node.output_type):
            node.output_type = {"output": np.array(shapes[name])}


def _undefined(types) -> bool:
    return types is None or any(v is None for v in types.values())


def to_nir(net: SpikingNetwork, meta: DeployMeta,
           module_map: dict[type, Converter] | None = None) -> nir.NIRGraph:
    """Convert a network to a NIR graph carrying ``meta``.

    The network is exported node by node with its edges; a node whose type is not in the table
    but has ``nir_subgraph(prefix, in_shape, dt) -> (nodes, edges, entry, exit)`` (a residual
    block) is inserted as that subgraph: its predecessors feed ``entry`` (a name or a list of
    names), ``exit`` feeds its successors. Node types are filled in from a dry run, so the file
    passes NIR's type check.
    """
    table = {**MODULE_MAP, **(module_map or {})}
    shape = tuple(meta.input_shape) or tuple(net.input_shape or ())
    if not shape:
        raise UnsupportedLayerError("to_nir: the input shape is unknown (set meta.input_shape)")
    meta.input_shape = list(shape)
    meta.max_pools = _maxpool_inputs(net, meta.max_pools)
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            nodes, edges, lasts = _graph(net, table, shape, meta.dt)
    finally:
        net.train(was)
    nodes["output"] = nir.Output(output_type={"output": None})
    edges += [(last, "output") for last in lasts]
    meta.reset = {n: m.reset for n, m in net.neurons()}
    # what NIR's IF/LIF cannot say (multi-spike, membrane floor, reset timing): only where not default
    meta.neurons = {n: dataclasses.asdict(m.dynamics) for n, m in net.neurons()
                    if not getattr(m, "dynamics", DEFAULT_DYNAMICS).is_default}
    meta.convention = "nir"  # parameters are written in our canonical (forward-Euler) form
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    try:
        _fill_types(graph, meta)
        typed = True
    except IRError as e:  # a node type added by the user that from_nir cannot rebuild
        log.warning("to_nir: node types not inferred (%s); the graph is written without a type check", e)
        typed = False
    out_shape = _output_shape(graph) if typed else tuple(_net_output_shape(net, shape))
    graph.nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    graph = nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, type_check=False)
    meta.num_classes = int(np.prod(out_shape))
    if typed:
        try:
            graph.check_types()
        except (ValueError, NotImplementedError) as e:
            raise UnsupportedLayerError(f"to_nir: the exported graph fails NIR's type check: {e}") from None
    write_meta(graph, meta)
    return graph


@torch.no_grad()
def _net_output_shape(net: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The network's output shape (without batch) from a forward pass on zeros."""
    was = net.training
    net.eval()
    x = torch.zeros(1, net.timesteps, *shape) if net.encoding == "events" else torch.zeros(1, *shape)
    try:
        return tuple(net.run_sequence(x)[0].shape[1:])
    finally:
        net.train(was)


def _output_shape(graph: nir.NIRGraph) -> tuple[int, ...]:
    pre = [a for a, b in graph.edges if b == "output"][0]
    return tuple(int(v) for v in np.asarray(graph.nodes[pre].output_type["output"]).reshape(-1))


def write_nir(graph: nir.NIRGraph, path: str | Path) -> None:
    """Write a NIR graph atomically (temporary file, then rename); a graph with NaN/inf parameters
    (a diverged training) is refused with the node and tensor named instead of written."""
    from ..util import atomic_path
    from .nir_file import check_finite

    try:
        check_finite(graph.to_dict())
    except IRError as e:
        raise IRError(f"{path}: not written: {e}") from None
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
