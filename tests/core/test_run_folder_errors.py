"""Errors a run meets after load: a target's refusal names the file (not ``<graph>``), a run refused
while it starts leaves no run folder behind, a damaged run-folder file is refused before any work."""
import json

import nir
import numpy as np
import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.ir import DeployMeta
from neurodeploy.ir.metadata import write_meta
from neurodeploy.run import load_run, prepare_run_dir
from neurodeploy.snn import create_ann, create_snn
from neurodeploy.stages import export_stage, source_stage
from neurodeploy.train import save_checkpoint

RECIPE = """
name = "errs"
timesteps = 2
[deploy]
targets = ["torch"]
max_samples = 8
"""


@pytest.fixture()
def run(tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE)
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run")
    torch.manual_seed(0)
    save_checkpoint(create_snn(run.recipe, run.data.input_shape, run.data.num_classes), run.dir / "snn.safetensors")
    save_checkpoint(create_ann(run.recipe, run.data.input_shape, run.data.num_classes), run.dir / "ann.safetensors")
    export_stage(run)
    source_stage(run)
    return run


def _delay_graph() -> nir.NIRGraph:
    f = np.float32
    return nir.NIRGraph({"input": nir.Input(np.array([1, 8, 8])), "flat": nir.Flatten(np.array([1, 8, 8]), start_dim=0),
                         "fc": nir.Linear(np.zeros((10, 64), f)), "d": nir.Delay(np.ones(10, f)),
                         "output": nir.Output(np.array([10]))},
                        [("input", "flat"), ("flat", "fc"), ("fc", "d"), ("d", "output")])


@pytest.mark.parametrize("target", ["torch", "loihi-emu"])
def test_target_refusal_names_the_file(run, capsys, target):
    g = _delay_graph()
    write_meta(g, DeployMeta(timesteps=2, input_shape=[1, 8, 8], num_classes=10))
    nir.write(str(run.nir_path), g)
    before = (run.dir / "report.json").read_bytes()
    assert main(["-q", "simulate", str(run.dir), "--target", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodeploy: error: {run.nir_path}: node 'd' of type Delay cannot be run")
    assert "<graph>" not in err and len(err.splitlines()) == 1
    assert (run.dir / "report.json").read_bytes() == before


def test_run_refused_when_training_starts_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "r.toml").write_text('name = "nodata"\n[data]\nname = "cifar10"\n'
                                     f'path = "{tmp_path / "no-cifar-here"}"\n[model]\nname = "vgg5"\n')
    out = tmp_path / "out"
    assert main(["-q", "run", str(tmp_path / "r.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no-cifar-here" in err and len(err.splitlines()) == 1
    assert not out.exists()  # no recipe.toml (nor stages.json) left to look like a run
    assert main(["-q", "train", str(tmp_path / "r.toml"), "--out", str(out)]) == 2
    assert not out.exists()


def test_refused_run_keeps_a_folder_that_was_there(tmp_path):
    (tmp_path / "r.toml").write_text('name = "nodata"\n[data]\nname = "cifar10"\npath = "/nonexistent"\n'
                                     '[model]\nname = "vgg5"\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["-q", "run", str(tmp_path / "r.toml"), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("damage, needle", [
    (lambda r: r.update(targets=5), "'targets' must be a JSON object, not int"),
    (lambda r: r["targets"].update(torch=[1]), "targets.torch must be a JSON object, not list"),
    (lambda r: [r], "must hold a JSON object, not list"),
])
def test_report_of_the_wrong_shape(run, damage, needle):
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.stages import simulate_stage

    simulate_stage(run, ["torch"], progress=False)
    r = json.loads((run.dir / "report.json").read_text())
    new = damage(r)
    (run.dir / "report.json").write_text(json.dumps(r if new is None else new))
    with pytest.raises(NeurodeployError, match=needle.replace("(", r"\(").replace(")", r"\)")) as e:
        load_run(run.dir)
    assert str(e.value).startswith(str(run.dir / "report.json"))


def test_outputs_of_the_wrong_length_refused(run):
    from neurodeploy.errors import NeurodeployError

    path = run.outputs_path("source")
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    np.savez(path, **{k: (v[:-1] if v.ndim else v) for k, v in d.items()})
    with pytest.raises(NeurodeployError, match=r"source\.npz: 358 predictions, the report says 359 samples"):
        load_run(run.dir)
