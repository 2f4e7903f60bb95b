"""Square Attack: the query budget, the ε-ball, the schedule, and that it works without gradients."""
from __future__ import annotations

import torch
from torch import nn

from neurodeploy.attacks import QueryResult, SquareAttack, TargetEstimator, accuracy
from neurodeploy.attacks.square import p_selection


def test_p_schedule_halves_at_the_papers_iterations():
    assert p_selection(0.4, 0, 10000) == 0.4
    assert p_selection(0.4, 11, 10000) == 0.2
    assert p_selection(0.4, 300, 10000) == 0.05
    assert p_selection(0.4, 9999, 10000) == 0.4 / 512
    assert p_selection(0.4, 50, 100) == 0.4 / 128  # rescaled to the budget: 5000 of 10 000


def _victim():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return m.eval()


def test_square_respects_budget_and_ball_and_fools_a_linear_model():
    model = _victim()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 1 by construction
    calls = []

    def query(z):
        calls.append(len(z))
        with torch.no_grad():
            return model(z).numpy()

    tgt = TargetEstimator(query, 10)
    eps, budget = 0.2, 50
    res = SquareAttack(eps, max_queries=budget, seed=0).run(tgt, x, y)
    assert isinstance(res, QueryResult)
    assert (res.queries >= 1).all() and (res.queries <= budget).all()
    assert int(res.queries.sum()) == sum(calls) == tgt.queries  # every query counted
    assert len(calls) <= budget
    assert (res.x_adv - x).abs().max() <= eps + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    acc = accuracy(TargetEstimator(query, 10), res.x_adv, y)
    assert abs(acc - (1 - float(res.success.float().mean()))) < 1e-6
    assert acc < 0.7  # the random search found adversarial examples without gradients
    assert (res.queries[~res.success] == budget).all()  # the unfooled used the whole budget
    s = res.summary()
    assert s["samples"] == 40 and s["queries_total"] == int(res.queries.sum())


def test_square_is_deterministic_given_seed():
    model = _victim()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.long)
    fn = lambda z: model(z).detach()  # noqa: E731 - torch logits are accepted too
    a = SquareAttack(0.05, max_queries=10, seed=4).run(TargetEstimator(fn, 10), x, y)
    b = SquareAttack(0.05, max_queries=10, seed=4).run(TargetEstimator(fn, 10), x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)


def test_square_runs_on_event_frames_and_keeps_their_shape():
    """Event frames [N, T, C, H, W] (the event_digits recipes) are attacked with squares in H×W, one
    channel axis per (t, c); the adversarial frames keep the input's shape and the ε-ball."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 2 * 6 * 6, 10)).eval()
    x = torch.rand(12, 4, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x).argmax(1)
    seen = []

    def query(z):
        seen.append(tuple(z.shape[1:]))
        with torch.no_grad():
            return model(z).numpy()

    res = SquareAttack(0.1, max_queries=30, seed=0).run(TargetEstimator(query, 10), x, y)
    assert res.x_adv.shape == x.shape and set(seen) == {(4, 2, 6, 6)}
    assert (res.x_adv - x).abs().max() <= 0.1 + 1e-6
    assert res.success.any()  # it searched: some frames were fooled within 30 queries
