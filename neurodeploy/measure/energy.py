"""Energy from operation counts and a hardware profile.

Compute energy (HIRE-SNN, Kundu et al. ICCV 2021, §5 and Table 7; constants: 45 nm CMOS at 0.9 V,
M. Horowitz, ISSCC 2014, in ``targets/cmos45nm.toml``):

- eq. 7 (rate / spike input):  E_SNN = Σ_l FL^l_SNN · E_AC
- eq. 8 (direct input):        E_SNN = FL¹_SNN · E_MAC + Σ_{l≥2} FL^l_SNN · E_AC
- ANN:                         E_ANN = Σ_l FL^l_ANN · E_MAC

In the per-row form used by the report, every counted op is priced by what it is: a synapse
reached by a spike is an AC, one reached by a non-binary value (the analog first input, a SEW ADD
of spike maps) a MAC, and pooling/ADD accumulations are additions (E_add = E_AC in Table 7). For a
plain conv net with direct input this is exactly eq. 8 plus the pooling additions.

Chip energy (:func:`chip_energy`) prices the events a target counted with its profile. Every
constant of a profile declares the one counted quantity it prices (``prices = ...``, checked by
:func:`~neurodeploy.recipe.check_pricing`: each quantity once, never a constant together with the
one it was derived from), so the total is Σ_quantity count · E_quantity and counts nothing twice:

- ``synops``: synaptic operations (a spike delivered to one synapse), ``Outputs.synops``;
- ``neuron_updates_active`` / ``neuron_updates_inactive`` (or ``neuron_updates`` for both alike):
  ``Outputs.neuron_updates`` split by ``info["neuron_updates_active"]``; without the split every
  update is priced as active (an upper bound) and the result says so;
- ``spikes``: output spikes of the neuron layers, ``Outputs.layer_spikes``;
- ``milliseconds``: static energy per millisecond, charged when the target reports
  ``info["duration_ms"]`` per sample.

The arithmetic profile (``cmos45nm``) prices ``mac.int32``, ``ac.int32``, ``add.int32`` (and fp32).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..errors import ProfileError
from ..recipe import Profile

log = logging.getLogger(__name__)

SYNAPTIC_KINDS = ("conv", "linear")


def snn_energy(flops_snn: Sequence[float], flops_ann_first: float, profile: Profile, precision: str,
               direct_input: bool) -> float:
    """Joules per sample by eq. 8 (direct input: first layer MACs) or eq. 7 (spiking input)."""
    e_mac, e_ac = price(profile, f"mac.{precision}"), price(profile, f"ac.{precision}")
    if direct_input:
        return flops_ann_first * e_mac + sum(flops_snn[1:]) * e_ac
    return sum(flops_snn) * e_ac


def ann_energy(flops_ann: Sequence[float], profile: Profile, precision: str) -> float:
    """Joules per sample of the ANN: Σ FL_ANN · E_MAC."""
    return sum(flops_ann) * price(profile, f"mac.{precision}")


def price(profile: Profile, quantity: str) -> float:
    """Joules of one unit of ``quantity`` by the constant of ``profile`` that prices it."""
    key = profile.pricing(quantity)
    if key is None:
        raise ProfileError(f"{profile.path}: profile {profile.name!r} prices no {quantity!r}")
    return profile.joules(key)


def op_joules(op: str, profile: Profile, precision: str) -> float:
    """Energy of one op: ``mac`` -> E_MAC, ``ac`` -> E_AC, ``add`` -> E_add (= E_AC in Table 7; the AC
    constant when the profile prices no separate addition)."""
    if op == "add" and profile.pricing(f"add.{precision}") is None:
        op = "ac"
    if op in ("mac", "ac", "add"):
        return price(profile, f"{op}.{precision}")
    raise ValueError(f"unknown op kind {op!r}")


def energy_totals(rows: list[dict[str, Any]], profile: Profile) -> dict[str, dict[str, Any]]:
    """Per precision (int32, fp32) with MAC and AC constants in ``profile`` and a formula energy for
    every row: ``{per: row_energies, snn, snn_exact (None unless every row has one), ann}`` in joules."""
    out: dict[str, dict[str, Any]] = {}
    for p in ("int32", "fp32"):
        if profile.pricing(f"mac.{p}") is None or profile.pricing(f"ac.{p}") is None:
            continue
        per = row_energies(rows, profile, p)
        if any(e["snn_joules"] is None for e in per):
            continue
        exact = [e["snn_exact_joules"] for e in per]
        out[p] = {"per": per, "snn": sum(e["snn_joules"] for e in per),
                  "snn_exact": sum(exact) if all(x is not None for x in exact) else None,
                  "ann": sum(e["ann_joules"] for e in per)}
    return out


def row_energies(rows: list[dict[str, Any]], profile: Profile, precision: str) -> list[dict[str, Any]]:
    """Per row (layer_table rows): ANN joules (synapses: FL_ANN·E_MAC, pool/ADD: FL_ANN·E_add),
    SNN joules by the formula (FL_SNN · E_op) and, where an exact count exists, by it."""
    out = []
    for r in rows:
        op = r.get("op", "ac")
        ann_op = "mac" if r["kind"] in SYNAPTIC_KINDS else "add"
        e = {"name": r["name"], "kind": r["kind"], "op": op,
             "ann_joules": r["flops_ann"] * op_joules(ann_op, profile, precision),
             "snn_joules": None if r["flops_snn"] is None else r["flops_snn"] * op_joules(op, profile, precision)}
        exact = r.get("synops_exact")
        e["snn_exact_joules"] = None if exact is None else exact * op_joules(op, profile, precision)
        out.append(e)
    return out


# ---------------------------------------------------------------------------------- chips
def _mean(a: Any) -> float:
    return float(np.mean(np.asarray(a, dtype=np.float64)))


def _blank(name: str) -> dict[str, Any]:
    return {"name": name, "synops": 0.0, "synop_joules": 0.0, "neuron_updates_active": 0.0,
            "neuron_updates_inactive": 0.0, "neuron_joules": 0.0, "spikes": 0.0, "spike_joules": 0.0}


def chip_constants(profile: Profile) -> dict[str, dict[str, Any]]:
    """Counted quantity -> the constant that prices it: key, value, unit, joules, source, derived_from, note."""
    out = {}
    for k, c in profile.energy.items():
        if c.prices != "nothing":
            out[c.prices] = {"key": k, "value": c.value, "unit": c.unit, "joules": profile.joules(k),
                             "source": c.source, "derived_from": list(c.derived_from), "note": c.note}
    return out


def chip_energy(outputs: Any, profile: Profile, rows: list[dict[str, Any]],
                timesteps: int | None = None) -> dict[str, Any]:
    """Joules per sample of a target from its counted events, with a per-layer breakdown.

    E = Σ_l synops_l · E_synops + Σ_n (active_n · E_active + inactive_n · E_inactive) + Σ_n spikes_n · E_spikes
    + ms · E_ms, each E the one constant of ``profile`` that prices that quantity (Davies et al. 2018
    for Loihi; Yao et al. 2024 derived for Speck). Layer l's entry holds its synapses and the neuron
    layer it drives. Counts a target did not report are taken from ``rows`` (the exact count, else the
    formula) or assumed (all updates active) and listed in ``assumptions``; ``counted_by_target`` says
    which quantities came from the target's own simulation. ProfileError when the profile prices no
    chip event.
    """
    if not profile.prices_chip_events():
        raise ProfileError(f"{profile.path}: profile {profile.name!r} has no chip energy constants (none prices "
                           "synops, spikes, neuron_updates* or milliseconds)")
    consts = chip_constants(profile)
    e = {q: (consts[q]["joules"] if q in consts else None) for q in
         ("synops", "spikes", "neuron_updates", "neuron_updates_active", "neuron_updates_inactive", "milliseconds")}
    e_active = e["neuron_updates_active"] if e["neuron_updates_active"] is not None else e["neuron_updates"]
    e_inactive = e["neuron_updates_inactive"] if e["neuron_updates_inactive"] is not None else e["neuron_updates"]
    info = outputs.info or {}
    if timesteps is None:
        timesteps = info.get("timesteps")
    if timesteps is None:
        timesteps = next((round(r["sa"] / r["tasa"]) for r in rows if r.get("tasa")), None)
    assumptions: list[str] = []
    counted: set[str] = set()
    layers: list[dict[str, Any]] = []
    neuron_of: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] not in SYNAPTIC_KINDS:
            continue
        entry = _blank(r["name"])
        if e["synops"] is not None:
            if r["name"] in outputs.synops:
                entry["synops"] = _mean(outputs.synops[r["name"]])
                counted.add("synops")
            else:
                est = r.get("synops_exact")
                entry["synops"] = float(est if est is not None else (r["flops_snn"] or 0.0))
                used = "exact count from the spike maps" if est is not None else "HIRE-SNN formula"
                assumptions.append(f"{r['name']}: synops not counted by the target; {used} used")
            entry["synop_joules"] = entry["synops"] * e["synops"]
        if r.get("neuron_layer"):
            neuron_of[r["neuron_layer"]] = entry
            entry["neuron_layer"], entry["neurons"] = r["neuron_layer"], r["neurons"]
        layers.append(entry)
    # synaptic layers only the deployed model has (a lowering may add some): their counted synops too
    known = {x["name"] for x in layers}
    for k in outputs.synops:
        if k not in known and e["synops"] is not None:
            entry = _blank(k)
            entry["synops"] = _mean(outputs.synops[k])
            entry["synop_joules"] = entry["synops"] * e["synops"]
            counted.add("synops")
            layers.append(entry)
    # neuron layers: those the rows know plus any the target reported on its own (e.g. a readout)
    names = list(neuron_of) + [n for n in list(outputs.neuron_updates) + list(outputs.layer_spikes)
                                if n not in neuron_of]
    by_name = {x["name"]: x for x in layers}
    active_counts = info.get("neuron_updates_active", {})
    for n in dict.fromkeys(names):
        entry = neuron_of.get(n)
        if entry is None and n in by_name:  # a target that runs the readout synapses as neurons (Loihi)
            entry = by_name[n]
            row = next(r for r in rows if r["name"] == n)
            entry.setdefault("neuron_layer", n)
            entry.setdefault("neurons", row.get("neurons", 0))
        if entry is None:
            entry = {**_blank(n), "neuron_layer": n, "neurons": 0}
            layers.append(entry)
        if e_active is not None or e_inactive is not None:
            size = float(entry.get("neurons", 0) * (timesteps or 0))
            if n in outputs.neuron_updates:
                total = _mean(outputs.neuron_updates[n])
                counted.add("neuron_updates")
            else:
                total = size
                assumptions.append(f"{n}: neuron updates not counted by the target; neurons x T = {size:g} used")
            if n in active_counts:
                active = min(_mean(active_counts[n]), total)
            else:
                active = total
                if (e_active or 0.0) != (e_inactive or 0.0):
                    assumptions.append(f"{n}: no active/inactive split reported; every update priced as active "
                                       "(upper bound)")
            entry.update(neuron_updates_active=active, neuron_updates_inactive=total - active,
                         neuron_joules=active * (e_active or 0.0) + (total - active) * (e_inactive or 0.0))
        if n in outputs.layer_spikes:
            entry["spikes"] = _mean(outputs.layer_spikes[n])
            counted.add("spikes")
            if e["spikes"] is not None:
                entry["spike_joules"] = entry["spikes"] * e["spikes"]
    for x in layers:
        x["joules"] = x["synop_joules"] + x["neuron_joules"] + x["spike_joules"]
    total = sum(x["joules"] for x in layers)
    static = 0.0
    if e["milliseconds"] is not None:
        ms = info.get("duration_ms")
        if ms is None:
            assumptions.append(f"{consts['milliseconds']['key']}: the target reported no duration per sample "
                               "(info['duration_ms']); static energy not included")
        else:
            static = float(ms) * e["milliseconds"]
            total += static
            counted.add("milliseconds")
    for a in assumptions:
        log.info("chip energy (%s): %s", profile.name, a)
    return {
        "profile": profile.name,
        "joules_per_sample": total,
        "synop_joules": sum(x["synop_joules"] for x in layers),
        "neuron_joules": sum(x["neuron_joules"] for x in layers),
        "spike_joules": sum(x["spike_joules"] for x in layers),
        "static_joules": static,
        "synops": sum(x["synops"] for x in layers),
        "spikes": sum(x["spikes"] for x in layers),
        "neuron_updates": sum(x["neuron_updates_active"] + x["neuron_updates_inactive"] for x in layers),
        "constants": consts,
        "unpriced": {k: {"value": c.value, "unit": c.unit, "source": c.source, "note": c.note}
                     for k, c in profile.energy.items() if c.prices == "nothing"},
        "caveat": profile.energy_caveat,
        "counted_by_target": sorted(counted),
        "layers": layers,
        "assumptions": assumptions,
    }
