"""Every recipe in models/ loads, names a registered model and dataset, and fits its own settings."""
from __future__ import annotations

import pytest

from neurodeploy.data import list_datasets
from neurodeploy.recipe import MODELS_DIR, load_recipe
from neurodeploy.snn import list_models

RECIPES = sorted(MODELS_DIR.glob("*.toml"))


def test_there_are_recipes():
    names = {p.stem for p in RECIPES}
    assert {"digits_hire", "digits_bptt", "digits_sew_max", "digits_sew_avg", "hire_vgg5_cifar10",
            "hire_vgg11_cifar100", "hire_resnet12_cifar10", "hire_resnet12_cifar100", "sew_resnet18_cifar10_max",
            "sew_resnet18_cifar10_avg", "sew_resnet18_cifar10dvs_max", "sew_resnet18_cifar10dvs_avg"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads(path):
    r = load_recipe(path)
    assert r.model.name in list_models()
    assert r.data.name in list_datasets()
    assert r.data.time_bins == r.timesteps or r.data.time_bins > 0
    snn = r.train.snn
    assert r.timesteps // snn.periods >= 1
    if snn.method == "hire":
        assert snn.periods > 1 or snn.noise_step > 0
    if r.data.encoding == "events":
        assert r.data.name in ("event-digits", "nmnist", "dvsgesture", "cifar10-dvs")


def test_hire_paper_settings():
    expect = {"hire_vgg5_cifar10": (6, 0.013), "hire_vgg11_cifar100": (8, 0.025),
              "hire_resnet12_cifar10": (10, 0.008), "hire_resnet12_cifar100": (10, 0.015)}
    for name, (T, eps) in expect.items():
        r = load_recipe(name)
        s, a = r.train.snn, r.train.ann
        assert r.timesteps == T and s.noise_step == s.noise_bound == eps and s.periods == 2
        assert (s.epochs, r.data.batch_size, s.lr, s.milestones, s.gamma) == (30, 32, 1e-4, [0.6, 0.8, 0.9], 0.2)
        assert (a.epochs, a.lr, a.gamma) == (240, 0.01, 0.1)
        assert [round(m * a.epochs) for m in a.milestones] == [150, 180, 210]
        assert r.model.dropout == 0.2 and abs(r.attack.epsilon - 8 / 255) < 1e-12
        assert (r.attack.step_size, r.attack.steps) == (0.01, 7)


def test_pairs_differ_only_where_they_should():
    for a, b, section in (("digits_hire", "digits_bptt", "snn"), ("digits_sew_max", "digits_sew_avg", "pooling"),
                          ("event_digits_hire", "event_digits_bptt", "snn"),
                          ("sew_resnet18_cifar10_max", "sew_resnet18_cifar10_avg", "pooling")):
        ra, rb = load_recipe(a).to_dict(), load_recipe(b).to_dict()
        for r in (ra, rb):
            r.pop("name")
        if section == "snn":
            ra["train"].pop("snn"), rb["train"].pop("snn")
        else:
            ra["model"].pop("pooling"), rb["model"].pop("pooling")
        assert ra == rb, (a, b)


def test_recipe_checks_periods_and_frames(tmp_path):
    from neurodeploy.errors import RecipeError

    bad = tmp_path / "bad.toml"
    bad.write_text('timesteps = 4\n[train.snn]\nmethod = "hire"\nperiods = 5\n')
    with pytest.raises(RecipeError, match="bad.toml.*periods"):
        load_recipe(bad)
    bad.write_text('timesteps = 4\n[data]\nname = "event-digits"\nencoding = "events"\ntime_bins = 6\n')
    with pytest.raises(RecipeError, match="time_bins"):
        load_recipe(bad)


def test_event_recipe_ann_twin_takes_frames():
    import torch

    from neurodeploy.snn import create_ann, create_snn

    r = load_recipe("event_digits_hire")
    ann, snn = create_ann(r, (2, 12, 12), 10), create_snn(r, (2, 12, 12), 10)
    x = torch.rand(3, r.timesteps, 2, 12, 12)
    ann.eval()
    snn.eval()
    assert ann(x).shape == snn(x).shape == (3, 10)
    assert torch.allclose(ann[0](x), x.mean(1))
