"""The obfuscation checklist flags a planted gradient-masking model and passes a healthy one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.attacks import SourceEstimator, checklist_passed, obfuscation_checklist, run_checklist


def least_squares(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    """A linear classifier fitted in closed form (ridge regression on one-hot targets) to a seeded
    random 80% of the training set: instant, ~0.9 accuracy on the digits, and two seeds differ."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: int(0.8 * len(x))]
    a = torch.cat([x[idx].flatten(1), torch.ones(len(idx), 1)], 1).double()
    t = nn.functional.one_hot(y[idx], 10).double()
    w = torch.linalg.solve(a.T @ a + 1e-2 * torch.eye(a.shape[1], dtype=a.dtype), a.T @ t)
    m = nn.Sequential(nn.Flatten(), nn.Linear(a.shape[1] - 1, 10))
    with torch.no_grad():
        m[1].weight.copy_(w[:-1].T.float())
        m[1].bias.copy_(w[-1].float())
    return m.eval()


class Quantized(nn.Module):
    """Gradient masking by input quantisation: round(16·x)/16 has a zero gradient everywhere."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(torch.round(x * 16) / 16)


@pytest.fixture(scope="module")
def models(digits_data):
    d = digits_data
    base, other = least_squares(d.x_train, d.y_train, 0), least_squares(d.x_train, d.y_train, 1)
    return base, other, d.x_test[:150], d.y_test[:150]


def test_masked_model_fails_the_checklist(models):
    base, other, x, y = models
    masked = Quantized(base)
    g = SourceEstimator(masked).loss_gradient(x, y)
    assert (g == 0).all()  # the plant: no gradient at all
    items = run_checklist(SourceEstimator(masked), x, y, blackbox=SourceEstimator(base))
    by = {it["item"]: it for it in items}
    assert not checklist_passed(items)
    assert by["ii"]["passed"] is False  # black-box (transfer from the unmasked twin) beats white-box
    assert by["iv"]["passed"] is False  # unbounded attack gets nowhere
    assert by["iv"]["values"]["success"] < 0.5
    assert "black-box" in by["ii"]["evidence"]


def test_healthy_model_passes_the_checklist(models):
    base, other, x, y = models
    items = run_checklist(SourceEstimator(base), x, y, blackbox=SourceEstimator(other))
    assert [it["item"] for it in items] == ["i", "ii", "iii", "iv", "v"]
    assert checklist_passed(items), [it["evidence"] for it in items if not it["passed"]]
    assert all(it["passed"] is True for it in items)


def test_checklist_items_from_numbers():
    sweep = [{"epsilon": 0.0, "accuracy": 0.9}, {"epsilon": 0.1, "accuracy": 0.5}, {"epsilon": 0.2, "accuracy": 0.6},
             {"epsilon": 1.0, "accuracy": 0.3}]
    items = obfuscation_checklist(fgsm_accuracy=0.4, pgd_accuracy=0.6, eps_sweep=sweep, random_accuracy=0.5)
    by = {it["item"]: it["passed"] for it in items}
    assert by == {"i": False, "ii": None, "iii": False, "iv": False, "v": False}
    assert not checklist_passed(items)
    ok = obfuscation_checklist(fgsm_accuracy=0.4, pgd_accuracy=0.2, blackbox_accuracy=0.5,
                               eps_sweep=[{"epsilon": 0.0, "accuracy": 0.9}, {"epsilon": 1.0, "accuracy": 0.0}],
                               random_accuracy=0.8)
    assert checklist_passed(ok)


def test_a_query_attack_stronger_than_pgd_fails_item_ii():
    items = obfuscation_checklist(fgsm_accuracy=0.5, pgd_accuracy=0.4, blackbox_accuracy=0.6,
                                  query_accuracy=0.2, query_pgd_accuracy=0.45)
    ii = next(it for it in items if it["item"] == "ii")
    assert ii["passed"] is False and "query attack 0.200" in ii["evidence"]
    ok = obfuscation_checklist(fgsm_accuracy=0.5, pgd_accuracy=0.4, query_accuracy=0.5, query_pgd_accuracy=0.45)
    assert next(it for it in ok if it["item"] == "ii")["passed"] is True


def test_items_ii_and_v_count_samples_in_the_stage(models):
    """A masked model in the attack stage: the query attack and random sampling break samples no
    white-box member breaks; items (ii) and (v) fail and name exactly those samples."""
    from neurodeploy.attacks import AttackInputs, robustness_report
    from neurodeploy.attacks.random_search import RandomSampling
    from neurodeploy.recipe import AttackConfig

    base, other, x, y = models
    masked = Quantized(base)
    cfg = AttackConfig(sections=["clean", "fgsm", "pgd", "random", "query", "ensemble", "checklist"],
                       query_budget=100, query_samples=60, random_samples=10, ensemble_steps=5,
                       ensemble=["apgd-ce", "square"], ensemble_query_budget=50, epsilon=0.1)
    rep = robustness_report(AttackInputs(masked, x, y), cfg)
    by = {it["item"]: it for it in rep["checklist"]}
    ii, v = by["ii"], by["v"]
    assert ii["passed"] is False and v["passed"] is False
    assert ii["values"]["missed_by"] == ["pgd7@train", "apgd-ce@train"]  # square is not a white-box member
    esc_q = ii["values"]["escapes"]["query"]
    assert len(esc_q) > ii["values"]["allowed"] and str(esc_q[0]) in ii["evidence"]
    # the named samples are exactly those random sampling broke and no white-box attack did
    est = SourceEstimator(masked)
    x_r = RandomSampling(0.1, 10, 0).generate(est, x, y)
    wrong_r = est.predict(x_r).argmax(1) != y
    ens = rep["ensemble"]["source"]["broken_by"]
    white = torch.tensor([b not in ("", "square") for b in ens])
    assert v["values"]["escaped_samples"] == (wrong_r & ~white).nonzero().squeeze(1).tolist()


def test_items_ii_and_v_pass_per_sample_on_a_healthy_model(models):
    from neurodeploy.attacks import AttackInputs, robustness_report
    from neurodeploy.recipe import AttackConfig

    base, other, x, y = models
    cfg = AttackConfig(sections=["clean", "fgsm", "pgd", "blackbox", "random", "query", "ensemble", "checklist"],
                       query_budget=50, query_samples=40, random_samples=10, ensemble_steps=10)
    rep = robustness_report(AttackInputs(base, x, y, surrogate_model=other), cfg)
    by = {it["item"]: it for it in rep["checklist"]}
    assert by["ii"]["passed"] is True and by["v"]["passed"] is True, (by["ii"]["evidence"], by["v"]["evidence"])
    assert set(by["ii"]["values"]["escapes"]) == {"transfer", "query"}
    assert by["ii"]["values"]["allowed"] == 1 and by["v"]["values"]["samples"] == 150
