"""The black-box surrogate trained in a background process (stages/background.py): the same
checkpoint as training it in the chain's process, and a child that never outlives its parent."""
import logging
import sys
import time

import pytest

from neurodeploy.run import prepare_run_dir
from neurodeploy.stages import background
from neurodeploy.stages.train import train_surrogate
from tiny_recipes import tiny_recipe

RECIPE = tiny_recipe("tiny-background", """
[attack]
blackbox = "seed"
""", seed=3)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setattr(background, "usable_cores", lambda: 2)  # the overlap needs a second core
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND", raising=False)
    (tmp_path / "r.toml").write_text(RECIPE)
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run", False)
    yield run
    background.stop_all()


def test_background_surrogate_is_the_in_process_checkpoint(run):
    assert background.start_surrogate(run)
    assert not background.start_surrogate(run)  # one job per run
    train_surrogate(run)  # waits for the child, then loads its checkpoint
    path = run.dir / "surrogate.safetensors"
    child = path.read_bytes()
    assert not (run.dir / background.LOG_NAME).exists()
    assert not background.start_surrogate(run)  # a valid surrogate is not trained again
    path.unlink()
    train_surrogate(run, progress=False, background=False)
    assert path.read_bytes() == child


def test_the_child_exits_when_its_parent_goes(run):
    assert background.start_surrogate(run)
    job = background._jobs[str(run.dir.resolve())]
    job.proc.stdin.close()  # what the parent's death does to the pipe
    t0 = time.time()
    while job.proc.poll() is None and time.time() - t0 < 30:
        time.sleep(0.1)
    assert job.proc.returncode == 3
    background.stop_all()
    assert not background._jobs


def test_a_failed_child_is_logged_and_the_surrogate_trained_here(run, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert background.start_surrogate(run)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="neurodeploy.stages.background"):
        model = train_surrogate(run, progress=False)
    assert "exited with status 1" in caplog.text
    assert (run.dir / "surrogate.safetensors").is_file() and model is not None


def test_no_overlap_on_one_core_or_when_turned_off(run, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_BACKGROUND", "0")
    assert not background.start_surrogate(run)
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND")
    monkeypatch.setattr(background, "usable_cores", lambda: 1)
    assert not background.start_surrogate(run)
