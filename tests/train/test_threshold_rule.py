"""Threshold initialisation: the authors' rule (max over t of the per-step nearest-rank percentile,
DIET-SNN / hiresnn2021 ``percentile`` + ``find_max_mem``) and the old pooled rule, on hand examples."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.train import init_thresholds
from neurodeploy.train.convert import nearest_rank_percentile, threshold_from_current


def test_nearest_rank_is_the_authors_kthvalue():
    t = torch.tensor([3.0, 0.0, 2.0, 1.0])
    assert nearest_rank_percentile(t, 50) == 2.0  # k = 1 + round(1.5) = 3: the 3rd smallest
    assert nearest_rank_percentile(torch.arange(1.0, 101.0), 99.7) == 100.0  # k = 1 + round(98.703)
    assert nearest_rank_percentile(torch.arange(1.0, 1001.0), 99.7) == 997.0  # k = 1 + round(996.003) = 997


def test_rules_on_a_hand_example():
    cur = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 20.0, 30.0]])  # [T=2, 4 currents]
    assert threshold_from_current(cur, 50, "step_max") == 20.0  # max(2, 20)
    assert threshold_from_current(cur, 50, "pooled") == pytest.approx(2.5)  # median of all 8 values
    assert threshold_from_current(-cur - 1, 50, "step_max") == 0.0  # floored at 0 like max_mem = 0.0
    with pytest.raises(ValueError, match="step_max, pooled"):
        threshold_from_current(cur, 50, "mean")


def _net() -> SpikingNetwork:
    fc1 = nn.Linear(4, 4, bias=False)
    fc1.weight.data.copy_(torch.eye(4))
    fc = nn.Linear(4, 2, bias=False)
    layers = [("fc1", fc1), ("sn1", SpikingNeuron(NeuronSpec(threshold=1.0))), ("fc", fc)]
    return SpikingNetwork(layers, 2, "events", "sum", (4,))


def test_init_thresholds_uses_per_step_currents():
    x = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 20.0, 30.0]]])  # [B=1, T=2, 4] event frames
    assert init_thresholds(_net(), x, 50, 1.0) == {"sn1": 20.0}
    assert init_thresholds(_net(), x, 50, 1.0, rule="pooled") == {"sn1": pytest.approx(2.5)}
    net = _net()
    init_thresholds(net, x, 50, 0.5)
    assert float(net.layers["sn1"].threshold.detach()) == 10.0  # times the scale
