"""NeuroBench's metrics by our counters, the documented differences from our convention, and (optional)
neurobench 2.3.0 itself on the same model and inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.measure.neurobench_compat import PREFIX, NeuroBenchCounter, static_metrics
from neurodeploy.measure.stage import measure_report, source_exact_counts
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron


def _mlp(zero_weights: int) -> SpikingNetwork:
    """No pooling: every difference from NeuroBench comes from zero pixels and zero weights."""
    torch.manual_seed(1)
    fc1, fc2 = nn.Linear(64, 20, bias=False), nn.Linear(20, 10, bias=False)
    with torch.no_grad():
        fc1.weight.abs_()
        fc2.weight.view(-1)[:zero_weights] = 0.0
    layers = [("flatten", nn.Flatten()), ("fc1", fc1), ("sn1", SpikingNeuron(NeuronSpec(threshold=0.5))), ("fc2", fc2)]
    return SpikingNetwork(layers, 4, "direct", "sum", (1, 8, 8)).eval()


def test_documented_differences_exactly_on_a_net_without_pooling():
    net = _mlp(zero_weights=37)
    x = torch.rand(16, 1, 8, 8)
    x[x < 0.4] = 0.0  # zero pixels, as in the digits
    counts, exact = source_exact_counts(net, x, batch_size=6)
    sec = measure_report(net, counts, exact=exact)
    nb = sec["neurobench"]
    by = {r["name"]: r for r in nb["layers"]}
    nonzero_px = (x.flatten(1) != 0).sum(1).double()
    # (1) the direct-coded first layer: we count all 64 pixels x 20 synapses once; NeuroBench the non-zero pixels
    assert by["fc1"]["ours"] == 64 * 20
    assert by["fc1"]["neurobench_macs"] == pytest.approx(float((nonzero_px * 20).mean()))
    # (3) zero weights: we count the spikes' every synapse, NeuroBench skips the 37 zero ones
    spikes = torch.as_tensor(counts["sn1"])
    zero_fan = (net.layers["fc2"].weight == 0).sum(0).double()  # zero-weight synapses of each sn1 neuron
    net.record = True
    with torch.no_grad():
        net(x)
    maps = net.spike_maps["sn1"].double()
    net.record = False
    assert by["fc2"]["ours"] == pytest.approx(float(spikes.mean()) * 10)
    assert by["fc2"]["ours"] - by["fc2"]["neurobench_acs"] == pytest.approx(float((maps @ zero_fan).mean()))
    assert by["fc2"]["neurobench_macs"] == 0.0
    # activation sparsity is the same in both: binary spikes, the same neuron layers
    assert nb["neurobench"]["activation_sparsity"] == pytest.approx(nb["ours"]["activation_sparsity"])
    assert nb["ours"]["activation_sparsity"] == pytest.approx(1 - float(spikes.mean()) / (20 * 4))
    assert nb["static"]["zero_weights"] == 37 and nb["static"]["weights"] == 64 * 20 + 200
    assert nb["neurobench"]["connection_sparsity"] == round(37 / 1480, 4)
    assert nb["static"]["footprint_bytes"] == (1280 + 200) * 4 + sum(
        p.numel() * p.element_size() for n, p in net.named_parameters() if "weight" not in n) + sum(
        b.numel() * b.element_size() for b in net.buffers())


def test_pooled_layers_are_macs_for_neurobench(trained_snn, digits_data):
    """After avg pooling NeuroBench sees values k^-2·n: the demo net's conv2 and fc count as MACs, and a
    pooled position counts once per step however many spikes it collected."""
    x = digits_data.x_test[:40]
    counts, exact = source_exact_counts(trained_snn, x, batch_size=16)
    nb = measure_report(trained_snn, counts, exact=exact)["neurobench"]
    by = {r["name"]: r for r in nb["layers"]}
    assert nb["neurobench"]["effective_acs"] == 0.0
    assert nb["neurobench"]["effective_macs"] == pytest.approx(sum(r["neurobench_macs"] for r in by.values()))
    assert by["conv2"]["op"] == "ac" and by["conv2"]["neurobench_macs"] < by["conv2"]["ours"]
    # the pooled-position binarisation, computed independently: per step, conv2's input is pool1(sn1 spikes)
    seen: list[torch.Tensor] = []
    h = trained_snn.layers["conv2"].register_forward_pre_hook(lambda m, i: seen.append(i[0].detach().clone()))
    with torch.no_grad():
        trained_snn(x)
    h.remove()
    conv2 = trained_snn.layers["conv2"]
    assert int((conv2.weight == 0).sum()) == 0
    ones = torch.ones_like(conv2.weight)
    inp = seen[0]
    k2 = 4.0  # 2x2 average pooling: a pooled value is (spikes in the window) / 4
    per_spike = conv2._conv_forward(inp * k2, ones, None).sum() / len(x)
    per_position = conv2._conv_forward((inp != 0).float(), ones, None).sum() / len(x)
    assert by["conv2"]["ours"] == pytest.approx(float(per_spike), rel=1e-6)
    assert by["conv2"]["neurobench_macs"] == pytest.approx(float(per_position), rel=1e-6)


def test_counter_hooks_are_removed_and_counts_are_per_sample():
    net = _mlp(0)
    c = NeuroBenchCounter(net)
    c.start(3)
    with torch.no_grad():
        net(torch.ones(3, 1, 8, 8))
    got = c.stop()
    # an all-ones image passes neurobench's "spiking" test (values in {0, 1, -1}): ACs, not MACs
    assert got[f"{PREFIX}fc1:ac"].tolist() == [1280.0] * 3 and got[f"{PREFIX}fc1:mac"].tolist() == [0.0] * 3
    assert got[f"{PREFIX}fc1:dense"].tolist() == [1280.0] * 3
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in net.modules())


def test_neurobench_itself_gives_our_numbers(trained_snn, digits_data):
    """neurobench 2.3.0 (test-only, requirements/test-refs.txt) on the demo model and inputs."""
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    x, y = digits_data.x_test[:60], digits_data.y_test[:60]
    counts, exact = source_exact_counts(trained_snn, x, batch_size=20)
    ours = measure_report(trained_snn, counts, exact=exact)["neurobench"]["neurobench"]
    model = TorchModel(trained_snn)
    model.add_activation_module(SpikingNeuron)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.as_tensor(y)), batch_size=20)
    bench = Benchmark(model, loader, [], [], [[Footprint, ConnectionSparsity, ParameterCount],
                                             [SynapticOperations, ActivationSparsity]])
    res = bench.run(quiet=True)
    so = res["SynapticOperations"]
    assert so["Effective_MACs"] == pytest.approx(ours["effective_macs"], rel=1e-9)
    assert so["Effective_ACs"] == pytest.approx(ours["effective_acs"], abs=1e-9)
    assert so["Dense"] == pytest.approx(ours["dense"], rel=1e-9)
    assert res["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], rel=1e-9)
    assert res["Footprint"] == ours["footprint_bytes"] == static_metrics(trained_snn)["footprint_bytes"]
    assert res["ConnectionSparsity"] == ours["connection_sparsity"]
    assert res["ParameterCount"] == ours["parameter_count"]
    assert np.isfinite(so["Effective_MACs"]) and so["Effective_MACs"] > 0
