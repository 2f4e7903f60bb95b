"""Fixtures for the training tests: tiny SNNs on digits, one torch thread (the machines are shared)."""
from __future__ import annotations

import pytest
import torch

from neurodeploy.data import load_dataset
from neurodeploy.recipe import Recipe
from neurodeploy.snn import create_snn


@pytest.fixture
def tiny_recipe() -> Recipe:
    r = Recipe()
    r.timesteps = 4
    r.model.neuron = "lif"
    r.model.dropout = 0.2
    r.data.batch_size = 64
    r.train.snn.epochs = 2
    r.train.snn.lr = 1e-3
    r.train.snn.method = "hire"
    r.train.snn.periods = 2
    r.train.snn.noise_step = 0.02
    r.train.snn.noise_bound = 0.05
    return r


@pytest.fixture(scope="module")
def small_digits():
    """Digits with a 300-image training set (fast epochs)."""
    d = load_dataset(Recipe().data, 0)
    d.x_train, d.y_train = d.x_train[:300], d.y_train[:300]
    d.x_test, d.y_test = d.x_test[:100], d.y_test[:100]
    return d


@pytest.fixture
def tiny_snn(tiny_recipe):
    torch.manual_seed(0)
    snn = create_snn(tiny_recipe, (1, 8, 8), 10)
    for _, n in snn.neurons():
        n.threshold.data.fill_(0.5)
    return snn
