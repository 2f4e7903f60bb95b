"""Every input coding: shapes, statistics, determinism with a generator, straight-through gradients."""
from __future__ import annotations

import pytest
import torch

from neurodeploy.data.encoding import ENCODINGS, encode
from neurodeploy.errors import RegistryError


def test_direct_repeats_the_image():
    x = torch.rand(3, 1, 4, 4)
    s = encode(x, 5, "direct")
    assert s.shape == (5, 3, 1, 4, 4) and all(torch.equal(s[t], x) for t in range(5))


@pytest.mark.parametrize("kind", ["rate", "poisson"])
def test_stochastic_codings_mean_and_gradient(kind):
    x = torch.tensor([0.05, 0.2, 0.5, 0.9]).repeat(2000).requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    s = encode(x, 20, kind, g)
    assert s.shape == (20, 8000)
    means = s.detach().reshape(20, 2000, 4).mean((0, 1))
    assert torch.allclose(means, torch.tensor([0.05, 0.2, 0.5, 0.9]), atol=0.01)
    s.sum().backward()
    assert torch.all(x.grad == 20)  # identity backward per step (derivative of the expectation)
    again = encode(x.detach(), 20, kind, torch.Generator().manual_seed(0))
    assert torch.equal(s.detach(), again)


def test_rate_is_binary_poisson_is_counts():
    x = torch.full((5000,), 0.9)
    r = encode(x, 4, "rate", torch.Generator().manual_seed(1))
    p = encode(x, 4, "poisson", torch.Generator().manual_seed(1))
    assert set(r.unique().tolist()) <= {0.0, 1.0}
    assert p.max() >= 2  # several spikes in one step: the distinct Poisson coding
    v = p.var().item()
    assert abs(v - 0.9) < 0.1  # Poisson: variance = mean (Bernoulli would give 0.09)


def test_events_transposed_and_checked():
    x = torch.rand(2, 6, 2, 3, 3)
    s = encode(x, 6, "events")
    assert s.shape == (6, 2, 2, 3, 3) and torch.equal(s[4, 1], x[1, 4])
    with pytest.raises(ValueError, match="T=4"):
        encode(x, 4, "events")


def test_unknown_coding():
    with pytest.raises(RegistryError, match="unknown encoding 'latency'; available: " + ", ".join(ENCODINGS)):
        encode(torch.rand(2, 2), 2, "latency")


def test_network_uses_the_coding():
    from neurodeploy.recipe import Recipe
    from neurodeploy.snn import create_snn

    r = Recipe()
    r.data.encoding = "poisson"
    r.timesteps = 4
    snn = create_snn(r, (1, 8, 8), 10)
    seen = []
    h = snn.layers["conv1"].register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    snn(torch.rand(3, 1, 8, 8))
    h.remove()
    assert seen[0].shape == (12, 1, 8, 8)  # T·B frames: the coding made a sequence


def test_one_rate_coder_for_every_layout():
    """rate_code: s = 1[u < clip(x, 0, 1)], one uniform per element drawn in the layout it returns
    ([T, B, ...] or [B, T, ...]); the source network's rate coding is the same draw."""
    from neurodeploy.data.encoding import rate_code

    x = torch.tensor([[0.0, 1.0, 0.5], [0.25, 2.0, -1.0]])
    s = rate_code(x, 4, torch.Generator().manual_seed(3))
    assert s.shape == (4, 2, 3) and s.dtype == x.dtype
    assert (s[:, 0, 0] == 0).all() and (s[:, 0, 1] == 1).all() and (s[:, 1, 1] == 1).all() and (s[:, 1, 2] == 0).all()
    u = torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s, (u < x.clamp(0, 1)).float())  # the same draws as a plain Bernoulli sample
    b = rate_code(x, 4, torch.Generator().manual_seed(3), time_dim=1)
    u = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(3))
    assert b.shape == (2, 4, 3) and torch.equal(b, (u < x.clamp(0, 1)[:, None]).float())
    # the source network's rate coding draws exactly these spikes
    assert torch.equal(encode(x, 4, "rate", torch.Generator().manual_seed(3)), s)


def _spikingjelly_phase(x: torch.Tensor, k: int) -> torch.Tensor:
    """SpikingJelly's WeightedPhaseEncoder.encode, written out (activation_based/encoding.py):
    bit i is ``inputs >= w``, then ``inputs -= w * spike``, w halving from 0.5."""
    inputs, w, out = x.clone(), 0.5, []
    for _ in range(k):
        s = (inputs >= w).float()
        inputs -= w * s
        out.append(s)
        w *= 0.5
    return torch.stack(out)


def test_phase_coding_matches_the_published_table_and_spikingjelly():
    from neurodeploy.data.encoding import phase_code

    # Kim et al. 2018's table (quoted in SpikingJelly's docstring), K = 8: 192/256, 1/256, 128/256, 255/256
    pix = torch.tensor([192.0, 1.0, 128.0, 255.0])
    s = phase_code(pix / 255, 8)
    assert s.T.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0], [1] * 8]
    every = torch.arange(256.0)
    s = phase_code(every / 255, 8)
    assert torch.equal(s, _spikingjelly_phase(every / 256, 8))  # the authors' p/256 fed to SpikingJelly
    weights = 2.0 ** -torch.arange(1, 9).float()
    assert torch.equal((weights[:, None] * s).sum(0), every / 256)  # Σ 2^-φ s_φ = q exactly


def test_phase_coding_repeats_with_period_8_and_passes_gradients():
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    s = encode(x, 10, "phase")  # paper 2: T = 10, K = 8 -> bits 1..8, then 1, 2 again
    assert s.shape == (10, 3, 1, 4, 4) and set(s.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(s[8], s[0]) and torch.equal(s[9], s[1]) and not torch.equal(s[1], s[0])
    assert torch.equal(s, encode(x, 10, "phase"))  # deterministic
    s.sum().backward()
    assert torch.all(x.grad == 10)  # straight-through: identity per step
