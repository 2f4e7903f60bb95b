"""Input-gradient sparsity per layer, through backward hooks, checked by hand on tiny nets."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.attacks import SourceEstimator, gradient_sparsity, pooling_table
from neurodeploy.snn import SpikingNetwork, SpikingNeuron


def test_sparsity_on_a_tiny_ann_matches_the_chain_rule():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(6, 8))
    net.add_module("relu", nn.ReLU())
    net.add_module("fc2", nn.Linear(8, 3))
    x, y = torch.rand(5, 6), torch.randint(0, 3, (5,))
    rows = {r["layer"]: r for r in gradient_sparsity(net, x, y)}
    assert list(rows) == ["fc1", "relu", "fc2"]
    # by hand: g_out = softmax − onehot; ∂L/∂(fc2 input) = g_out W2; ∂L/∂(relu input) = that ⊙ 1[z > 0]
    z = net.fc1(x)
    g_out = F.softmax(net.fc2(z.relu()), 1) - F.one_hot(y, 3).float()
    g_h = g_out @ net.fc2.weight
    g_z = g_h * (z > 0).float()
    g_x = g_z @ net.fc1.weight
    for name, g in (("fc2", g_h), ("relu", g_z), ("fc1", g_x)):
        assert abs(rows[name]["zero_fraction"] - float((g == 0).double().mean())) < 1e-9
        assert abs(rows[name]["l2_norm"] - float(g.detach().norm(dim=1).mean())) < 1e-4
    assert rows["relu"]["zero_fraction"] > 0.1  # the ReLU zeros are there
    assert rows["fc2"]["entries_per_sample"] == 8


def test_sparsity_hooks_on_a_spiking_network():
    torch.manual_seed(0)
    T = 4
    net = SpikingNetwork([("flatten", nn.Flatten()), ("fc1", nn.Linear(16, 10, bias=False)),
                          ("sn1", SpikingNeuron()), ("fc2", nn.Linear(10, 3, bias=False))],
                         timesteps=T, input_shape=(1, 4, 4))
    x, y = torch.rand(7, 1, 4, 4), torch.randint(0, 3, (7,))
    rows = {r["layer"]: r for r in gradient_sparsity(net, x, y, batch_size=4)}
    assert list(rows) == ["flatten", "fc1", "sn1", "fc2"]
    assert rows["sn1"]["entries_per_sample"] == T * 10  # all T steps of one sample
    assert rows["fc2"]["entries_per_sample"] == T * 10
    assert rows["fc1"]["entries_per_sample"] == 16  # direct coding: fc1 runs once, before the neurons
    # the first layer's input gradient is the image gradient the attacks use
    g = SourceEstimator(net).loss_gradient(x, y)
    assert abs(rows["flatten"]["zero_fraction"] - float((g == 0).double().mean())) < 1e-9
    assert abs(rows["flatten"]["l2_norm"] - float(g.flatten(1).norm(dim=1).mean())) < 1e-4
    # the surrogate (γ·max(0, 1 − |z|)) is zero for u ≤ 0 and u ≥ 2·v_th: the neuron input gradient is sparse
    with torch.no_grad():
        u = net.layers["fc1"](x.flatten(1))
    silent = (u <= 0).double().mean()  # inputs never positive: u stays ≤ 0 at every step
    assert rows["sn1"]["zero_fraction"] >= float(silent) - 1e-9 > 0
    assert all(p.grad is None for p in net.parameters())


def test_pooling_table_rows():
    torch.manual_seed(0)
    mk = lambda pool: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), pool(2), nn.Flatten(),  # noqa: E731
                                    nn.Linear(64, 3))
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 3, (6,))
    rows = pooling_table({"avg": mk(nn.AvgPool2d), "max": mk(nn.MaxPool2d)}, x, y, steps=2)
    assert [r["model"] for r in rows] == ["avg", "max"]
    for r in rows:
        assert 0 <= r["pgd_accuracy"] <= r["clean_accuracy"] + 1e-9
        assert len(r["sparsity"]) == 5
    # max-pool passes the gradient to one input of each window: its input gradient is ≥ 3/4 zeros
    max_pool = rows[1]["sparsity"][2]
    assert max_pool["kind"] == "MaxPool2d" and max_pool["zero_fraction"] >= 0.75
