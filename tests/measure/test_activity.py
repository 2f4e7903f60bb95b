"""HIRE-SNN Definition 1 (SA, TASA) and Definition 2 (perturbation distance), and their accumulators."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurodeploy.measure.activity import (layer_activity, perturbation_distance, spike_perturbation_distance,
                                          spiking_activity, spiking_activity_per_sample, tasa)
from neurodeploy.measure.metrics import PerturbationDistance, SpikingActivity


def _hand_spikes() -> torch.Tensor:
    """T = 4, B = 2, 3 neurons. Sample 0: 1 + 2 + 3 = 6 spikes; sample 1: 4 spikes."""
    s = torch.zeros(4, 2, 3)
    s[0, 0, 0] = 1  # neuron 0: 1 spike
    s[[0, 2], 0, 1] = 1  # neuron 1: 2 spikes
    s[[1, 2, 3], 0, 2] = 1  # neuron 2: 3 spikes
    s[:, 1, 0] = 1  # sample 1, neuron 0 fires every step
    return s


def test_sa_tasa_on_hand_made_spikes():
    sa, ta = layer_activity(_hand_spikes())
    assert sa.tolist() == pytest.approx([6 / 3, 4 / 3])
    assert ta.tolist() == pytest.approx([6 / 12, 4 / 12])
    counts = _hand_spikes().sum(0).flatten(1).sum(1)
    assert spiking_activity(counts, 3) == pytest.approx(5 / 3)
    assert tasa(spiking_activity(counts, 3), 4) == pytest.approx(5 / 12)
    assert spiking_activity_per_sample(counts, 3).tolist() == pytest.approx([2.0, 4 / 3])


def test_accumulator_matches_functional_over_batches():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=10).astype(float)
    acc = SpikingActivity({"sn": 7}, timesteps=5)
    for chunk in np.array_split(counts, 3):
        acc.update({"sn": torch.tensor(chunk), "other": torch.ones(3)})
    got = acc.compute()["sn"]
    assert got["sa"] == pytest.approx(spiking_activity(counts, 7))
    assert got["tasa"] == pytest.approx(spiking_activity(counts, 7) / 5)
    assert got["sa_std"] == pytest.approx(float(np.std(counts / 7)))
    assert acc.per_sample()["sn"] == pytest.approx(counts / 7)
    acc.reset()
    assert acc.compute() == {}


def test_perturbation_distance_input_and_spikes():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = x.clone()
    x_hat[0, 0, 0, 0], x_hat[0, 0, 1, 1] = 3.0, 4.0
    assert perturbation_distance(x, x_hat).tolist() == pytest.approx([5.0, 0.0])

    maps = {"sn": torch.tensor([[4.0, 0.0], [2.0, 2.0]]), "only_here": torch.ones(2, 2)}
    maps_hat = {"sn": torch.tensor([[0.0, 0.0], [2.0, 2.0]])}
    pd = spike_perturbation_distance(maps, maps_hat, timesteps=4)
    assert set(pd) == {"sn"}
    assert pd["sn"].tolist() == pytest.approx([1.0, 0.0])  # rates (1, 0) vs (0, 0)
    pd_l2 = spike_perturbation_distance({"sn": torch.tensor([[3.0, 4.0]])}, {"sn": torch.tensor([[4.0, 3.0]])}, norm="l2")
    assert pd_l2["sn"].item() == pytest.approx(math.sqrt(2 * (0.2 ** 2)))
    with pytest.raises(ValueError):
        spike_perturbation_distance(maps, maps_hat)  # rate needs T

    acc = PerturbationDistance(timesteps=4)
    acc.update(x, x_hat, maps, maps_hat)
    assert acc.compute() == {"input": pytest.approx(2.5), "layers": {"sn": pytest.approx(0.5)}}
