import pytest

from neurodeploy.errors import ProfileError, RecipeError
from neurodeploy.recipe import load_profile, load_recipe, recipe_from_dict


def test_default_recipe_loads():
    r = load_recipe("digits")
    assert r.name == "digits" and r.data.name == "digits" and r.timesteps == 8
    assert r.attack.steps == 7 and abs(r.attack.epsilon - 8 / 255) < 1e-9


def test_unknown_key_named(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "x"\n[train.ann]\nepoch = 3\n')
    with pytest.raises(RecipeError, match=r"r\.toml.*unknown key \[train\.ann\] 'epoch'"):
        load_recipe(p)


def test_wrong_type_named(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('timesteps = "eight"\n')
    with pytest.raises(RecipeError, match=r"'timesteps' must be int"):
        load_recipe(p)


def test_bad_choice_and_range():
    with pytest.raises(RecipeError, match="model.neuron"):
        recipe_from_dict({"model": {"neuron": "izhikevich"}})
    with pytest.raises(RecipeError, match="leak"):
        recipe_from_dict({"model": {"leak": 1.5}})


def test_names_come_from_the_registries():
    """Unknown names of registered things are refused with the file and the registered names."""
    from neurodeploy.snn.models import list_models

    with pytest.raises(RecipeError, match=r"r\.toml: model\.name = 'resnet9000'; choose one of " + ", ".join(list_models())):
        recipe_from_dict({"model": {"name": "resnet9000"}}, "r.toml")
    with pytest.raises(RecipeError, match=r"r\.toml: data\.name = 'mnist'; choose one of .*cifar10.*digits"):
        recipe_from_dict({"data": {"name": "mnist"}}, "r.toml")
    with pytest.raises(RecipeError, match=r"model\.surrogate = 'sigmoid'; choose one of atan, linear"):
        recipe_from_dict({"model": {"surrogate": "sigmoid"}}, "r.toml")
    with pytest.raises(RecipeError, match=r"data\.encoding = 'latency'; choose one of direct, events, poisson, rate"):
        recipe_from_dict({"data": {"encoding": "latency"}}, "r.toml")


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.toml")
    p = tmp_path / "bad.toml"
    p.write_text("name = [unclosed\n")
    with pytest.raises(RecipeError, match="bad.toml: not valid TOML"):
        load_recipe(p)


def test_profile_needs_sources(tmp_path):
    p = tmp_path / "chip.toml"
    p.write_text('name = "chip"\n[energy.ac]\nvalue = 1.0\nunit = "pJ"\n')
    with pytest.raises(ProfileError, match="energy.ac lacks source"):
        load_profile(p)
    prof = load_profile("cmos45nm")
    assert prof.joules("mac_int32") == pytest.approx(3.2e-12)
    assert all(c.source for c in prof.energy.values())
