"""HIRE-SNN Table 6 arithmetic, exact fan-out counting against brute force, formula vs exact."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from neurodeploy.measure.graph import graph_from_network
from neurodeploy.measure.ops import conv_flops, exact_synops, linear_flops, op_rows
from neurodeploy.measure.summary import layer_table
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import SpikingNeuron


def _net(*mods: tuple[str, nn.Module], shape=(2, 7, 7), T: int = 4, encoding: str = "direct") -> SpikingNetwork:
    return SpikingNetwork(list(mods), T, encoding, "sum", shape)


def _brute_synops(spikes: torch.Tensor, conv: nn.Conv2d) -> float:
    """Walk every output neuron and kernel tap; a tap that lands on a real input reached by spikes
    counts those spikes (the definition of a synaptic op), taps on padding count nothing."""
    ci, h, w = spikes.shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    total = 0.0
    for co, oy, ox, c, ky, kx in itertools.product(range(conv.out_channels), range(ho), range(wo), range(ci),
                                                   range(kh), range(kw)):
        iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
        if 0 <= iy < h and 0 <= ix < w:
            total += float(spikes[c, iy, ix])
    return total


def test_table6_arithmetic():
    assert conv_flops(3, 3, 8, 8, 16, 1) == 3 * 3 * 8 * 8 * 16 * 1 == 9216
    assert conv_flops(3, 3, 4, 4, 32, 16, groups=4) == 9 * 16 * 32 * 4
    assert linear_flops(128, 10) == 1280
    rows = op_rows(graph_from_network(_net(("conv", nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)),
                                           ("sn", SpikingNeuron()), ("pool", nn.AvgPool2d(2)),
                                           ("flat", nn.Flatten()), ("fc", nn.Linear(12, 5, bias=False)))))
    by = {r.name: r for r in rows}
    assert by["conv"].flops_ann == 3 * 3 * 4 * 4 * 3 * 2  # 7x7, stride 2, pad 1 -> 4x4
    assert by["conv"].op == "mac"  # direct analog input
    assert by["pool"].flops_ann == 2 * 2 * 2 * 2 * 3 and by["pool"].op == "add"
    assert by["fc"].flops_ann == 12 * 5 and by["fc"].op == "ac"


@pytest.mark.parametrize("stride,padding", [(2, 1), (1, 1), (2, 0), (3, 2)])
def test_exact_fanout_against_brute_force(stride, padding):
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding, bias=False)
    net = _net(("c0", nn.Conv2d(2, 2, 1, bias=False)), ("sn", SpikingNeuron()), ("conv", conv), ("sn2", SpikingNeuron()))
    maps = {"sn": torch.randint(0, 4, (3, 2, 7, 7)).float()}
    got = exact_synops(net, maps)["conv"]
    want = [_brute_synops(maps["sn"][b], conv) for b in range(3)]
    assert got.tolist() == pytest.approx(want)


def test_fanout_through_pooling_is_brute_force_on_the_pooled_map():
    conv = nn.Conv2d(2, 3, 3, stride=1, padding=1, bias=False)
    net = _net(("c0", nn.Conv2d(2, 2, 1, bias=False)), ("sn", SpikingNeuron()), ("pool", nn.AvgPool2d(2)),
               ("conv", conv), ("sn2", SpikingNeuron()), shape=(2, 6, 6))
    spikes = torch.randint(0, 3, (2, 2, 6, 6)).float()
    routed = nn.functional.avg_pool2d(spikes, 2) * 4  # each spike goes to its window: sum pooling
    got = exact_synops(net, {"sn": spikes})["conv"]
    assert got.tolist() == pytest.approx([_brute_synops(routed[b], conv) for b in range(2)])


def _formula_and_exact(net: SpikingNetwork, maps: dict[str, torch.Tensor], name: str) -> tuple[float, float]:
    counts = {k: v.flatten(1).sum(1).numpy() for k, v in maps.items()}
    row = {r["name"]: r for r in layer_table(net, counts, None, maps)}[name]
    return row["flops_snn"], row["synops_exact"]


@pytest.mark.parametrize("conv", [nn.Conv2d(2, 3, 1, bias=False), nn.Conv2d(2, 3, 2, stride=2, bias=False)],
                         ids=["1x1-stride1", "2x2-stride2-tiles"])
def test_formula_equals_exact_for_any_spike_map_when_fanout_is_uniform(conv):
    net = _net(("c0", nn.Conv2d(2, 2, 1, bias=False)), ("sn", SpikingNeuron()), ("conv", conv), ("sn2", SpikingNeuron()),
               ("flat", nn.Flatten()), ("fc", nn.Linear(3 * (6 // conv.stride[0]) ** 2, 4, bias=False)), shape=(2, 6, 6))
    maps = {"sn": torch.randint(0, 5, (4, 2, 6, 6)).float(), "sn2": torch.randint(0, 5, (4, 3, 6 // conv.stride[0],
                                                                                         6 // conv.stride[0])).float()}
    for name in ("conv", "fc"):
        formula, exact = _formula_and_exact(net, maps, name)
        assert formula == pytest.approx(exact)


def test_formula_vs_exact_no_padding_stride1_uniform_only():
    """3x3, stride 1, no padding: Σ fan-out = FL_ANN, so a uniform map agrees, a corner spike does not."""
    net = _net(("c0", nn.Conv2d(2, 2, 1, bias=False)), ("sn", SpikingNeuron()), ("conv", nn.Conv2d(2, 3, 3, bias=False)),
               ("sn2", SpikingNeuron()), shape=(2, 6, 6))
    formula, exact = _formula_and_exact(net, {"sn": torch.full((1, 2, 6, 6), 2.0)}, "conv")
    assert formula == pytest.approx(exact) and exact == 2 * 3 * 3 * 4 * 4 * 3 * 2
    corner = torch.zeros(1, 2, 6, 6)
    corner[0, 0, 0, 0] = 1
    formula, exact = _formula_and_exact(net, {"sn": corner}, "conv")
    assert exact == 3  # one tap of each of the 3 output channels
    assert formula == pytest.approx(3 * 3 * 4 * 4 * 3 * 2 / 72)


def test_padding_makes_the_formula_overcount_even_for_uniform_maps():
    net = _net(("c0", nn.Conv2d(2, 2, 1, bias=False)), ("sn", SpikingNeuron()),
               ("conv", nn.Conv2d(2, 3, 3, padding=1, bias=False)), ("sn2", SpikingNeuron()), shape=(2, 6, 6))
    formula, exact = _formula_and_exact(net, {"sn": torch.ones(1, 2, 6, 6)}, "conv")
    assert formula == 3 * 3 * 6 * 6 * 3 * 2
    # exact = C_o · C_i · (Σ_x taps reaching row x)² with 1-D tap counts (2, 3, 3, 3, 3, 2): 16² per channel pair
    assert exact == 3 * 2 * 16 ** 2


def test_sew_add_costs_macs_and_the_add_is_counted():
    from neurodeploy.snn.blocks import ResidualBlock
    from neurodeploy.snn.neuron import NeuronSpec

    net = _net(("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", SpikingNeuron()),
               ("block", ResidualBlock(4, 4, 1, "sew", batchnorm=False).build(NeuronSpec(), None, False)),
               ("flat", nn.Flatten()), ("fc", nn.Linear(4 * 6 * 6, 10, bias=False)), shape=(1, 6, 6))
    rows = {r.name: r for r in op_rows(graph_from_network(net))}
    assert rows["block.conv1"].op == "ac"  # binary spikes in
    add = rows["block.add:add"]
    assert add.kind == "add" and add.flops_ann == 4 * 6 * 6 and set(add.sources) == {"block.sn2", "sn1"}
    assert rows["fc"].op == "mac" and rows["fc"].in_value == "count"  # SEW ADD output is 0/1/2: MACs


def test_residual_graph_from_nir_counts_both_branches():
    """A SEW block exported to NIR and rebuilt as a DAG: the ADD's events reach fc from both branches."""
    from neurodeploy.ir import DeployMeta, to_nir
    from neurodeploy.ir.from_nir import from_nir
    from neurodeploy.snn.blocks import ResidualBlock
    from neurodeploy.snn.neuron import NeuronSpec

    torch.manual_seed(0)
    seq = _net(("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", SpikingNeuron(NeuronSpec(threshold=0.2))),
               ("block", ResidualBlock(4, 4, 1, "sew", batchnorm=False).build(NeuronSpec(threshold=0.2), None, False)),
               ("flat", nn.Flatten()), ("fc", nn.Linear(4 * 6 * 6, 10, bias=False)), shape=(1, 6, 6))
    meta = DeployMeta(timesteps=4, encoding="direct", input_shape=[1, 6, 6])
    dag = from_nir(to_nir(seq, meta), meta)
    dag.record = True
    with torch.no_grad():
        dag(torch.rand(3, 1, 6, 6) * 3)
    maps = dag.spike_maps
    assert maps["sn1"].sum() > 0 and maps["block.sn2"].sum() > 0
    got = exact_synops(dag, maps)
    conv = dag.module("block.conv1")
    assert got["block.conv1"].tolist() == pytest.approx([_brute_synops(maps["sn1"][b], conv) for b in range(3)])
    want_fc = ((maps["sn1"] + maps["block.sn2"]).flatten(1).sum(1) * 10).tolist()  # fan-out 10 per event
    assert got["fc"].tolist() == pytest.approx(want_fc)


def test_membrane_residual_adds_currents_densely():
    """HIRE-SNN-style block: the shortcut current joins conv2's before sn2 — an ADD of analog currents
    every step ((n − 1) · numel · T additions, formula and exact alike), and conv2 drives sn2."""
    from neurodeploy.snn.blocks import ResidualBlock
    from neurodeploy.snn.neuron import NeuronSpec

    net = _net(("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", SpikingNeuron()),
               ("block", ResidualBlock(4, 8, 2, "membrane", batchnorm=False).build(NeuronSpec(), None, False)),
               shape=(1, 8, 8))
    maps = {"sn1": torch.ones(2, 4, 8, 8), "block.sn1": torch.ones(2, 8, 4, 4), "block.sn2": torch.ones(2, 8, 4, 4)}
    rows = {r["name"]: r for r in layer_table(net, {k: v.flatten(1).sum(1).numpy() for k, v in maps.items()}, None, maps)}
    assert rows["block.conv2"]["neuron_layer"] == "block.sn2"
    assert rows["block.down_conv"]["neuron_layer"] == "block.sn2"
    add = rows["block.sn2:add"]
    assert add["input"] == "analog" and add["flops_ann"] == 8 * 4 * 4
    assert add["flops_snn"] == add["synops_exact"] == 8 * 4 * 4 * 4  # T = 4 steps
