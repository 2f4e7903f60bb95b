"""The run folder and stage contracts: explicit stage order, typed target options from the recipe,
the CLI's listing commands and its console summary."""
import subprocess
import sys

import pytest

from neurodeploy.cli import main
from neurodeploy.errors import NeurodeployError, RecipeError, TargetError
from neurodeploy.recipe import MODELS_DIR, TARGETS_DIR, load_profile, recipe_from_dict
from neurodeploy.run import prepare_run_dir
from neurodeploy.stages import energy_stage, source_done, target_options
from neurodeploy.targets import TargetOptions, list_targets, target_class

TINY = """
name = "tiny-stages"
timesteps = 2
[deploy]
targets = ["torch", "lava"]
input_spikes = "graded"
[deploy.lava]
copies = 8
stall_s = 5
[deploy.speck]
leak = "bias"
"""


@pytest.fixture()
def run(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    return prepare_run_dir(tmp_path / "tiny.toml", tmp_path / "run")


def test_deploy_tables_reach_their_target_only(run):
    assert run.recipe.deploy.target_options == {"lava": {"copies": 8, "stall_s": 5}, "speck": {"leak": "bias"}}
    lava = target_options(run, "lava")
    assert lava == {"input_spikes": "graded", "timeout_s": 600.0, "seed": 0, "copies": 8, "stall_s": 5}
    assert target_options(run, "torch") == {"input_spikes": "graded", "timeout_s": 600.0, "seed": 0}
    opts = target_class("lava")().resolve_options(lava, load_profile("loihi2"))
    assert (opts.copies, opts.stall_s, opts.input_spikes, opts.max_samples_per_run) == (8, 5.0, "graded", 4096)
    assert isinstance(opts.stall_s, float)


@pytest.mark.parametrize("table, needle", [
    ({"lava": {"copiez": 8}}, "[deploy.lava]: unknown key 'copiez'"),
    ({"lava": {"copies": "8"}}, "[deploy.lava]: key 'copies' must be int"),
    ({"speck": {"discretize": 1}}, "[deploy.speck]: key 'discretize' must be bool"),
    ({"nochip": {"a": 1}}, "unknown table [deploy.nochip]"),
    ({"speck": {"input_spikes": "morse"}}, "deploy.speck.input_spikes = 'morse'"),
])
def test_bad_deploy_table_names_file_and_key(table, needle):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"deploy": table}, "my.toml")
    assert str(e.value).startswith("my.toml: ") and needle in str(e.value)


def test_reading_target_options_imports_no_simulator():
    code = ("import sys; from neurodeploy.recipe import recipe_from_dict; "
            "recipe_from_dict({'deploy': {'lava': {'copies': 4}, 'speck': {'leak': 'bias'}, 'loihi-emu': {}}}); "
            "print(sorted(m for m in ('lava', 'sinabs', 'onnxruntime') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("name", list_targets())
def test_every_target_declares_typed_options_and_traits(name):
    cls = target_class(name)
    assert issubclass(cls.Options, TargetOptions)
    defaults = cls.Options()
    assert (defaults.input_spikes, defaults.timeout_s, defaults.seed) == ("rate", 600.0, 0)
    if cls.finetunable:
        assert cls.fixed_point
    if cls.attack_stand_in is not None:
        stand_in = target_class(cls.attack_stand_in)
        assert cls.slow and not stand_in.slow
        assert issubclass(cls.Options, stand_in.Options)  # the stand-in compiles with the same options


def test_traits_replace_the_old_name_lists():
    assert sorted(n for n in list_targets() if target_class(n).finetunable) == ["lava", "loihi-emu"]
    assert {n: target_class(n).attack_stand_in for n in list_targets() if target_class(n).attack_stand_in} == \
        {"lava": "loihi-emu"}


def test_unknown_target_option_is_refused():
    with pytest.raises(TargetError, match="unknown key 'copies'"):
        target_class("speck")().resolve_options({"copies": 4})
    with pytest.raises(TargetError, match="key 'seed' must be int"):
        target_class("torch")().resolve_options({"seed": "0"})


def test_profile_options_are_defaults_the_caller_overrides():
    t = target_class("lava")()
    opts = t.resolve_options({"copies": 4}, load_profile("loihi2"))  # loihi2.toml: copies = 64, input_spikes = rate
    assert opts.copies == 4 and opts.input_spikes == "rate"
    assert opts.explicit() == {"input_spikes": "rate", "timeout_s": 600.0, "copies": 4}


def test_energy_refuses_before_the_source_stage(run):
    assert not source_done(run)
    with pytest.raises(NeurodeployError, match="the source stage has not run"):
        energy_stage(run)


def test_cli_prints_na_for_a_run_without_ann(monkeypatch, tmp_path, capsys):
    import neurodeploy.stages as stages

    report = {"source": {"ann_clean_accuracy": None, "clean_accuracy": 0.875},
              "targets": {"torch": {"accuracy": 0.875, "agreement_with_source": 1.0}}}
    monkeypatch.setattr(stages, "run_all", lambda *a, **k: report)
    assert main(["-q", "run", "digits", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "ANN accuracy n/a | SNN accuracy 0.8750" in out
    assert "target torch: accuracy 0.8750, agreement with source 1.0000" in out


def test_cli_lists_shipped_recipes_and_profiles(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[:-1]]
    assert names == sorted(p.stem for p in MODELS_DIR.glob("*.toml")) and "digits" in names
    digits = next(line for line in out if line.startswith("digits "))
    assert "The default recipe" in digits
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:-1]] == sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))
    assert any(line.startswith("loihi2 ") and "Loihi 2" in line for line in out)
