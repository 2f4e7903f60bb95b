"""The attack ensemble: APGD and DLR by hand, the per-sample worst case, breaks credited per member,
gradient estimators that change the gradient and never the prediction."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.attacks.apgd import APGD, checkpoints, dlr_loss
from neurodeploy.attacks.base import InputDomain
from neurodeploy.attacks.ensemble import Member, Settings, parse_members, run_ensemble
from neurodeploy.attacks.estimators import SourceEstimator
from neurodeploy.attacks.gradients import ESTIMATORS, gradient_variant
from neurodeploy.errors import AttackError


def test_dlr_loss_on_a_hand_example():
    z = torch.tensor([[2.0, 1.0, 0.5, -1.0], [2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 2.0]])
    y = torch.tensor([0, 2, 1])
    # sorted: 2, 1, 0.5 -> denominator 2 - 0.5 = 1.5; third row: 3, 2, 1 -> 3 - 1 = 2
    expected = [-(2 - 1) / 1.5, -(0.5 - 2) / 1.5, -(3 - 2) / 2]
    np.testing.assert_allclose(dlr_loss(z, y).numpy(), expected, rtol=1e-6)
    # invariant to shifting and (positively) scaling the logits
    np.testing.assert_allclose(dlr_loss(5 * z + 3, y).numpy(), expected, rtol=1e-5)
    with pytest.raises(AttackError, match="3 classes"):
        dlr_loss(z[:, :2], y.clamp(max=1))


def test_apgd_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, §3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def _linear(seed: int = 0, d: int = 6, k: int = 4) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    with torch.no_grad():
        m[1].weight.copy_(torch.randn(k, d, generator=g))
        m[1].bias.copy_(torch.randn(k, generator=g) * 0.1)
    return m.eval()


def _analytic_worst_margin(m: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """min over x' in B∞(x, ε) ∩ [0,1]ⁿ and j ≠ y of (w_y − w_j)·x' + b_y − b_j: coordinate-wise, x'_i is
    the end of [max(0, x_i − ε), min(1, x_i + ε)] that lowers d_i x'_i, d = w_y − w_j."""
    W, b = m[1].weight.detach(), m[1].bias.detach()
    xf = x.flatten(1)
    lo, hi = (xf - eps).clamp(min=0), (xf + eps).clamp(max=1)
    out = torch.full((len(x),), float("inf"))
    for j in range(W.shape[0]):
        d = W[y] - W[j]
        xs = torch.where(d > 0, lo, hi)
        marg = (d * xs).sum(1) + b[y] - b[j]
        out = torch.where(y == j, out, torch.minimum(out, marg))
    return out


def _two_way() -> nn.Module:
    """Three classes, the third out of reach (w = 0, b = −50): CE and DLR are then monotone in the
    margin z_y − z_j of the other class, so the worst case of the box is the analytic corner."""
    m = _linear(0, k=3)
    with torch.no_grad():
        m[1].weight[2] = 0.0
        m[1].bias[2] = -50.0
    return m


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_reaches_the_analytic_worst_case_of_a_linear_model(loss):
    m = _two_way()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(400, 1, 2, 3, generator=g)
    y = m(x).argmax(1).detach()
    eps = 0.15
    worst = _analytic_worst_margin(m, x, y, eps)
    clear = worst.abs() > 0.02  # keep samples that are clearly breakable or clearly not
    x, y, worst = x[clear], y[clear], worst[clear]
    breakable = worst < 0
    assert 20 < int(breakable.sum()) < len(y) - 20  # both kinds are there
    x_adv = APGD(eps, steps=20, loss=loss).generate(SourceEstimator(m), x, y)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    broken = m(x_adv).argmax(1) != y
    assert torch.equal(broken, breakable)  # every breakable sample broken, no other one can be
    # an unbroken sample ends at the corner of lowest margin (the box's analytic minimiser)
    keep = ~breakable
    z = m(x_adv[keep]).detach()
    other = 1 - y[keep]
    margin = z.gather(1, y[keep, None]).squeeze(1) - z.gather(1, other[:, None]).squeeze(1)
    torch.testing.assert_close(margin, worst[keep], atol=1e-4, rtol=0)


def test_worst_case_is_at_most_each_member_alone_per_sample():
    m = _linear(1)
    g = torch.Generator().manual_seed(5)
    x, s = torch.rand(300, 1, 2, 3, generator=g), Settings(0.08, protocol_step=0.01, protocol_steps=2, steps=10)
    y = m(x).argmax(1).detach()
    y[:30] = (y[:30] + 1) % 4  # 30 samples misclassified unattacked
    names = ["apgd-ce", "apgd-dlr", "pgd"]
    full = run_ensemble(m, x, y, parse_members(names), s)
    assert full.broken_by[:30] == ["clean"] * 30
    union = torch.zeros(len(y), dtype=torch.bool)
    for name in ["pgd7"] + names:
        alone = run_ensemble(m, x, y, parse_members([name]), s)
        assert not (alone.broken & ~full.broken).any(), name  # nothing one member breaks survives the ensemble
        union |= alone.broken
    assert torch.equal(full.broken, union)
    assert full.robust_accuracy == 1 - int(union.sum()) / len(y)
    assert full.robust_accuracy <= full.accuracy_after("pgd7@train")
    counts = full.breaks()
    assert sum(counts.values()) + 30 == int(full.broken.sum())
    assert list(full.members) == ["pgd7@train", "apgd-ce@train", "apgd-dlr@train", "pgd@train"]


class _Masked(nn.Module):
    """A step-function forward whose gradient is zero everywhere (masked gradients): logits of
    round(4x)/4, the rounding detached."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = _linear(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (torch.round(4 * x) / 4).detach() + 0 * x
        return self.lin(q)


def test_a_break_only_the_query_member_finds_is_counted():
    m = _Masked().eval()
    g = torch.Generator().manual_seed(7)
    x = torch.rand(60, 1, 2, 3, generator=g)
    y = m(x).argmax(1).detach()
    s = Settings(0.2, protocol_step=0.05, protocol_steps=7, steps=10, query_budget=300)
    res = run_ensemble(m, x, y, parse_members(["apgd-ce", "square"]), s)
    counts = res.breaks()
    assert counts["pgd7@train"] == 0  # zero gradient: the protocol attack never moves
    assert counts["square"] > 0 and res.broken_by.count("square") == counts["square"]
    assert res.robust_accuracy < res.accuracy_after("pgd7@train") == 1.0
    assert res.robust_accuracy == 1 - sum(counts.values()) / len(y)


def test_members_parse_and_refuse_bad_names():
    assert [m.label for m in parse_members(["apgd-dlr@bptr", "square"])] == ["pgd7@train", "apgd-dlr@bptr", "square"]
    with pytest.raises(AttackError, match="unknown attack 'cw'"):
        Member.parse("cw@train")
    with pytest.raises(AttackError, match="unknown gradient estimator 'foo'"):
        Member.parse("apgd-ce@foo")
    with pytest.raises(AttackError, match="query-only"):
        Member.parse("square@train")
    with pytest.raises(AttackError, match="twice"):
        parse_members(["apgd-ce", "apgd-ce@train"])


def test_estimators_change_the_gradient_never_the_prediction(trained_snn, digits_data):
    x, y = digits_data.x_test[:24], digits_data.y_test[:24]
    base = SourceEstimator(trained_snn)
    logits0, loss0, g0 = base.loss_and_gradient(x, y)
    assert torch.equal(base.predict(x), SourceEstimator(trained_snn).predict(x))
    differ = 0
    for name in ESTIMATORS:
        est = SourceEstimator(trained_snn, gradient_variant=gradient_variant(name))
        logits, loss, g = est.loss_and_gradient(x, y)
        torch.testing.assert_close(logits, logits0, rtol=0, atol=1e-5)  # the forward is the model's
        torch.testing.assert_close(loss, loss0, rtol=0, atol=1e-5)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name
        differ += int(not torch.allclose(g, g0))
        assert torch.equal(est.predict(x), base.predict(x))
    assert differ == len(ESTIMATORS) - 1  # every estimator but "train" gives another gradient
    # the surrogates are restored afterwards
    torch.testing.assert_close(base.loss_and_gradient(x, y)[2], g0)


def test_integer_domain_keeps_whole_counts_in_range():
    dom = InputDomain(0.0, 3.0, integer=True, unit="events")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (40, 2, 3, 3), generator=g).float()
    m = nn.Sequential(nn.Flatten(), nn.Linear(18, 4)).eval()
    y = torch.randint(0, 4, (40,), generator=g)
    for eps in (1.0, 1.7):
        a = APGD(eps, steps=10)
        a.domain = dom
        xa = a.generate(SourceEstimator(m), x, y)
        assert torch.equal(xa, xa.round()) and xa.min() >= 0 and xa.max() <= 3
        assert (xa - x).abs().max() <= math.floor(eps)
        assert not torch.equal(xa, x)
    a = APGD(0.6, steps=5)
    a.domain = dom
    assert torch.equal(a.generate(SourceEstimator(m), x, y), x)  # less than one event: nothing can change


def test_ensemble_section_per_model_and_target():
    """The report's ``ensemble``: source and target entries, protocol = source.pgd, gap ≥ 0, breaks add up;
    a target only queried, on the clean inputs and the two transfer image sets of its unbroken samples."""
    from neurodeploy.attacks import AttackInputs, robustness_report
    from neurodeploy.recipe import AttackConfig

    m = _linear(4, d=16, k=3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 4, 4, generator=g)
    y = m(x).argmax(1).detach()
    y[:4] = (y[:4] + 1) % 3
    calls = []

    def target(z):
        calls.append(len(z))
        return m(z).detach().numpy()

    cfg = AttackConfig(sections=["clean", "pgd", "ensemble"], epsilon=0.1, steps=3, ensemble_steps=5)
    rep = robustness_report(AttackInputs(m, x, y, targets={"t": target}), cfg)
    e = rep["ensemble"]
    assert e["preset"] == "fast" and e["members"][0] == "pgd7@train" and e["unit"] == "pixel intensity in [0, 1]"
    src = e["source"]
    assert src["samples"] == 40 and src["clean_accuracy"] == 36 / 40
    assert src["protocol_accuracy"] == rep["source"]["pgd"]["accuracy"]  # the protocol is the report's PGD
    assert src["worst_case_accuracy"] <= src["protocol_accuracy"] and src["gap"] >= 0
    assert sum(src["breaks"].values()) == round((1 - src["worst_case_accuracy"]) * 40) and src["breaks"]["clean"] == 4
    assert src["members"]["apgd-ce@adaptive"]["skipped"].startswith("estimator 'adaptive'")  # no spiking layers
    t = e["t"]
    assert t["worst_case_accuracy"] == src["worst_case_accuracy"]  # the same network: the transfers are exact
    assert t["protocol_accuracy"] == src["protocol_accuracy"]
    n_proto = 40 - t["breaks"]["clean"]
    n_worst = n_proto - t["breaks"].get("pgd7@train (transfer)", 0)
    assert sum(calls) == 40 + n_proto + n_worst


def test_ensemble_gives_a_slow_target_its_stand_ins_entry_and_square_runs_on_targets():
    from neurodeploy.attacks import AttackInputs, robustness_report
    from neurodeploy.recipe import AttackConfig

    m = _linear(4, d=16, k=3)
    x = torch.rand(24, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    y = m(x).argmax(1).detach()
    calls = {"emu": 0, "chip": 0}

    def query(name):
        def fn(z):
            calls[name] += len(z)
            return m(z).detach().numpy()
        return fn

    cfg = AttackConfig(sections=["ensemble"], epsilon=0.05, ensemble=["apgd-ce", "square"], ensemble_steps=3,
                       ensemble_query_budget=30)
    e = robustness_report(AttackInputs(m, x, y, targets={"emu": query("emu"), "chip": query("chip")},
                                       stand_ins={"chip": "emu"}), cfg)["ensemble"]
    assert calls["chip"] == 0 and e["chip"] == {**e["emu"], "via": "emu"}
    assert e["emu"]["square_samples"] == 24 - sum(e["emu"]["breaks"].values())
    assert e["emu"]["worst_case_accuracy"] <= e["emu"]["protocol_accuracy"]


def test_thorough_preset_draws_eot_only_for_a_random_coding():
    from neurodeploy.attacks import AttackInputs
    from neurodeploy.attacks.ensemble_section import ensemble_settings
    from neurodeploy.attacks.sections import AttackContext
    from neurodeploy.recipe import AttackConfig

    m = _linear()
    x, y = torch.rand(4, 1, 2, 3), torch.zeros(4, dtype=torch.long)
    cfg = AttackConfig(preset="thorough")
    members, s, eot = ensemble_settings(AttackContext(AttackInputs(m, x, y), cfg))
    assert eot is None and s.steps == 100 and s.query_budget == 2000 and len(members) == 17
    m.encoding = "rate"
    assert ensemble_settings(AttackContext(AttackInputs(m, x, y), cfg))[2] == 20


def test_lanes_give_each_member_its_own_gradient(trained_snn, digits_data):
    """All estimators side by side in one pass (lanes): per lane, the logits, loss and input gradient
    of that estimator run alone; on a subset of rows too (the rows still attacked)."""
    from neurodeploy.attacks.apgd import ce_loss
    from neurodeploy.attacks.lanes import LaneEstimator, lane_support

    names = list(ESTIMATORS)
    assert lane_support(trained_snn, names) == ""
    losses = [ce_loss if i % 2 == 0 else dlr_loss for i in range(len(names))]
    x, y = digits_data.x_test[:12].float(), digits_data.y_test[:12].long()
    n, L = len(x), len(names)
    xs = (x.repeat(L, 1, 1, 1) + 0.03 * torch.randn(L * n, *x.shape[1:], generator=torch.Generator().manual_seed(1))
          ).clamp(0, 1)
    ys = y.repeat(L)
    est = LaneEstimator(trained_snn, names, losses)
    est.assign(torch.arange(L).repeat_interleave(n))
    est.select(None)
    logits, loss, grad = est.loss_and_gradient(xs, ys)
    for i, name in enumerate(names):
        rows = slice(i * n, (i + 1) * n)
        alone = SourceEstimator(trained_snn, gradient_variant=gradient_variant(name))
        lo, lv, lg = alone.loss_and_gradient(xs[rows], ys[rows], losses[i])
        torch.testing.assert_close(logits[rows], lo, rtol=0, atol=1e-4)
        torch.testing.assert_close(loss[rows], lv, rtol=1e-4, atol=1e-5)
        assert lg.abs().sum() > 0, name
        torch.testing.assert_close(grad[rows], lg, rtol=1e-3, atol=1e-6 * float(lg.abs().max())), name
    sub = torch.arange(0, L * n, 5)
    est.select(sub)
    # a subset of rows is another batch size: the GEMMs may sum in another order (float rounding only)
    torch.testing.assert_close(est.loss_and_gradient(xs[sub], ys[sub])[2], grad[sub], rtol=1e-4,
                               atol=1e-6 * float(grad[sub].abs().max()))


def test_lane_group_breaks_what_each_member_alone_breaks(trained_snn, digits_data):
    """APGD members in lanes (one pass, a sample left by every lane once one breaks it) break every
    sample each member breaks alone, and each break is credited to one member of the group."""
    x, y = digits_data.x_test[:40].float(), digits_data.y_test[:40].long()
    s = Settings(12 / 255, steps=6)
    names = ["apgd-ce@train", "apgd-dlr@atan2", "apgd-ce@bptr"]
    full = run_ensemble(trained_snn, x, y, parse_members(names), s)
    assert full.members["apgd-ce@train"]["lanes"] == names
    union = full.broken_by.count("clean") + full.breaks()["pgd7@train"]
    alone_any = torch.zeros(len(y), dtype=torch.bool)
    for name in names:
        alone = run_ensemble(trained_snn, x, y, parse_members([name]), s)
        assert "lanes" not in alone.members[name]
        alone_any |= alone.broken
    assert not (alone_any & ~full.broken).any()
    assert sum(full.breaks().values()) + full.broken_by.count("clean") == int(full.broken.sum()) > union
