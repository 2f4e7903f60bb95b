"""Event data attacked in its own units: whole event counts inside the dataset's range, ε in events,
and the event-budget attack (ℓ1 count of changed events)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.attacks import AttackInputs, robustness_report
from neurodeploy.attacks.base import InputDomain
from neurodeploy.attacks.estimators import SourceEstimator
from neurodeploy.attacks.events import EventBudgetAttack
from neurodeploy.data import load_dataset
from neurodeploy.recipe import AttackConfig, DataConfig


@pytest.fixture(scope="module")
def event_digits():
    return load_dataset(DataConfig(name="event-digits", encoding="events", time_bins=4), 0)


class _Counts(nn.Module):
    """A linear readout of event frames [B, T, 2, 12, 12], trained a few steps so attacks have work."""

    def __init__(self, data) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4 * 2 * 12 * 12, 10)
        opt = torch.optim.Adam(self.lin.parameters(), 0.01)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(self(data.x_train[:512]), data.y_train[:512]).backward()
            opt.step()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def test_event_digits_declare_binary_integer_counts(event_digits):
    dom = InputDomain.of(event_digits)
    assert (dom.lo, dom.hi, dom.integer) == (0.0, 1.0, True) and "events per pixel" in dom.unit
    x = event_digits.x_test
    assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 1  # what the domain says holds


def test_every_attacked_event_input_stays_whole_and_in_range(event_digits):
    """Every input a target is asked about (transfers, Square, sweeps, the ensemble and the event
    budget) is a frame of whole events in [0, 1]; a fractional or out-of-range value fails the test."""
    model = _Counts(event_digits)
    bad = []

    def target(z: torch.Tensor):
        if not (torch.equal(z, z.round()) and z.min() >= 0 and z.max() <= 1):
            bad.append((float(z.min()), float(z.max())))
        with torch.no_grad():
            return model(z).numpy()

    cfg = AttackConfig(epsilon=1.0, step_size=0.3, steps=3, max_samples=40, sweep_epsilons=[0.0, 0.5, 1.0],
                       sweep_steps=[0, 2], sweep_samples=20, query_samples=10, query_budget=20, random_samples=3,
                       sparsity_samples=10, ensemble_steps=4, event_budget=6, ensemble=["apgd-ce", "square"],
                       ensemble_query_budget=20)
    rep = robustness_report(AttackInputs(model, event_digits.x_test, event_digits.y_test, seed=0,
                                         targets={"emu": target}, domain=InputDomain.of(event_digits)), cfg)
    assert not bad
    ens = rep["ensemble"]
    assert ens["unit"].startswith("events per pixel") and ens["integer_inputs"] is True
    sweep = {r["epsilon"]: r["accuracy"] for r in rep["sweeps"]["epsilon"]}
    assert sweep[0.5] == sweep[0.0]  # half an event: nothing can change
    assert sweep[1.0] < sweep[0.0]
    eb = rep["event_budget"]
    assert eb["budget"] == 6 and eb["max_events_changed"] <= 6
    assert eb["source"]["worst_case_accuracy"] < eb["source"]["clean_accuracy"]
    assert eb["source"]["members"]["flip@adaptive"]["skipped"]  # a linear readout has no spiking layers


def test_event_budget_attack_counts_events(event_digits):
    model = _Counts(event_digits)
    x, y = event_digits.x_test[:64], event_digits.y_test[:64]
    for budget in (1, 5, 12):
        a = EventBudgetAttack(budget, steps=4)
        a.domain = InputDomain(0.0, 1.0, integer=True)
        xa = a.generate(SourceEstimator(model), x, y)
        d = (xa - x).abs().flatten(1)
        assert torch.equal(xa, xa.round()) and xa.min() >= 0 and xa.max() <= 1
        assert d.sum(1).max() <= budget and d.max() <= 1
    broken = (model(xa).argmax(1) != y) & (model(x).argmax(1) == y)
    assert broken.any()
    a0 = EventBudgetAttack(0)
    a0.domain = InputDomain(0.0, 1.0, integer=True)
    assert torch.equal(a0.generate(SourceEstimator(model), x, y), x)


def test_counts_up_to_255_keep_integers():
    dom = InputDomain(0.0, 255.0, integer=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (30, 3, 2, 4, 4), generator=g).float()
    x[:5] = 255.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(96, 5)).eval()
    y = torch.randint(0, 5, (30,), generator=g)
    a = EventBudgetAttack(40, epsilon=8.0)
    a.domain = dom
    xa = a.generate(SourceEstimator(model), x / 1.0, y)
    d = (xa - x).abs()
    assert torch.equal(xa, xa.round()) and xa.min() >= 0 and xa.max() <= 255
    assert d.max() <= 8 and d.flatten(1).sum(1).max() <= 40 and d.sum() > 0
