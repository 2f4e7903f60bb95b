"""IF and LIF neurons with reset by subtraction and to zero (HIRE-SNN eq. 1-2), surrogates."""
from __future__ import annotations

import math

import pytest
import torch

from neurodeploy.errors import RegistryError
from neurodeploy.snn import ATanSurrogate, LinearSurrogate, NeuronSpec, SpikingNeuron, make_surrogate


def _run(leak, reset, xs, th=1.0):
    n = SpikingNeuron(NeuronSpec(threshold=th, leak=leak, reset=reset))
    return n(torch.tensor(xs).reshape(-1, 1)).flatten().tolist()


def test_if_subtract_keeps_the_residue():
    # u: 0.6, 1.2 -> spike, then 1.2-1+0.6 = 0.8, 1.4 -> spike, 0.4+0.6 = 1.0 (not > 1), 1.6 -> spike
    assert _run(1.0, "subtract", [0.6] * 6) == [0, 1, 0, 1, 0, 1]


def test_if_reset_to_zero_loses_the_residue():
    # u: 0.6, 1.2 -> spike, 0 + 0.6, 1.2 -> spike ...
    assert _run(1.0, "zero", [0.6] * 6) == [0, 1, 0, 1, 0, 1]
    assert _run(1.0, "zero", [0.7] * 6) == [0, 1, 0, 1, 0, 1]
    assert _run(1.0, "subtract", [0.7] * 6) == [0, 1, 1, 0, 1, 1]  # residue 0.4 adds up


def test_lif_leaks():
    # λ = 0.5: u = 0.6, 0.9, 1.05 -> spike
    assert _run(0.5, "subtract", [0.6] * 3) == [0, 0, 1]
    assert _run(0.4, "subtract", [0.6] * 6) == [0] * 6  # fixed point 1.0 never exceeds θ
    assert _run(1.0, "subtract", [0.6] * 3) == [0, 1, 0]


def test_threshold_scales():
    assert _run(1.0, "subtract", [0.6] * 4, th=2.0) == [0, 0, 0, 1]


def test_surrogates_gradients():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.5], requires_grad=True)
    LinearSurrogate(0.3)(z).sum().backward()
    assert torch.allclose(z.grad, torch.tensor([0.0, 0.15, 0.3, 0.15]))
    z.grad = None
    ATanSurrogate(2.0)(z).sum().backward()
    expect = torch.tensor([1.0 / (1 + (math.pi * v) ** 2) for v in (-2.0, -0.5, 0.0, 0.5)])
    assert torch.allclose(z.grad, expect)
    assert isinstance(make_surrogate("atan"), ATanSurrogate) and make_surrogate("linear").gamma == 0.3
    with pytest.raises(RegistryError, match="unknown surrogate 'sigmoid'; available: atan, linear"):
        make_surrogate("sigmoid")


def test_trainable_threshold_and_leak_receive_gradients():
    n = SpikingNeuron(NeuronSpec(threshold=1.0, leak=0.9, reset="subtract"))
    out = n(torch.rand(6, 4, 3) * 2)
    out.sum().backward()
    assert n.threshold.grad is not None and n.leak.grad is not None
