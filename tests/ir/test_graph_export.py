"""Graph passes and the export of composite modules (residual blocks) through ``nir_subgraph``:
the exported DAG, rebuilt as a graph network, runs identically to the torch network."""
import copy

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import DeployMeta, from_nir, load_nir_network, to_nir, write_nir
from neurodeploy.ir.passes import fold_batchnorm, inline_subgraphs, remove_passthrough
from neurodeploy.ir.to_nir import MODULE_MAP
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron


class TinyResidual(nn.Module):
    """``y = conv2(SN(conv1(x))) + x``: the skip adds the block's input to conv2's current."""

    sequence_aware = True

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.sn1 = SpikingNeuron(NeuronSpec(threshold=0.7, leak=0.9))
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, C, H, W]
        per_t = lambda m, h: m(h.flatten(0, 1)).unflatten(0, h.shape[:2])  # noqa: E731
        return per_t(self.conv2, self.sn1(per_t(self.conv1, x))) + x

    def nir_subgraph(self, prefix: str, in_shape: tuple, dt: float):
        p = f"{prefix}."
        nodes = {p + "conv1": MODULE_MAP[nn.Conv2d](self.conv1, in_shape, dt),
                 p + "sn1": MODULE_MAP[SpikingNeuron](self.sn1, in_shape, dt),
                 p + "conv2": MODULE_MAP[nn.Conv2d](self.conv2, in_shape, dt),
                 p + "add": nir.Scale(np.ones(in_shape, np.float32))}
        edges = [(p + "conv1", p + "sn1"), (p + "sn1", p + "conv2"), (p + "conv2", p + "add")]
        return nodes, edges, [p + "conv1", p + "add"], p + "add"  # the input feeds conv1 and the junction


def _res_net(T: int = 6) -> SpikingNetwork:
    torch.manual_seed(0)
    layers = [("conv0", nn.Conv2d(1, 4, 3, padding=1)), ("sn0", SpikingNeuron(NeuronSpec(threshold=0.5))),
              ("block", TinyResidual(4)), ("sn_b", SpikingNeuron(NeuronSpec(threshold=1.0, reset="zero"))),
              ("pool", nn.AvgPool2d(2)), ("flatten", nn.Flatten()), ("fc", nn.Linear(4 * 4 * 4, 10))]
    net = SpikingNetwork(layers, T, "direct", "sum", (1, 8, 8))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.1, 0.3)
    return net.eval()


def test_composite_module_exported_and_run_identically(tmp_path):
    net = _res_net()
    meta = DeployMeta(timesteps=net.timesteps, input_shape=[1, 8, 8])
    g = to_nir(net, meta)
    assert {("sn0", "block.conv1"), ("sn0", "block.add"), ("block.add", "sn_b")} <= set(map(tuple, g.edges))
    assert meta.reset == {"sn0": "subtract", "block.sn1": "subtract", "sn_b": "zero"}
    write_nir(g, tmp_path / "res.nir")
    again, _, m2 = load_nir_network(tmp_path / "res.nir")
    assert not again.is_chain
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    inner: dict = {}
    h = net.layers["block"].sn1.register_forward_hook(lambda m, i, o: inner.__setitem__("s", o.flatten(2).sum((0, 2))))
    net.record = again.record = True
    with torch.no_grad():
        a, b = net(x), again(x)
    h.remove()
    assert torch.allclose(a, b, atol=1e-5)
    for k in ("sn0", "sn_b"):
        assert torch.equal(net.spike_counts[k], again.spike_counts[k]) and net.spike_counts[k].sum() > 0
    assert torch.equal(inner["s"], again.spike_counts["block.sn1"]) and inner["s"].sum() > 0
    # re-export of the graph network: same graph, same function
    g3 = to_nir(again, copy.deepcopy(m2))
    assert set(map(tuple, g3.edges)) == set(map(tuple, g.edges))
    with torch.no_grad():
        assert torch.allclose(from_nir(g3)(x), a, atol=1e-5)


def test_unit_scale_junction_removable():
    net = _res_net()
    g = to_nir(net, DeployMeta(timesteps=net.timesteps, input_shape=[1, 8, 8]))
    g2, removed = remove_passthrough(g)
    assert removed == ["block.add"] and ("block.conv2", "sn_b") in g2.edges
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(from_nir(g2)(x), net(x), atol=1e-5)


def test_colleagues_residual_blocks_export_through_graph_network():
    """The model zoo's SEW/membrane residual blocks (nir_subgraph) after folding BatchNorm."""
    models = pytest.importorskip("neurodeploy.snn.models")
    if not hasattr(models, "create_model") or "sew_digits" not in models.list_models():
        pytest.skip("residual blocks not in the model zoo yet")
    from neurodeploy.recipe import ModelConfig

    torch.manual_seed(0)
    snn = models.create_model("sew_digits", (1, 8, 8), 10, ModelConfig(name="sew_digits", pooling="avg"), timesteps=4)
    for m in snn.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        if isinstance(m, SpikingNeuron):
            m.threshold.data.fill_(0.3)
    snn.eval()
    folded = fold_batchnorm(snn)
    g = to_nir(folded, DeployMeta(timesteps=4, input_shape=[1, 8, 8]))
    net = from_nir(g)
    assert not net.is_chain
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = snn(x), net(x)
    assert torch.allclose(ref, out, atol=1e-4), float((ref - out).abs().max())
    assert {n for n, _ in net.neurons()} == {n for n, _ in snn.neurons()}


def test_fold_batchnorm_sequential():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    for m in ann.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    ann.eval()
    folded = fold_batchnorm(ann)
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[5], nn.Identity)
    assert isinstance(ann[1], nn.BatchNorm2d)  # the original is untouched
    x = torch.randn(5, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(ann(x), folded(x), atol=1e-5)


def test_unfolded_batchnorm_refused():
    net = SpikingNetwork([("conv", nn.Conv2d(1, 2, 3)), ("bn", nn.BatchNorm2d(2)), ("sn", SpikingNeuron())],
                         4, input_shape=(1, 5, 5))
    with pytest.raises(UnsupportedLayerError, match="'bn'.*fold_batchnorm"):
        to_nir(net, DeployMeta(input_shape=[1, 5, 5]))


def test_inline_subgraphs():
    f = np.float32
    inner = nir.NIRGraph({"input": nir.Input(np.array([3])), "lin": nir.Linear(np.eye(3, dtype=f) * 2),
                          "output": nir.Output(np.array([3]))}, [("input", "lin"), ("lin", "output")])
    outer = nir.NIRGraph({"input": nir.Input(np.array([3])), "sub": inner,
                          "sn": nir.IF(r=np.ones(3, f), v_threshold=np.ones(3, f)),
                          "output": nir.Output(np.array([3]))},
                         [("input", "sub"), ("sub", "sn"), ("sn", "output")], type_check=False)
    flat = inline_subgraphs(outer)
    assert set(flat.nodes) == {"input", "sub.lin", "sn", "output"}
    assert set(flat.edges) == {("input", "sub.lin"), ("sub.lin", "sn"), ("sn", "output")}
    net = from_nir(outer)
    assert net.is_chain and "layers.sub_lin.weight" in net.state_dict()  # "sub.lin" is not a module name
    net.timesteps = 4
    assert torch.equal(net(torch.full((1, 3), 0.3)), torch.full((1, 3), 2.0))  # 0.6/step: spikes at t=2, 4


def test_graph_network_layers_addressed_by_nir_names():
    net = from_nir(to_nir(_res_net(), DeployMeta(timesteps=6, input_shape=[1, 8, 8])))
    assert "block.sn1" in net.layers and net.layers["block.sn1"] is net.module("block.sn1")
    assert list(net.layers)[:3] == ["conv0", "sn0", "block.conv1"]
    assert "layers.block_conv1.weight" in net.state_dict()
    again = copy.deepcopy(net)
    again.load_state_dict(net.state_dict())
    assert dict(again.layers.items()).keys() == dict(net.layers.items()).keys()
