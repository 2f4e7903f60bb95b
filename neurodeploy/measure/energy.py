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

Chip energy (:func:`chip_energy`) prices the events a target counted with the constants of its
profile. Profile keys (each ``[energy.KEY] value unit source``):

- ``synop``: one synaptic operation (a spike delivered to one synapse); Loihi: 23.6 pJ, a lower
  bound (Davies et al., IEEE Micro 2018, Table 2);
- ``neuron_update_active`` / ``neuron_update_inactive``: one neuron update per time step of a
  neuron that received input or holds state / that is idle; Loihi 81 / 52 pJ. A profile with a
  single ``neuron_update`` prices every update alike;
- ``spike``: one output spike delivered within a tile/core; Loihi 1.7 pJ (``spike_tile`` is accepted).
- ``static_per_ms`` (optional): static energy per millisecond, charged when the target reports
  ``Outputs.info["duration_ms"]`` per sample (Speck's resting power).
Aliases in :data:`CHIP_KEYS`. Counts come from :class:`~neurodeploy.targets.base.Outputs`:
``synops`` (per synaptic node), ``neuron_updates`` (per neuron node: all updates per sample, normally
neurons · T), ``layer_spikes`` (per neuron node), and optionally ``info["neuron_updates_active"]``
(per neuron node: the updates of neurons that received input or held state; the rest are inactive —
without it every update is priced as active, an upper bound, and the result says so).
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
    e_mac, e_ac = profile.joules(f"mac_{precision}"), profile.joules(f"ac_{precision}")
    if direct_input:
        return flops_ann_first * e_mac + sum(flops_snn[1:]) * e_ac
    return sum(flops_snn) * e_ac


def ann_energy(flops_ann: Sequence[float], profile: Profile, precision: str) -> float:
    """Joules per sample of the ANN: Σ FL_ANN · E_MAC."""
    return sum(flops_ann) * profile.joules(f"mac_{precision}")


def op_joules(op: str, profile: Profile, precision: str) -> float:
    """Energy of one op: ``mac`` -> E_MAC, ``ac`` and ``add`` -> E_AC (an addition, Table 7)."""
    if op == "mac":
        return profile.joules(f"mac_{precision}")
    if op == "add" and f"add_{precision}" in profile.energy:
        return profile.joules(f"add_{precision}")
    if op in ("ac", "add"):
        return profile.joules(f"ac_{precision}")
    raise ValueError(f"unknown op kind {op!r}")


def energy_totals(rows: list[dict[str, Any]], profile: Profile) -> dict[str, dict[str, Any]]:
    """Per precision (int32, fp32) with MAC and AC constants in ``profile`` and a formula energy for
    every row: ``{per: row_energies, snn, snn_exact (None unless every row has one), ann}`` in joules."""
    out: dict[str, dict[str, Any]] = {}
    for p in ("int32", "fp32"):
        if f"mac_{p}" not in profile.energy or f"ac_{p}" not in profile.energy:
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
CHIP_KEYS: dict[str, tuple[str, ...]] = {
    "synop": ("synop", "synaptic_op", "synaptic_operation"),
    "neuron_update_active": ("neuron_update_active", "neuron_update"),
    "neuron_update_inactive": ("neuron_update_inactive", "neuron_update"),
    "spike": ("spike", "spike_tile", "spike_within_tile", "spike_out"),
}


def _const(profile: Profile, what: str) -> tuple[str, float] | None:
    for key in CHIP_KEYS[what]:
        if key in profile.energy:
            return key, profile.joules(key)
    return None


def _mean(a: Any) -> float:
    return float(np.mean(np.asarray(a, dtype=np.float64)))


def chip_energy(outputs: Any, profile: Profile, rows: list[dict[str, Any]],
                timesteps: int | None = None) -> dict[str, Any]:
    """Joules per sample of a target from its counted events, with a per-layer breakdown.

    E = Σ_l synops_l · E_synop + Σ_n (active_n · E_active + inactive_n · E_inactive) + Σ_n spikes_n · E_spike
    (Davies et al. 2018 for Loihi; the target's profile for others). Layer l's entry holds its
    synapses and the neuron layer it drives. Counts a target did not report are taken from ``rows``
    (the exact count, else the formula) or assumed (all updates active) and listed in
    ``assumptions``. ProfileError when the profile has none of the constants.
    """
    consts = {w: _const(profile, w) for w in CHIP_KEYS}
    if not any(consts.values()):
        raise ProfileError(f"{profile.path}: profile {profile.name!r} has none of the chip energy constants "
                           f"{', '.join(k[0] for k in CHIP_KEYS.values())}")
    if timesteps is None:
        timesteps = (outputs.info or {}).get("timesteps")
    if timesteps is None:
        timesteps = next((round(r["sa"] / r["tasa"]) for r in rows if r.get("tasa")), None)
    assumptions: list[str] = []
    layers: list[dict[str, Any]] = []
    neuron_of: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] not in SYNAPTIC_KINDS:
            continue
        entry: dict[str, Any] = {"name": r["name"], "synops": 0.0, "synop_joules": 0.0, "neuron_updates_active": 0.0,
                                 "neuron_updates_inactive": 0.0, "neuron_joules": 0.0, "spikes": 0.0,
                                 "spike_joules": 0.0}
        if consts["synop"]:
            if r["name"] in outputs.synops:
                entry["synops"] = _mean(outputs.synops[r["name"]])
            else:
                est = r.get("synops_exact")
                entry["synops"] = float(est if est is not None else (r["flops_snn"] or 0.0))
                used = "exact count from the spike maps" if est is not None else "HIRE-SNN formula"
                assumptions.append(f"{r['name']}: synops not counted by the target; {used} used")
            entry["synop_joules"] = entry["synops"] * consts["synop"][1]
        if r.get("neuron_layer"):
            neuron_of[r["neuron_layer"]] = entry
            entry["neuron_layer"], entry["neurons"] = r["neuron_layer"], r["neurons"]
        layers.append(entry)
    # neuron layers: those the rows know plus any the target reported on its own (e.g. a readout)
    names = list(neuron_of) + [n for n in list(outputs.neuron_updates) + list(outputs.layer_spikes)
                                if n not in neuron_of]
    by_name = {e["name"]: e for e in layers}
    for n in dict.fromkeys(names):
        entry = neuron_of.get(n)
        if entry is None and n in by_name:  # a target that runs the readout synapses as neurons (Loihi)
            entry = by_name[n]
            row = next(r for r in rows if r["name"] == n)
            entry.setdefault("neuron_layer", n)
            entry.setdefault("neurons", row.get("neurons", 0))
        if entry is None:
            entry = {"name": n, "synops": 0.0, "synop_joules": 0.0, "neuron_updates_active": 0.0,
                     "neuron_updates_inactive": 0.0, "neuron_joules": 0.0, "spikes": 0.0, "spike_joules": 0.0,
                     "neuron_layer": n, "neurons": 0}
            layers.append(entry)
        size = float(entry.get("neurons", 0) * (timesteps or 0))
        if consts["neuron_update_active"] or consts["neuron_update_inactive"]:
            if n in outputs.neuron_updates:
                total = _mean(outputs.neuron_updates[n])
            else:
                total = size
                assumptions.append(f"{n}: neuron updates not counted by the target; neurons x T = {size:g} used")
            active_counts = (outputs.info or {}).get("neuron_updates_active", {})
            e_a = consts["neuron_update_active"][1] if consts["neuron_update_active"] else 0.0
            e_i = consts["neuron_update_inactive"][1] if consts["neuron_update_inactive"] else 0.0
            if n in active_counts:
                active = min(_mean(active_counts[n]), total)
            else:
                active = total
                if e_a != e_i:
                    assumptions.append(f"{n}: no active/inactive split reported; every update priced as active "
                                       "(upper bound)")
            entry.update(neuron_updates_active=active, neuron_updates_inactive=total - active,
                         neuron_joules=active * e_a + (total - active) * e_i)
        if consts["spike"] and n in outputs.layer_spikes:
            entry["spikes"] = _mean(outputs.layer_spikes[n])
            entry["spike_joules"] = entry["spikes"] * consts["spike"][1]
    for e in layers:
        e["joules"] = e["synop_joules"] + e["neuron_joules"] + e["spike_joules"]
    total = sum(e["joules"] for e in layers)
    static = 0.0
    if "static_per_ms" in profile.energy:
        ms = (outputs.info or {}).get("duration_ms")
        if ms is None:
            assumptions.append("static_per_ms: the target reported no duration per sample (info['duration_ms']); "
                               "static energy not included")
        else:
            static = float(ms) * profile.joules("static_per_ms")
            total += static
    for a in assumptions:
        log.info("chip energy (%s): %s", profile.name, a)
    return {
        "profile": profile.name,
        "joules_per_sample": total,
        "synop_joules": sum(e["synop_joules"] for e in layers),
        "neuron_joules": sum(e["neuron_joules"] for e in layers),
        "spike_joules": sum(e["spike_joules"] for e in layers),
        "static_joules": static,
        "constants": {w: {"key": c[0], "joules": c[1], "source": profile.energy[c[0]].source}
                      for w, c in consts.items() if c},
        "layers": layers,
        "assumptions": assumptions,
    }
