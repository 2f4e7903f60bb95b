"""The measure stage: the report's energy section, and the plain-text table the CLI prints.

:func:`measure_report` gives, per sample, two energies that are never divided by each other:

- **arithmetic** (45 nm CMOS, Horowitz ISSCC 2014 / HIRE-SNN Table 7, ``targets/cmos45nm.toml``):
  the ANN's Σ FL_ANN · E_MAC (plus pooling additions) and the SNN's by HIRE-SNN eq. 7/8 (formula
  FL_SNN = FL_ANN × ζ and the exact count spikes × real fan-out), INT32 and FP32, on the source's
  activity and on each target's own (its simulated spikes and synops);
- **chip**: each target's counted events priced by its profile (:func:`~.energy.chip_energy`), with
  the latency of one inference (:func:`latency`).

Both come with a per-layer breakdown, the constants used and their sources, and NeuroBench's metrics
beside ours (:mod:`.neurobench_compat`). :func:`energy_table` (:mod:`.tables`) renders the section.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import torch

from ..recipe import Profile, load_profile
from ..snn.network import SpikingNetwork
from .energy import chip_energy, energy_totals, row_energies
from .graph import graph_from_network
from .neurobench_compat import NeuroBenchCounter, neurobench_metrics
from .summary import energy_section, layer_table
from .tables import arithmetic_table, chip_table, energy_table  # noqa: F401  (energy_table: public here)

log = logging.getLogger(__name__)
PRECISIONS = ("int32", "fp32")


def _spikes_of(outputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if isinstance(outputs, Mapping):
        return dict(outputs), {}
    return dict(outputs.layer_spikes), dict(outputs.synops)


def _formula_energy(rows: list[dict[str, Any]], cmos: Profile, ann: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p, tot in energy_totals(rows, cmos).items():
        total, per = tot["snn"], tot["per"]
        out[p] = {
            "joules_per_sample": total,
            "exact_joules_per_sample": tot["snn_exact"],
            "ratio_to_ann": total / ann[p] if ann.get(p) else None,  # both arithmetic, same constants
            "layers": [{"name": e["name"], "kind": e["kind"], "op": e["op"], "joules": e["snn_joules"],
                        "exact_joules": e["snn_exact_joules"]} for e in per],
        }
    return out


def measure_report(net: SpikingNetwork, source: Any, targets: Mapping[str, Any] | None = None,
                   profiles: Mapping[str, Profile | str | None] | None = None, cmos: Profile | str = "cmos45nm",
                   spike_maps: dict[str, torch.Tensor] | None = None,
                   exact: dict[str, np.ndarray] | None = None,
                   input_events: float | None = None) -> dict[str, Any]:
    """The report's energy section (JSON-ready), per sample.

    ``net``: the source network (structure and shapes). ``source``: its ``Outputs`` or a dict
    neuron layer -> spikes per sample. ``targets``: target name -> ``Outputs``; ``profiles``: target
    name -> its ``Profile`` (or profile name); a profile that prices chip events (synops, spikes,
    neuron updates) gets a chip estimate, every target its latency. ``spike_maps``: the source's per-neuron
    spike counts ``[B, ...]`` for the exact count. ``input_events``: input spikes per sample when the
    input is spike-coded (rate coding).
    """
    cmos = cmos if isinstance(cmos, Profile) else load_profile(cmos)
    targets, profiles = dict(targets or {}), dict(profiles or {})
    direct = net.encoding == "direct"
    equation = "HIRE-SNN eq. 8 (direct input)" if direct else "HIRE-SNN eq. 7 (spike input)"
    spikes, synops = _spikes_of(source)
    rows = layer_table(net, spikes, synops or None, spike_maps, input_events, exact)
    ann: dict[str, Any] = {}
    for p in PRECISIONS:
        if cmos.pricing(f"mac.{p}") is not None:
            per = row_energies(rows, cmos, p)
            ann[p] = {"joules_per_sample": sum(e["ann_joules"] for e in per),
                      "layers": [{"name": e["name"], "kind": e["kind"], "joules": e["ann_joules"]} for e in per]}
    ann_j = {p: v["joules_per_sample"] for p, v in ann.items()}
    section: dict[str, Any] = {
        "profile": cmos.name,
        "equation": equation,
        "direct_input": direct,
        "timesteps": net.timesteps,
        "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source, "prices": c.prices}
                      for k, c in cmos.energy.items()},
        "ann": ann,
        "snn": _formula_energy(rows, cmos, ann_j),
        "layers": rows,
        "by_profile": energy_section(rows, cmos, direct),  # report contract: source.energy
        "targets": {},
    }
    for name, out in targets.items():
        t_spikes, t_synops = _spikes_of(out)
        t_rows = layer_table(net, t_spikes, t_synops or None, None, input_events)
        entry: dict[str, Any] = {"layers": t_rows, "snn": _formula_energy(t_rows, cmos, ann_j), "chip": None}
        prof = profiles.get(name)
        if isinstance(prof, str):
            prof = load_profile(prof)
        entry["latency"] = latency(prof, out, net.timesteps)
        entry["activity"] = activity_summary(t_rows, net.timesteps)
        if prof is not None and prof.prices_chip_events():
            entry["chip"] = chip_energy(out, prof, t_rows, net.timesteps)
            entry["profile"] = prof.name
        section["targets"][name] = entry
    section["activity"] = activity_summary(rows, net.timesteps)
    neurons = {r["neuron_layer"]: r["neurons"] for r in rows if r.get("neuron_layer")}
    section["neurobench"] = neurobench_metrics(net, dict(exact or {}), neurons, net.timesteps, rows)
    section["tables"] = {"arithmetic": arithmetic_table(section, cmos), "chip": chip_table(section),
                         "baseline": "no GPU/CPU row: no cited per-inference energy exists for this model on a "
                                     "GPU or CPU, and a 45 nm arithmetic figure is not one"}
    for p, v in section["snn"].items():
        log.info("energy per sample (%s): ANN %.4g J, SNN %.4g J (%s)", p, ann_j[p], v["joules_per_sample"], equation)
    return section


def activity_summary(rows: list[dict[str, Any]], timesteps: int) -> dict[str, Any]:
    """Spikes per sample over the neuron layers and the activation sparsity 1 − Σ spikes / Σ (neurons · T)
    (NeuroBench's ActivationSparsity for binary spikes), from layer-table rows (source or a target)."""
    n = [r for r in rows if r.get("neuron_layer")]
    spikes, size = sum(r["spikes_per_sample"] for r in n), sum(r["neurons"] for r in n) * timesteps
    return {"spikes_per_sample": spikes, "neuron_steps": size,
            "activation_sparsity": 1.0 - spikes / size if size else None,
            "per_layer": {r["neuron_layer"]: r["spikes_per_sample"] for r in n}}


def latency(profile: Profile | None, outputs: Any, timesteps: int) -> dict[str, Any]:
    """Time steps of one inference on a target: T + L · d (L deployed layers, d the steps each layer
    adds: the profile's ``[latency] layer_delay_steps``; Lava netx: 1, lowering.py docstring). With
    samples streamed back to back one completes every T steps. No profile: the source's executor,
    where every layer runs within the step (``snn/network.py``)."""
    lat = dict(profile.latency) if profile is not None else {}
    delay = int(lat.get("layer_delay_steps", 0))
    n_layers = max(len(getattr(outputs, "neuron_updates", {}) or {}), len(getattr(outputs, "synops", {}) or {}))
    # a residual (DAG) program: the layers on its longest path (targets/loihi/dag.py: shortcuts run in parallel)
    n_layers = int((getattr(outputs, "info", None) or {}).get("pipeline_layers", n_layers))
    return {"timesteps": timesteps, "layers": n_layers, "layer_delay_steps": delay,
            "steps_per_inference": timesteps + delay * n_layers, "steps_per_sample_streamed": timesteps,
            "source": lat.get("source", "neurodeploy/snn/network.py: every layer runs within the time step"),
            "note": lat.get("note", "")}


def input_event_maps(x: torch.Tensor, timesteps: int, encoding: str) -> torch.Tensor | None:
    """Expected input spikes per pixel over T ``[B, ...]`` for a spike-coded input (None for direct).

    rate: Bernoulli(clip(x, 0, 1)) per step -> T·clip(x, 0, 1); poisson: Poisson(x) -> T·x;
    events: the frames ``[B, T, ...]`` summed over T (exact, not expected).
    """
    if encoding == "direct":
        return None
    if encoding == "rate":
        return timesteps * x.clamp(0.0, 1.0)
    if encoding == "poisson":
        return timesteps * x.clamp(min=0.0)
    if encoding == "events":
        return x.sum(1)
    raise ValueError(f"unknown encoding {encoding!r}")


def source_exact_counts(net: SpikingNetwork, x: torch.Tensor, batch_size: int = 256
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Stream the source network over ``x``: (layer -> spikes per sample, row -> exact ops per sample).

    The same numbers :func:`source_spike_maps` + :func:`~.ops.exact_ops` give, but the spike maps of
    a batch are reduced to per-sample op counts before the next batch, so memory does not grow with
    the number of samples beyond a few floats per sample. The second dict also holds NeuroBench's
    per-sample counts (keys ``neurobench:...``, :class:`~.neurobench_compat.NeuroBenchCounter`).
    Pass it as ``measure_report(..., exact=...)``.
    """
    from .ops import exact_ops, op_rows

    g = graph_from_network(net)
    rows = op_rows(g)
    rec, net.record = net.record, True
    counts: dict[str, list] = {}
    exact: dict[str, list] = {}
    nb = NeuroBenchCounter(net)
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                nb.start(len(xb))
                try:
                    net(xb)
                finally:
                    for k, v in nb.stop().items():
                        exact.setdefault(k, []).append(v)
                maps = dict(net.spike_maps)
                for k, v in net.spike_counts.items():
                    counts.setdefault(k, []).append(v.numpy())
                events = input_event_maps(xb, net.timesteps, net.encoding)
                if events is not None:
                    maps["input"] = events.to(torch.float32)
                    counts.setdefault("input", []).append(events.flatten(1).sum(1).double().numpy())
                for r in rows:
                    e = exact_ops(g, r, maps)
                    if e is not None:
                        exact.setdefault(r.name, []).append(e.double().numpy())
    finally:
        net.record = rec
    return ({k: np.concatenate(v) for k, v in counts.items()}, {k: np.concatenate(v) for k, v in exact.items()})


def source_spike_maps(net: SpikingNetwork, x: torch.Tensor, batch_size: int = 256) -> tuple[dict[str, np.ndarray],
                                                                                            dict[str, torch.Tensor]]:
    """Run the source network on ``x`` with recording: (layer -> spikes per sample, layer -> spike maps ``[N, ...]``).

    For a spike-coded input, ``"input"`` holds its expected events (:func:`input_event_maps`), so
    the first layer's ζ and exact count need nothing more. Use for :func:`measure_report`.
    """
    graph_from_network(net)
    rec, net.record = net.record, True
    counts: dict[str, list] = {}
    maps: dict[str, list] = {}
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                net(x[i:i + batch_size])
                for k, v in net.spike_counts.items():
                    counts.setdefault(k, []).append(v.numpy())
                for k, v in net.spike_maps.items():
                    maps.setdefault(k, []).append(v)
    finally:
        net.record = rec
    out_counts = {k: np.concatenate(v) for k, v in counts.items()}
    out_maps = {k: torch.cat(v) for k, v in maps.items()}
    events = input_event_maps(x, net.timesteps, net.encoding)
    if events is not None:
        out_maps["input"] = events.to(torch.float32)
        out_counts["input"] = events.flatten(1).sum(1).double().numpy()
    return out_counts, out_maps


def perturbation_report(net: SpikingNetwork, x: torch.Tensor, x_hat: torch.Tensor, batch_size: int = 256,
                        norm: str = "rate") -> dict[str, Any]:
    """HIRE-SNN Definition 2 on a clean batch and its perturbed twin, averaged over samples.

    Returns ``{"input_pd": mean ‖x − x̂‖₂, "layers": {neuron layer: mean ‖s − ŝ‖₂}}`` with spike
    maps normalised to rates (counts / T; ``norm="l2"``: unit L2 norm), plus the SA of each layer
    for both inputs (``sa_clean``, ``sa_perturbed``).
    """
    from .metrics import PerturbationDistance, SpikingActivity

    pd = PerturbationDistance(net.timesteps, norm)
    act = {"clean": SpikingActivity.for_network(net, False), "perturbed": SpikingActivity.for_network(net, False)}
    rec, net.record = net.record, True
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xa, xb = x[i:i + batch_size], x_hat[i:i + batch_size]
                net(xa)
                maps, counts = dict(net.spike_maps), dict(net.spike_counts)
                act["clean"].update(counts)
                net(xb)
                act["perturbed"].update(net.spike_counts)
                pd.update(xa, xb, maps, dict(net.spike_maps))
    finally:
        net.record = rec
    res = pd.compute()
    return {"input_pd": res.get("input"), "layers": res.get("layers", {}), "norm": norm,
            "sa_clean": {k: v["sa"] for k, v in act["clean"].compute().items()},
            "sa_perturbed": {k: v["sa"] for k, v in act["perturbed"].compute().items()}}
