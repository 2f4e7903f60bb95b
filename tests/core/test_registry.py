"""The one registry helper: duplicates refused, unknown names listed, lazy entries imported once."""
from __future__ import annotations

import sys

import pytest

from neurodeploy.errors import DataError, RegistryError, TargetError
from neurodeploy.registry import Registry


def test_register_get_names_and_duplicates():
    reg: Registry = Registry("widget")

    @reg.register("b")
    def b() -> int:
        return 2

    reg.add("a", len)
    assert reg.names() == ["a", "b"] and reg.names("b*") == ["b"] and "a" in reg and len(reg) == 2
    assert reg.get("b") is b and reg.get("a") is len
    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        reg.add("a", print)
    assert reg.get("a") is len  # the first entry stays
    reg.add("a", len)  # the same object again is not a collision
    with pytest.raises(RegistryError, match="unknown widget 'c'; available: a, b"):
        reg.get("c")


def test_lazy_entry_imported_on_first_use():
    reg: Registry = Registry("codec", error=DataError)
    reg.add_lazy("json", "json:dumps")
    reg.add_lazy("gone", "neurodeploy_no_such_module:thing")
    assert reg.names() == ["gone", "json"]
    import json

    assert reg.get("json") is json.dumps
    with pytest.raises(DataError, match="codec 'gone' is not available: No module named 'neurodeploy_no_such_module'"):
        reg.get("gone")
    with pytest.raises(RegistryError, match="already registered"):
        reg.add_lazy("json", "json:loads")


def test_targets_are_lazy_and_their_modules_register_them():
    from neurodeploy.targets import get_target, list_targets, register_target
    from neurodeploy.targets.base import TARGETS
    from neurodeploy.targets.torch_target import TorchTarget

    assert {"torch", "lava", "loihi-emu", "speck", "onnx"} <= set(list_targets())
    assert TARGETS.get("torch") is TorchTarget and isinstance(get_target("torch"), TorchTarget)
    with pytest.raises(TargetError, match="unknown target 'loihi3'; available: lava, loihi-emu"):
        get_target("loihi3")
    with pytest.raises(RegistryError, match="target 'torch' is already registered"):
        register_target(type("Other", (TorchTarget,), {"name": "torch"}))


def test_listing_targets_imports_no_simulator():
    import subprocess

    code = ("import sys; from neurodeploy.targets import list_targets; names = list_targets(); "
            "print(names, [m for m in ('neurodeploy.targets.loihi.lava', 'neurodeploy.targets.speck', 'sinabs', "
            "'neurodeploy.targets.xylo', 'rockpool', 'xylosim') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lava', 'loihi-emu', 'onnx', 'speck', 'torch', 'xylo'] []"


def test_model_and_dataset_registries_refuse_duplicates():
    from neurodeploy.data import register_dataset
    from neurodeploy.snn import register_model
    from neurodeploy.snn.models import MODELS, model_spec
    from neurodeploy.recipe import ModelConfig

    def digits_mlp(cfg, input_shape, num_classes):  # the name of a registered model
        return []

    with pytest.raises(RegistryError, match="model 'digits_mlp' is already registered"):
        register_model(digits_mlp)
    assert MODELS.get("digits_mlp") is not digits_mlp
    with pytest.raises(RegistryError, match="unknown model 'nope'; available: .*digits_convnet"):
        model_spec("nope", ModelConfig(), (1, 8, 8), 10)
    with pytest.raises(RegistryError, match="dataset 'digits' is already registered"):
        register_dataset("digits")(lambda cfg, seed: None)
    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import DataConfig

    with pytest.raises(DataError, match="unknown dataset 'mnist'; available: cifar10"):
        load_dataset(DataConfig(name="mnist"), 0)
