"""FGSM and PGD: the ε-ball and [0, 1], a hand computation on a linear model, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.attacks import FGSM, PGD, SourceEstimator, TargetEstimator, project_linf
from neurodeploy.errors import AttackError

W = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 2.0, -0.5], [0.3, 0.7, -1.0, 1.5]])
B = np.array([0.1, -0.2, 0.05])


def linear_model() -> nn.Module:
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor(W, dtype=torch.float32))
        m[1].bias.copy_(torch.tensor(B, dtype=torch.float32))
    return m


def grad_by_hand(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇ₓ CE(Wx + b, y) = Wᵀ (softmax(Wx + b) − onehot(y)), per sample."""
    z = x @ W.T + B
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p @ W


X = np.array([[0.2, 0.5, 0.99, 0.0], [0.6, 0.3, 0.4, 0.8], [0.02, 0.9, 0.5, 0.5]])
Y = np.array([0, 2, 1])


def as_images(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 2, 2)


def test_fgsm_matches_hand_computation():
    eps = 0.05
    expected = np.clip(X + eps * np.sign(grad_by_hand(X, Y)), 0, 1)
    x_adv = FGSM(eps).generate(SourceEstimator(linear_model()), as_images(X), torch.tensor(Y))
    np.testing.assert_allclose(x_adv.reshape(3, 4).numpy(), expected, atol=1e-6)
    # the clip bites: pixel 0.99 pushed up, 0.0 pushed down, stay in [0, 1]
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_pgd_matches_hand_computation():
    eps, alpha, steps = 0.1, 0.04, 4
    xa = X.copy()
    for _ in range(steps):
        xa = xa + alpha * np.sign(grad_by_hand(xa, Y))
        xa = np.clip(np.clip(xa, X - eps, X + eps), 0, 1)
    x_adv = PGD(eps, alpha, steps).generate(SourceEstimator(linear_model()), as_images(X), torch.tensor(Y))
    np.testing.assert_allclose(x_adv.reshape(3, 4).numpy(), xa, atol=1e-6)
    assert not np.allclose(xa, X)  # the attack moved


def test_gradient_matches_hand_computation():
    g = SourceEstimator(linear_model()).loss_gradient(as_images(X), torch.tensor(Y))
    np.testing.assert_allclose(g.reshape(3, 4).numpy(), grad_by_hand(X, Y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attack", [FGSM(0.1), PGD(0.1, 0.03, 10), PGD(0.1, 0.05, 5, random_start=True, seed=3)])
def test_attacks_respect_ball_and_pixel_range(attack):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 1, 2, 2, generator=g)
    x[:10] = 0.0
    x[10:20] = 1.0
    y = torch.randint(0, 3, (50,), generator=g)
    x_adv = attack.generate(SourceEstimator(linear_model()), x, y, batch_size=16)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= attack.epsilon + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > 0.5 * attack.epsilon  # it did move


def test_pgd_deterministic_given_seed_and_batching_consistent():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(20, 1, 2, 2, generator=g), torch.randint(0, 3, (20,), generator=g)
    est = SourceEstimator(linear_model())
    a = PGD(0.1, 0.02, 5, random_start=True, seed=7).generate(est, x, y, batch_size=8)
    b = PGD(0.1, 0.02, 5, random_start=True, seed=7).generate(est, x, y, batch_size=8)
    c = PGD(0.1, 0.02, 5, random_start=True, seed=8).generate(est, x, y, batch_size=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # without a random start, batching does not change the result
    d = PGD(0.1, 0.02, 5).generate(est, x, y, batch_size=3)
    e = PGD(0.1, 0.02, 5).generate(est, x, y, batch_size=256)
    assert torch.equal(d, e)


def test_pgd_path_equals_separate_runs():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(12, 1, 2, 2, generator=g), torch.randint(0, 3, (12,), generator=g)
    est = SourceEstimator(linear_model())
    path = PGD(0.2, 0.03, 0).generate_path(est, x, y, [0, 2, 5])
    assert torch.equal(path[0], x)
    for k in (2, 5):
        assert torch.allclose(path[k], PGD(0.2, 0.03, k).generate(est, x, y))


def test_gradient_attacks_refuse_a_target_estimator():
    tgt = TargetEstimator(lambda x: np.zeros((len(x), 3)), 3)
    x, y = as_images(X), torch.tensor(Y)
    for attack in (FGSM(0.1), PGD(0.1, 0.01, 3)):
        with pytest.raises(AttackError, match="needs gradients"):
            attack.generate(tgt, x, y)
    assert tgt.queries == 0  # refused before any query


def test_project_linf():
    x = torch.tensor([0.0, 0.5, 1.0])
    out = project_linf(torch.tensor([-0.5, 0.9, 0.2]), x, 0.1)
    assert torch.allclose(out, torch.tensor([0.0, 0.6, 0.9]))
