"""A study on event data: the claims' attacks in whole events (ℓ1 budget), not an L∞ ε."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from neurodeploy.attacks.base import InputDomain
from neurodeploy.data import load_dataset
from neurodeploy.recipe import load_recipe
from neurodeploy.snn.models import create_snn
from neurodeploy.study.events import budget_images, event_metrics


@pytest.fixture(scope="module")
def event_net():
    r = load_recipe("event_digits_sew_max")
    data = load_dataset(r.data, 0)
    torch.manual_seed(0)
    net = create_snn(r, data.input_shape, data.num_classes).eval()
    return r, data, net


def test_budget_images_change_at_most_k_whole_events(event_net):
    r, data, net = event_net
    x, y = data.x_test[:12].float(), data.y_test[:12].long()
    dom = InputDomain.of(data)
    assert dom.integer and (dom.lo, dom.hi) == (0.0, 1.0)
    for k, steps in ((5, 1), (5, 5), (16, 16)):
        xa = budget_images(net, x, y, k, steps, dom)
        d = (xa - x).abs()
        assert torch.equal(xa, xa.round()) and xa.min() >= 0 and xa.max() <= 1  # whole events in range
        assert int(d.flatten(1).sum(1).max()) <= k and d.max() <= 1
        assert int(d.sum()) > 0  # the attack did change events
    assert torch.equal(budget_images(net, x, y, 0, 1, dom), x)


def test_event_metrics_keys_reuse_and_consistency(event_net):
    r, data, net = event_net
    cfg = dataclasses.replace(r.attack, max_samples=24, sweep_samples=12, target_samples=0)
    dom = InputDomain.of(data)
    m, dep = event_metrics(net, net, data.x_test, data.y_test, cfg, dom, seed=0, sweeps=True,
                           budgets=(0, 4, 16), steps=(1, 4, 16))
    assert {"clean", "fgsm", "pgd", "blackbox_fgsm", "blackbox_pgd", "eps=0", "eps=4", "eps=16", "k=1", "k=4",
            "k=16"} == set(m)
    assert m["blackbox_pgd"] == m["pgd"] and m["blackbox_fgsm"] == m["fgsm"]  # surrogate = the model itself
    assert m["pgd"] <= m["clean"] and m["fgsm"] <= m["clean"]
    assert m["eps=16"] == m["k=16"]  # budget 16 in 16 steps is the same attack, made once
    # the sweep's points on its 12-sample subset, recomputed independently
    from neurodeploy.attacks.estimators import SourceEstimator, accuracy
    from neurodeploy.attacks.sections import subset

    xa, ya = subset(data.x_test.float(), data.y_test.long(), 24, 0)
    xs, ys = subset(xa, ya, 12, 0)
    est = SourceEstimator(net)
    assert m["eps=0"] == accuracy(est, xs, ys)
    assert m["k=4"] == accuracy(est, budget_images(net, xs, ys, 16, 4, dom), ys)
    assert m["eps=4"] == accuracy(est, budget_images(net, xs, ys, 4, 4, dom), ys)
    assert dep == {}


def test_event_metrics_on_a_target_equal_the_source_when_the_target_is_the_source(event_net):
    """A deployed target that computes what the source computes gets the source's numbers, each of
    clean/FGSM/PGD from ONE query of the target (a Lava target pays its worker per call)."""
    r, data, net = event_net
    cfg = dataclasses.replace(r.attack, max_samples=16, sweep_samples=8, target_samples=0)
    calls = []

    def target(z):
        calls.append(len(z))
        return net(z).detach().numpy()

    m, dep = event_metrics(net, None, data.x_test, data.y_test, cfg, InputDomain.of(data), seed=0,
                           targets={"same": target}, sweeps=True, budgets=(0, 4), steps=(1,))
    assert {k: dep["same"][k] for k in ("clean", "fgsm", "pgd")} == {k: m[k] for k in ("clean", "fgsm", "pgd")}
    assert dep["same"]["samples"] == 16 and dep["same"]["eps=4"] == m["eps=4"]
    assert calls == [3 * 16, 8, 8]  # clean + FGSM + PGD together, then one call per budget
