"""HIRE-SNN Algorithm 1 mechanics: κ bound, κ carried between batches, one update per period,
neuron state carried between periods, the BPTT special case, Gaussian ablation, frozen θ/λ."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from neurodeploy.snn import create_snn
from neurodeploy.train import KappaBuffer, hire_batch, train_bptt, train_hire, train_snn
from neurodeploy.train.common import make_optimizer


def _batches(data, n, bs=32):
    return [(data.x_train[i * bs:(i + 1) * bs], data.y_train[i * bs:(i + 1) * bs]) for i in range(n)]


def _record_inputs(snn):
    seen: list[torch.Tensor] = []
    h = snn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    return seen, h


def test_kappa_bounded_updated_and_carried(tiny_snn, tiny_recipe, small_digits):
    cfg = tiny_recipe.train.snn
    opt = make_optimizer(tiny_snn.parameters(), "adam", 1e-3, 0.0)
    kappa = KappaBuffer()
    seen, h = _record_inputs(tiny_snn)
    ends = []
    for x, y in _batches(small_digits, 3):
        hire_batch(tiny_snn, opt, x, y, cfg, kappa)
        k = kappa.value[: len(x)].clone()
        assert k.abs().max() <= cfg.noise_bound + 1e-7
        ends.append(k)
    h.remove()
    batches = _batches(small_digits, 3)
    # period 1 of batch 1 runs on x + 0; every κ step is ±ε_s per pixel (where ∇ₓL ≠ 0)
    assert torch.allclose(seen[0], batches[0][0])
    assert ends[0].abs().max() > 0
    d = (seen[1] - seen[0]).abs()
    assert torch.all((d < 1e-6) | ((d - cfg.noise_step).abs() < 1e-6))
    # the first period of batch b starts from the κ of batch b-1's last period
    for b in (1, 2):
        assert torch.allclose(seen[2 * b], batches[b][0] + ends[b - 1], atol=1e-6)
    # after enough periods κ saturates at the bound ε_t
    assert torch.isclose(ends[-1].abs().max(), torch.tensor(cfg.noise_bound))


def test_one_optimizer_step_per_period(tiny_snn, tiny_recipe, small_digits):
    cfg = dataclasses.replace(tiny_recipe.train.snn, periods=2)
    opt = make_optimizer(tiny_snn.parameters(), "adam", 1e-3, 0.0)
    steps = []
    opt.register_step_post_hook(lambda o, a, k: steps.append(1))
    w_seen = []
    h = tiny_snn.register_forward_pre_hook(lambda m, inp: w_seen.append(m.layers["conv1"].weight.detach().clone()))
    for x, y in _batches(small_digits, 3):
        hire_batch(tiny_snn, opt, x, y, cfg, KappaBuffer())
    h.remove()
    assert len(steps) == 3 * cfg.periods
    # the second period of a batch already runs with the weights updated after the first
    assert not torch.equal(w_seen[0], w_seen[1])
    assert tiny_snn.timesteps == tiny_recipe.timesteps  # restored after the batch


def test_state_carried_between_periods(tiny_snn, tiny_recipe, small_digits):
    """With lr = 0 and ε_s = 0, 𝒩 periods of T/𝒩 steps give exactly the spikes of one T-step run."""
    tiny_snn.layers["sn1_drop"].p = 0.0
    tiny_snn.layers["sn2_drop"].p = 0.0
    x, y = _batches(small_digits, 1)[0]
    spikes = []
    h = tiny_snn.layers["sn2"].register_forward_hook(lambda m, i, o: spikes.append(o.detach().clone()))
    states = []
    h2 = tiny_snn.layers["sn1"].register_forward_pre_hook(lambda m, i: states.append(m.state))
    opt = torch.optim.SGD(tiny_snn.parameters(), lr=0.0)
    cfg = dataclasses.replace(tiny_recipe.train.snn, periods=2, noise_step=0.0)
    hire_batch(tiny_snn, opt, x, y, cfg, KappaBuffer())
    assert states[0] is None and states[1] is not None and not states[1].u.requires_grad
    tiny_snn.eval()
    with torch.no_grad():
        tiny_snn(x)
    h.remove()
    h2.remove()
    assert spikes[0].shape[0] == 2 and spikes[2].shape[0] == 4
    assert spikes[2].sum() > 0
    assert torch.equal(torch.cat([spikes[0], spikes[1]]), spikes[2])
    assert all(n.state is None and not n.carry_state for _, n in tiny_snn.neurons())


def test_bptt_is_hire_with_one_period_and_no_noise(tiny_recipe, small_digits):
    cfg = dataclasses.replace(tiny_recipe.train.snn, epochs=1)
    torch.manual_seed(0)
    a = create_snn(tiny_recipe, (1, 8, 8), 10)
    b = copy.deepcopy(a)
    torch.manual_seed(1)
    train_bptt(a, small_digits, cfg, 64, 0, progress=False)
    torch.manual_seed(1)
    train_hire(b, small_digits, dataclasses.replace(cfg, periods=1, noise_step=0.0), 64, 0, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.layers["conv1"].weight, create_snn(tiny_recipe, (1, 8, 8), 10).layers["conv1"].weight)


def test_gaussian_ablation_draws_fresh_noise(tiny_snn, tiny_recipe, small_digits):
    cfg = dataclasses.replace(tiny_recipe.train.snn, noise="gaussian", noise_step=0.05)
    opt = make_optimizer(tiny_snn.parameters(), "adam", 1e-3, 0.0)
    seen, h = _record_inputs(tiny_snn)
    kappa = KappaBuffer()
    x, y = _batches(small_digits, 1, bs=64)[0]
    hire_batch(tiny_snn, opt, x, y, cfg, kappa)
    h.remove()
    n1, n2 = seen[0] - x, seen[1] - x
    assert kappa.value is None  # no crafted κ
    assert abs(float(n1.std()) - 0.05) < 0.005 and not torch.allclose(n1, n2)


def test_frozen_threshold_and_leak(tiny_recipe, small_digits):
    r = copy.deepcopy(tiny_recipe)
    r.model.train_threshold = r.model.train_leak = False
    snn = create_snn(r, (1, 8, 8), 10)
    before = {n: (float(m.threshold), float(m.leak)) for n, m in snn.neurons()}
    w0 = snn.layers["fc"].weight.detach().clone()
    train_snn(snn, small_digits, dataclasses.replace(r.train.snn, epochs=1), 64, 0, progress=False)
    assert {n: (float(m.threshold), float(m.leak)) for n, m in snn.neurons()} == before
    assert not torch.equal(w0, snn.layers["fc"].weight)
    # the trainable variant does move them
    snn2 = create_snn(tiny_recipe, (1, 8, 8), 10)
    train_snn(snn2, small_digits, dataclasses.replace(tiny_recipe.train.snn, epochs=1), 64, 0, progress=False)
    assert any(m.threshold.item() != 1.0 or m.leak.item() != 1.0 for _, m in snn2.neurons())


def test_event_input_periods_take_their_frames(tiny_recipe, small_digits):
    r = copy.deepcopy(tiny_recipe)
    r.data.encoding = "events"
    snn = create_snn(r, (1, 8, 8), 10)
    x = torch.rand(16, 4, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    seen, h = _record_inputs(snn)
    cfg = dataclasses.replace(r.train.snn, noise_step=0.0)
    hire_batch(snn, torch.optim.SGD(snn.parameters(), lr=0.0), x, y, cfg, KappaBuffer())
    h.remove()
    assert torch.equal(seen[0], x[:, :2]) and torch.equal(seen[1], x[:, 2:])


def test_too_many_periods_refused(tiny_snn, tiny_recipe, small_digits):
    cfg = dataclasses.replace(tiny_recipe.train.snn, periods=8)
    x, y = _batches(small_digits, 1)[0]
    with pytest.raises(ValueError, match="8 periods"):
        hire_batch(tiny_snn, torch.optim.SGD(tiny_snn.parameters(), lr=0.1), x, y, cfg, KappaBuffer())


def test_dispatch_unknown_method(tiny_snn, tiny_recipe, small_digits):
    with pytest.raises(ValueError, match="bptt or hire"):
        train_snn(tiny_snn, small_digits, dataclasses.replace(tiny_recipe.train.snn, method="x"), 64, 0, False)


def test_kappa_buffer_keeps_rows_a_short_batch_does_not_touch():
    kb = KappaBuffer()
    x8 = torch.zeros(8, 1, 2, 2)
    assert torch.equal(kb.get(x8), x8)
    kb.set(torch.full((8, 1, 2, 2), 0.5))
    k4 = kb.get(torch.zeros(4, 1, 2, 2))
    assert torch.all(k4 == 0.5)
    kb.set(torch.full((4, 1, 2, 2), -0.5))
    full = kb.get(x8)
    assert torch.all(full[:4] == -0.5) and torch.all(full[4:] == 0.5)
    assert kb.get(torch.zeros(10, 1, 2, 2))[8:].abs().sum() == 0  # new rows start at 0
    with pytest.raises(RuntimeError):
        KappaBuffer().set(full)
