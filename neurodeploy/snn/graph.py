"""The one network executor: a graph of named modules run over T time steps.

NIR semantics: a node with several incoming edges receives the **sum** of its inputs (a residual ADD
is two edges into one node). A chain (the model zoo's sequential networks) is the graph
``input → layer₁ → … → layerₙ → output``, built by :class:`SpikingNetwork` when no edges are given.

Time batching: each value is either *constant* over time (``[B, ...]``: direct input coding, before
any stateful node) or a sequence ``[T, B, ...]``; stateless modules run on ``[T·B, ...]`` at once,
modules with ``sequence_aware = True`` (neurons, leaky integrators, time-dropout, residual blocks)
receive ``[T, B, ...]``. A constant value meeting a sequence at a junction is broadcast over T.

Recurrence: a strongly connected component (a cycle such as CubaLIF → recurrent Affine → CubaLIF)
runs step by step; the rest of the graph stays time batched. Inside a cycle, edges leaving a
stateful node (a neuron) are *delayed*, as few as break every cycle: the target reads the source's
output of the previous step (nothing at t = 0), and the nodes of the cycle run in topological
order of the remaining edges within the step. That is
snnTorch's RSynaptic/RLeaky: ``syn[t] = α·syn[t−1] + x[t] + V(spk[t−1])`` with the recurrent layer
applied to the previous step's spikes, bias included from t = 0 (snntorch/_neurons/rsynaptic.py:418-
424), and NIRTorch's executor, which feeds a node whose source is not computed yet with that source's
``prev_output`` (nirtorch/nir_interpreter.py:241-254; it starts from zeros, so an Affine's bias on the
recurrent edge is missing at t = 0 only). A cycle without a stateful node (an algebraic loop) is
refused. Inside a cycle, a stateful node advances with its ``step(x, state) -> (y, state)``.

Readout: ``forward(x)`` returns the output node's input summed over T (``sum``: the last non-spiking
layer's potential, DIET-SNN/HIRE-SNN; ``count``: the spike count when it spikes). With ``record``,
``spike_counts[name]`` ``[B]`` and ``spike_maps[name]`` ``[B, ...]`` hold every neuron's spikes.
With ``timesteps = 1`` and no neurons (ReLU in the neuron slots) the same executor is an ANN.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable

import torch
from torch import nn

from ..data.encoding import encode
from ..errors import IRError
from . import blas, pool
from .neuron import SpikingNeuron
from .topology import NodeDict, module_key, strongly_connected, topo_order

def run_stateless(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)``; a large nn.Linear on the CPU through :func:`.blas.linear` when that backend is
    the faster one (same product, another BLAS: float rounding only)."""
    if blas.usable(layer, h):
        return blas.linear(layer, h)
    if pool.usable(layer, h):  # nn.AvgPool2d(2) on a small map: the same sums, cheaper (pool.py)
        return pool.avg_pool2x2(h)
    return layer(h)


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
        return run_stateless(layer, h), True
    t, b = h.shape[:2]
    y = run_stateless(layer, h.reshape(t * b, *h.shape[2:]))
    return y.reshape(t, b, *y.shape[1:]), False


def record_spikes(net: nn.Module, name: str, spikes: torch.Tensor) -> None:
    """Store a neuron layer's spike counts per neuron ``[B, ...]`` and per sample ``[B]`` on ``net``."""
    with torch.no_grad():
        m = spikes.detach().sum(0)
        net.spike_maps[name] = m
        net.spike_counts[name] = m.flatten(1).sum(1)


Value = tuple[torch.Tensor, bool]  # (tensor, constant over time)


class SpikingNetwork(nn.Module):
    """An SNN (or, without neurons, an ANN) over a graph of named modules; see the module docstring.

    ``layers``: (node name, module) of the compute nodes. ``edges``: the graph's edges including those
    from ``input_node`` and into ``output_node``; ``None`` builds the chain through ``layers`` in order.
    """

    def __init__(
        self,
        layers: Iterable[tuple[str, nn.Module]],
        timesteps: int,
        encoding: str = "direct",
        readout: str = "sum",
        input_shape: tuple[int, ...] | None = None,
        *,
        edges: Iterable[tuple[str, str]] | None = None,
        input_node: str = "input",
        output_node: str = "output",
        source: str = "<graph>",
    ) -> None:
        super().__init__()
        layers = list(layers)
        names = [input_node] + [n for n, _ in layers] + [output_node]
        if len(set(names)) != len(names):
            raise IRError(f"{source}: duplicate node names in {names}")
        if edges is None:
            edges = list(zip(names, names[1:]))
        self.edges = [(str(a), str(b)) for a, b in edges]
        self.preds: dict[str, list[str]] = {n: [] for n in names}
        for a, b in self.edges:
            if a not in self.preds or b not in self.preds:
                raise IRError(f"{source}: edge ({a!r}, {b!r}) names a node that is not in the graph")
            self.preds[b].append(a)
        self.input_node, self.output_node = input_node, output_node
        self._check_connected(names, source)
        mods = dict(layers)
        self.plan = self._plan(names, mods, source)
        self.node_order: list[str] = [n for step in self.plan for n in step[0]]
        self.keys: dict[str, str] = {}
        for n in self.node_order:
            k = module_key(n)
            while k in self.keys.values():
                k += "_"
            self.keys[n] = k
        self.layers = NodeDict(OrderedDict((self.keys[n], mods[n]) for n in self.node_order), self.keys)
        self._init_run(timesteps, encoding, readout, input_shape)
        self._trace: dict[str, tuple[int, ...]] | None = None  # node shapes, while infer_shapes runs
        self._trace_source = source

    def _init_run(self, timesteps: int, encoding: str, readout: str, input_shape: Iterable[int] | None) -> None:
        self.timesteps = timesteps
        self.encoding = encoding
        self.readout = readout
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.record = False
        self.spike_counts: dict[str, torch.Tensor] = {}
        self.spike_maps: dict[str, torch.Tensor] = {}
        self.generator: torch.Generator | None = None

    def clamp_(self) -> None:
        """Keep every layer's leak ≤ 1 and threshold > 0 (call after each optimiser step)."""
        for _, m in self.neurons():
            m.clamp_()

    def set_carry_state(self, on: bool) -> None:
        """Carry neuron state across forward calls (HIRE-SNN periods); off clears the state."""
        for _, m in self.neurons():
            m.carry_state = on
            m.state = None

    # ------------------------------------------------------------------ structure
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

    def _plan(self, names: list[str], mods: dict[str, nn.Module], source: str
              ) -> list[tuple[list[str], set[tuple[str, str]]]]:
        """Execution steps: ``([node], set())`` for a node outside cycles, ``(nodes, delayed edges)``
        for a strongly connected component run step by step."""
        plan = []
        for comp in strongly_connected(names, self.edges):
            inner = [(a, b) for a, b in self.edges if a in comp and b in comp]
            if not inner:
                plan.append((comp, set()))
                continue
            if self.input_node in comp or self.output_node in comp:
                raise IRError(f"{source}: the input or output node lies on a cycle {comp}")
            # delay edges leaving stateful nodes, as few as break every cycle (greedy in edge order)
            delayed = {(a, b) for a, b in inner if getattr(mods[a], "sequence_aware", False)}
            for e in [e for e in inner if e in delayed]:
                if topo_order(comp, [f for f in inner if f not in delayed or f == e]) is not None:
                    delayed.discard(e)
            order = topo_order(comp, [e for e in inner if e not in delayed])
            if order is None or not delayed:
                raise IRError(f"{source}: the cycle through {comp} has no stateful node (neuron) to carry it "
                              "from one time step to the next (an algebraic loop)")
            plan.append((order, delayed))
        return [(n, d) for n, d in plan if n not in ([self.input_node], [self.output_node])]

    @property
    def is_chain(self) -> bool:
        """True when the graph is one path input → … → output (no branches, joins or cycles)."""
        path = [self.input_node] + self.node_order + [self.output_node]
        return sorted(self.edges) == sorted(zip(path, path[1:]))

    @property
    def recurrent_edges(self) -> list[tuple[str, str]]:
        """The delayed edges of the cycles (empty for a feed-forward graph)."""
        return sorted(e for _, d in self.plan for e in d)

    def module(self, name: str) -> nn.Module:
        """The module of node ``name``."""
        return self.layers[name]

    def named_nodes(self) -> list[tuple[str, nn.Module]]:
        """(node name, module) in execution order."""
        return [(n, self.layers[n]) for n in self.node_order]

    def neurons(self) -> list[tuple[str, SpikingNeuron]]:
        """Neuron layers in execution order; those nested in composite blocks as ``block.sn1``."""
        out = []
        for n, m in self.named_nodes():
            out += [(f"{n}.{s}" if s else n, mm) for s, mm in m.named_modules() if isinstance(mm, SpikingNeuron)]
        return out

    # ------------------------------------------------------------------ running
    def _gather(self, name: str, vals: dict[str, Value]) -> Value:
        ins = [vals[p] for p in self.preds[name]]
        if len(ins) == 1:
            return ins[0]
        if all(c for _, c in ins):
            return torch.stack([h for h, _ in ins]).sum(0), True
        seq = [h.unsqueeze(0).expand(self.timesteps, *h.shape) if c else h for h, c in ins]
        return torch.stack(seq).sum(0), False

    def _call(self, name: str, fn, *args):
        """Run one node; while tracing shapes (``infer_shapes``) a failure becomes an IRError naming it."""
        if self._trace is None:
            return fn(*args)
        try:
            return fn(*args)
        except IRError:
            raise
        except Exception as e:  # noqa: BLE001 - shape errors surface as many types
            got = [self._trace.get(p) for p in self.preds[name]]
            raise IRError(f"{self._trace_source}: node {name!r} ({type(self.layers[name]).__name__}) cannot take "
                          f"its input of shape {got if len(got) > 1 else got[0]}: {e}") from None

    def run_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on an input; returns the output node's input sequence ``[T, B, ...]``."""
        T = self.timesteps
        const = self.encoding == "direct"
        h = x if const else encode(x, T, self.encoding, self.generator)  # [B,...] if const else [T,B,...]
        self.spike_counts, self.spike_maps = {}, {}
        top = set(self.node_order)
        hooks = [m.register_forward_hook(self._record_hook(n)) for n, m in self.neurons()
                 if self.record and n not in top]
        vals: dict[str, Value] = {self.input_node: (h, const)}
        uses = {n: 0 for n in self.preds}
        for ps in self.preds.values():
            for p in ps:
                uses[p] += 1
        try:
            for nodes, delayed in self.plan:
                if delayed:
                    vals.update(self._run_loop(nodes, delayed, vals))
                else:
                    name = nodes[0]
                    vals[name] = self._call(name, apply_layer, self.layers[name], *self._gather(name, vals), T)
                for name in nodes:
                    if self._trace is not None:
                        v, c = vals[name]
                        self._trace[name] = tuple(v.shape[1:] if c else v.shape[2:])
                    if self.record and isinstance(self.layers[name], SpikingNeuron):
                        record_spikes(self, name, vals[name][0])
                    for p in self.preds[name]:
                        uses[p] -= 1
                        if uses[p] == 0 and p in vals:
                            del vals[p]
            h, const = self._gather(self.output_node, vals)
        finally:
            for hk in hooks:
                hk.remove()
        if const:
            h = h.unsqueeze(0).expand(T, *h.shape)
        return h

    def _run_loop(self, nodes: list[str], delayed: set[tuple[str, str]], vals: dict[str, Value]) -> dict[str, Value]:
        """One strongly connected component, step by step; returns each node's output ``[T, B, ...]``."""
        T = self.timesteps
        ext = {n: [vals[p] for p in self.preds[n] if p not in nodes] for n in nodes}
        state: dict[str, Any] = {n: None for n in nodes}
        prev: dict[str, torch.Tensor] = {}
        outs: dict[str, list[torch.Tensor]] = {n: [] for n in nodes}
        for t in range(T):
            cur: dict[str, torch.Tensor] = {}
            for n in nodes:
                terms = [h if c else h[t] for h, c in ext[n]]
                # a delayed source not computed yet this step gives its previous step's output; at t = 0
                # it has none (no spikes yet) and adds nothing
                terms += [cur[p] if p in cur else prev[p] for p in self.preds[n] if p in cur or p in prev]
                if not terms:  # only delayed inputs at t = 0: zeros shaped like the source's output
                    terms = [torch.zeros_like(self._zero_like(n, nodes, ext, cur))]
                xt = terms[0] if len(terms) == 1 else torch.stack(terms).sum(0)
                cur[n], state[n] = self._call(n, self._step, n, xt, state[n])
                outs[n].append(cur[n])
            prev = cur
        return {n: (torch.stack(outs[n]), False) for n in nodes}

    def _zero_like(self, n: str, nodes: list[str], ext: dict[str, list[Value]], cur: dict[str, torch.Tensor]
                   ) -> torch.Tensor:
        """A tensor shaped like the output of ``n``'s delayed source at t = 0: a stateful node keeps
        its input's shape, so it is shaped like that node's other (already known) inputs."""
        for p in self.preds[n]:
            if p in nodes and p not in cur:
                known = [h if c else h[0] for h, c in ext[p]] + [cur[q] for q in self.preds[p] if q in cur]
                if known:
                    return known[0]
        raise IRError(f"node {n!r} on a cycle: the shape of its delayed input at t = 0 is unknown")

    def _step(self, name: str, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One time step of one node inside a cycle."""
        m = self.layers[name]
        if not getattr(m, "sequence_aware", False):
            return m(x), None
        if hasattr(m, "step"):
            return m.step(x, state)
        raise IRError(f"node {name!r} ({type(m).__name__}) cannot run inside a recurrent cycle (it has no step())")

    def _record_hook(self, name: str):
        def hook(module: nn.Module, inp, out: torch.Tensor) -> None:
            record_spikes(self, name, out)

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequence(x).sum(0)  # 'sum' and 'count' readouts both sum over T

    @torch.no_grad()
    def infer_shapes(self, source: str = "<graph>") -> dict[str, tuple[int, ...]]:
        """Output shape (without batch) of every node, from a one-step dry run on zeros; IRError naming
        the node whose input does not fit."""
        if self.input_shape is None:
            raise IRError(f"{source}: the network has no input shape")
        was = (self.timesteps, self.encoding, self.record, self.training)
        self.timesteps, self.encoding, self.record = 1, "direct", False
        self._trace, self._trace_source = {self.input_node: tuple(self.input_shape)}, source
        self.eval()
        try:
            try:
                h = self.run_sequence(torch.zeros(1, *self.input_shape))
            except RuntimeError as e:
                raise IRError(f"{source}: the inputs of {self.output_node!r} have different shapes: {e}") from None
            shapes = dict(self._trace)
        finally:
            self.timesteps, self.encoding, self.record = was[:3]
            self.train(was[3])
            self._trace = None
        shapes[self.output_node] = tuple(h.shape[2:])
        return shapes

    def extra_repr(self) -> str:
        rec = f", recurrent edges={self.recurrent_edges}" if self.recurrent_edges else ""
        return (f"timesteps={self.timesteps}, encoding={self.encoding}, nodes={len(self.node_order)}, "
                f"edges={len(self.edges)}{rec}")
