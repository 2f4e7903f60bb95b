"""The whole chain on a tiny recipe, the run-folder API and the CLI's error behaviour."""
import json
import os
import subprocess
import sys

import pytest
import torch

import neurodeploy
from neurodeploy.cli import main
from neurodeploy.stages import run_all
from neurodeploy.report import validate_report

TINY = """
name = "tiny"
seed = 3
timesteps = 4
[data]
name = "digits"
[model]
name = "digits_convnet"
[train.ann]
epochs = 2
lr = 0.003
[train.snn]
epochs = 1
[attack]
steps = 2
max_samples = 48
[deploy]
targets = ["torch"]
max_samples = 96
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    recipe = d / "tiny.toml"
    recipe.write_text(TINY)
    out = d / "out"
    report = run_all(recipe, out, progress=False)
    return out, report


def test_run_folder_contents_and_contract(tiny_run):
    out, report = tiny_run
    for name in ("report.json", "report.md", "model.nir", "ann.safetensors", "snn.safetensors", "recipe.toml"):
        assert (out / name).is_file(), name
    assert validate_report(report) == []
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["recipe"] == "tiny" and on_disk["seed"] == 3 and on_disk["timesteps"] == 4
    assert on_disk["dataset"]["n_test"] == 359
    t = on_disk["targets"]["torch"]
    assert t["agreement_with_source"] >= 0.99 and t["lowering"]
    rob = on_disk["robustness"]["source"]
    assert rob["pgd"]["steps"] == 2 and 0.0 <= rob["pgd"]["accuracy"] <= rob["clean"]["accuracy"] + 1e-9
    md = (out / "report.md").read_text()
    assert "target: torch" in md and "Energy per sample" in md
    assert "target torch (transfer)" in md and "section_seconds" not in md  # the section's own keys are no target


def test_load_run_api(tiny_run):
    out, report = tiny_run
    run = neurodeploy.load_run(out)
    x, y = run.test_data()
    assert x.shape[1:] == (1, 8, 8) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    xx = x[:16].clone().requires_grad_(True)
    logits = run.model(xx)
    assert logits.shape == (16, 10)
    logits.sum().backward()
    assert xx.grad is not None and xx.grad.abs().sum() > 0  # differentiable through the surrogate
    acc = float((run.model(x).argmax(1) == y).float().mean())
    assert abs(acc - report["source"]["clean_accuracy"]) < 1e-6


def test_rerun_is_deterministic_and_skips_training(tiny_run, tmp_path):
    out, report = tiny_run
    before = (out / "snn.safetensors").stat().st_mtime_ns
    again = run_all(out / "recipe.toml", out, progress=False)
    assert (out / "snn.safetensors").stat().st_mtime_ns == before
    assert again["source"]["clean_accuracy"] == report["source"]["clean_accuracy"]
    assert again["robustness"]["source"]["pgd"]["accuracy"] == report["robustness"]["source"]["pgd"]["accuracy"]


def test_other_recipe_in_same_folder_refused(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace('name = "tiny"', 'name = "other"'))
    assert main(["-q", "run", str(other), "--out", str(out)]) == 2
    assert "another recipe" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["recipe"] == "tiny"  # nothing lost


def _cli(*args, cwd=None):
    env = dict(os.environ, MPLCONFIGDIR=str(cwd or "."))
    return subprocess.run([sys.executable, "-m", "neurodeploy.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("content, needle", [
    ("name = [\n", "not valid TOML"),
    ("timesteps = 'x'\n", "must be int"),
    ("[model]\nneuron = 'hh'\n", "model.neuron"),
])
def test_cli_malformed_recipe_one_line_no_traceback(tmp_path, content, needle):
    p = tmp_path / "bad.toml"
    p.write_text(content)
    r = _cli("run", str(p), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and needle in r.stderr and "bad.toml" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_missing_file_and_corrupt_nir(tmp_path, tiny_run):
    r = _cli("run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.toml" in r.stderr and "Traceback" not in r.stderr
    # a run folder whose model.nir is corrupt
    import shutil

    out, _ = tiny_run
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "model.nir").write_bytes(b"\x89HDF garbage")
    before = (broken / "report.json").read_bytes()
    r = _cli("simulate", str(broken), "--target", "torch", cwd=tmp_path)
    assert r.returncode == 2 and "model.nir" in r.stderr and "Traceback" not in r.stderr
    assert (broken / "report.json").read_bytes() == before
    r = _cli("simulate", str(broken), "--target", "nosuchchip", cwd=tmp_path)
    assert r.returncode == 2 and "nosuchchip" in r.stderr


def test_cli_corrupt_checkpoint(tmp_path, tiny_run):
    import shutil

    out, _ = tiny_run
    broken = tmp_path / "ckpt"
    shutil.copytree(out, broken)
    (broken / "snn.safetensors").write_bytes(b"not a checkpoint")
    r = _cli("export", str(broken), cwd=tmp_path)
    assert r.returncode == 2 and "snn.safetensors" in r.stderr and "Traceback" not in r.stderr
