"""HIRE-SNN eq. 7/8 with Table 7, chip energy from counted events, and profile validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.errors import ProfileError
from neurodeploy.measure.energy import ann_energy, chip_energy, row_energies, snn_energy
from neurodeploy.recipe import TARGETS_DIR, load_profile
from neurodeploy.targets.base import Outputs


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
    assert "Davies" in e["constants"]["synop"]["source"]
    del out.info["neuron_updates_active"]  # without the split: all 40 updates priced as active, and said so
    e2 = chip_energy(out, loihi, rows, timesteps=4)
    assert e2["joules_per_sample"] - e["joules_per_sample"] == pytest.approx(10 * (81e-12 - 52e-12))
    assert any("upper bound" in a for a in e2["assumptions"])


def test_speck_chip_energy_uses_its_profile_and_says_what_it_left_out():
    speck = load_profile("speck2f")
    rows = [{"name": "fc1", "kind": "linear", "flops_snn": 10.0, "synops_exact": 12.0, "neuron_layer": "sn1",
             "neurons": 4}]
    out = Outputs(predictions=np.zeros(1), layer_spikes={"sn1": np.array([5.0])})
    e = chip_energy(out, speck, rows, timesteps=2)
    assert e["joules_per_sample"] == pytest.approx(12 * speck.joules("synop") + 5 * speck.joules("spike"))
    assert any("synops not counted" in a for a in e["assumptions"])
    assert any("static" in a for a in e["assumptions"])
    out.info["duration_ms"] = 2.0
    e2 = chip_energy(out, speck, rows, timesteps=2)
    assert e2["joules_per_sample"] - e["joules_per_sample"] == pytest.approx(2 * speck.joules("static_per_ms"))


def test_every_shipped_profile_loads_with_sources():
    paths = sorted(Path(TARGETS_DIR).glob("*.toml"))
    assert paths
    for p in paths:
        prof = load_profile(p)
        assert prof.energy, p
        assert all(c.source.strip() for c in prof.energy.values())


@pytest.mark.parametrize("body,msg", [
    ('[energy.mac_int32]\nvalue = 3.2\nunit = "pJ"\n', "lacks source"),
    ('[energy.mac_int32]\nvalue = 3.2\nunit = "pJ"\nsource = "  "\n', "empty source"),
    ('[energy.mac_int32]\nvalue = 3.2\nunit = "kWh"\nsource = "x"\n', "unit"),
    ('[energy.mac_int32]\nvalue = -1\nunit = "pJ"\nsource = "x"\n', "non-negative"),
])
def test_profile_without_a_proper_source_is_refused(tmp_path, body, msg):
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\n' + body)
    with pytest.raises(ProfileError, match=msg):
        load_profile(p)


def test_chip_energy_refuses_a_profile_without_chip_constants(cmos):
    with pytest.raises(ProfileError, match="chip energy constants"):
        chip_energy(Outputs(predictions=np.zeros(1)), cmos, [])
