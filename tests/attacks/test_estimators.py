"""Estimators: gradients through the surrogate in eval mode, EOT for rate coding, query-only targets."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.attacks import SourceEstimator, TargetEstimator, accuracy
from neurodeploy.errors import AttackError
from neurodeploy.snn import SpikingNetwork, SpikingNeuron
from neurodeploy.snn.network import TimeDropout


def tiny_snn(encoding: str = "direct", dropout: bool = False) -> SpikingNetwork:
    torch.manual_seed(0)
    layers = [("flatten", nn.Flatten()), ("fc1", nn.Linear(16, 12, bias=False)), ("sn1", SpikingNeuron())]
    if dropout:
        layers.append(("drop", TimeDropout(0.5)))
    layers.append(("fc2", nn.Linear(12, 3, bias=False)))
    net = SpikingNetwork(layers, timesteps=4, encoding=encoding, input_shape=(1, 4, 4))
    with torch.no_grad():
        net.layers["fc1"].weight.mul_(3.0)
    return net


def test_trained_snn_gradient_is_alive_in_eval_mode(trained_snn, digits_data):
    """The surrogate stays on in eval mode: the input gradient is non-zero almost everywhere."""
    x, y = digits_data.x_test[:32], digits_data.y_test[:32]
    assert not trained_snn.training
    g = SourceEstimator(trained_snn).loss_gradient(x, y)
    assert g.shape == x.shape
    assert (g != 0).float().mean() > 0.5
    assert (g.flatten(1).norm(dim=1) > 0).all()


def test_gradient_works_under_no_grad_and_restores_training_mode():
    net = tiny_snn(dropout=True)
    net.train()
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    est = SourceEstimator(net)
    with torch.no_grad():
        g1 = est.loss_gradient(x, y)
    g2 = est.loss_gradient(x, y)
    assert torch.equal(g1, g2)  # dropout was off (eval mode), so the gradient is deterministic
    assert g1.abs().sum() > 0
    assert net.training and net.layers["drop"].training  # caller's mode restored
    assert all(p.grad is None for p in net.parameters())  # parameter gradients untouched


def test_eot_averages_over_rate_coding_draws():
    net = tiny_snn("rate")
    x, y = torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))
    e8 = SourceEstimator(net, seed=1)
    assert e8.eot_samples == 8 and e8.stochastic
    g8 = e8.loss_gradient(x, y)
    # deterministic given the seed
    assert torch.equal(g8, SourceEstimator(net, seed=1).loss_gradient(x, y))
    # the mean of 8 single draws taken from the same generator stream
    e1 = SourceEstimator(net, eot_samples=1, seed=1)
    singles = torch.stack([e1.loss_gradient(x, y) for _ in range(8)])
    assert torch.allclose(g8, singles.mean(0), atol=1e-6)
    assert not torch.allclose(singles[0], singles[1])  # draws differ
    assert net.generator is None  # the model's own generator is restored


def test_target_estimator_answers_queries_only():
    net = tiny_snn()
    tgt = TargetEstimator(lambda x: net(x).detach().numpy(), 3)
    x, y = torch.rand(10, 1, 4, 4), torch.randint(0, 3, (10,))
    assert torch.allclose(tgt.predict(x), net(x).detach())
    assert tgt.queries == 10
    assert not hasattr(tgt, "loss_gradient")
    assert accuracy(tgt, x, y, batch_size=4) == accuracy(SourceEstimator(copy.deepcopy(net)), x, y)
    bad = TargetEstimator(lambda x: np.zeros((len(x), 5)), 3)
    with pytest.raises(AttackError, match="shape"):
        bad.predict(x)


def test_eval_mode_does_not_cut_the_surrogate():
    """The gradient in eval mode equals the one in train mode when there is no dropout: eval()
    changes nothing in the spike function's backward pass."""
    net = tiny_snn()
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    net.train()
    xi = x.clone().requires_grad_(True)
    (g_train,) = torch.autograd.grad(nn.functional.cross_entropy(net(xi), y, reduction="sum"), xi)
    net.eval()
    g_eval = SourceEstimator(net).loss_gradient(x, y)
    assert torch.equal(g_train, g_eval) and g_eval.abs().sum() > 0
