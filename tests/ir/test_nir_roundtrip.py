import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import IRError, UnsupportedLayerError
from neurodeploy.ir import DeployMeta, load_nir_network, read_nir, to_nir


def test_roundtrip_same_predictions_and_spikes(trained_snn, digits_data, digits_nir):
    net, graph, meta = load_nir_network(digits_nir)
    assert meta.timesteps == trained_snn.timesteps and meta.reset == {"sn1": "subtract", "sn2": "subtract"}
    x = digits_data.x_test[:64]
    trained_snn.record = net.record = True
    with torch.no_grad():
        a, b = trained_snn(x), net(x)
    assert torch.allclose(a, b, atol=1e-5)
    for k in trained_snn.spike_counts:
        assert torch.equal(trained_snn.spike_counts[k], net.spike_counts[k])
    trained_snn.record = net.record = False


def test_nodes_and_neuron_mapping(digits_nir, trained_snn):
    graph, meta = read_nir(digits_nir)
    assert isinstance(graph.nodes["conv1"], nir.Conv2d)
    assert isinstance(graph.nodes["sn1"], nir.IF)
    assert isinstance(graph.nodes["pool1"], nir.AvgPool2d)
    th = float(trained_snn.layers["sn1"].threshold)
    assert np.allclose(graph.nodes["sn1"].v_threshold, th)


def test_lif_roundtrip_leak(trained_snn, digits_data, tmp_path):
    import copy

    snn = copy.deepcopy(trained_snn)
    snn.layers["sn1"].leak.data.fill_(0.9)
    meta = DeployMeta(timesteps=snn.timesteps, input_shape=[1, 8, 8])
    g = to_nir(snn, meta)
    assert isinstance(g.nodes["sn1"], nir.LIF)
    nir.write(tmp_path / "m.nir", g)
    net, _, _ = load_nir_network(tmp_path / "m.nir")
    assert abs(float(net.layers["sn1"].leak) - 0.9) < 1e-5
    with torch.no_grad():
        assert torch.allclose(net(digits_data.x_test[:32]), snn(digits_data.x_test[:32]), atol=1e-4)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"this is not hdf5")
    with pytest.raises(IRError, match="bad.nir"):
        read_nir(bad)
    with pytest.raises(IRError, match="not found"):
        read_nir(tmp_path / "missing.nir")


def test_zoo_maxpool_exports_as_an_or(digits_recipe):
    """The zoo's max pools follow neurons: exported as SumPool2d + Threshold (tests/ir/test_maxpool_nir.py)."""
    import copy

    from neurodeploy.snn import create_snn

    r = copy.deepcopy(digits_recipe)
    r.model.pooling = "max"
    snn = create_snn(r, (1, 8, 8), 10)
    g = to_nir(snn, DeployMeta(input_shape=[1, 8, 8]))
    assert {type(g.nodes[n]).__name__ for n in ("pool1", "pool1_or", "pool2", "pool2_or")} == {"SumPool2d",
                                                                                              "Threshold"}


def test_unsupported_node_named(tmp_path):
    g = nir.NIRGraph(
        nodes={"input": nir.Input({"input": np.array([4])}), "weird": nir.Delay(np.ones(4)),
               "output": nir.Output({"output": np.array([4])})},
        edges=[("input", "weird"), ("weird", "output")],
    )
    nir.write(tmp_path / "w.nir", g)
    with pytest.raises(UnsupportedLayerError, match="weird.*Delay"):
        load_nir_network(tmp_path / "w.nir")


def test_neuron_strategies_survive_the_roundtrip(tmp_path):
    """Multi-spike, a membrane floor and reset timing are not NIR fields: our metadata carries them."""
    from torch import nn

    from neurodeploy.snn.network import SpikingNetwork
    from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron

    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(6, 5), nn.Linear(5, 3)
    sinabs_like = NeuronSpec(threshold=0.8, spike="multi", min_v=-0.8, reset_at="now")
    net = SpikingNetwork([("fc1", fc1), ("sn1", SpikingNeuron(sinabs_like)), ("fc2", fc2),
                          ("sn2", SpikingNeuron(NeuronSpec(leak=0.9)))], 6, "direct", "count", (6,))
    meta = DeployMeta(timesteps=6, input_shape=[6])
    g = to_nir(net, meta)
    assert meta.neurons == {"sn1": {"spike": "multi", "min_v": -0.8, "reset_at": "now"}}  # sn2 is the default
    nir.write(tmp_path / "s.nir", g)
    again, _, m2 = load_nir_network(tmp_path / "s.nir")
    assert again.layers["sn1"].dynamics == net.layers["sn1"].dynamics and again.layers["sn2"].dynamics.is_default
    x = torch.randn(32, 6) * 4
    net.record = again.record = True
    with torch.no_grad():
        assert torch.equal(again(x), net(x))
    for k in ("sn1", "sn2"):
        assert torch.equal(again.spike_counts[k], net.spike_counts[k])
    assert net.spike_counts["sn1"].max() > 6 * 5  # more than one spike per neuron and step somewhere
