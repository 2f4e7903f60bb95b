"""Transfer (black-box), Gaussian noise and random sampling: what they need and what they give."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.attacks import (PGD, GaussianNoise, RandomSampling, SourceEstimator, TargetEstimator,
                                 TransferAttack, accuracy, margin)
from neurodeploy.errors import AttackError


def _linear(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()


def _data(n: int = 30):
    g = torch.Generator().manual_seed(5)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_transfer_crafts_on_the_surrogate_and_never_queries_the_victim():
    victim_model, surrogate_model = _linear(0), _linear(1)
    x, y = _data()
    victim = TargetEstimator(lambda z: victim_model(z).detach().numpy(), 4)
    pgd = PGD(0.1, 0.03, 5)
    x_t = TransferAttack(pgd, SourceEstimator(surrogate_model)).generate(victim, x, y)
    assert victim.queries == 0
    assert torch.equal(x_t, pgd.generate(SourceEstimator(surrogate_model), x, y))
    assert (x_t - x).abs().max() <= 0.1 + 1e-6
    with pytest.raises(AttackError):  # a gradient attack cannot be crafted on a query-only surrogate
        TransferAttack(pgd, victim)


def test_gaussian_noise_stays_in_the_ball_and_ignores_the_model():
    x, y = _data(200)
    est = TargetEstimator(lambda z: np.zeros((len(z), 4)), 4)
    xg = GaussianNoise(0.05, seed=1).generate(est, x, y)
    d = xg - x
    assert est.queries == 0
    assert d.abs().max() <= 0.05 + 1e-6 and xg.min() >= 0 and xg.max() <= 1
    inner = (x > 0.1) & (x < 0.9)
    assert 0.5 * 0.05 < float(d[inner].std()) < 1.1 * 0.05  # σ = ε, lightly clipped
    assert torch.equal(xg, GaussianNoise(0.05, seed=1).generate(est, x, y))


def test_random_sampling_uses_queries_and_keeps_the_worst_point():
    model = _linear(0)
    x, y = _data(40)
    est = TargetEstimator(lambda z: model(z).detach(), 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    xr = RandomSampling(0.3, n_samples=10, seed=0).generate(est, x, y)
    assert est.queries <= 40 * 10
    assert (xr - x).abs().max() <= 0.3 + 1e-6
    with torch.no_grad():
        m_adv, m_clean = margin(model(xr), y), margin(model(x), y)
    assert (m_adv <= m_clean + 1e-6).all()  # never worse than the clean point
    assert accuracy(est, xr, y) < 1.0
