"""The measurement section of the report: per-layer activity, operations and energy.

One row per counted operation (see :mod:`.ops`): every synaptic layer l (conv or linear) with the
neuron layer it drives — SA (HIRE-SNN Definition 1) = spikes over T / neurons, TASA = SA / T;
FL_ANN (Table 6); FL_SNN = FL_ANN × ζ_l, ζ_l the activity of the layer's input (events per input
position; 1 for the direct-coded first layer, whose FL_SNN are MACs) — and every pooling layer and
residual ADD (kind ``pool`` / ``add``, no neurons of their own).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..recipe import Profile
from ..snn.network import SpikingNetwork
from .activity import spiking_activity, tasa
from .energy import SYNAPTIC_KINDS, energy_totals
from .graph import OpGraph, graph_from_network
from .ops import exact_ops, input_activity, op_rows


def layer_table(net: SpikingNetwork | OpGraph, layer_spikes: dict[str, Any],
                synops: dict[str, Any] | None = None, spike_maps: dict[str, torch.Tensor] | None = None,
                input_events: float | None = None,
                exact: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows: name, kind, neurons, spikes_per_sample, sa, tasa, flops_ann, flops_snn, and more.

    ``layer_spikes``: neuron layer -> spikes per sample (array over samples; ``Outputs.layer_spikes``).
    ``synops``: a target's counted synaptic ops per sample (``Outputs.synops``), reported as
    ``synops_per_sample``. ``spike_maps``: neuron layer -> per-neuron spike counts ``[B, ...]``,
    from which the exact count (spikes × real fan-out) is computed; without them the target's count
    is the exact one. ``input_events``: spikes per sample of a spike-coded input (rate coding).
    ``exact``: row -> exact ops per sample, already computed batch by batch
    (:func:`~neurodeploy.measure.stage.source_exact_counts`), used instead of ``spike_maps``.
    """
    g = net if isinstance(net, OpGraph) else graph_from_network(net)
    T = g.timesteps
    spikes = {k: float(np.mean(np.asarray(v, dtype=np.float64))) for k, v in layer_spikes.items()}
    if input_events is not None:
        spikes.setdefault("input", float(input_events))
    sizes = {n.name: n.out_size for n in g.nodes.values() if n.kind in ("neuron", "input")}
    rows = []
    for r in op_rows(g):
        nl = r.neuron_layer
        spk = spikes.get(nl, 0.0) if nl else 0.0
        sa = spiking_activity(spk, r.neurons) if nl else 0.0
        per_sample = np.asarray(layer_spikes[nl], dtype=np.float64) / r.neurons if nl in layer_spikes else None
        zeta = input_activity(g, r, spikes)
        src_sa = [spikes[s] / sizes[s] for s in r.sources if s in spikes and s in sizes]
        row: dict[str, Any] = {
            "name": r.name,
            "kind": r.kind,
            "neurons": r.neurons,
            "neuron_layer": nl,
            "spikes_per_sample": spk,
            "sa": sa,
            "sa_std": float(per_sample.std()) if per_sample is not None and per_sample.size else 0.0,
            "sa_min": float(per_sample.min()) if per_sample is not None and per_sample.size else 0.0,
            "sa_max": float(per_sample.max()) if per_sample is not None and per_sample.size else 0.0,
            "tasa": tasa(sa, T),
            "op": r.op,
            "input": r.in_value,
            "input_sa": float(sum(src_sa)) if src_sa else None,
            "input_activity": None if math.isnan(zeta) else zeta,
            "flops_ann": r.flops_ann,
            "flops_snn": None if math.isnan(zeta) else r.flops_ann * zeta,  # None: input spikes not counted
        }
        if synops and r.name in synops:
            row["synops_per_sample"] = float(np.mean(np.asarray(synops[r.name], dtype=np.float64)))
        if exact is not None and r.name in exact:
            row["synops_exact"] = float(np.mean(np.asarray(exact[r.name], dtype=np.float64)))
            counted = None
        else:
            counted = exact_ops(g, r, spike_maps) if spike_maps is not None else None
        if "synops_exact" in row:
            pass
        elif counted is not None:
            row["synops_exact"] = float(counted.double().mean())
        elif "synops_per_sample" in row:
            row["synops_exact"] = row["synops_per_sample"]
        elif r.in_value == "analog" or (r.kind not in SYNAPTIC_KINDS and r.in_value == "binary"
                                        and all(s in spikes for s in r.sources)):
            # dense inputs need no map; events into a pool/ADD are each one addition per route
            row["synops_exact"] = _exact_from_totals(g, r, spikes)
        rows.append(row)
    return rows


def _exact_from_totals(g: OpGraph, r, spikes: dict[str, float]) -> float:
    if r.in_value == "analog":
        return float(exact_ops(g, r, {})[0]) if r.sources else 0.0
    return sum(spikes[s] * float(g.fanout(r.node, s).mean()) for s in r.sources)


def energy_section(rows: list[dict[str, Any]], profile: Profile, direct_input: bool) -> dict[str, dict[str, Any]]:
    """Energy per sample, ANN vs SNN (HIRE-SNN eq. 7/8 per row, :mod:`.energy`), INT32 and FP32.

    Keyed ``"{profile}-{precision}"`` with ``snn_joules_per_sample`` and ``ann_joules_per_sample``
    (the report contract), the equation used, and the exact-count variant where every row has one.
    """
    out: dict[str, dict[str, Any]] = {}
    for precision, tot in energy_totals(rows, profile).items():
        e_snn, e_ann = tot["snn"], tot["ann"]
        out[f"{profile.name}-{precision}"] = {
            "snn_joules_per_sample": e_snn,
            "ann_joules_per_sample": e_ann,
            "snn_exact_joules_per_sample": tot["snn_exact"],
            "ann_over_snn": e_ann / e_snn if e_snn > 0 else float("inf"),
            "equation": "HIRE-SNN eq. 8 (direct input)" if direct_input else "HIRE-SNN eq. 7 (spike input)",
        }
    return out
