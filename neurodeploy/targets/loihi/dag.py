"""Residual (DAG) graphs -> a fixed-point Loihi program: SEW-ResNet's ADD, membrane-add shortcuts.

A node with several incoming edges receives the **sum** of its inputs (NIR; ``snn.graph``). Between
two neuron layers everything is linear (conv, linear, avg/sum pool, flatten, the ``Scale(1)``
junctions SEW blocks export), so each neuron layer's input is Σ_k M_k·s_k over the neuron layers
(or the network input) k that reach it, M_k the composition of the linear nodes on the route from k.

How an ADD of spike trains lowers (SEW 'ADD' connect function, Fang et al. 2021: O = SN(...) + S):
the ADD itself feeds only synapses, and W·(a + b) = W·a + W·b holds exactly in integers. So the ADD
is not a layer at all: its consumer gets one synaptic input per summand (the residual branch's
spikes through W, the shortcut's spikes through W composed with whatever routes them, e.g. the stem's
avg pool), all on the consumer's one integer scale σ, and Lava's in-port sums them (an ``a_in``
with several connections receives the sum, lava magma ``InPort``). The alternative — a relay neuron
layer computing a + b — would need a 2-bit graded spike per element and one more step; the synaptic
split is exact and costs no neuron. A max-pool of spikes on the route stays the OR layer
(:mod:`.or_layer`); a membrane-add block (current ADD before a neuron) is the same split.

σ of a layer is bounded by all its synapses together: 8-bit weights over every W_k, |a| < 2^17 over
Σ_k max_i Σ_j |W_k,ij| (the worst case of all summands at once), the threshold and the summed bias.

Latency: Lava's pipeline adds one step per layer, so a layer's *depth* d is its longest path in
layers from the input (first layer 0); it handles sample-local step t at global step t + 2 + d
(netx's staggered reset: reset_offset 2 + d, the runner's probe windows). A synapse from a layer of
depth d_s delivers one step later, so its spikes are delayed by d − d_s − 1 extra steps (Lava
``DelaySparse``; Loihi 2 has 6-bit synaptic delays, ≤ 62 here): both summands of a sample's step t
then arrive on the same step, as in the source. The emulator runs every layer in its local time on
whole spike trains, where no delay exists: it needs none, and the delays are logged and used by the
Lava process graph (:mod:`.lava.graph_builder`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...ir.from_nir import SumPool2d
from ...ir.modules import Heaviside, Scale
from ...measure.graph import graph_from_network
from ...snn.network import SpikingNetwork, TimeDropout
from ...snn.neuron import SpikingNeuron
from .event_input import payload_cap
from .lowering import (BIAS_MAX, _fold_group, _input_fanout, as_options, configure_neurons, input_coding, quantize,
                       scale_bound)
from .options import LoihiOptions
from .program import LoihiLayer, LoihiProgram, LoihiSynapse

log = logging.getLogger(__name__)

MAX_DELAY = 62  # DelaySparse: Loihi 2 synaptic delays are 6 bits (lava proc/sparse/models.py: 0..63)
Route = tuple["str | None", list[tuple[str, nn.Module]]]  # (source layer or None = input, linear nodes)


def _routes(net: SpikingNetwork, node: str, memo: dict[str, list[Route]]) -> list[Route]:
    """Every route into ``node`` from a neuron layer / OR / the input, as the linear nodes crossed."""
    out: list[Route] = []
    for p in net.preds[node]:
        if p == net.input_node:
            out.append((None, []))
            continue
        m = net.layers[p]
        if isinstance(m, (SpikingNeuron, Heaviside)):
            out.append((p, []))
            continue
        if p not in memo:
            memo[p] = _routes(net, p, memo)
        out += [(src, chain + [(p, m)]) for src, chain in memo[p]]
    return out


def _strip(chain: list[tuple[str, nn.Module]]) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """Drop the junctions (Scale(1)) and the inference identities; returns (chain, dropped names)."""
    keep, dropped = [], []
    for n, m in chain:
        if isinstance(m, (nn.Dropout, TimeDropout, nn.Identity)) or (
                isinstance(m, Scale) and bool(torch.all(m.scale == 1))):
            dropped.append(n)
        elif isinstance(m, nn.MaxPool2d):
            raise UnsupportedLayerError(f"node {n!r} (MaxPool2d): lower max pooling through its NIR form (to_nir "
                                        "exports it as SumPool2d + Threshold, an OR of binary spikes)")
        elif isinstance(m, Scale):
            raise UnsupportedLayerError(f"node {n!r} (Scale): only Scale(1) junctions are lowered to Loihi")
        else:
            keep.append((n, m))
    return keep, dropped


def lower_dag(net: SpikingNetwork, timesteps: int, options: LoihiOptions | Mapping[str, Any] | None,
              log_line: Callable[[str], None]) -> LoihiProgram:
    """Lower a feed-forward graph with joins (residual ADDs) to a :class:`LoihiProgram` whose layers
    may have several synaptic inputs (``LoihiLayer.extra``) and delays; see the module docstring."""
    options = as_options(options)
    input_spikes, graded_bits, seed, events, event_bits = input_coding(net, timesteps, options, log_line)
    shapes = net.infer_shapes()
    shapes[net.input_node] = tuple(net.input_shape)
    g = graph_from_network(net)
    q_graded = float((1 << graded_bits) - 1) if (input_spikes == "graded" and not events) else 1.0
    m_input = float(payload_cap(events, event_bits)) if events else q_graded
    memo: dict[str, list[Route]] = {}
    layers: list[LoihiLayer] = []
    depth: dict[str | None, int] = {None: -1}
    dropped: set[str] = set()
    consumers = [n for n in net.node_order if isinstance(net.layers[n], (SpikingNeuron, Heaviside))]
    for name in consumers + [net.output_node]:
        routes = _routes(net, name, memo)
        srcs = [s for s, _ in routes]
        twice = sorted({str(s) for s in srcs if srcs.count(s) > 1})
        if twice:
            raise UnsupportedLayerError(f"node {name!r}: {twice} reach it along two routes; the Loihi lowering "
                                        "needs one route per source")
        stripped = []
        for src, chain in routes:
            keep, drop = _strip(chain)
            dropped.update(drop)
            stripped.append((src, keep))
        if name == net.output_node and all(not c for _, c in stripped):
            if len(stripped) != 1:
                raise UnsupportedLayerError(f"the output sums the spikes of {srcs}: a 'count' readout needs one "
                                            "neuron layer (add a linear readout)")
            log_line(f"readout: spike count of the neuron layer {srcs[0]} summed over T")
            readout_kind = "count"
            break
        m = None if name == net.output_node else net.layers[name]
        if isinstance(m, Heaviside):
            from .or_layer import or_layer

            if len(stripped) != 1:
                raise UnsupportedLayerError(f"node {name!r} (Threshold): an OR layer takes one max pool, not {srcs}")
            src, chain = stripped[0]
            layer = or_layer(name, m, chain, shapes[src] if src else shapes[net.input_node], src, log_line)
        else:
            layer = _neuron_layer(net, name, m, stripped, shapes, g, (q_graded, m_input), log_line)
        _set_delays(layer, depth, log_line)
        depth[layer.name] = layer.depth
        layers.append(layer)
        readout_kind = "potential"
    if dropped:
        log_line(f"junctions/identities {sorted(dropped)} removed: a Scale(1) junction sums its inputs, and the "
                 f"sum is carried by its consumers' synapses (W·(a + b) = W·a + W·b in integers)")
    n_or = sum(1 for n in consumers if isinstance(net.layers[n], Heaviside))
    d_max = max(layer.depth for layer in layers)
    n_delayed = sum(1 for layer in layers for s in layer.synapses() if s.delay)
    log_line(f"latency: {len(layers)} Loihi layers on a longest path of {d_max + 1} (Lava adds one step per layer; "
             f"{n_or} OR layer(s) for max pooling); {n_delayed} shortcut synapse(s) delayed to meet the longer "
             f"branch; samples are fed back to back with reset_interval=T={timesteps} and each layer's reset at "
             f"offset 2 + depth, so each layer sees each sample's T steps")
    return LoihiProgram(layers, tuple(net.input_shape), timesteps, input_spikes, graded_bits, seed, readout_kind,
                        events=events, event_bits=event_bits)


def _neuron_layer(net: SpikingNetwork, name: str, m: SpikingNeuron | None, routes: list[Route],
                  shapes: dict[str, tuple[int, ...]], g: Any, q: tuple[float, float],
                  log_line: Callable[[str], None]) -> LoihiLayer:
    """One layer of CUBA neurons (or the readout, ``m`` None) fed by several routes, one synapse each."""
    folded_all = []
    for src, chain in routes:
        in_shape = shapes[src] if src else shapes[net.input_node]
        if chain and len(in_shape) == 3 and all(isinstance(mm, (nn.AvgPool2d, SumPool2d)) for _, mm in chain):
            # a pooled shortcut straight into a neuron (DIET-SNN's ResNet12 stem: avg pool, then a membrane-add
            # block): the pool followed by a 1x1 identity conv, which _fold_group folds into one k x k conv
            c = int(in_shape[0])
            ident = nn.Conv2d(c, c, 1, bias=False)
            with torch.no_grad():
                ident.weight.copy_(torch.eye(c).reshape(c, c, 1, 1))
            log_line(f"{src or 'input'} -> {name}: pooled identity shortcut {[n for n, _ in chain]} into the "
                     f"neurons' input as the pool folded into a conv synapse")
            chain = chain + [(f"{src or 'input'}->{name}", ident)]
        if chain:
            folded_all.append((src, chain, in_shape, _fold_group(chain, in_shape, log_line)))
            continue
        # an identity shortcut straight into a neuron (membrane-add block): an identity synapse, for maps a
        # 1x1 conv with the identity on the channels (no n x n matrix)
        n = int(np.prod(in_shape))
        if len(in_shape) == 3:
            c = int(in_shape[0])
            w, kind = np.eye(c).reshape(c, c, 1, 1), "conv"
        else:
            w, kind = np.eye(n), "dense"
        log_line(f"{src or 'input'} -> {name}: identity shortcut into the neurons' input as an identity synapse "
                 f"({'1x1 conv' if kind == 'conv' else 'dense'}, {n} synapses)")
        folded_all.append((src, chain, in_shape, (f"{src or 'input'}->{name}", [], kind, w, {}, in_shape, None)))
    from_input = [src for src, *_ in folded_all if src is None]
    if from_input and len(folded_all) > 1 and q[0] != 1.0:
        raise UnsupportedLayerError(f"node {name!r}: fed by the graded network input and by spikes at once; use "
                                    "input_spikes = 'rate' for this graph")
    q_in = q[0] if from_input else 1.0
    readout = m is None
    if readout:
        theta, lam = float("inf"), 1.0
    else:
        th = m.threshold.detach().double().reshape(-1).numpy()
        if th.size > 1 and not np.all(th == th[0]):
            raise UnsupportedLayerError(f"node {name!r}: per-neuron thresholds in a residual graph are not supported "
                                        "by the Loihi lowering")
        theta, lam = float(th[0]), float(m.leak.detach().clamp(0.0, 1.0))
    biases, seen = [], set()
    for *_, f in folded_all:  # a synaptic node's bias once, however many summands cross it
        if f[6] is not None and f[0] not in seen:
            biases.append(f[6])
            seen.add(f[0])
    bias = np.sum(biases, axis=0) if biases else None
    parts = [(f[3], f[2], q[1] if src is None else 1.0) for src, _, _, f in folded_all]
    sigma, why = scale_bound(parts, theta, q_in, bias)
    bq = None if bias is None else np.clip(np.round(bias * sigma * q_in), -BIAS_MAX - 1, BIAS_MAX).astype(np.int64)
    syns: list[LoihiSynapse] = []
    for src, chain, in_shape, (sname, folded, kind, w, conv, out_shape, _) in folded_all:
        wq = quantize(w, sigma)
        err = float(np.abs(wq - w * sigma).max()) / sigma if sigma > 0 else 0.0
        log_line(f"{sname} ({src or 'input'} -> {name}): weights x{sigma:.4g} ({why} binds, over the layer's "
                 f"{len(folded_all)} synaptic input(s)) -> 8-bit even grid [{int(wq.min())}, {int(wq.max())}] "
                 f"(max rounding error {err:.3g}, {int(np.count_nonzero(wq))}/{wq.size} nonzero)")
        if not chain or sname not in g.nodes:
            fan = None  # no NIR synaptic node (identity or pooled shortcut): the source counts an ADD, not synops
        elif src is None:
            fan = _input_fanout(chain, in_shape)
        else:
            fan = g.fanout(sname, src).reshape(-1).double().numpy()
        syns.append(LoihiSynapse(sname, folded, kind, wq, in_shape, out_shape, src, conv.get("stride", (1, 1)),
                                 conv.get("padding", (0, 0)), conv.get("pre_pool"), fan))
    if bq is not None:
        log_line(f"{name}: bias of {len(biases)} synaptic input(s) summed -> mantissa [{int(bq.min())}, "
                 f"{int(bq.max())}] (bias_exp 6)")
    p = syns[0]
    layer = LoihiLayer(name=p.synapse if readout else name, synapse=p.synapse, folded=p.folded, kind=p.kind,
                       weight=p.weight, in_shape=p.in_shape, out_shape=p.out_shape, stride=p.stride,
                       padding=p.padding, bias=bq, scale=sigma * q_in, readout=readout, input_neuron=p.input_neuron,
                       fanout=p.fanout, pre_pool=p.pre_pool, extra=syns[1:])
    configure_neurons(layer, net, None if readout else name, theta, lam, sigma * q_in, log_line)
    if len(syns) > 1:
        what = ", ".join(f"{s.synapse} from {s.input_neuron or 'input'}" for s in syns)
        log_line(f"{layer.name}: {len(syns)} synaptic inputs ({what}) summed at the neurons' input (exact: the ADD "
                 f"of spike trains is W·a + W·b)")
    return layer


def _set_delays(layer: LoihiLayer, depth: dict[str | None, int], log_line: Callable[[str], None]) -> None:
    """Depth = 1 + the deepest source; each synapse waits d − d_src − 1 extra steps (module docstring)."""
    layer.depth = 1 + max(depth[s.input_neuron] for s in layer.synapses())
    for s in layer.synapses():
        s.delay = layer.depth - depth[s.input_neuron] - 1
        if s.delay > MAX_DELAY:
            raise UnsupportedLayerError(f"node {layer.name!r}: the route from {s.input_neuron} needs a synaptic delay "
                                        f"of {s.delay} steps; Loihi 2 allows at most {MAX_DELAY}")
        if s.delay:
            src = s.input_neuron or "the input"
            log_line(f"delay: {s.synapse} ({s.input_neuron or 'input'} -> {layer.name}) delayed by {s.delay} step"
                     f"{'s' if s.delay > 1 else ''} on Lava (synaptic delay, DelaySparse): {src} is at pipeline depth "
                     f"{depth[s.input_neuron]}, {layer.name} at {layer.depth}, so both summands "
                     f"of a sample's step arrive together (loihi-emu runs in each layer's local time: no delay needed)")
