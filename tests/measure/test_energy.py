"""HIRE-SNN eq. 7/8 with Table 7, chip energy from counted events, and profile validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.errors import ProfileError
from neurodeploy.measure.energy import ann_energy, chip_energy, row_energies, snn_energy
from neurodeploy.recipe import TARGETS_DIR, load_profile
from neurodeploy.targets.base import Outputs

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


@pytest.fixture(scope="module")
def cmos():
    return load_profile("cmos45nm")


def test_table7_constants(cmos):
    pj = {k: cmos.joules(k) * 1e12 for k in cmos.energy}
    assert pj["mac_int32"] == pytest.approx(3.2) and pj["ac_int32"] == pytest.approx(0.1)
    assert pj["mac_fp32"] == pytest.approx(4.6) and pj["ac_fp32"] == pytest.approx(0.9)
    # Table 7: a MAC is one multiply plus one add
    assert pj["mac_int32"] == pytest.approx(pj["mult_int32"] + pj["ac_int32"])
    assert pj["mac_fp32"] == pytest.approx(pj["mult_fp32"] + pj["ac_fp32"])


def test_paper_arithmetic_on_a_hand_computed_layer(cmos):
    """A VGG-style layer: 3x3 conv, 64 -> 64 channels, 32x32 output, input activity ζ = 0.2.

    FL_ANN = 3·3·32·32·64·64 = 37,748,736; FL_SNN = 0.2 · FL_ANN = 7,549,747.2.
    ANN FP32: 37,748,736 · 4.6 pJ = 173.6442 µJ;  SNN eq. 7 FP32: 7,549,747.2 · 0.9 pJ = 6.79477 µJ.
    With a direct-coded first layer (3 -> 64, FL = 1,769,472 MACs) in front, eq. 8 FP32:
    1,769,472 · 4.6 pJ + 7,549,747.2 · 0.9 pJ = 8.13957 µJ + 6.79477 µJ = 14.93434 µJ; INT32:
    1,769,472 · 3.2 pJ + 7,549,747.2 · 0.1 pJ = 5.66231 µJ + 0.75497 µJ = 6.41728 µJ.
    """
    fl_ann = 3 * 3 * 32 * 32 * 64 * 64
    assert fl_ann == 37_748_736
    fl_snn = 0.2 * fl_ann
    assert ann_energy([fl_ann], cmos, "fp32") == pytest.approx(173.6442e-6, rel=1e-6)
    assert snn_energy([fl_snn], 0, cmos, "fp32", direct_input=False) == pytest.approx(6.79477e-6, rel=1e-5)
    first = 3 * 3 * 32 * 32 * 64 * 3
    assert snn_energy([first, fl_snn], first, cmos, "fp32", direct_input=True) == pytest.approx(14.93434e-6, rel=1e-5)
    assert snn_energy([first, fl_snn], first, cmos, "int32", direct_input=True) == pytest.approx(6.41728e-6, rel=1e-5)
    # the per-row form prices the same rows identically
    rows = [{"name": "conv1", "kind": "conv", "op": "mac", "flops_ann": first, "flops_snn": first},
            {"name": "conv2", "kind": "conv", "op": "ac", "flops_ann": fl_ann, "flops_snn": fl_snn}]
    per = row_energies(rows, cmos, "fp32")
    assert sum(e["snn_joules"] for e in per) == pytest.approx(14.93434e-6, rel=1e-5)
    assert sum(e["ann_joules"] for e in per) == pytest.approx((first + fl_ann) * 4.6e-12)


def test_loihi_chip_energy_from_counted_events():
    loihi = load_profile("loihi2")
    rows = [{"name": "conv1", "kind": "conv", "flops_snn": 100.0, "neuron_layer": "sn1", "neurons": 10, "sa": 1.0,
             "tasa": 0.25},
            {"name": "fc", "kind": "linear", "flops_snn": 50.0, "neuron_layer": None, "neurons": 3}]
    out = Outputs(predictions=np.zeros(2), layer_spikes={"sn1": np.array([6.0, 10.0])},
                  synops={"conv1": np.array([200.0, 300.0]), "fc": np.array([40.0, 60.0])},
                  neuron_updates={"sn1": np.array([40.0, 40.0])}, info={"neuron_updates_active": {"sn1": np.array([30.0, 30.0])}})
    e = chip_energy(out, loihi, rows, timesteps=4)
    by = {x["name"]: x for x in e["layers"]}
    # conv1: 250 synops · 23.6 pJ + 30 active · 81 pJ + (40 − 30) inactive · 52 pJ + 8 spikes · 1.7 pJ
    want_conv1 = 250 * 23.6e-12 + 30 * 81e-12 + 10 * 52e-12 + 8 * 1.7e-12
    assert by["conv1"]["joules"] == pytest.approx(want_conv1)
    assert by["fc"]["joules"] == pytest.approx(50 * 23.6e-12)
    assert e["joules_per_sample"] == pytest.approx(want_conv1 + 50 * 23.6e-12)
    assert e["assumptions"] == []
    assert "Davies" in e["constants"]["synops"]["source"] and e["constants"]["synops"]["key"] == "synop"
    assert "Loihi 1" in e["caveat"]
    del out.info["neuron_updates_active"]  # without the split: all 40 updates priced as active, and said so
    e2 = chip_energy(out, loihi, rows, timesteps=4)
    assert e2["joules_per_sample"] - e["joules_per_sample"] == pytest.approx(10 * (81e-12 - 52e-12))
    assert any("upper bound" in a for a in e2["assumptions"])


def test_speck_chip_energy_prices_synops_once_and_says_what_it_left_out():
    speck = load_profile("speck2f")
    rows = [{"name": "fc1", "kind": "linear", "flops_snn": 10.0, "synops_exact": 12.0, "neuron_layer": "sn1",
             "neurons": 4}]
    out = Outputs(predictions=np.zeros(1), layer_spikes={"sn1": np.array([5.0])})
    e = chip_energy(out, speck, rows, timesteps=2)
    # 12 synops x 17 pJ; the 5 spikes are counted but not priced (the synop constant was derived from
    # the per-spike figure: charging both would count the dynamic energy twice)
    assert e["joules_per_sample"] == pytest.approx(12 * 17e-12)
    assert e["spikes"] == 5.0 and e["spike_joules"] == 0.0
    assert set(e["constants"]) == {"synops", "milliseconds"} and "spike" in e["unpriced"]
    assert any("synops not counted" in a for a in e["assumptions"])
    assert any("static" in a for a in e["assumptions"])
    out.info["duration_ms"] = 2.0
    e2 = chip_energy(out, speck, rows, timesteps=2)
    assert e2["joules_per_sample"] - e["joules_per_sample"] == pytest.approx(2 * 0.42e-6)


_UNIT = {"pJ": 1e-12, "nJ": 1e-9, "uJ": 1e-6, "mJ": 1e-3, "J": 1.0}


@pytest.mark.parametrize("name", ["loihi2", "speck2f"])
def test_chip_total_recomputed_by_hand_from_the_counts_and_the_toml(name):
    """Read the TOML itself (not the loader): Σ over priced constants of count(prices) x value x unit."""
    raw = tomllib.loads((Path(TARGETS_DIR) / f"{name}.toml").read_text())["energy"]
    rows = [{"name": "conv1", "kind": "conv", "flops_snn": 1.0, "neuron_layer": "sn1", "neurons": 10},
            {"name": "fc", "kind": "linear", "flops_snn": 1.0, "neuron_layer": None, "neurons": 3}]
    out = Outputs(predictions=np.zeros(2), layer_spikes={"sn1": np.array([7.0, 9.0])},
                  synops={"conv1": np.array([100.0, 140.0]), "fc": np.array([20.0, 30.0]),
                          "deployed_only": np.array([4.0, 6.0])},  # a layer the lowering added: counted too
                  neuron_updates={"sn1": np.array([40.0, 40.0]), "fc": np.array([12.0, 12.0])},
                  info={"neuron_updates_active": {"sn1": np.array([25.0, 35.0]), "fc": np.array([12.0, 12.0])},
                        "duration_ms": 3.0})
    counts = {"synops": 120.0 + 25.0 + 5.0, "spikes": 8.0, "neuron_updates_active": 30.0 + 12.0,
              "neuron_updates_inactive": 10.0, "neuron_updates": 52.0, "milliseconds": 3.0, "nothing": 0.0}
    want = sum(counts[c["prices"]] * c["value"] * _UNIT[c["unit"]] for c in raw.values())
    got = chip_energy(out, load_profile(name), rows, timesteps=4)
    assert got["joules_per_sample"] == pytest.approx(want, rel=1e-12)
    assert got["assumptions"] == []


def test_shipped_profiles_price_each_counted_quantity_once():
    for p in sorted(Path(TARGETS_DIR).glob("*.toml")):
        raw = tomllib.loads(p.read_text())["energy"]
        priced = [c["prices"] for c in raw.values() if c["prices"] != "nothing"]
        assert len(priced) == len(set(priced)), p
        for k, c in raw.items():  # a priced constant is never derived from a priced one
            if c["prices"] != "nothing":
                assert all(raw[d]["prices"] == "nothing" for d in c.get("derived_from", [])), (p, k)
    speck = tomllib.loads((Path(TARGETS_DIR) / "speck2f.toml").read_text())["energy"]
    assert speck["synop"]["derived_from"] == ["spike"] and speck["spike"]["prices"] == "nothing"


_C = 'value = 1.0\nunit = "pJ"\nsource = "x"\n'


@pytest.mark.parametrize("body,msg", [
    (f'[energy.spike]\nprices = "spikes"\n{_C}[energy.synop]\nprices = "synops"\nderived_from = ["spike"]\n{_C}',
     "derived from energy.spike"),
    (f'[energy.a]\nprices = "spikes"\n{_C}[energy.b]\nprices = "spikes"\n{_C}', "both price 'spikes'"),
    (f'[energy.a]\nprices = "neuron_updates"\n{_C}[energy.b]\nprices = "neuron_updates_active"\n{_C}',
     "same events"),
    (f'[energy.a]\nprices = "spikes"\n{_C}[energy.b]\nprices = "nothing"\nderived_from = "a"\n{_C}'
     f'[energy.c]\nprices = "synops"\nderived_from = "b"\n{_C}', "derived from energy.a"),
    (f'[energy.a]\nprices = "synops"\nderived_from = "zz"\n{_C}', "not a constant"),
    (f'[energy.a]\nprices = "photons"\n{_C}', "prices 'photons'"),
    (f'[energy.a]\n{_C}', "lacks prices"),
])
def test_a_profile_that_double_counts_is_refused(tmp_path, body, msg):
    p = tmp_path / "chip.toml"
    p.write_text('name = "chip"\n' + body)
    with pytest.raises(ProfileError, match=msg):
        load_profile(p)


def test_every_shipped_profile_loads_with_sources():
    paths = sorted(Path(TARGETS_DIR).glob("*.toml"))
    assert paths
    for p in paths:
        prof = load_profile(p)
        assert prof.energy, p
        assert all(c.source.strip() for c in prof.energy.values())


@pytest.mark.parametrize("body,msg", [
    ('[energy.mac_int32]\nprices = "mac.int32"\nvalue = 3.2\nunit = "pJ"\n', "lacks source"),
    ('[energy.mac_int32]\nprices = "mac.int32"\nvalue = 3.2\nunit = "pJ"\nsource = "  "\n', "empty source"),
    ('[energy.mac_int32]\nprices = "mac.int32"\nvalue = 3.2\nunit = "kWh"\nsource = "x"\n', "unit"),
    ('[energy.mac_int32]\nprices = "mac.int32"\nvalue = -1\nunit = "pJ"\nsource = "x"\n', "non-negative"),
])
def test_profile_without_a_proper_source_is_refused(tmp_path, body, msg):
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\n' + body)
    with pytest.raises(ProfileError, match=msg):
        load_profile(p)


def test_chip_energy_refuses_a_profile_without_chip_constants(cmos):
    with pytest.raises(ProfileError, match="no chip energy constants"):
        chip_energy(Outputs(predictions=np.zeros(1)), cmos, [])
