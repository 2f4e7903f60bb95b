"""Every shipped recipe works: those on embedded data (digits, event-digits) run the whole chain at a
tiny budget on every target they name; those on a local data set (CIFAR, CIFAR10-DVS) load, build
their model and run it forward on a random input of the dataset's shape."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from neurodeploy.profile import tomllib
from neurodeploy.recipe import MODELS_DIR, load_recipe
from neurodeploy.snn import create_ann, create_snn
from neurodeploy.stages import run_all

_spec = importlib.util.spec_from_file_location("gen_corpus", Path(__file__).parents[1] / "fuzz" / "gen_corpus.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_corpus"] = gen
_spec.loader.exec_module(gen)

EMBEDDED = ("digits", "event-digits")
RECIPES = sorted(MODELS_DIR.glob("*.toml"))
SHIPPED = [(p, tomllib.loads(p.read_text())) for p in RECIPES]
CHAIN = [p for p, d in SHIPPED if d.get("data", {}).get("name", "digits") in EMBEDDED]
LOCAL = [p for p, d in SHIPPED if d.get("data", {}).get("name", "digits") not in EMBEDDED]

#: the local data sets' sample shape and classes, as their loaders build them (data/vision.py:73:
#: (3, 32, 32), 10 | 100 classes; data/neuromorphic.py:120-164: (polarities, res or 128, res or 128))
LOCAL_SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100)}

#: the tiny budget: every loop of the chain runs, on a few samples
TINY = {
    "train.ann.epochs": 1, "train.snn.epochs": 1, "deploy.max_samples": 8, "attack.max_samples": 8,
    "attack.sweep_samples": 4, "attack.query_samples": 2, "attack.query_budget": 4, "attack.target_samples": 4,
    "attack.random_samples": 2, "attack.sparsity_samples": 4, "attack.eot_samples": 1,
    "attack.sweep_epsilons": [0.0, 8 / 255], "attack.sweep_steps": [0, 1],
}


def _tiny(d: dict) -> dict:
    for path, value in TINY.items():
        *head, last = path.split(".")
        node = d
        for k in head:
            node = node.setdefault(k, {})
        node[last] = value
    if d.get("deploy", {}).get("finetune_epochs", 0) > 0:
        d["deploy"]["finetune_epochs"] = 1
    if d.get("train", {}).get("snn", {}).get("periods", 1) > 1:
        d["train"]["snn"]["periods"] = 1
    return d


def _marks(path: Path):
    targets = tomllib.loads(path.read_text()).get("deploy", {}).get("targets", ["torch"])
    return [pytest.mark.slow] + ([pytest.mark.lava] if "lava" in targets else [])


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=_marks(p)) for p in CHAIN])
def test_embedded_recipe_whole_chain(path, tmp_path):
    d = _tiny(tomllib.loads(path.read_text()))
    recipe = tmp_path / path.name
    recipe.write_text(gen.to_toml(d))
    report = run_all(recipe, tmp_path / "run", progress=False)
    targets = d.get("deploy", {}).get("targets", ["torch"])
    assert list(report["targets"]) == targets
    for name in targets:
        t = report["targets"][name]
        assert t["n_samples"] == 8 and 0 <= t["accuracy"] <= 1 and t["lowering"], name
        assert "energy" in t, name
    rob = report["robustness"]["source"]
    for attack in ("clean", "fgsm", "pgd"):
        assert 0 <= rob[attack]["accuracy"] <= 1, attack
    assert rob["fgsm"]["accuracy"] <= rob["clean"]["accuracy"] + 1e-9
    if d.get("deploy", {}).get("finetune_epochs", 0) > 0:
        assert any("finetuned" in report["targets"][n] for n in targets)


@pytest.mark.parametrize("path", LOCAL, ids=[p.stem for p in LOCAL])
def test_local_data_recipe_loads_and_builds(path):
    r = load_recipe(path)
    if r.data.name in LOCAL_SHAPES:
        shape, classes = LOCAL_SHAPES[r.data.name]
        x = torch.rand(2, *shape)
    else:  # an event data set: frames [N, T, polarities, H, W] (data/neuromorphic.py _shape)
        res = r.data.resolution or 128
        shape, classes = (2, res, res), 10 if r.data.name == "cifar10-dvs" else 11
        x = (torch.rand(2, r.timesteps, *shape) < 0.05).float()
    snn = create_snn(r, shape, classes).eval()
    with torch.no_grad():
        out = snn(x)
    assert out.shape == (2, classes) and torch.isfinite(out).all()
    if r.train.convert.enabled:
        ann = create_ann(r, shape, classes).eval()
        with torch.no_grad():
            assert ann(x if x.dim() == 4 else x.mean(1)).shape == (2, classes)
