"""The neuron's producer strategies (spike function, membrane floor, reset timing) against hand
arithmetic and against sinabs' own IAF/LIF layers bit for bit; the default neuron keeps the fused path."""
from __future__ import annotations

import pytest
import torch

from neurodeploy.snn import NeuronSpec, SpikingNeuron
from neurodeploy.snn.neuron import Dynamics, fused_sequence
from neurodeploy.snn.surrogate import LinearSurrogate


def _run(xs, **kw) -> list[float]:
    n = SpikingNeuron(NeuronSpec(**kw))
    with torch.no_grad():
        return n(torch.tensor(xs).reshape(-1, 1)).flatten().tolist()


def test_multi_spike_emits_floor_of_u_over_threshold():
    # u: 2.5 -> 2 spikes, residue 0.5; 0.7 -> 0; 0.7 + 3.4 = 4.1 -> 4, residue 0.1; 0.1 − 0.3 -> 0
    assert _run([2.5, 0.2, 3.4, -0.3], spike="multi", reset_at="now") == [2, 0, 4, 0]
    # reset to zero after any spike count
    assert _run([2.5, 0.6, 0.6], spike="multi", reset="zero", reset_at="now") == [2, 0, 1]
    # the same counts with the reset deferred to the next step (λ = 1: same arithmetic, other order)
    assert _run([2.5, 0.2, 3.4, -0.3], spike="multi") == [2, 0, 4, 0]
    assert _run([1.0, 1.0], spike="multi") == [1, 1]  # ⌊1/1⌋ = 1: v = θ spikes (single: v > θ only)
    assert _run([1.0, 1.0]) == [0, 1]


def test_membrane_floor_clips_every_step():
    xs = [-5.0, 1.0, 1.0, 1.0, 1.0]
    # no floor: u = -5, -4, -3, -2, -1: silent
    assert _run(xs, spike="multi", reset_at="now") == [0, 0, 0, 0, 0]
    # floor -1: u = -1, 0, 1 -> 1 spike (⌊1/1⌋), 0 + 1 -> 1, ...
    assert _run(xs, spike="multi", reset_at="now", min_v=-1.0) == [0, 0, 1, 1, 1]
    # single spike (u > θ), reset in the next step: u = -1, 0, 1, 2 -> spike, 2 + 1 − 1 = 2 -> spike
    assert _run(xs, min_v=-1.0) == [0, 0, 0, 1, 1]


def test_reset_now_decays_the_reset_potential():
    # λ = 0.5, subtract. now: u = 1.5 -> spike, reset to 0.5; 0.25 + 0.5 = 0.75; 0.375 + 0.8 = 1.175 -> spike
    # next: u = 1.5 -> spike; 0.75 + 0.5 − 1 = 0.25; 0.125 + 0.8 = 0.925 -> silent
    n_now = SpikingNeuron(NeuronSpec(leak=0.5, reset_at="now", train_leak=False))
    n_next = SpikingNeuron(NeuronSpec(leak=0.5, train_leak=False))
    x = torch.tensor([1.5, 0.5, 0.8]).reshape(-1, 1)
    with torch.no_grad():
        assert n_now(x).flatten().tolist() == [1, 0, 1]
        assert n_next(x).flatten().tolist() == [1, 0, 0]


def test_multi_spike_gradient_is_the_single_spike_surrogate():
    """sinabs' MultiSpike backward is the surrogate at v (spike_generation.py:7-14): the same as one spike."""
    x = torch.tensor([[2.7, 0.9, 1.1, -0.4]], requires_grad=True)
    grads = []
    for spike in ("single", "multi"):
        n = SpikingNeuron(NeuronSpec(spike=spike, train_threshold=False, train_leak=False), LinearSurrogate())
        n.fused = False
        n(x).sum().backward()
        grads.append(x.grad.clone())
        x.grad = None
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_non_default_dynamics_leave_the_fused_path_with_equal_results():
    torch.manual_seed(0)
    x = torch.rand(10, 4, 7) * 3 - 0.5
    for spec in (NeuronSpec(spike="multi", min_v=-1.0, reset_at="now"), NeuronSpec(leak=0.8, min_v=-0.5)):
        a, b = SpikingNeuron(spec), SpikingNeuron(spec)
        b.fused = False
        with torch.no_grad():
            assert torch.equal(a(x), b(x))
    assert fused_sequence(x, None, torch.tensor(1.0), torch.tensor(1.0), "subtract", LinearSurrogate()) is not None
    with pytest.raises(ValueError, match="spike function"):
        Dynamics(spike="double")
    with pytest.raises(ValueError, match="reset_at"):
        Dynamics(reset_at="later")


@pytest.mark.parametrize("tau", [None, 5.0])
def test_equals_sinabs_layers_bit_for_bit(tau):
    """sinabs IAF (MultiSpike, MembraneSubtract, min_v_mem = −θ, as sinabs.from_nir builds it) and LIF
    (α = exp(−1/τ)) against our neuron with the sinabs strategies, on random input."""
    sl = pytest.importorskip("sinabs.layers")
    torch.manual_seed(1)
    B, T, N, th = 5, 30, 40, 0.7
    x = torch.randn(B, T, N) * 1.5
    if tau is None:
        ref_layer, leak, floor = sl.IAF(spike_threshold=torch.tensor(th), min_v_mem=-th), 1.0, -th
    else:
        ref_layer = sl.LIF(tau_mem=torch.tensor(tau), spike_threshold=torch.tensor(th), norm_input=False)
        leak, floor = float(torch.exp(-1.0 / torch.tensor(tau))), None
    with torch.no_grad():
        ref = ref_layer(x)  # [B, T, N]
        ours = SpikingNeuron(NeuronSpec(threshold=th, leak=leak, spike="multi", min_v=floor, reset_at="now"))
        out = ours(x.transpose(0, 1)).transpose(0, 1)
    assert ref.max() >= 2 and torch.equal(out, ref)
