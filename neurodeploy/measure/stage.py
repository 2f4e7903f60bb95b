"""The measure stage: the report's energy section, and the plain-text table the CLI prints.

:func:`measure_report` gives, per sample: the ANN's energy (Σ FL_ANN · E_MAC, plus pooling
additions), the SNN's by HIRE-SNN eq. 7/8 (formula FL_SNN = FL_ANN × ζ and the exact count
spikes × real fan-out), for INT32 and FP32 (Table 7, ``targets/cmos45nm.toml``), and for each target
the same equations on the target's own activity plus, when its profile has chip constants, the
chip's energy from its counted events (:func:`~.energy.chip_energy`), each with a per-layer
breakdown and its ratio to the ANN. :func:`energy_table` renders that section.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import NeurodeployError
from ..recipe import Profile, load_profile
from ..snn.network import SpikingNetwork
from .energy import CHIP_KEYS, chip_energy, energy_totals, row_energies
from .graph import graph_from_network
from .summary import energy_section, layer_table

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
            "ratio_to_ann": total / ann[p] if ann.get(p) else None,
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
    name -> its ``Profile`` (or profile name); a profile with chip constants (``synop``,
    ``neuron_update_*``, ``spike``) gets a chip estimate. ``spike_maps``: the source's per-neuron
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
        if f"mac_{p}" in cmos.energy:
            per = row_energies(rows, cmos, p)
            ann[p] = {"joules_per_sample": sum(e["ann_joules"] for e in per),
                      "layers": [{"name": e["name"], "kind": e["kind"], "joules": e["ann_joules"]} for e in per]}
    ann_j = {p: v["joules_per_sample"] for p, v in ann.items()}
    section: dict[str, Any] = {
        "profile": cmos.name,
        "equation": equation,
        "direct_input": direct,
        "timesteps": net.timesteps,
        "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source} for k, c in cmos.energy.items()},
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
        if prof is not None and any(k in prof.energy for keys in CHIP_KEYS.values() for k in keys):
            chip = chip_energy(out, prof, t_rows, net.timesteps)
            chip["ratio_to_ann"] = {p: chip["joules_per_sample"] / j for p, j in ann_j.items() if j}
            entry["chip"] = chip
            entry["profile"] = prof.name
        section["targets"][name] = entry
    for p, v in section["snn"].items():
        log.info("energy per sample (%s): ANN %.4g J, SNN %.4g J (%s)", p, ann_j[p], v["joules_per_sample"], equation)
    return section


# ------------------------------------------------------------------------------- the table
def _j(x: float | None) -> str:
    """Joules in engineering units (pJ … J)."""
    if x is None:
        return "-"
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if abs(x) >= scale:
            return f"{x / scale:.3f} {unit}"
    return f"{x / 1e-12:.3f} pJ"


def _n(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def _grid(header: list[str], lines: list[list[str]]) -> list[str]:
    w = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return [fmt(header), "  ".join("-" * x for x in w)] + [fmt(r) for r in lines]


def energy_table(report: dict[str, Any]) -> str:
    """Plain-text energy table of a run's report (``report.json`` dict, or its ``energy`` section).

    Raises :class:`~neurodeploy.errors.NeurodeployError` when the report has no energy section.
    """
    sec = report.get("energy") if isinstance(report.get("energy"), dict) else report
    if "ann" not in sec or "snn" not in sec:
        raise NeurodeployError("the report has no energy section (report['energy'] from measure_report); "
                               "run `neurodeploy run` (or its measure stage) on this run folder first")
    out = [f"Energy per sample - {sec['profile']} (Horowitz ISSCC 2014, HIRE-SNN Table 7); SNN by {sec['equation']}, "
           f"T = {sec.get('timesteps')}"]
    lines = []
    for p, a in sec["ann"].items():
        lines.append(["ANN", p, _j(a["joules_per_sample"]), "1.000", "-"])
    for p, s in sec["snn"].items():
        lines.append(["SNN source (formula)", p, _j(s["joules_per_sample"]), _n(s["ratio_to_ann"]),
                      _n(1 / s["ratio_to_ann"]) if s["ratio_to_ann"] else "-"])
        if s.get("exact_joules_per_sample") is not None:
            r = s["exact_joules_per_sample"] / sec["ann"][p]["joules_per_sample"]
            lines.append(["SNN source (exact count)", p, _j(s["exact_joules_per_sample"]), _n(r),
                          _n(1 / r) if r else "-"])
    for name, t in sec.get("targets", {}).items():
        for p, s in t["snn"].items():
            lines.append([f"{name} activity (formula)", p, _j(s["joules_per_sample"]), _n(s["ratio_to_ann"]),
                          _n(1 / s["ratio_to_ann"]) if s["ratio_to_ann"] else "-"])
        chip = t.get("chip")
        if chip:
            for p, r in chip["ratio_to_ann"].items():
                lines.append([f"{name} chip ({chip['profile']})", f"vs ANN {p}", _j(chip["joules_per_sample"]), _n(r),
                              _n(1 / r) if r else "-"])
    out += _grid(["model", "arith.", "energy", "E/E_ANN", "E_ANN/E"], lines)
    out.append("")
    out.append("Per layer (source; ops per sample; energy FP32 unless noted)")
    ann_l = {e["name"]: e["joules"] for e in sec["ann"].get("fp32", {}).get("layers", [])}
    snn_l = {e["name"]: e for e in sec["snn"].get("fp32", {}).get("layers", [])}
    chips = {n: {e["name"]: e["joules"] for e in t["chip"]["layers"]} for n, t in sec.get("targets", {}).items()
             if t.get("chip")}
    head = ["layer", "kind", "op", "SA", "TASA", "FL_ANN", "FL_SNN", "exact", "ANN", "SNN", "SNN exact"]
    head += [f"{n} chip" for n in chips]
    lines = []
    for r in sec["layers"]:
        e = snn_l.get(r["name"], {})
        line = [r["name"], r["kind"], r.get("op", ""), f"{r['sa']:.3f}" if r.get("neuron_layer") else "-",
                f"{r['tasa']:.4f}" if r.get("neuron_layer") else "-", _n(r["flops_ann"]), _n(r["flops_snn"]),
                _n(r.get("synops_exact")), _j(ann_l.get(r["name"])), _j(e.get("joules")), _j(e.get("exact_joules"))]
        line += [_j(c.get(r["name"])) for c in chips.values()]
        lines.append(line)
    out += _grid(head, lines)
    for n, t in sec.get("targets", {}).items():
        chip = t.get("chip")
        if not chip:
            continue
        out.append("")
        out.append(f"{n} chip energy ({chip['profile']}): synops {_j(chip['synop_joules'])}, neuron updates "
                   f"{_j(chip['neuron_joules'])}, spikes {_j(chip['spike_joules'])}")
        for a in chip.get("assumptions", []):
            out.append(f"  assumption: {a}")
    return "\n".join(out)


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
    the number of samples beyond a few floats per sample. Pass the second dict as
    ``measure_report(..., exact=...)``.
    """
    from .ops import exact_ops, op_rows

    g = graph_from_network(net)
    rows = op_rows(g)
    rec, net.record = net.record, True
    counts: dict[str, list] = {}
    exact: dict[str, list] = {}
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                net(xb)
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
