"""The fused neuron recurrence (one autograd node for the whole time loop) against the step-by-step
path through ``neuron_step``: identical spikes, allclose gradients, same carry_state semantics."""
import copy

import pytest
import torch

from neurodeploy.snn import NeuronSpec, SpikingNeuron
from neurodeploy.snn.neuron import fused_sequence
from neurodeploy.snn.surrogate import ATanSurrogate, LinearSurrogate

SURROGATES = [LinearSurrogate(0.3), ATanSurrogate(2.0)]


def _pair(spec: NeuronSpec, surrogate, threshold=None):
    a = SpikingNeuron(spec, surrogate)
    if threshold is not None:
        a.threshold = torch.nn.Parameter(threshold.clone())
    b = copy.deepcopy(a)
    b.fused = False
    return a, b


def _run(n: SpikingNeuron, x: torch.Tensor, w: torch.Tensor):
    x = x.clone().requires_grad_(True)
    s = n(x)
    ((s * w).sum() + 0.1 * s.sum() ** 2 / s.numel()).backward()  # a loss that weights each step differently
    grads = {k: (p.grad.clone() if p.grad is not None else None) for k, p in n.named_parameters()}
    return s.detach(), x.grad, grads


@pytest.mark.parametrize("surrogate", SURROGATES, ids=["linear", "atan"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("leak", [1.0, 0.8])
@pytest.mark.parametrize("threshold", [1.0, 0.37])
def test_fused_matches_step_by_step(surrogate, reset, leak, threshold):
    torch.manual_seed(0)
    spec = NeuronSpec(threshold=threshold, leak=leak, reset=reset)
    fused, step = _pair(spec, surrogate)
    x = torch.randn(9, 4, 3, 5, 5) * 0.8 + 0.3
    w = torch.randn_like(x)
    s1, gx1, g1 = _run(fused, x, w)
    s2, gx2, g2 = _run(step, x, w)
    assert s1.sum() > 0 and s1.sum() < s1.numel()  # a real mix of spikes and silence
    assert torch.equal(s1, s2)
    assert torch.allclose(gx1, gx2, rtol=1e-5, atol=1e-6)
    for k in g1:
        assert torch.allclose(g1[k], g2[k], rtol=1e-4, atol=1e-6), k


def test_per_neuron_threshold_and_frozen_parameters():
    torch.manual_seed(1)
    th = torch.rand(3, 4) + 0.5  # per-neuron thresholds (as imported from NIR)
    fused, step = _pair(NeuronSpec(leak=0.9, train_leak=False), ATanSurrogate(), threshold=th)
    x = torch.randn(6, 2, 3, 4) + 0.5
    w = torch.randn_like(x)
    s1, gx1, g1 = _run(fused, x, w)
    s2, gx2, g2 = _run(step, x, w)
    assert torch.equal(s1, s2)
    assert g1["leak"] is None and g2["leak"] is None
    assert g1["threshold"].shape == th.shape
    assert torch.allclose(g1["threshold"], g2["threshold"], rtol=1e-4, atol=1e-6)
    assert torch.allclose(gx1, gx2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_carry_state_periods_match(reset):
    """HIRE-SNN periods: the state carried (detached) from one call to the next, as hire_batch uses it."""
    torch.manual_seed(2)
    fused, step = _pair(NeuronSpec(leak=0.85, reset=reset), LinearSurrogate())
    for n in (fused, step):
        n.carry_state = True
        n.state = None
    x = torch.randn(8, 3, 7) + 0.6
    for p in range(2):  # two periods of 4 steps
        xp = x[4 * p:4 * (p + 1)]
        w = torch.randn_like(xp)
        s1, gx1, g1 = _run(fused, xp, w)
        s2, gx2, g2 = _run(step, xp, w)
        assert torch.equal(s1, s2)
        assert torch.allclose(gx1, gx2, rtol=1e-5, atol=1e-6)
        for k in g1:
            assert torch.allclose(g1[k], g2[k], rtol=1e-4, atol=1e-6), (p, k)
        assert torch.equal(fused.state.u, step.state.u) and torch.equal(fused.state.s, step.state.s)
        assert not fused.state.u.requires_grad
        for n in (fused, step):
            n.zero_grad()


def test_whole_network_identical_spikes_and_close_gradients():
    from neurodeploy.snn import create_model

    torch.manual_seed(3)
    net = create_model("digits_convnet", (1, 8, 8), 10, timesteps=8)
    for _, n in net.neurons():
        n.threshold.data.fill_(0.4)
    ref = copy.deepcopy(net)
    for _, n in ref.neurons():
        n.fused = False
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    outs = []
    for m in (net, ref):
        m.record = True
        out = m(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outs.append((out.detach(), {k: v.clone() for k, v in m.spike_maps.items()},
                     {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}))
    (o1, m1, g1), (o2, m2, g2) = outs
    assert torch.equal(o1, o2)
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    assert set(g1) == set(g2)
    for k in g1:
        assert torch.allclose(g1[k], g2[k], rtol=1e-4, atol=1e-6), k


def test_unknown_surrogate_falls_back_to_step_path():
    def heaviside(z):
        return (z > 0).float()

    assert fused_sequence(torch.zeros(2, 3), None, torch.tensor(1.0), torch.tensor(1.0), "subtract", heaviside) is None
    n = SpikingNeuron(NeuronSpec(), heaviside)
    assert n(torch.full((3, 1), 0.6)).squeeze(1).tolist() == [0.0, 1.0, 0.0]


def test_no_grad_and_single_step():
    n = SpikingNeuron(NeuronSpec(threshold=1.0, leak=1.0))
    with torch.no_grad():
        assert n(torch.full((5, 1), 0.6)).squeeze(1).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    x = torch.full((1, 2), 1.5, requires_grad=True)
    n.carry_state = True
    s = n(x)
    s.sum().backward()
    assert s.tolist() == [[1.0, 1.0]] and x.grad is not None
    assert n.state.u.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_chunked_recurrence_matches(monkeypatch, reset, per_neuron):
    """Large layers run the recurrence in chunks of the batch: the same spikes and gradients."""
    import neurodeploy.snn.neuron as neuron_mod

    monkeypatch.setattr(neuron_mod, "_CHUNK", 40)  # 3 samples of 2×3×2 = 12 elements per chunk
    torch.manual_seed(4)
    th = (torch.rand(2, 3, 2) + 0.5) if per_neuron else None
    fused, step = _pair(NeuronSpec(leak=0.9, reset=reset), ATanSurrogate(), threshold=th)
    x = torch.randn(5, 10, 2, 3, 2) + 0.5
    assert len(neuron_mod._chunks(x)) == 4
    for n in (fused, step):
        n.carry_state = True
    for p in range(2):  # two periods: the carried state is sliced per chunk too
        w = torch.randn_like(x)
        s1, gx1, g1 = _run(fused, x, w)
        s2, gx2, g2 = _run(step, x, w)
        assert torch.equal(s1, s2)
        assert torch.equal(fused.state.u, step.state.u)
        assert torch.allclose(gx1, gx2, rtol=1e-5, atol=1e-6)
        for k in g1:
            assert torch.allclose(g1[k], g2[k], rtol=1e-4, atol=1e-6), (p, k)
        for n in (fused, step):
            n.zero_grad()
