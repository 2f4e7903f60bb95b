"""The operation graph that the counters walk: nodes, shapes, value kinds and spike routing.

Built from a sequential :class:`SpikingNetwork` (:func:`graph_from_network`) or from a NIR graph
(:func:`graph_from_nir`, which may branch: a node with several incoming edges sums its inputs —
a residual ADD). Node names are the network's layer names, which are the NIR node names, so
counts line up with ``Outputs.layer_spikes`` / ``Outputs.synops``.

Each node knows the *value kind* of its output, which decides what a downstream synapse costs
(HIRE-SNN Table 6 and eq. 7/8):

- ``binary``: spikes (a neuron's output, a spike-coded input, spikes routed through sum/avg
  pooling, flatten or dropout): one accumulate (AC) per synapse reached;
- ``count``: a sum of spike maps (SEW ADD of two spike trains: values 0, 1, 2, ...): non-binary,
  a multiply-accumulate (MAC) per synapse reached;
- ``analog``: real values (the direct-coded image, a conv/linear output): MACs, dense.

A node is ``const`` when its value is the same at every time step (direct coding, before the first
neuron): the network computes it once, so it is counted once, not T times.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedLayerError
from ..snn.network import TimeDropout
from ..snn.neuron import SpikingNeuron

SYNAPTIC = ("conv", "linear")
ROUTING = ("pool", "reshape", "identity", "scale")  # pass events on without a neuron or a weight
# kinds: input | neuron (spiking, stateful) | spike (stateless threshold) | integrator (non-spiking
# readout) | conv | linear | pool | reshape | identity | scale (elementwise; Scale(1) is a junction)


def _kind(m: nn.Module | None) -> str:
    """Kind of a module; extend :data:`KINDS` for new module types."""
    if m is None:
        return "identity"
    for tp, k in KINDS.items():
        if isinstance(m, tp):
            return k
    name = type(m).__name__
    by_name = {"SumPool2d": "pool", "Scale": "scale", "Heaviside": "spike", "LeakyIntegrator": "integrator"}
    if name in by_name:
        return by_name[name]
    raise UnsupportedLayerError(f"op counting: layer type {name} is unknown; add it to measure.graph.KINDS")


KINDS: dict[type, str] = {
    SpikingNeuron: "neuron",
    nn.Conv2d: "conv",
    nn.Linear: "linear",
    nn.AvgPool2d: "pool",
    nn.MaxPool2d: "pool",
    nn.Flatten: "reshape",
    nn.Dropout: "identity",
    TimeDropout: "identity",
    nn.Identity: "identity",
}


@dataclass
class Node:
    """One node of the operation graph; ``inputs`` are summed (more than one: a residual ADD)."""

    name: str
    kind: str  # input | neuron | conv | linear | pool | reshape | identity
    module: nn.Module | None
    inputs: list[str]
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    in_value: str = "analog"  # value kind of the (summed) input
    value: str = "analog"  # value kind of the output: analog | binary | count
    const: bool = False  # same value at every time step (computed once)

    @property
    def in_size(self) -> int:
        return _numel(self.in_shape)

    @property
    def out_size(self) -> int:
        return _numel(self.out_shape)


@dataclass
class OpGraph:
    """Nodes in topological order, with the input coding and the number of time steps."""

    nodes: dict[str, Node]
    encoding: str
    timesteps: int
    successors: dict[str, list[str]] = field(default_factory=dict)
    _fanout: dict[tuple[str, str, str], torch.Tensor] = field(default_factory=dict, repr=False)

    def neuron_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "neuron"]

    def sources(self, name: str) -> list[str]:
        """The nearest non-routing ancestors feeding node ``name`` (neurons, the input, or a synaptic node)."""
        out: list[str] = []
        for i in self.nodes[name].inputs:
            n = self.nodes[i]
            if n.kind in ROUTING:
                out += [s for s in self.sources(i) if s not in out]
            elif i not in out:
                out.append(i)
        return out

    def driven_neuron(self, name: str) -> str | None:
        """The neuron node a synaptic node drives (through identity layers), if any; a neuron that
        sums several currents (a membrane-style residual) is driven by each of them."""
        for s in self.successors.get(name, []):
            n = self.nodes[s]
            if n.kind == "neuron":
                return s
            if n.kind == "identity":
                return self.driven_neuron(s)
        return None

    def fanout(self, consumer: str, source: str) -> torch.Tensor:
        """Real fan-out of each element of ``source`` into ``consumer`` (shape of ``source``'s output).

        Synaptic consumer: the number of synapses (output neuron, kernel tap) an event reaches —
        taps that fall on padding or beyond the edges are not synapses. Pool consumer: the number of
        pooling windows it lands in. For the input of a residual ADD: 1 per route.
        The map is d(Σ consumer(route(s)) with all-ones weights)/ds, exact because everything linear.
        """
        key = (consumer, source, "fanout")
        if key not in self._fanout:
            self._fanout[key] = _fanout_map(self, consumer, source, terminal=True)
        return self._fanout[key]

    def route(self, consumer: str, source: str) -> torch.Tensor:
        """How many of ``consumer``'s input positions each element of ``source`` reaches (1 through
        non-overlapping pooling, flatten, dropout; more through overlapping pooling windows)."""
        key = (consumer, source, "route")
        if key not in self._fanout:
            self._fanout[key] = _fanout_map(self, consumer, source, terminal=False)
        return self._fanout[key]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _routing(m: nn.Module | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A routing layer as a map of events: average pooling as sum pooling (one spike, one target)."""
    if isinstance(m, nn.AvgPool2d):
        k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
        return lambda x: m(x) * (k[0] * k[1])
    if isinstance(m, nn.MaxPool2d):
        raise UnsupportedLayerError("op counting: max pooling of spikes has no fixed routing; use avg/sum pooling")
    if m is None or isinstance(m, SpikingNeuron):
        return lambda x: x
    return m


def _terminal(n: Node) -> Callable[[torch.Tensor], torch.Tensor]:
    """The consumer's synapses with all-ones weights, so that Σ output = synapses reached."""
    m = n.module
    if n.kind == "conv":
        return lambda h: F.conv2d(h, torch.ones_like(m.weight), None, m.stride, m.padding, m.dilation, m.groups)
    if n.kind == "linear":
        return lambda h: F.linear(h, torch.ones_like(m.weight))
    if n.kind == "pool":
        return _routing(m)
    return lambda h: h  # the ADD itself: one addition per arriving value


def _fanout_map(g: OpGraph, consumer: str, source: str, terminal: bool) -> torch.Tensor:
    src = g.nodes[source]
    s = torch.zeros(1, *src.out_shape, requires_grad=True)
    vals: dict[str, torch.Tensor] = {source: s}
    with torch.enable_grad():
        for name, n in g.nodes.items():
            if name == consumer:
                break
            if name == source or n.kind not in ROUTING:
                continue
            got = [vals[i] for i in n.inputs if i in vals]
            if got:
                vals[name] = _routing(n.module)(sum(got))
        got = [vals[i] for i in g.nodes[consumer].inputs if i in vals]
        if not got:
            return torch.zeros(src.out_shape)
        h = sum(got)
        y = _terminal(g.nodes[consumer])(h) if terminal else h
        (grad,) = torch.autograd.grad(y.sum(), s)
    return grad[0].round()


def _analyse(nodes: dict[str, Node], input_shape: tuple[int, ...], encoding: str, timesteps: int) -> OpGraph:
    """Shapes by a dry run of one sample; value kinds and constness by the rules in the module doc."""
    outs: dict[str, torch.Tensor] = {}
    succ: dict[str, list[str]] = {}
    for name, n in nodes.items():
        for i in n.inputs:
            succ.setdefault(i, []).append(name)
    with torch.no_grad():
        for name in _analysis_order(nodes):
            n = nodes[name]
            if n.kind == "input":
                x = torch.zeros(1, *input_shape)
                n.in_shape = n.out_shape = tuple(input_shape)
                n.value = n.in_value = "analog" if encoding == "direct" else "binary"
                n.const = encoding == "direct"
                outs[name] = x
                continue
            ready = [i for i in n.inputs if i in outs]  # a recurrent input (not computed yet) has the same shape
            ins = [nodes[i] for i in ready]
            h = sum(outs[i] for i in ready)
            n.in_shape = tuple(h.shape[1:])
            kinds = {i.value for i in ins}
            if len(ins) > 1:
                n.in_value = "analog" if "analog" in kinds else "count"
            else:
                n.in_value = ins[0].value
            n.const = all(i.const for i in ins)
            if n.kind in ("neuron", "identity", "integrator", "spike") or n.module is None:
                y = h
            else:
                y = n.module(h)
            n.out_shape = tuple(y.shape[1:])
            if n.kind in ("neuron", "spike"):
                n.value, n.const = "binary", n.const and n.kind == "spike"
            elif n.kind == "integrator":
                n.value, n.const = "analog", False
            elif n.kind in SYNAPTIC:
                n.value = "analog"
            elif n.kind == "scale" and not bool((n.module.scale == 1).all()):
                n.value = "analog" if n.in_value == "analog" else "count"
            else:
                n.value = n.in_value
            outs[name] = y
    return OpGraph(nodes, encoding, timesteps, succ)


def _analysis_order(nodes: dict[str, Node]) -> list[str]:
    """The nodes in an order where each comes after its inputs; on a cycle (a recurrent graph), the
    first waiting node that has some input ready goes first, its recurrent inputs summed in later
    (they carry the previous step's spikes and have its input's shape). Counts are totals over T,
    so the one-step delay of the recurrent edge does not change them."""
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(nodes):
        progress = False
        for name, n in nodes.items():
            if name not in done and all(i in done for i in n.inputs):
                order.append(name)
                done.add(name)
                progress = True
        if not progress:
            name = next(k for k, n in nodes.items() if k not in done and any(i in done for i in n.inputs))
            order.append(name)
            done.add(name)
    return order


_CACHE: "weakref.WeakKeyDictionary[nn.Module, OpGraph]" = weakref.WeakKeyDictionary()


def graph_from_network(net: nn.Module) -> OpGraph:
    """The operation graph of a network (cached per network object; shapes are static).

    The network is walked by its nodes and edges; a network holding residual blocks (layers with
    ``nir_subgraph``) through its NIR export, so node names are the NIR names (``block1.sn1``,
    ``block1.add``).
    """
    g = _CACHE.get(net)
    if g is not None and g.timesteps == net.timesteps and g.encoding == net.encoding:
        return g
    if any(hasattr(m, "nir_subgraph") or isinstance(m, nn.MaxPool2d) for _, m in net.named_nodes()):
        from ..ir import DeployMeta, fold_batchnorm, to_nir

        # through the NIR form: BatchNorm folded, a max pool of spikes as its sum pool + OR threshold
        meta = DeployMeta(timesteps=net.timesteps, encoding=net.encoding, input_shape=list(net.input_shape))
        g = graph_from_nir(to_nir(fold_batchnorm(net), meta), meta)
    else:
        nodes: dict[str, Node] = {net.input_node: Node(net.input_node, "input", None, [])}
        for name, m in net.named_nodes():
            nodes[name] = Node(name, _kind(m), m, list(net.preds[name]))
        g = _analyse(nodes, tuple(net.input_shape), net.encoding, net.timesteps)
    _CACHE[net] = g
    return g


def graph_from_nir(graph, meta) -> OpGraph:
    """The operation graph of a NIR graph, branches and residual ADDs included.

    Layers are rebuilt with :data:`neurodeploy.ir.from_nir.NODE_MAP`; a node with several
    incoming edges receives the sum of its inputs (NIR semantics).
    """
    import nir

    from ..ir.from_nir import NODE_MAP

    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    order: list[str] = []
    ready = [n for n in graph.nodes if not preds[n]]
    remaining = {n: len(p) for n, p in preds.items()}
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succ.get(n, []):
            remaining[s] -= 1
            if remaining[s] == 0:
                ready.append(s)
    if len(order) != len(graph.nodes):
        raise UnsupportedLayerError("op counting: the NIR graph has a cycle")
    nodes: dict[str, Node] = {}
    input_shape: tuple[int, ...] = tuple(meta.input_shape)
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            nodes[name] = Node(name, "input", None, [])
            if not input_shape:
                input_shape = tuple(int(v) for v in list(node.input_type.values())[0])
            continue
        if isinstance(node, nir.Output):
            continue
        conv = NODE_MAP.get(type(node))
        if conv is None:
            raise UnsupportedLayerError(f"op counting: NIR node {name!r} of type {type(node).__name__} is unknown")
        m = conv(node, name, meta)
        nodes[name] = Node(name, _kind(m), m, [p for p in preds[name] if p in nodes])
    return _analyse(nodes, input_shape, meta.encoding, meta.timesteps)
