"""Max pooling of spikes exported to NIR as SumPool2d + Threshold (an OR), marked in our metadata."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import DeployMeta, fold_batchnorm, from_nir, read_nir, to_nir, write_nir
from neurodeploy.ir.modules import Heaviside, SumPool2d
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron


def _net(pool: nn.Module, out_hw: int, th: float = 0.3) -> SpikingNetwork:
    torch.manual_seed(0)
    sn = lambda: SpikingNeuron(NeuronSpec(threshold=th, reset="zero"))  # noqa: E731
    return SpikingNetwork([("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", sn()), ("pool1", pool),
                           ("conv2", nn.Conv2d(4, 6, 3, padding=1, bias=False)), ("sn2", sn()),
                           ("flatten", nn.Flatten()), ("fc", nn.Linear(6 * out_hw * out_hw, 5, bias=False))],
                          4, "direct", "sum", (1, 8, 8)).eval()


@pytest.mark.parametrize("pool,out_hw", [(nn.MaxPool2d(2), 4), (nn.MaxPool2d(3, 2, 1), 4)])
def test_maxpool_exports_as_sum_pool_and_threshold_and_reimports_exactly(tmp_path, pool, out_hw):
    net = _net(pool, out_hw)
    write_nir(to_nir(net, DeployMeta(timesteps=4, input_shape=[1, 8, 8])), tmp_path / "m.nir")
    graph, meta = read_nir(tmp_path / "m.nir")
    assert isinstance(graph.nodes["pool1"], nir.SumPool2d) and isinstance(graph.nodes["pool1_or"], nir.Threshold)
    assert ("sn1", "pool1") in graph.edges and ("pool1", "pool1_or") in graph.edges
    assert ("pool1_or", "conv2") in graph.edges
    assert np.all(np.asarray(graph.nodes["pool1_or"].threshold) == 0.5)
    assert graph.nodes["pool1_or"].threshold.shape == (4, out_hw, out_hw)
    k, s, p = pool.kernel_size, pool.stride, pool.padding
    assert meta.max_pools == {"pool1": {"sum_pool": "pool1", "threshold": "pool1_or", "input": "sn1",
                                        "kernel_size": [k, k], "stride": [s, s], "padding": [p, p],
                                        "exact": "binary spikes"}}
    back = from_nir(graph, meta)
    assert isinstance(back, SpikingNetwork)
    assert isinstance(back.layers["pool1"], SumPool2d) and isinstance(back.layers["pool1_or"], Heaviside)
    assert "max pool 'pool1'" in meta.mapping["pool1_or"]
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    net.record = back.record = True
    with torch.no_grad():
        ref, out = net(x), back(x)
    assert torch.equal(ref, out)  # exact: same spikes in every layer, same logits
    for name in ("sn1", "sn2"):
        assert torch.equal(net.spike_maps[name], back.spike_maps[name])
    assert int(net.spike_counts["sn2"].sum()) > 100  # the pool's output actually carries spikes
    again = to_nir(back, meta)  # a re-imported network re-exports the same pair, still marked
    assert isinstance(again.nodes["pool1_or"], nir.Threshold) and list(meta.max_pools) == ["pool1"]


def test_maxpool_after_a_non_spiking_layer_is_refused_in_one_line():
    net = SpikingNetwork([("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("pool1", nn.MaxPool2d(2)),
                          ("sn1", SpikingNeuron(NeuronSpec())), ("flatten", nn.Flatten()),
                          ("fc", nn.Linear(64, 5, bias=False))], 4, "direct", "sum", (1, 8, 8))
    with pytest.raises(UnsupportedLayerError) as e:
        to_nir(net, DeployMeta(input_shape=[1, 8, 8]))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("layer 'pool1' (MaxPool2d): its input comes from 'conv1' (Conv2d), not from a spiking neuron")


def test_maxpool_on_the_input_is_refused():
    net = SpikingNetwork([("pool1", nn.MaxPool2d(2)), ("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)),
                          ("sn1", SpikingNeuron(NeuronSpec())), ("flatten", nn.Flatten()),
                          ("fc", nn.Linear(64, 5, bias=False))], 4, "direct", "sum", (1, 8, 8))
    with pytest.raises(UnsupportedLayerError, match="'pool1'.*'input' \\(the network input\\)"):
        to_nir(net, DeployMeta(input_shape=[1, 8, 8]))


def test_sew_max_stem_exports_and_reimports_exactly():
    from neurodeploy.recipe import ModelConfig
    from neurodeploy.snn.models import create_model

    torch.manual_seed(0)
    snn = create_model("sew_digits", (1, 8, 8), 10, ModelConfig(name="sew_digits", pooling="max", reset="zero"),
                       timesteps=4)
    for m in snn.modules():
        if isinstance(m, SpikingNeuron):
            m.threshold.data.fill_(0.3)
    snn.eval()
    graph = to_nir(fold_batchnorm(snn), DeployMeta(timesteps=4, input_shape=[1, 8, 8]))
    assert isinstance(graph.nodes["pool1"], nir.SumPool2d) and isinstance(graph.nodes["pool1_or"], nir.Threshold)
    net = from_nir(graph)
    assert not net.is_chain  # the residual blocks make it a graph
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    snn.record = net.record = True
    with torch.no_grad():
        ref, out = snn(x), net(x)
    assert torch.allclose(ref, out, atol=1e-4), float((ref - out).abs().max())
    assert torch.equal(snn.spike_maps["block1.sn1"], net.spike_maps["block1.sn1"])


def test_maxpool_after_a_multi_spike_neuron_is_refused():
    """A sinabs-style neuron emits ⌊v/θ⌋ spikes per step: the OR of those counts is not their max."""
    net = _net(nn.MaxPool2d(2), 4)
    net.layers["sn1"] = SpikingNeuron(NeuronSpec(threshold=0.3, reset="subtract", spike="multi", reset_at="now"))
    with pytest.raises(UnsupportedLayerError, match="'pool1'.*'sn1' \\(SpikingNeuron\\)"):
        to_nir(net, DeployMeta(timesteps=4, input_shape=[1, 8, 8]))
