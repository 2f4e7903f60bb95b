"""Operation counts: HIRE-SNN Table 6 formulas and exact synaptic-operation counts.

Table 6 (Kundu et al., "HIRE-SNN", ICCV 2021), per sample:

- conv:   FL_ANN = k_h · k_w · H_o · W_o · C_o · C_i / groups
- linear: FL_ANN = C_i · C_o
- pooling (counted here too): FL_ANN = k_h · k_w · H_o · W_o · C (one accumulate per window tap)
- residual ADD of n inputs: FL_ANN = (n − 1) · numel
- FL_SNN = FL_ANN × ζ, ζ the activity of the layer's input: events per input position per sample
  over all T steps. HIRE-SNN takes ζ as the SA (Definition 1) of the preceding spiking layer; when a
  k×k sum/avg pool sits in between, each input position collects k² neurons, so ζ = k²·SA — the two
  agree when nothing routes between the neuron layer and the synapses. A dense (analog) input has
  ζ = 1 when it is the same at every step (direct coding, computed once) and ζ = T otherwise.

What an op costs (eq. 7/8): an input of spikes (binary) costs one AC per synapse reached; a
non-binary input — the analog first input, or a SEW ADD of two spike maps (values 0, 1, 2) —
costs a MAC. Pooling and ADDs cost additions (priced as AC).

Exact synaptic operations: every spike times its real fan-out, the number of synapses (output
neuron × kernel tap inside the output, edges and padding excluded) it reaches; pooling on the way
routes a spike to its window(s).

When must the two agree? exact = Σ_i s_i · f_i and formula = FL_ANN · Σ_i s_i / N (s_i events at
input position i, f_i its fan-out, N positions); Σ_i f_i = FL_ANN minus the taps that land on
padding. So they coincide for *any* spike map exactly when every position has the same fan-out
FL_ANN / N: linear layers, 1×1 convs with stride 1, and unpadded convs whose stride equals the
kernel and divides the input (non-overlapping tiles). An unpadded conv of any kernel and stride
(3×3 stride 1 included) agrees only for a *uniform* spike map — edge neurons have fewer synapses,
so a spike at a corner costs less than the formula says. With padding the formula also counts the
taps on the padding and exceeds the exact count even for a uniform map. A non-overlapping
sum/avg pool in between changes none of this (ζ is counted per pooled position).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..snn.network import SpikingNetwork
from .graph import SYNAPTIC, OpGraph, graph_from_network


def conv_flops(k_h: int, k_w: int, h_o: int, w_o: int, c_o: int, c_i: int, groups: int = 1) -> int:
    """Table 6, conv: FL_ANN = k_h · k_w · H_o · W_o · C_o · C_i / groups."""
    return k_h * k_w * h_o * w_o * c_o * (c_i // groups)


def linear_flops(c_i: int, c_o: int) -> int:
    """Table 6, linear: FL_ANN = C_i · C_o."""
    return c_i * c_o


def pool_flops(k_h: int, k_w: int, h_o: int, w_o: int, c: int) -> int:
    """Pooling: k_h · k_w accumulates per output, FL = k_h · k_w · H_o · W_o · C."""
    return k_h * k_w * h_o * w_o * c


def add_flops(numel: int, n_inputs: int = 2) -> int:
    """Residual ADD of ``n_inputs`` maps of ``numel`` elements: (n − 1) · numel additions."""
    return (n_inputs - 1) * numel


@dataclass
class OpRow:
    """One counted operation: a synaptic layer, a pooling layer or a residual ADD."""

    name: str  # node name; an ADD at the input of node n is "n:add"
    node: str
    kind: str  # conv | linear | pool | add
    op: str  # mac | ac | add — what one op of the SNN costs
    flops_ann: int
    sources: list[str]  # nodes whose outputs reach this op through routing (neurons, input, synaptic)
    in_value: str  # analog | binary | count
    const: bool  # input the same at every step: counted once
    in_positions: int
    neuron_layer: str | None = None  # neuron node a synaptic layer drives
    neurons: int = 0  # its output size (synaptic layers)


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # type: ignore[return-value]


def op_rows(g: OpGraph) -> list[OpRow]:
    """Table 6 rows for every synaptic layer, pooling layer and residual ADD, in graph order."""
    cached = getattr(g, "_rows", None)
    if cached is not None:
        return cached
    rows: list[OpRow] = []
    for name, n in g.nodes.items():
        if n.kind == "input":
            continue
        if len(n.inputs) > 1:
            op = "add"
            rows.append(OpRow(f"{name}:add", name, "add", op, add_flops(n.in_size, len(n.inputs)), g.sources(name),
                              n.in_value, n.const, n.in_size))
        m = n.module
        op = "ac" if n.in_value == "binary" else "mac"
        if n.kind == "conv":
            kh, kw = m.kernel_size
            co, ho, wo = n.out_shape
            fl = conv_flops(kh, kw, ho, wo, co, m.in_channels, m.groups)
        elif n.kind == "linear":
            fl = linear_flops(m.in_features, m.out_features)
        elif n.kind == "pool":
            kh, kw = _pair(m.kernel_size)
            c, ho, wo = n.out_shape
            fl, op = pool_flops(kh, kw, ho, wo, c), "add"
        else:
            continue
        drv = g.driven_neuron(name) if n.kind in SYNAPTIC else None
        rows.append(OpRow(name, name, n.kind, op, fl, g.sources(name), n.in_value, n.const, n.in_size, drv,
                          n.out_size if n.kind in SYNAPTIC else 0))
    g._rows = rows  # type: ignore[attr-defined]
    return rows


def input_activity(g: OpGraph, row: OpRow, spikes_per_sample: dict[str, float]) -> float:
    """ζ of a row: events arriving per input position per sample over T (dense input: 1 or T).

    Events from a neuron layer reach ``route`` positions each (1 through non-overlapping pooling);
    with only per-layer totals the mean route multiplicity is used, which is exact when it is uniform.
    Returns NaN when a spiking source has no count (e.g. a rate-coded input nobody counted).
    """
    if row.in_value == "analog":
        return 1.0 if row.const else float(g.timesteps)
    events = 0.0
    for s in row.sources:
        if s not in spikes_per_sample:
            return float("nan")
        events += float(spikes_per_sample[s]) * float(g.route(row.node, s).mean())
    return events / row.in_positions if row.in_positions else 0.0


def exact_ops(g: OpGraph, row: OpRow, spike_maps: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Exact ops per sample ``[B]`` of a row: Σ over sources of spike map × real fan-out.

    Analog sources are dense: every element reaches its whole fan-out once (const) or T times; a
    dense ADD of currents costs (n − 1) additions per element and step. An ADD of spike maps costs one
    addition per arriving event. None when a spiking source's map is missing.
    """
    batch = next((v.shape[0] for v in spike_maps.values()), 1)
    if row.kind == "add" and row.in_value == "analog":  # dense ADD of currents: (n − 1) adds per element
        return float(row.flops_ann) * (1 if row.const else g.timesteps) * torch.ones(batch)
    total: torch.Tensor | float = 0.0
    for s in row.sources:
        fan = g.fanout(row.node, s)
        if g.nodes[s].value == "analog":
            total = total + float(fan.sum()) * (1 if g.nodes[s].const else g.timesteps) * torch.ones(batch)
        elif s in spike_maps:
            # one GEMV per layer: [B, n] @ [n]; float32 sums of integers are exact below 2^24 per sample
            m = spike_maps[s]
            total = total + m.flatten(1) @ fan.flatten().to(m.dtype)
        else:
            return None
    return total if isinstance(total, torch.Tensor) else torch.zeros(batch)


# ------------------------------------------------------------------ the sequential-network API
def fanout_maps(net: SpikingNetwork) -> dict[str, torch.Tensor]:
    """For each synaptic layer fed by one neuron layer: the real fan-out of each of its neurons."""
    g = graph_from_network(net)
    return {r.name: g.fanout(r.node, r.sources[0]) for r in op_rows(g)
            if r.kind in SYNAPTIC and len(r.sources) == 1 and g.nodes[r.sources[0]].kind == "neuron"}


def exact_synops(net: SpikingNetwork | OpGraph, spike_maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Synaptic operations per sample ``[B]`` for each synaptic layer fed by spikes.

    ``spike_maps[neuron]`` is ``[B, *shape]``, spikes per neuron summed over T
    (``SpikingNetwork.spike_maps`` with ``record = True``).
    """
    g = net if isinstance(net, OpGraph) else graph_from_network(net)
    out = {}
    for r in op_rows(g):
        if r.kind in SYNAPTIC and r.in_value != "analog":
            v = exact_ops(g, r, spike_maps)
            if v is not None:
                out[r.name] = v
    return out

