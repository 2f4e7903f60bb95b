"""Every case of the malformed-input corpus (gen_corpus.py) through the CLI: exit 2, exactly one
line on stderr, no traceback, nothing written (the case's folder hashes the same before and after),
and no work started (training, simulation and attacks are booby-trapped)."""
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.run import prepare_run_dir
from neurodeploy.snn import create_ann, create_snn
from neurodeploy.stages import export_stage, simulate_stage, source_stage
from neurodeploy.train import save_checkpoint

_spec = importlib.util.spec_from_file_location("gen_corpus", Path(__file__).with_name("gen_corpus.py"))
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_corpus"] = gen  # dataclasses look their module up
_spec.loader.exec_module(gen)
CASES = gen.all_cases()
#: one case per kind, also run as a real subprocess (the in-process main() must behave the same)
SUBPROCESS = ["recipe:timesteps=0", "nir:simulate:conv1.weight-nan", "checkpoint:snn.safetensors:pickle",
              "report.json:simulate:targets-5", "outputs.npz:energy:torch:wrong-length", "study.json:runs-5"]


@pytest.fixture(scope="session")
def base_run(tmp_path_factory):
    """A small complete run folder without training (random weights: the cases need files, not accuracy)."""
    d = tmp_path_factory.mktemp("fuzzbase")
    (d / "r.toml").write_text(gen.to_toml(gen.BASE_RECIPE))
    run = prepare_run_dir(d / "r.toml", d / "run")
    torch.manual_seed(0)
    save_checkpoint(create_snn(run.recipe, run.data.input_shape, run.data.num_classes), run.dir / "snn.safetensors")
    save_checkpoint(create_ann(run.recipe, run.data.input_shape, run.data.num_classes), run.dir / "ann.safetensors")
    export_stage(run)
    source_stage(run)
    simulate_stage(run, ["torch"], progress=False)
    return run.dir


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


@pytest.fixture()
def trapped(monkeypatch):
    """Fail the test (not the CLI) if a case reaches real work."""
    import neurodeploy.attacks.stage as attacks_stage
    import neurodeploy.stages.finetune as finetune
    import neurodeploy.stages.simulate as simulate
    import neurodeploy.train.run as train_run

    def trap(what):
        def f(*a, **k):
            raise AssertionError(f"the malformed input reached {what}")
        return f

    monkeypatch.setattr(train_run, "train_recipe", trap("training"))
    monkeypatch.setattr(simulate, "deploy_and_score", trap("a target simulation"))
    monkeypatch.setattr(finetune, "deploy_and_score", trap("fine-tuning"))
    monkeypatch.setattr(attacks_stage, "robustness_report", trap("the attacks"))


def _prepare(case, base_run, tmp_path):
    d = tmp_path / "case"
    d.mkdir()
    shutil.copytree(base_run, d / "run")
    argv = case.build(d, d / "run")
    return d, argv


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_one_line_exit_2_nothing_written(case, base_run, tmp_path, capsys, caplog, trapped):
    d, argv = _prepare(case, base_run, tmp_path)
    before = tree_digest(d)
    with caplog.at_level(logging.WARNING, logger="neurodeploy"):
        rc = main(["-q", *argv])
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}, stderr {err!r}"
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("neurodeploy: error: ")
    # the CLI runs with -q: a warning would be a second line on the console
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert tree_digest(d) == before


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_sample_as_a_real_process(case_id, base_run, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    d, argv = _prepare(case, base_run, tmp_path)
    before = tree_digest(d)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLCONFIGDIR=str(tmp_path / "mpl"))
    r = subprocess.run([sys.executable, "-m", "neurodeploy.cli", "-q", *argv], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert tree_digest(d) == before


def test_corpus_is_deterministic_and_covers_every_kind():
    again = gen.all_cases()
    assert [c.id for c in again] == [c.id for c in CASES]
    assert len({c.id for c in CASES}) == len(CASES)
    kinds = {c.kind for c in CASES}
    assert kinds == {"recipe", "nir", "checkpoint", "report.json", "outputs.npz", "stages.json", "run-recipe",
                     "study.json", "path"}
