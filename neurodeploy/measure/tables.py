"""The two energy tables of the report, kept apart: arithmetic energy and chip energy.

- **Arithmetic** (:func:`arithmetic_table`): ANN vs SNN priced with the same 45 nm constants
  (Horowitz ISSCC 2014 / HIRE-SNN Table 7); its ratio E/E_ANN compares like with like.
- **Chip** (:func:`chip_table`): each target's counted events priced with its own profile, with the
  latency of one inference. It has no ratio to the ANN: a whole-chip event energy and an
  arithmetic-only energy measure different things.

Every row names the constants (value and key) and the convention that produced it; the sources are
listed under each table. :func:`energy_table` renders both as plain text (CLI, report.md).
"""
from __future__ import annotations

from typing import Any

from ..errors import NeurodeployError
from ..recipe import Profile

CONVENTION = {
    "formula": "FL_SNN = FL_ANN x zeta (HIRE-SNN Table 6; zeta = input events per position)",
    "exact": "exact: spikes x real fan-out (padding excluded, zero weights included)",
    "ann": "FL_ANN x E_MAC (+ pooling additions x E_add), Table 6",
}


def _consts(cmos: Profile, precision: str) -> str:
    out = []
    for q in ("mac", "ac", "add"):
        k = cmos.pricing(f"{q}.{precision}")
        if k:
            c = cmos.energy[k]
            out.append(f"{k} = {c.value:g} {c.unit}")
    return ", ".join(out)


def arithmetic_table(section: dict[str, Any], cmos: Profile) -> list[dict[str, Any]]:
    """Rows: model, activity (whose spikes), precision, convention, joules, ratio to the ANN, constants."""
    rows: list[dict[str, Any]] = []
    ann = {p: a["joules_per_sample"] for p, a in section["ann"].items()}
    eq = section["equation"]

    def add(model: str, activity: str, p: str, conv: str, j: float | None) -> None:
        rows.append({"model": model, "activity": activity, "precision": p, "convention": conv, "joules": j,
                     "ratio_to_ann": j / ann[p] if j is not None and ann.get(p) else None,
                     "constants": _consts(cmos, p), "profile": cmos.name})

    for p, j in ann.items():
        add("ANN", "-", p, CONVENTION["ann"], j)
    for p, s in section["snn"].items():
        add(f"SNN, {eq}", "source (torch)", p, CONVENTION["formula"], s["joules_per_sample"])
        if s.get("exact_joules_per_sample") is not None:
            add(f"SNN, {eq}", "source (torch)", p, CONVENTION["exact"], s["exact_joules_per_sample"])
    for name, t in section.get("targets", {}).items():
        # eq. 7/8 on the target's own spikes. Its counted synops are not priced here: a target may feed
        # its first layer differently (Loihi: graded spikes at every step; Speck: events), so they are
        # not eq. 8's ops; they are priced as chip events in table [2].
        for p, s in t["snn"].items():
            add(f"SNN, {eq}", f"target {name} (simulated)", p, CONVENTION["formula"], s["joules_per_sample"])
    return rows


def chip_table(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows per target with chip constants: joules, events, latency, constants, what was counted, caveat."""
    rows = []
    for name, t in section.get("targets", {}).items():
        chip, lat = t.get("chip"), t.get("latency") or {}
        if not chip:
            continue
        consts = ", ".join(f"{q}: {c['key']} = {c['value']:g} {c['unit']}" for q, c in chip["constants"].items())
        unpriced = ", ".join(f"{k} = {c['value']:g} {c['unit']} (not priced)" for k, c in chip["unpriced"].items())
        rows.append({"target": name, "profile": chip["profile"], "joules": chip["joules_per_sample"],
                     "synop_joules": chip["synop_joules"], "neuron_joules": chip["neuron_joules"],
                     "spike_joules": chip["spike_joules"], "static_joules": chip["static_joules"],
                     "synops": chip["synops"], "spikes": chip["spikes"], "neuron_updates": chip["neuron_updates"],
                     "activation_sparsity": (t.get("activity") or {}).get("activation_sparsity"),
                     "latency_steps": lat.get("steps_per_inference"), "latency_layers": lat.get("layers"),
                     "layer_delay_steps": lat.get("layer_delay_steps"),
                     "constants": consts + (f"; {unpriced}" if unpriced else ""),
                     "convention": "Σ counted events x the one constant pricing each (events counted by the "
                                   f"target's simulator: {', '.join(chip['counted_by_target']) or 'none'})",
                     "caveat": chip["caveat"], "assumptions": chip["assumptions"]})
    return rows


# ------------------------------------------------------------------------------- text
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


def _sources(consts: dict[str, Any]) -> list[str]:
    per = {"synops": "synaptic op", "spikes": "spike", "milliseconds": "ms", "neuron_updates": "neuron update",
           "neuron_updates_active": "active neuron update", "neuron_updates_inactive": "inactive neuron update"}
    return [f"  {c['key']} = {c['value']:g} {c['unit']} per {per.get(q, q)}: {c['source']}" for q, c in consts.items()]


def arithmetic_text(sec: dict[str, Any]) -> list[str]:
    """Table 1 (arithmetic energy) with its per-layer breakdown and the constants' sources."""
    rows = sec["tables"]["arithmetic"]
    out = [f"[1] ARITHMETIC ENERGY per sample - {sec['profile']} (45 nm CMOS, 0.9 V), T = {sec.get('timesteps')}",
           "    ANN and SNN priced with the same constants; E/E_ANN compares like with like. Not a chip energy."]
    lines = [[r["model"], r["activity"], r["precision"], _j(r["joules"]), _n(r["ratio_to_ann"]), r["convention"],
              r["constants"]] for r in rows]
    out += _grid(["model", "activity of", "arith.", "energy", "E/E_ANN", "convention", "constants"], lines)
    return out + [""] + arithmetic_layers(sec)


def arithmetic_layers(sec: dict[str, Any]) -> list[str]:
    """Table 1's per-layer breakdown (source activity, FP32) and the arithmetic constants' sources."""
    out = ["Per layer (source; ops per sample; energy FP32)"]
    ann_l = {e["name"]: e["joules"] for e in sec["ann"].get("fp32", {}).get("layers", [])}
    snn_l = {e["name"]: e for e in sec["snn"].get("fp32", {}).get("layers", [])}
    lines = []
    for r in sec["layers"]:
        e = snn_l.get(r["name"], {})
        lines.append([r["name"], r["kind"], r.get("op", ""), f"{r['sa']:.3f}" if r.get("neuron_layer") else "-",
                      f"{r['tasa']:.4f}" if r.get("neuron_layer") else "-", _n(r["flops_ann"]), _n(r["flops_snn"]),
                      _n(r.get("synops_exact")), _j(ann_l.get(r["name"])), _j(e.get("joules")),
                      _j(e.get("exact_joules"))])
    out += _grid(["layer", "kind", "op", "SA", "TASA", "FL_ANN", "FL_SNN", "exact", "ANN", "SNN", "SNN exact"], lines)
    out += ["", "Constants (arithmetic):"]
    out += [f"  {k} = {c['value']:g} {c['unit']}: {c['source']}" for k, c in sec["constants"].items()]
    return out


def chip_text(sec: dict[str, Any]) -> list[str]:
    """Table 2 (chip energy and latency) with per-layer events measured on each target's simulator."""
    rows = sec["tables"]["chip"]
    out = ["[2] CHIP ENERGY per inference - each target's counted events x its profile's constants (one constant",
           "    per counted event). No ratio to table [1]: a chip's event energy and 45 nm arithmetic differ in kind."]
    lines = [[r["target"], r["profile"], _j(r["joules"]), _n(r["synops"]), _n(r["spikes"]), _n(r["neuron_updates"]),
              _n(r["activation_sparsity"]), f"{r['latency_steps']} (T + {r['latency_layers']}x{r['layer_delay_steps']})"
              if r["latency_steps"] is not None else "-"] for r in rows]
    out += _grid(["target", "profile", "energy", "synops", "spikes", "neuron upd.", "act. sparsity",
                  "latency (steps)"], lines)
    out.append(f"  {sec['tables'].get('baseline', '')}")
    return out + chip_details(sec)


def chip_details(sec: dict[str, Any]) -> list[str]:
    """Per target: energy by component, caveat, constants with sources, latency, and per-layer events
    as the target's simulator counted them."""
    rows, out = sec["tables"]["chip"], []
    for n, t in sec.get("targets", {}).items():
        lat = t.get("latency") or {}
        if not t.get("chip"):
            out.append(f"  {n}: no chip profile (latency {lat.get('steps_per_inference')} steps)")
    for r in rows:
        t = sec["targets"][r["target"]]
        out += ["", f"{r['target']} ({r['profile']}): synops {_j(r['synop_joules'])}, neuron updates "
                f"{_j(r['neuron_joules'])}, spikes {_j(r['spike_joules'])}, static {_j(r['static_joules'])}"]
        if r["caveat"]:
            out.append(f"  NOTE: {r['caveat']}")
        out.append(f"  convention: {r['convention']}")
        out += _sources(t["chip"]["constants"])
        for k, c in t["chip"]["unpriced"].items():
            out.append(f"  {k} = {c['value']:g} {c['unit']} (prices nothing): {c['source']}")
        lat = t.get("latency") or {}
        out.append(f"  latency: {lat.get('steps_per_inference')} steps per inference ({lat.get('note') or ''}) "
                   f"[{lat.get('source')}]")
        for a in r["assumptions"]:
            out.append(f"  assumption: {a}")
        lines = [[e["name"], e.get("neuron_layer") or "-", _n(e["synops"]), _n(e["spikes"]),
                  _n(e["neuron_updates_active"] + e["neuron_updates_inactive"]), _j(e["joules"])]
                 for e in t["chip"]["layers"]]
        out += _grid(["layer", "neurons", "synops", "spikes", "neuron upd.", "energy"], lines)
    return out


def neurobench_text(sec: dict[str, Any]) -> list[str]:
    """NeuroBench's metrics (Yik et al. 2025) beside ours on the same inputs."""
    nbsec = sec.get("neurobench")
    if not nbsec:
        return []
    nb, ours, st = nbsec.get("neurobench"), nbsec["ours"], nbsec["static"]
    out = ["[3] NEUROBENCH METRICS per sample (source SNN, test set) beside our convention"]
    if nb is None:
        return out + [f"  {nbsec.get('note')}"]
    lines = [["effective MACs", _n(ours["effective_macs"]), _n(nb["effective_macs"])],
             ["effective ACs", _n(ours["effective_acs"]), _n(nb["effective_acs"])],
             ["dense synaptic ops", "-", _n(nb["dense"])],
             ["activation sparsity", _n(ours["activation_sparsity"]), _n(nb["activation_sparsity"])],
             ["footprint (bytes)", str(st["footprint_bytes"]), str(nb["footprint_bytes"])],
             ["connection sparsity", _n(st["connection_sparsity"]), _n(nb["connection_sparsity"])],
             ["parameters", str(st["parameter_count"]), str(nb["parameter_count"])]]
    out += _grid(["metric", "ours", "NeuroBench def."], lines)
    lines = [[r["name"], r["op"], _n(r["ours"]), _n(r["neurobench_macs"]), _n(r["neurobench_acs"]),
              _n(r["neurobench_dense"])] for r in nbsec["layers"]]
    out += ["", "Per layer (ops per sample):"] + _grid(["layer", "our op", "ours", "NB MACs", "NB ACs", "NB dense"], lines)
    out += [f"  ours: {ours['convention']}", f"  NeuroBench: {nb['definition']}",
            "  differences: (1) direct-coded first layer: we count every pixel's synapses, NeuroBench only non-zero "
            "pixels x non-zero weights; (2) after avg/sum pooling NeuroBench sees non-binary values, counts MACs and "
            "binarises each pooled position per step, we count one AC per spike per synapse; (3) zero weights: we "
            "count them, NeuroBench does not. Activation sparsity agrees when spikes are binary."]
    return out


def energy_table(report: dict[str, Any]) -> str:
    """Plain-text energy section of a run's report (``report.json`` dict, or its ``energy`` section).

    Raises :class:`~neurodeploy.errors.NeurodeployError` when the report has no energy section, or
    one written before the two tables existed.
    """
    sec = report.get("energy") if isinstance(report.get("energy"), dict) else report
    if "ann" not in sec or "snn" not in sec:
        raise NeurodeployError("the report has no energy section (report['energy'] from measure_report); "
                               "run `neurodeploy run` (or its measure stage) on this run folder first")
    if "tables" not in sec:
        raise NeurodeployError("the report's energy section predates the arithmetic / chip tables; "
                               "recompute it with `neurodeploy energy RUN_DIR --recompute`")
    out = arithmetic_text(sec) + ["", ""] + chip_text(sec)
    nb = neurobench_text(sec)
    if nb:
        out += ["", ""] + nb
    return "\n".join(out)
