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
    with pytest.raises(RecipeError, match=r"data\.encoding = 'latency'; choose one of direct, events, phase, poisson, rate"):
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


# One bad value per field: (section path, key, value). Each must be refused with the field named.
BAD_VALUES = [
    ("", "seed", -1), ("", "timesteps", 0),
    ("data", "batch_size", 0), ("data", "test_fraction", 1.0), ("data", "time_bins", -1),
    ("data", "resolution", -2),
    ("model", "leak", float("nan")), ("model", "leak", 0.0), ("model", "width", 0), ("model", "dropout", 2.0),
    ("model", "dropout", 1.0), ("model", "surrogate_scale", float("inf")), ("model", "nir_dt", -1.0),
    ("model", "input_std", [0.2, 0.0]),
    ("train.ann", "epochs", -1), ("train.ann", "lr", float("nan")), ("train.ann", "lr", -0.1),
    ("train.ann", "weight_decay", -1.0), ("train.ann", "milestones", [0.5, 5.0]), ("train.ann", "gamma", 0.0),
    ("train.convert", "percentile", 200.0), ("train.convert", "percentile", 0.0), ("train.convert", "scale", 0.0),
    ("train.convert", "batches", 0),
    ("train.snn", "epochs", -1), ("train.snn", "lr", float("inf")), ("train.snn", "milestones", [0.0]),
    ("train.snn", "gamma", float("nan")), ("train.snn", "periods", 0), ("train.snn", "noise_step", -0.1),
    ("train.snn", "noise_bound", float("nan")), ("train.snn", "weight_decay", -1e-4),
    ("attack", "epsilon", float("nan")), ("attack", "epsilon", 5.0), ("attack", "epsilon", -0.1),
    ("attack", "step_size", -1.0), ("attack", "steps", -1), ("attack", "max_samples", -5),
    ("attack", "sweep_samples", -1), ("attack", "sweep_epsilons", [0.0, 2.0]), ("attack", "sweep_steps", [1, -1]),
    ("attack", "query_samples", -1), ("attack", "query_budget", -10), ("attack", "target_samples", -1),
    ("attack", "random_samples", -1), ("attack", "sparsity_samples", -1), ("attack", "eot_samples", -1),
    ("attack", "batch_size", 0), ("attack", "ensemble_samples", -1), ("attack", "ensemble_steps", -1),
    ("attack", "ensemble_query_budget", -1), ("attack", "ensemble_workers", -2), ("attack", "event_budget", -3),
    ("deploy", "timeout_s", 0.0), ("deploy", "timeout_s", float("inf")), ("deploy", "max_samples", -1),
    ("deploy", "finetune_epochs", -1), ("deploy", "finetune_lr", float("nan")),
]


def _nest(section: str, key: str, value) -> dict:
    d: dict = {key: value}
    for part in reversed(section.split(".")) if section else []:
        d = {part: d}
    return d


@pytest.mark.parametrize("section,key,value", BAD_VALUES, ids=[f"{s}.{k}={v}" for s, k, v in BAD_VALUES])
def test_every_field_range_refused(section, key, value):
    field = f"{section}.{key}" if section else key
    with pytest.raises(RecipeError) as e:
        recipe_from_dict(_nest(section, key, value), "bad.toml")
    msg = str(e.value)
    assert msg.startswith(f"bad.toml: {field} = ") and "must be" in msg and "\n" not in msg, msg


def test_every_range_field_has_a_bad_value():
    """The table above covers every field the range table checks."""
    from neurodeploy.recipe_ranges import RANGES

    covered = {f"{s}.{k}" if s else k for s, k, _ in BAD_VALUES}
    assert set(RANGES) - covered == set()


def test_ensemble_preset_and_members_checked_at_load():
    r = recipe_from_dict({"attack": {"preset": "thorough", "ensemble": ["apgd-dlr@bptr", "square"]}}, "ok.toml")
    assert r.attack.preset == "thorough" and r.attack.ensemble == ["apgd-dlr@bptr", "square"]
    with pytest.raises(RecipeError, match=r"bad\.toml: attack\.preset = 'slow'; choose one of fast, thorough"):
        recipe_from_dict({"attack": {"preset": "slow"}}, "bad.toml")
    with pytest.raises(RecipeError, match=r"bad\.toml: attack\.ensemble: .*unknown gradient estimator 'foo'"):
        recipe_from_dict({"attack": {"ensemble": ["apgd-ce@foo"]}}, "bad.toml")


def test_boundary_values_accepted():
    r = recipe_from_dict({"model": {"dropout": 0.0, "leak": 1.0, "width": 1},
                          "train": {"convert": {"percentile": 100.0}, "ann": {"milestones": [1.0], "epochs": 0}},
                          "attack": {"epsilon": 1.0, "steps": 0, "query_budget": 0}}, "ok.toml")
    assert r.train.convert.percentile == 100.0 and r.attack.epsilon == 1.0 and r.train.ann.milestones == [1.0]
    # event frames may be counts > 1: ε is not capped at 1 there
    r = recipe_from_dict({"data": {"name": "event-digits", "encoding": "events"}, "attack": {"epsilon": 2.0}})
    assert r.attack.epsilon == 2.0


def test_encoding_must_fit_the_dataset():
    with pytest.raises(RecipeError, match=r"^r\.toml: data\.encoding = 'events', but data\.name = 'digits' is an "
                                          r"image dataset.*use data\.encoding = one of direct"):
        recipe_from_dict({"data": {"encoding": "events"}}, "r.toml")
    with pytest.raises(RecipeError, match=r"^r\.toml: data\.encoding = 'rate', but data\.name = 'event-digits' "
                                          r"is an event dataset.*use data\.encoding = 'events'"):
        recipe_from_dict({"data": {"name": "event-digits", "encoding": "rate"}}, "r.toml")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a\\b", "", "x" * 101, "/abs", ".hidden"])
def test_recipe_name_is_a_plain_name(name):
    with pytest.raises(RecipeError, match=r"^r\.toml: name = .*plain name"):
        recipe_from_dict({"name": name}, "r.toml")


def test_deploy_targets_from_the_registry():
    with pytest.raises(RecipeError, match=r"^r\.toml: deploy\.targets = 'loihi3'; choose one of .*loihi-emu"):
        recipe_from_dict({"deploy": {"targets": ["torch", "loihi3"]}}, "r.toml")


def test_every_shipped_recipe_passes():
    from neurodeploy.recipe import shipped_recipes

    names = [n for n, _ in shipped_recipes()]
    assert len(names) == 24
    for n in names:
        assert load_recipe(n).name == n


def test_cli_bad_recipe_one_line_exit_2(tmp_path, capsys):
    from neurodeploy.cli import main

    p = tmp_path / "bad.toml"
    p.write_text("[data]\nbatch_size = 0\n")
    out = tmp_path / "run"
    assert main(["-q", "train", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"neurodeploy: error: {p}: data.batch_size = 0; must be an integer >= 1\n"
    p.write_text("[train.ann]\nlr = nan\n")
    assert main(["-q", "run", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.ann.lr = nan" in err and "Traceback" not in err
