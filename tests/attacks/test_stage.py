"""The attack stage: the report's robustness section, on a tiny model and on the trained digits SNN."""
from __future__ import annotations

import json

import torch
from torch import nn

from neurodeploy.attacks import robustness_report
from neurodeploy.recipe import AttackConfig


def _acc_ok(v: float) -> bool:
    return 0.0 <= v <= 1.0


def test_report_on_trained_snn_with_a_target(trained_pair, digits_data):
    ann, snn = trained_pair
    x, y = digits_data.x_test, digits_data.y_test

    def torch_target(z: torch.Tensor):
        with torch.no_grad():
            return snn(z).numpy()

    cfg = AttackConfig(max_samples=32, steps=3)
    rep = robustness_report(snn, x, y, cfg, ann=ann, targets={"torch": torch_target},
                            sweep_epsilons=(0.0, 8 / 255, 1.0),
                            sweep_steps=(0, 1, 3), sweep_samples=16, query_budget=6, query_samples=6,
                            random_samples=4, sparsity_samples=16)
    json.dumps(rep)  # JSON-serialisable as it is
    s = rep["source"]
    assert s["samples"] == 32
    assert s["fgsm"]["epsilon"] == cfg.epsilon and s["pgd"]["steps"] == 3 and s["pgd"]["step_size"] == 0.01
    for key in ("fgsm", "pgd", "blackbox_fgsm", "blackbox_pgd", "gaussian", "random", "query"):
        assert _acc_ok(s[key]["accuracy"]), key
    assert s["blackbox_pgd"]["surrogate"] == "ann"  # no seed-twin given: the ANN crafts the black-box images
    assert s["pgd"]["accuracy"] <= s["fgsm"]["accuracy"] + 1 / 32
    assert s["pgd"]["accuracy"] < s["clean"]["accuracy"]
    assert _acc_ok(s["ann"]["pgd"]["accuracy"])
    t = rep["torch"]
    # the target is the same network: transfer of the source's images gives the source's accuracy
    assert t["clean"]["accuracy"] == s["clean"]["accuracy"]
    assert t["transfer_pgd"]["accuracy"] == s["pgd"]["accuracy"]
    assert t["query"]["pgd_accuracy_same_samples"] == s["query"]["pgd_accuracy_same_samples"]
    assert t["query"]["accuracy"] == s["query"]["accuracy"]  # same network, same seed: same search
    assert t["query"]["max_queries"] == 6 and t["query"]["queries_mean"] <= 6 and t["query"]["samples"] == 6
    eps = rep["sweeps"]["epsilon"]
    assert [r["epsilon"] for r in eps] == [0.0, 8 / 255, 1.0]
    assert eps[-1]["accuracy"] <= eps[0]["accuracy"] and "torch" in eps[-1]["others"]
    assert [r["steps"] for r in rep["sweeps"]["steps"]] == [0, 1, 3]
    assert [c["item"] for c in rep["checklist"]] == ["i", "ii", "iii", "iv", "v"]
    assert {r["layer"] for r in rep["sparsity"]} >= {"conv1", "sn1", "sn2", "fc"}


def test_report_skips_what_it_is_not_given():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    rep = robustness_report(model, x, y, AttackConfig(), sweep_epsilons=(), sweep_steps=(), query_budget=0)
    assert rep["source"]["blackbox_pgd"] is None and rep["source"]["ann"] is None and rep["source"]["query"] is None
    assert set(rep) == {"source", "sweeps", "checklist", "sparsity", "seconds"}
    assert rep["sweeps"]["epsilon"] == [] and rep["sweeps"]["steps"] == []
    ii = next(c for c in rep["checklist"] if c["item"] == "ii")
    assert ii["passed"] is None and "not measured" in ii["evidence"]


def test_report_refuses_a_target_named_like_a_section():
    import pytest

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="sweeps"):
        robustness_report(model, torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), AttackConfig(),
                          targets={"sweeps": lambda z: model(z).detach().numpy()})


def test_target_query_fn_over_the_torch_target(trained_snn, digits_nir, digits_data):
    """A deployed target (built from model.nir) answers queries through ``Target.run``."""
    from neurodeploy.attacks import SquareAttack, TargetEstimator, target_query_fn
    from neurodeploy.ir import read_nir
    from neurodeploy.targets import get_target

    graph, meta = read_nir(digits_nir)
    target = get_target("torch")
    dep = target.compile(graph, meta)
    fn = target_query_fn(target, dep)
    x, y = digits_data.x_test[:12], digits_data.y_test[:12]
    with torch.no_grad():
        ref = trained_snn(x).numpy()
    out = fn(x)
    assert out.shape == (12, 10) and (out.argmax(1) == ref.argmax(1)).all()
    res = SquareAttack(8 / 255, max_queries=3).run(TargetEstimator(fn, 10), x, y)
    assert (res.queries <= 3).all() and (res.x_adv - x).abs().max() <= 8 / 255 + 1e-6


def test_per_target_sample_caps_and_pooling_table():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(30, 1, 4, 4), torch.randint(0, 3, (30,))
    seen = {"slow": [], "fast": []}

    def query(name):
        def fn(z):
            seen[name].append(len(z))
            return model(z).detach().numpy()
        return fn

    rep = robustness_report(model, x, y, AttackConfig(steps=2), targets={"slow": query("slow"), "fast": query("fast")},
                            target_max_samples={"slow": 5}, sweep_epsilons=(0.0, 1.0), sweep_steps=(),
                            sweep_samples=20, query_budget=0, pool_variants={"a": model, "b": model})
    assert rep["slow"]["samples"] == 5 and rep["slow"]["clean"]["samples"] == 5 and rep["fast"]["samples"] == 30
    assert max(seen["slow"]) == 5 and sum(seen["slow"]) == 3 * 5 + 2 * 5  # clean, fgsm, pgd; two sweep points
    assert sum(seen["fast"]) == 3 * 30 + 2 * 20
    assert [r["model"] for r in rep["pooling"]] == ["a", "b"]
    assert rep["pooling"][0]["pgd_accuracy"] == rep["pooling"][1]["pgd_accuracy"]


def test_query_attack_only_on_the_chosen_targets():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    fn = lambda z: model(z).detach().numpy()  # noqa: E731
    rep = robustness_report(model, torch.rand(10, 1, 4, 4), torch.randint(0, 3, (10,)), AttackConfig(steps=1),
                            targets={"emu": fn, "chip": fn}, query_targets=["emu"], query_budget=3, query_samples=4,
                            sweep_epsilons=(), sweep_steps=())
    assert rep["emu"]["query"]["max_queries"] == 3 and rep["emu"]["query"]["samples"] == 4
    assert "query" not in rep["chip"]
