import torch

from neurodeploy.snn import LinearSurrogate, NeuronSpec, SpikingNeuron, neuron_step


def test_if_subtract_reset_by_hand():
    """HIRE-SNN eq. 1-2 with λ = 1, v_th = 1: constant input 0.6 spikes at t = 1, 3, 4 (0-based)."""
    n = SpikingNeuron(NeuronSpec(threshold=1.0, leak=1.0, reset="subtract"))
    x = torch.full((5, 1), 0.6)
    s = n(x).squeeze(1).tolist()
    # u: 0.6, 1.2 (spike), 0.8, 1.4 (spike), 1.0 -> 1.0 is not > 1
    assert s == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_leak_and_zero_reset():
    th, lk = torch.tensor(1.0), torch.tensor(0.5)
    s, st = neuron_step(torch.tensor([1.5]), None, th, lk, "zero", LinearSurrogate())
    assert s.item() == 1.0
    s, st = neuron_step(torch.tensor([0.2]), st, th, lk, "zero", LinearSurrogate())
    assert abs(st.u.item() - 0.2) < 1e-7 and s.item() == 0.0  # reset to zero, then input
    s, st2 = neuron_step(torch.tensor([0.0]), st, th, lk, "subtract", LinearSurrogate())
    assert abs(st2.u.item() - 0.1) < 1e-7  # λ·u


def test_linear_surrogate_gradient():
    """eq. 5: dO/dz = γ·max(0, 1 − |z|), z = u/v_th − 1."""
    u = torch.tensor([0.5, 1.0, 1.5, 3.0], requires_grad=True)
    s = LinearSurrogate(0.3)(u / 1.0 - 1.0)
    s.sum().backward()
    assert torch.allclose(u.grad, torch.tensor([0.15, 0.3, 0.15, 0.0]))


def test_threshold_and_leak_are_trainable_and_clamped():
    n = SpikingNeuron(NeuronSpec(threshold=1.0, leak=0.9))
    x = torch.rand(4, 3, 5, requires_grad=True)
    n(x * 3).sum().backward()
    assert n.threshold.grad is not None and n.leak.grad is not None
    with torch.no_grad():
        n.leak.fill_(1.3)
    n.clamp_()
    assert float(n.leak) == 1.0
