"""The attack stage: the report's robustness section, on a tiny model and on the trained digits SNN;
sections chosen by the recipe and extended by one registration."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from neurodeploy.attacks import SECTIONS, AttackInputs, accuracy, register_section, robustness_report, subset
from neurodeploy.errors import AttackError, RecipeError
from neurodeploy.recipe import ATTACK_SECTIONS, AttackConfig, recipe_from_dict


NO_ENSEMBLE = [s for s in ATTACK_SECTIONS if s != "ensemble"]  # the tests of target query counts


def _acc_ok(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _tiny(n: int = 20, classes: int = 3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, classes))
    return model, torch.rand(n, 1, 4, 4), torch.randint(0, classes, (n,))


def test_report_on_trained_snn_with_a_target(trained_pair, digits_data):
    ann, snn = trained_pair
    x, y = digits_data.x_test, digits_data.y_test

    def torch_target(z: torch.Tensor):
        with torch.no_grad():
            return snn(z).numpy()

    cfg = AttackConfig(max_samples=32, steps=3, sweep_epsilons=[0.0, 8 / 255, 1.0], sweep_steps=[0, 1, 3],
                       sweep_samples=16, query_budget=6, query_samples=6, random_samples=4, sparsity_samples=16)
    rep = robustness_report(AttackInputs(snn, x, y, ann=ann, targets={"torch": torch_target}), cfg)
    json.dumps(rep)  # JSON-serialisable as it is
    assert list(rep) == ["source", "torch", "sweeps", "ensemble", "checklist", "sparsity", "theory", "seconds",
                         "section_seconds"]
    s = rep["source"]
    assert s["samples"] == 32 and s["clean"]["samples"] == 32 and s["eot_samples"] == 1
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
    assert [r["steps"] for r in rep["sweeps"]["steps"]] == [0, 1, 3] and rep["sweeps"]["samples"] == 16
    assert [c["item"] for c in rep["checklist"]] == ["i", "ii", "iii", "iv", "v"]
    assert {r["layer"] for r in rep["sparsity"]} >= {"conv1", "sn1", "sn2", "fc"}


def test_report_skips_what_it_is_not_given():
    model, x, y = _tiny()
    rep = robustness_report(AttackInputs(model, x, y), AttackConfig(sweep_epsilons=[], sweep_steps=[], query_budget=0))
    assert rep["source"]["blackbox_pgd"] is None and rep["source"]["ann"] is None and rep["source"]["query"] is None
    assert set(rep) == {"source", "sweeps", "ensemble", "checklist", "sparsity", "theory", "seconds", "section_seconds"}
    assert rep["sweeps"]["epsilon"] == [] and rep["sweeps"]["steps"] == []
    ii = next(c for c in rep["checklist"] if c["item"] == "ii")
    assert ii["passed"] is None and "not measured" in ii["evidence"]


def test_report_refuses_a_target_named_like_a_section():
    model, x, y = _tiny(4)
    with pytest.raises(AttackError, match="sweeps"):
        robustness_report(AttackInputs(model, x, y, targets={"sweeps": lambda z: model(z).detach().numpy()}),
                          AttackConfig())


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


def test_target_sample_cap_and_pooling_table():
    model, x, y = _tiny(30)
    seen = {"slow": [], "fast": []}

    def query(name):
        def fn(z):
            seen[name].append(len(z))
            return model(z).detach().numpy()
        return fn

    cfg = AttackConfig(steps=2, target_samples=5, sweep_epsilons=[0.0, 1.0], sweep_steps=[], sweep_samples=20,
                       query_budget=0, sections=NO_ENSEMBLE)
    rep = robustness_report(AttackInputs(model, x, y, targets={"slow": query("slow"), "fast": query("fast")},
                                         pool_variants={"a": model, "b": model}), cfg)
    assert rep["slow"]["samples"] == 5 and rep["slow"]["clean"]["samples"] == 5 and rep["fast"]["samples"] == 5
    # clean, FGSM and PGD images in ONE query (a Lava target pays its worker's start per call), then
    # one query per sweep point
    assert seen["slow"] == [3 * 5, 5, 5]
    assert seen["fast"] == seen["slow"]
    assert [r["model"] for r in rep["pooling"]] == ["a", "b"]
    assert rep["pooling"][0]["pgd_accuracy"] == rep["pooling"][1]["pgd_accuracy"]


def test_a_stand_in_takes_the_query_attack_and_the_sweep():
    """A slow target with a stand-in: transfer runs on it, its query entry is the stand-in's (``via``)
    and the ε sweep evaluates only the stand-in."""
    model, x, y = _tiny(10)
    calls = {"emu": 0, "chip": 0}

    def query(name):
        def fn(z):
            calls[name] += len(z)
            return model(z).detach().numpy()
        return fn

    cfg = AttackConfig(steps=1, query_budget=3, query_samples=4, sweep_epsilons=[0.0, 1.0], sweep_steps=[],
                       sections=NO_ENSEMBLE)
    rep = robustness_report(AttackInputs(model, x, y, targets={"emu": query("emu"), "chip": query("chip")},
                                         stand_ins={"chip": "emu"}), cfg)
    assert rep["emu"]["query"]["max_queries"] == 3 and rep["emu"]["query"]["samples"] == 4
    assert rep["chip"]["query"] == {**rep["emu"]["query"], "via": "emu"}
    assert "'emu'" in rep["chip"]["note"] and "note" not in rep["emu"]
    assert set(rep["sweeps"]["epsilon"][0]["others"]) == {"emu"}
    assert calls["chip"] == 3 * 10  # clean, transfer FGSM, transfer PGD: nothing else ran on it


def test_the_default_sections_build_every_key_of_the_report():
    assert AttackConfig().sections == list(ATTACK_SECTIONS)
    assert set(ATTACK_SECTIONS) <= set(SECTIONS.names())


def test_sections_come_from_the_config_in_order():
    model, x, y = _tiny()
    rep = robustness_report(AttackInputs(model, x, y), AttackConfig(sections=["pgd", "clean"]))
    assert list(rep) == ["source", "seconds", "section_seconds"] and list(rep["section_seconds"]) == ["pgd", "clean"]
    assert list(rep["source"]) == ["pgd", "clean", "samples", "eot_samples"]
    ref = robustness_report(AttackInputs(model, x, y), AttackConfig())
    assert rep["source"]["pgd"] == ref["source"]["pgd"] and rep["source"]["clean"] == ref["source"]["clean"]


def test_adding_a_section_is_one_registration():
    """A new attack is one registered function and its name in the recipe's list."""
    name = "test_uniform_noise"
    if name not in SECTIONS:
        @register_section(name)
        def uniform_noise(ctx) -> dict:
            g = torch.Generator().manual_seed(ctx.seed)
            noise = (torch.rand(ctx.x.shape, generator=g) * 2 - 1) * ctx.cfg.epsilon
            x_n = (ctx.x + noise).clamp(0, 1)
            return {"source": {name: {"epsilon": ctx.cfg.epsilon, "accuracy": accuracy(ctx.est, x_n, ctx.y)}}}

    model, x, y = _tiny()
    rep = robustness_report(AttackInputs(model, x, y), AttackConfig(sections=["clean", name], max_samples=12))
    entry = rep["source"][name]
    xs, ys = subset(x, y, 12, 0)
    noise = (torch.rand(xs.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * (8 / 255)
    with torch.no_grad():
        expect = ((model((xs + noise).clamp(0, 1)).argmax(1) == ys).sum() / 12).item()
    assert entry == {"epsilon": 8 / 255, "accuracy": pytest.approx(expect)}
    r = recipe_from_dict({"attack": {"sections": ["clean", name]}}, "x.toml")  # and a recipe may list it
    assert r.attack.sections == ["clean", name]
    with pytest.raises(Exception, match="already registered"):
        register_section(name)(lambda ctx: {})


def test_unknown_or_misordered_sections_in_a_recipe():
    with pytest.raises(RecipeError, match=r"x\.toml: attack\.sections = 'cw'; choose one of .*fgsm.*pgd"):
        recipe_from_dict({"attack": {"sections": ["clean", "cw"]}}, "x.toml")
    with pytest.raises(RecipeError, match=r"x\.toml: attack\.sections: .*'checklist' reads fgsm, pgd"):
        recipe_from_dict({"attack": {"sections": ["checklist", "fgsm", "pgd"]}}, "x.toml")
    with pytest.raises(RecipeError, match=r"'checklist' reads query"):
        recipe_from_dict({"attack": {"sections": ["fgsm", "pgd", "checklist", "query"]}}, "x.toml")
    with pytest.raises(RecipeError, match="listed twice"):
        recipe_from_dict({"attack": {"sections": ["fgsm", "fgsm"]}}, "x.toml")
    with pytest.raises(AttackError, match="unknown attack section 'cw'"):
        model, x, y = _tiny(4)
        robustness_report(AttackInputs(model, x, y), AttackConfig(sections=["cw"]))


def test_theory_section_on_the_trained_snn(trained_snn, digits_data):
    """ρ_adv/ρ_rand and the weight-gradient density reach the report (correctly classified samples only)."""
    cfg = AttackConfig(sections=["clean", "theory"], max_samples=40, sparsity_samples=30, ensemble_steps=5,
                       random_samples=4)
    th = robustness_report(AttackInputs(trained_snn, digits_data.x_test, digits_data.y_test), cfg)["theory"]
    v = th["vulnerability"]
    assert 0 < v["samples"] <= 30 and len(v["per_sample"]["gradient_l0"]) == v["samples"]
    assert v["rho_adv_mean"] > v["rho_rand_mean"]
    assert {r["parameter"] for r in th["weight_gradient_density"]} >= {"layers.conv1.weight", "layers.fc.weight"}
    assert all(0 <= r["nonzero_fraction"] <= 1 for r in th["weight_gradient_density"])
