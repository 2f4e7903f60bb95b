"""The measure stage end to end on a small spiking convnet: report section, table and figures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.measure.metrics import SynOpCounter
from neurodeploy.measure.ops import exact_synops
from neurodeploy.measure.stage import energy_table, measure_report, source_spike_maps
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.targets.base import Outputs


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    layers = [("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", SpikingNeuron(NeuronSpec(threshold=0.3))),
              ("pool1", nn.AvgPool2d(2)), ("conv2", nn.Conv2d(4, 8, 3, padding=1, bias=False)),
              ("sn2", SpikingNeuron(NeuronSpec(threshold=0.2))), ("flatten", nn.Flatten()),
              ("fc", nn.Linear(8 * 4 * 4, 10, bias=False))]
    net = SpikingNetwork(layers, 4, "direct", "sum", (1, 8, 8)).eval()
    return net


def test_report_section_table_and_figures(small_net, tmp_path):
    x = torch.rand(12, 1, 8, 8)
    counts, maps = source_spike_maps(small_net, x, batch_size=5)
    assert all(c.sum() > 0 for c in counts.values())  # the test is about a network that spikes
    loihi_out = Outputs(predictions=np.zeros(12), layer_spikes=counts,
                        synops={k: v.numpy() for k, v in exact_synops(small_net, maps).items()})
    sec = measure_report(small_net, counts, targets={"loihi": loihi_out}, profiles={"loihi": "loihi2"}, spike_maps=maps)
    json.dumps(sec)  # JSON-ready
    rows = {r["name"]: r for r in sec["layers"]}
    for key in ("name", "kind", "neurons", "spikes_per_sample", "sa", "tasa", "flops_ann", "flops_snn"):
        assert key in rows["conv2"]
    assert rows["conv1"]["sa"] == pytest.approx(float(np.mean(counts["sn1"])) / (4 * 8 * 8))
    assert rows["conv2"]["input_activity"] == pytest.approx(4 * rows["conv1"]["sa"])  # 2x2 pool in between
    # ANN: every synaptic FL_ANN at E_MAC plus pooling additions
    fl = sum(r["flops_ann"] for r in sec["layers"] if r["kind"] in ("conv", "linear"))
    pool = sum(r["flops_ann"] for r in sec["layers"] if r["kind"] == "pool")
    assert sec["ann"]["fp32"]["joules_per_sample"] == pytest.approx(fl * 4.6e-12 + pool * 0.9e-12)
    # eq. 8: first layer MACs (once, direct input), the rest ACs
    snn = sec["snn"]["int32"]
    want = sum(r["flops_snn"] * (3.2e-12 if r["op"] == "mac" else 0.1e-12) for r in sec["layers"])
    assert snn["joules_per_sample"] == pytest.approx(want)
    assert snn["ratio_to_ann"] == pytest.approx(want / sec["ann"]["int32"]["joules_per_sample"])
    # chip: counted synops feed Loihi's 23.6 pJ
    chip = sec["targets"]["loihi"]["chip"]
    assert chip["synop_joules"] == pytest.approx(
        (rows["conv1"]["synops_exact"] + float(np.mean(loihi_out.synops["conv2"])) + float(np.mean(loihi_out.synops["fc"])))
        * 23.6e-12)
    assert "ratio_to_ann" not in chip  # a chip's event energy is never divided by 45 nm arithmetic
    # T + L·1: these Outputs report two deployed layers (synops of conv2 and fc), Lava adds a step per layer
    assert sec["targets"]["loihi"]["latency"]["steps_per_inference"] == 4 + 2
    tables = sec["tables"]
    assert {r["model"] for r in tables["arithmetic"]} >= {"ANN"} and all("E/E_ANN" not in r for r in tables["chip"])
    assert [r["target"] for r in tables["chip"]] == ["loihi"] and "Loihi 1" in tables["chip"][0]["caveat"]
    assert "synop = 23.6 pJ" in tables["chip"][0]["constants"]

    text = energy_table({"energy": sec})
    assert "[1] ARITHMETIC ENERGY" in text and "[2] CHIP ENERGY" in text and "conv2" in text
    head, chip_part = text.split("[2] CHIP ENERGY")[0], text.split("[2] CHIP ENERGY")[1]
    assert "E/E_ANN" in head and "E/E_ANN" not in chip_part.split("[3]")[0]
    assert "Loihi 1 constants" in chip_part
    from neurodeploy.errors import NeurodeployError

    with pytest.raises(NeurodeployError, match="no energy section"):
        energy_table({"source": {}})

    from neurodeploy.report.figures_energy import plot_energy_total, save_energy_figures

    paths = save_energy_figures(sec, tmp_path)
    assert [p.name for p in paths] == ["activity.png", "energy_layers.png", "energy_total.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plot_energy_total(sec, ax=ax) is fig
    plt.close(fig)


def test_synop_counter_streams_like_the_functional(small_net):
    x = torch.rand(9, 1, 8, 8)
    counts, maps = source_spike_maps(small_net, x)
    whole = exact_synops(small_net, maps)
    acc = SynOpCounter(small_net)
    for i in range(0, 9, 4):
        acc.update({k: v[i:i + 4] for k, v in maps.items()})
    got = acc.compute()
    assert set(got) == {"conv2", "fc"}
    for k, v in whole.items():
        assert got[k] == pytest.approx(float(v.mean()))


def test_rate_coded_input_uses_eq7_acs(small_net):
    net = SpikingNetwork(list(small_net.layers.items()), 4, "rate", "sum", (1, 8, 8))
    x = torch.rand(6, 1, 8, 8)
    counts, maps = source_spike_maps(net, x)
    events = float(x.flatten(1).sum(1).mean()) * net.timesteps  # expected input spikes per sample
    assert float(np.mean(counts["input"])) == pytest.approx(events, rel=1e-5)
    sec = measure_report(net, counts, spike_maps=maps)
    first = sec["layers"][0]
    assert first["op"] == "ac" and first["input_activity"] == pytest.approx(events / 64, rel=1e-5)
    assert first["synops_exact"] < first["flops_snn"]  # padding: fewer real synapses than the formula counts
    assert "eq. 7" in sec["equation"]
    # eq. 7: every row priced at E_AC / E_add, no MAC anywhere
    want = sum(r["flops_snn"] for r in sec["layers"]) * 0.1e-12
    assert sec["snn"]["int32"]["joules_per_sample"] == pytest.approx(want)


def test_perturbation_report_definition2(small_net):
    from neurodeploy.measure.stage import perturbation_report

    x = torch.rand(7, 1, 8, 8)
    same = perturbation_report(small_net, x, x.clone(), batch_size=3)
    assert same["input_pd"] == 0.0 and all(v == 0.0 for v in same["layers"].values())
    x_hat = (x + 0.3 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    rep = perturbation_report(small_net, x, x_hat, batch_size=3)
    assert rep["input_pd"] == pytest.approx(float((x - x_hat).flatten(1).norm(dim=1).mean()), rel=1e-5)
    assert set(rep["layers"]) == {"sn1", "sn2"} and rep["layers"]["sn1"] > 0
    assert set(rep["sa_clean"]) == {"sn1", "sn2"}


def test_torch_target_counts_match_the_source(small_net):
    """The torch target, rebuilt from NIR, reports the same spikes and exact synops as the source."""
    from neurodeploy.ir import DeployMeta, to_nir
    from neurodeploy.targets.base import get_target

    x = torch.rand(10, 1, 8, 8)
    counts, maps = source_spike_maps(small_net, x)
    meta = DeployMeta(timesteps=small_net.timesteps, encoding="direct", input_shape=[1, 8, 8])
    target = get_target("torch")
    out = target.run(target.compile(to_nir(small_net, meta), meta), x)
    for k in ("sn1", "sn2"):
        assert out.layer_spikes[k] == pytest.approx(counts[k])
    src = exact_synops(small_net, maps)
    assert set(out.synops) == set(src)
    for k, v in src.items():
        assert out.synops[k] == pytest.approx(v.numpy())
    sec = measure_report(small_net, counts, targets={"torch": out}, spike_maps=maps)
    assert sec["targets"]["torch"]["chip"] is None  # no chip profile: the equations only
    assert sec["targets"]["torch"]["snn"]["fp32"]["joules_per_sample"] == pytest.approx(
        sec["snn"]["fp32"]["joules_per_sample"])


def test_streamed_exact_counts_equal_full_maps(trained_snn, digits_data):
    """Batch-by-batch exact counts (memory flat in N) give the same report rows as full spike maps."""
    from neurodeploy.measure.stage import measure_report, source_exact_counts, source_spike_maps

    x = digits_data.x_test[:150]
    counts, maps = source_spike_maps(trained_snn, x, batch_size=64)
    counts2, exact = source_exact_counts(trained_snn, x, batch_size=64)
    assert set(counts) == set(counts2) and all((counts[k] == counts2[k]).all() for k in counts)
    a = measure_report(trained_snn, counts, spike_maps=maps)["layers"]
    b = measure_report(trained_snn, counts2, exact=exact)["layers"]
    assert [r.get("synops_exact") for r in a] == pytest.approx([r.get("synops_exact") for r in b])
    assert any(r.get("synops_exact") for r in b)


def test_a_targets_energy_and_activity_are_its_own_counts(small_net):
    """The chip table prices what the target's simulator counted, not the source's activity."""
    x = torch.rand(6, 1, 8, 8)
    counts, maps = source_spike_maps(small_net, x)
    src_syn = {k: v.numpy() for k, v in exact_synops(small_net, maps).items()}
    dep = Outputs(predictions=np.zeros(6), layer_spikes={k: v * 0.5 for k, v in counts.items()},
                  synops={k: v * 0.25 for k, v in src_syn.items()},
                  neuron_updates={"sn1": np.full(6, 256 * 4.0), "sn2": np.full(6, 128 * 4.0), "fc": np.full(6, 40.0)})
    sec = measure_report(small_net, counts, targets={"lava": dep}, profiles={"lava": "speck2f"}, spike_maps=maps)
    t = sec["targets"]["lava"]
    chip_syn = {e["name"]: e["synops"] for e in t["chip"]["layers"]}
    for k, v in src_syn.items():
        assert chip_syn[k] == pytest.approx(0.25 * float(v.mean()))
    spikes = 0.5 * sum(float(np.mean(v)) for v in counts.values())
    assert t["activity"]["spikes_per_sample"] == pytest.approx(spikes)
    assert t["activity"]["activation_sparsity"] == pytest.approx(1 - spikes / ((256 + 128) * 4))
    assert sec["activity"]["spikes_per_sample"] == pytest.approx(2 * spikes)
    assert t["latency"]["steps_per_inference"] == 4  # Speck: no per-layer step delay
