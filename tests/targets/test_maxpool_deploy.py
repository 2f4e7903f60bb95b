"""Max pooling of spikes (NIR SumPool2d + Threshold) on loihi-emu, Lava and Speck."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import DeployMeta, to_nir
from neurodeploy.ir.metadata import read_meta
from neurodeploy.ir.modules import Heaviside, SumPool2d
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.emu import emulate
from neurodeploy.targets.loihi.lowering import lower_network



def _net(pool2: nn.Module = None) -> SpikingNetwork:
    """conv-IF-maxpool(2) -conv-IF-maxpool(3, 2, 1)-fc on 8x8: both kinds of window, padding included."""
    torch.manual_seed(3)
    sn = lambda: SpikingNeuron(NeuronSpec(threshold=0.4, reset="zero"))  # noqa: E731
    return SpikingNetwork([("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", sn()),
                           ("pool1", nn.MaxPool2d(2)), ("conv2", nn.Conv2d(4, 6, 3, padding=1, bias=False)),
                           ("sn2", sn()), ("pool2", nn.MaxPool2d(3, 2, 1)), ("flatten", nn.Flatten()),
                           ("fc", nn.Linear(6 * 2 * 2, 5, bias=False))], 4, "direct", "sum", (1, 8, 8)).eval()


@pytest.fixture(scope="module")
def graph():
    g = to_nir(_net(), DeployMeta(timesteps=4, input_shape=[1, 8, 8]))
    return g, read_meta(g)


def _cuba_reference(a: np.ndarray, vth: int, i_decay: int, v_decay: int) -> np.ndarray:
    """Lava 0.10 PyLifModelBitAcc (subthreshold dynamics, spike, reset to 0) transcribed in numpy."""
    u = np.zeros(a.shape[1:], np.int64)
    v = np.zeros(a.shape[1:], np.int64)
    out = []
    for t in range(a.shape[0]):
        du = u * (4096 - i_decay)
        u = np.sign(du) * (np.abs(du) >> 12) + (a[t].astype(np.int64) << 6)
        u = np.where(u > 2 ** 23, u - 2 ** 24, u)
        u = np.where(u <= -2 ** 23, u + 2 ** 24, u)
        dv = v * (4096 - v_decay)
        v = np.clip(np.sign(dv) * (np.abs(dv) >> 12) + u, -2 ** 23 + 1, 2 ** 23 - 1)
        s = v > (vth << 6)
        v = np.where(s, 0, v)
        out.append(s)
    return np.stack(out)


def test_lowering_adds_an_or_layer_and_logs_it(graph):
    g, meta = graph
    dep = get_target("loihi-emu").compile(g, meta, options={"input_spikes": "graded"})
    prog = dep.artifact
    assert [layer.name for layer in prog.layers] == ["sn1", "pool1_or", "sn2", "pool2_or", "fc"]
    for name, k, s, p, c, hw in (("pool1_or", 2, 2, 0, 4, 4), ("pool2_or", 3, 2, 1, 6, 2)):
        layer = next(x for x in prog.layers if x.name == name)
        assert (layer.i_decay, layer.v_decay, layer.vth, layer.synapse) == (4096, 4096, 1, name[:-3])
        assert layer.stride == (s, s) and layer.padding == (p, p) and layer.out_shape == (c, hw, hw)
        expect = np.zeros((c, c, k, k), np.int64)
        expect[np.arange(c), np.arange(c)] = 2
        assert np.array_equal(layer.weight, expect)
    lines = dep.lowering
    assert any(x.startswith("max pooling: pool1+pool1_or (max pool 2x2, stride 2, padding 0 of sn1's spikes")
               and "an OR layer of 64 memoryless Loihi neurons" in x and "exact for binary spikes" in x
               and "one extra step of latency" in x for x in lines)
    assert any(x.startswith("max pooling: pool2+pool2_or (max pool 3x3, stride 2, padding 1") for x in lines)
    assert any(x.startswith("latency: Lava adds one step per layer (5 layers, 2 of them OR layers for max pooling "
                            "(pool1_or, pool2_or: +2 steps of latency)") for x in lines)


def test_emulator_equals_the_fixed_point_reference_spike_for_spike(graph):
    g, meta = graph
    dep = get_target("loihi-emu").compile(g, meta, options={"input_spikes": "graded"})
    prog = dep.artifact
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    s_in = prog.encode(x)
    res = emulate(prog, s_in, raster=True)
    h = s_in.numpy()
    T, B = h.shape[:2]
    for layer in prog.layers:
        a = np.einsum("tbi,oi->tbo", h, layer.matrix())  # the integer program, unrolled
        if layer.readout:
            assert np.array_equal(res["logits"].numpy(), a.sum(0))
            break
        ref = _cuba_reference(a, layer.vth, layer.i_decay, layer.v_decay)
        got = res["raster"][layer.name].numpy()
        assert np.array_equal(got, ref), layer.name
        if layer.name.endswith("_or"):  # and the OR layer is the max pool of the previous layer's spikes
            prev = torch.as_tensor(h, dtype=torch.float32).reshape(T * B, *layer.in_shape)
            k = layer.weight.shape[-1]
            mp = F.max_pool2d(prev, k, layer.stride, layer.padding).reshape(T, B, -1).numpy() > 0
            assert np.array_equal(got, mp), layer.name
            assert 0 < got.sum() < got.size
        h = got.astype(np.int64)


def test_emulator_or_layer_matches_the_float_source_max_pool(graph):
    """With graded input the float source's sn1 and the emulator's sn1 mostly agree; wherever they do,
    the pool's OR agrees too (the pool itself adds no error)."""
    g, meta = graph
    net = _net()
    net.record = True
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        net(x)
    out = get_target("loihi-emu").run(get_target("loihi-emu").compile(g, meta, options={"input_spikes": "graded"}), x)
    assert out.layer_spikes["pool1_or"].sum() > 0
    assert out.synops["pool1"].tolist() == out.layer_spikes["sn1"].tolist()  # 2x2 stride 2: one route per spike
    assert set(out.synops) >= {"conv1", "pool1", "conv2", "pool2", "fc"}


@pytest.mark.parametrize("theta", [0.0, 0.8])
def test_any_threshold_below_one_is_the_same_or(theta):
    """n > θ ⇔ n ≥ 1 for θ in [0, 1): the OR layer fires on one spike whatever θ is."""
    sn = SpikingNeuron(NeuronSpec(threshold=0.4, reset="zero"))
    net = SpikingNetwork([("conv1", nn.Conv2d(1, 2, 3, padding=1, bias=False)), ("sn1", sn),
                          ("pool1", SumPool2d((2, 2))), ("pool1_or", Heaviside(torch.tensor(theta))),
                          ("flatten", nn.Flatten()), ("fc", nn.Linear(32, 3, bias=False))], 4, "direct", "sum",
                         (1, 8, 8))
    prog = lower_network(net, 4, {"input_spikes": "graded"}, lambda s: None)
    res = emulate(prog, prog.encode(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(7))), raster=True)
    prev = res["raster"]["sn1"].float().reshape(-1, 2, 8, 8)
    mp = F.max_pool2d(prev, 2).reshape(4, 6, -1) > 0
    assert prog.layers[1].vth == 1 and torch.equal(res["raster"]["pool1_or"], mp) and mp.any()


def test_a_threshold_not_after_a_sum_pool_is_refused():
    net = SpikingNetwork([("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("th", Heaviside(torch.tensor(0.5))),
                          ("flatten", nn.Flatten()), ("fc", nn.Linear(256, 5, bias=False))], 4, "direct", "sum",
                         (1, 8, 8))
    with pytest.raises(UnsupportedLayerError, match=r"node 'th' \(Threshold\): a stateless threshold is lowered"):
        lower_network(net, 4, {}, lambda s: None)


@pytest.mark.speck
def test_speck_refuses_the_or_naming_the_node(graph):
    g, meta = graph
    with pytest.raises(UnsupportedLayerError) as e:
        get_target("speck").compile(g, meta)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("node 'pool1_or' (max pool 'pool1' of binary spikes, exported as SumPool2d + Threshold): "
                          "Speck cannot compute the OR of a max pool")


@pytest.mark.lava
@pytest.mark.slow  # ~60 s: Lava start-up and 14 worker processes
def test_lava_equals_the_emulator_on_a_max_pool_net(graph):
    g, meta = graph
    opts = {"input_spikes": "rate", "seed": 2, "copies": 8, "record_raster": 8, "timeout_s": 240}
    lava = get_target("lava")
    dep = lava.compile(g, meta, options=opts)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    out = lava.run(dep, x)
    prog = dep.artifact
    ref = emulate(prog, prog.encode(x), raster=True)
    assert set(out.info["raster"]) == {"sn1", "pool1_or", "sn2", "pool2_or"}
    for name, lava_raster in out.info["raster"].items():
        assert int((lava_raster != ref["raster"][name].numpy()).sum()) == 0, name
        assert lava_raster.sum() > 0
    assert (np.asarray(out.info["integer_logits"]) == ref["logits"].numpy()).all()
