"""Residual blocks: SNN/ANN forms, BN folding, and nir_subgraph computing what the block computes."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurodeploy.snn import NeuronSpec, SpikingNetwork
from neurodeploy.snn.blocks import ResidualBlock, fold_batchnorm
from neurodeploy.snn.neuron import NeuronState, neuron_step
from neurodeploy.snn.surrogate import ATanSurrogate


def _randomise_bn(block: ResidualBlock) -> None:
    g = torch.Generator().manual_seed(0)
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_fold_batchnorm_matches_conv_then_bn():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(fold_batchnorm(conv, bn)(x), bn(conv(x)), atol=1e-5)


def _execute(nodes, edges, entry, exit_, x_seq, resets):
    """A minimal NIR executor for feed-forward graphs with skips: at each step every node's input is
    the sum of its predecessors' outputs at that step; neurons keep (u, s) between steps."""
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    order, seen = [], set()

    def visit(n):
        if n in seen:
            return
        for p in preds.get(n, []):
            visit(p)
        seen.add(n)
        order.append(n)

    visit(exit_)
    state: dict[str, NeuronState | None] = {n: None for n in nodes}
    outs = []
    for t in range(x_seq.shape[0]):
        val: dict[str, torch.Tensor] = {}
        for n in order:
            inp = x_seq[t] if n == entry else sum(val[p] for p in preds[n])
            node = nodes[n]
            if isinstance(node, nir.Scale):
                val[n] = inp * torch.as_tensor(node.scale)
            elif isinstance(node, nir.Conv2d):
                val[n] = F.conv2d(inp, torch.as_tensor(node.weight), torch.as_tensor(node.bias),
                                  tuple(np.atleast_1d(node.stride).tolist()), tuple(np.atleast_1d(node.padding).tolist()))
            elif isinstance(node, (nir.IF, nir.LIF)):
                th = torch.as_tensor(node.v_threshold)
                leak = torch.tensor(1.0) if isinstance(node, nir.IF) else torch.as_tensor(1.0 - 1.0 / node.tau)
                s, state[n] = neuron_step(inp, state[n], th, leak, resets[n], lambda z: (z > 0).float())
                val[n] = s
            else:
                raise AssertionError(type(node))
        outs.append(val[exit_])
    return torch.stack(outs)


@pytest.mark.parametrize("connect", ["sew", "membrane"])
@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2)])
def test_nir_subgraph_computes_the_block(connect, cin, cout, stride):
    torch.manual_seed(0)
    spec = NeuronSpec(threshold=0.5, leak=1.0 if connect == "sew" else 0.9, reset="zero" if connect == "sew" else "subtract")
    block = ResidualBlock(cin, cout, stride, connect, batchnorm=connect == "sew").build(spec, ATanSurrogate(), ann=False)
    _randomise_bn(block)
    block.eval()
    x = (torch.rand(5, 2, cin, 6, 6) < 0.4).float()
    with torch.no_grad():
        ref = block(x)
        nodes, edges, entry, exit_ = block.nir_subgraph("block1", (cin, 6, 6), 1.0)
    assert entry == "block1.input" and exit_ == ("block1.add" if connect == "sew" else "block1.sn2")
    assert all(n.startswith("block1.") for n in nodes) and all(a in nodes and b in nodes for a, b in edges)
    assert not any(isinstance(n, nir.NIRNode) and type(n).__name__ == "BatchNorm" for n in nodes.values())
    resets = {f"block1.{n}": m.reset for n, m in block.named_modules() if hasattr(m, "reset")}
    got = _execute(nodes, edges, entry, exit_, x, resets)
    assert ref.sum() > 0
    assert torch.allclose(got, ref, atol=1e-5)
    # and the names match what the network reports for its nested neurons
    net = SpikingNetwork([("block1", block)], timesteps=5, encoding="events")
    assert {n for n, _ in net.neurons()} <= set(nodes)


def test_ann_twin_and_slots():
    b = ResidualBlock(3, 3, 1, "sew")
    with pytest.raises(RuntimeError, match="build"):
        b(torch.rand(1, 2, 3, 4, 4))
    ann = ResidualBlock(3, 5, 2, "sew").build(NeuronSpec(), None, ann=True)
    y = ann(torch.rand(2, 3, 8, 8))
    assert y.shape == (2, 5, 4, 4) and y.min() >= 0
    with pytest.raises(TypeError, match="SNN form"):
        ann.nir_subgraph("b", (3, 8, 8), 1.0)


@pytest.mark.parametrize("name,shape,kw", [("sew_digits", (1, 8, 8), {"pooling": "avg", "reset": "zero"}),
                                           ("resnet12", (3, 8, 8), {"neuron": "lif", "leak": 0.9})])
def test_residual_net_exports_to_nir_and_back(name, shape, kw):
    """The whole net through the IR: BN folded (ir.passes), blocks via nir_subgraph, re-imported as a
    graph with skips; same logits and the same spikes in every (nested) neuron layer."""
    from neurodeploy.ir import DeployMeta, from_nir, to_nir
    from neurodeploy.ir.passes import fold_batchnorm
    from neurodeploy.recipe import ModelConfig
    from neurodeploy.snn import create_model

    torch.manual_seed(0)
    net = create_model(name, shape, 10, ModelConfig(**kw), timesteps=4)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    for _, n in net.neurons():
        n.threshold.data.fill_(0.3)
    net.eval()
    back = from_nir(to_nir(fold_batchnorm(net), DeployMeta(timesteps=4, input_shape=list(shape))))
    x = torch.rand(5, *shape)
    net.record = back.record = True
    with torch.no_grad():
        a, b = net(x), back(x)
    assert torch.allclose(a, b, atol=1e-4)
    nested = [n for n, _ in net.neurons() if "." in n]
    assert nested and set(nested) <= set(net.spike_counts)
    assert list(back.spike_counts) == list(net.spike_counts)  # same names, same order
    for n in net.spike_counts:
        assert torch.equal(net.spike_counts[n], back.spike_counts[n]), n
