"""The one executor: chains keep their parameter names, cycles run step by step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.errors import IRError
from neurodeploy.snn import NeuronSpec, SpikingNetwork, SpikingNeuron, neuron_step
from neurodeploy.snn.network import SpikingNetwork as ReExported


def test_chain_is_a_graph_with_unchanged_state_dict_keys():
    net = SpikingNetwork([("fc1", nn.Linear(4, 3)), ("sn1", SpikingNeuron()), ("fc2", nn.Linear(3, 2))], 4,
                         input_shape=(4,))
    assert ReExported is SpikingNetwork and net.is_chain and not net.recurrent_edges
    assert set(net.state_dict()) == {"layers.fc1.weight", "layers.fc1.bias", "layers.sn1.threshold",
                                     "layers.sn1.leak", "layers.fc2.weight", "layers.fc2.bias"}
    assert net.edges == [("input", "fc1"), ("fc1", "sn1"), ("sn1", "fc2"), ("fc2", "output")]


def test_recurrent_cycle_matches_a_hand_written_loop():
    """input → fc → sn ⇄ rec: sn gets fc(x[t]) + rec(s[t−1]) (rec's bias from t = 0, snnTorch's RSynaptic)."""
    torch.manual_seed(0)
    fc, rec = nn.Linear(3, 5), nn.Linear(5, 5)
    sn = SpikingNeuron(NeuronSpec(threshold=0.7, leak=0.9, reset="zero"))
    edges = [("input", "fc"), ("fc", "sn"), ("sn", "rec"), ("rec", "sn"), ("sn", "output")]
    T = 12
    net = SpikingNetwork([("fc", fc), ("sn", sn), ("rec", rec)], T, "events", "count", (3,), edges=edges)
    assert net.recurrent_edges == [("sn", "rec")] and not net.is_chain
    x = (torch.rand(4, T, 3) < 0.5).float()
    with torch.no_grad():
        net.record = True
        out = net(x)
        s, state, ref = torch.zeros(4, 5), None, torch.zeros(4, 5)
        for t in range(T):
            s, state = neuron_step(fc(x[:, t]) + rec(s), state, sn.threshold, sn.leak, "zero", sn.surrogate)
            ref += s
    assert torch.equal(out, ref) and ref.sum() > 0
    assert torch.equal(net.spike_counts["sn"], ref.sum(1))
    assert net.infer_shapes()["rec"] == (5,)


def test_cycle_without_state_is_refused():
    edges = [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")]
    with pytest.raises(IRError, match="algebraic loop"):
        SpikingNetwork([("a", nn.Linear(2, 2)), ("b", nn.Linear(2, 2))], 2, input_shape=(2,), edges=edges)
