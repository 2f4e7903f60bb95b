"""Stage-by-stage resume: a `run` interrupted during a target, rerun on the same folder, redoes
only what did not finish; editing a recipe field redoes exactly the stages that read it."""
import json

import pytest

import neurodeploy.stages as stages
import neurodeploy.train.run as train_run
from neurodeploy.errors import SimulationError
from neurodeploy.run import load_run
from neurodeploy.stages import run_all
from neurodeploy.targets.loihi.emu import LoihiEmuTarget
from tiny_recipes import tiny_recipe

RECIPE = tiny_recipe("tiny-resume", """
[attack]
sections = ["clean", "fgsm"]
max_samples = 32
blackbox = "ann"
[deploy]
targets = ["torch", "loihi-emu"]
max_samples = 40
""", seed=1)


class Calls:
    """Counts the stage calls `run_all` makes (the real stages still run)."""

    def __init__(self, monkeypatch):
        self.log: list[str] = []
        for name in ("export_stage", "source_stage", "energy_stage", "attack_stage"):
            real = getattr(stages, name)
            monkeypatch.setattr(stages, name, self._wrap(name.removesuffix("_stage"), real))
        real_sim = stages.simulate_stage
        monkeypatch.setattr(stages, "simulate_stage",
                            lambda run, targets, *a, **k: (self.log.extend(f"simulate:{t}" for t in targets),
                                                           real_sim(run, targets, *a, **k))[1])
        real_train = train_run.train_recipe
        monkeypatch.setattr(train_run, "train_recipe", self._wrap("train", real_train))

    def _wrap(self, name, fn):
        def wrapped(*a, **k):
            self.log.append(name)
            return fn(*a, **k)
        return wrapped


def _mtimes(out):
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_interrupted_run_resumes_stage_by_stage(tmp_path, monkeypatch):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"

    # 1. killed during the second target: the first finished, loihi-emu did not
    real_run = LoihiEmuTarget.run

    def dies(self, *a, **k):
        raise SimulationError("loihi-emu killed (simulated)")

    monkeypatch.setattr(LoihiEmuTarget, "run", dies)
    calls = Calls(monkeypatch)
    with pytest.raises(SimulationError):
        run_all(recipe, out, progress=False)
    assert calls.log == ["train", "export", "source", "simulate:torch", "simulate:loihi-emu"]
    assert (out / "outputs" / "torch.npz").is_file() and not (out / "outputs" / "loihi-emu.npz").exists()
    before = _mtimes(out)

    # 2. rerun: only the target that did not finish, and the stages after it
    monkeypatch.setattr(LoihiEmuTarget, "run", real_run)
    calls.log.clear()
    report = run_all(recipe, out, progress=False)
    assert calls.log == ["simulate:loihi-emu", "energy", "attack"]
    after = _mtimes(out)
    for kept in ("snn.safetensors", "ann.safetensors", "model.nir", "outputs/source.npz", "outputs/torch.npz"):
        assert after[kept] == before[kept], kept
    assert set(report["targets"]) == {"torch", "loihi-emu"}
    assert all("energy" in t for t in report["targets"].values())
    assert report["robustness"]["source"]["fgsm"]["accuracy"] >= 0
    assert json.loads((out / "report.json").read_text()) == report

    # 3. a rerun with nothing to do does nothing
    calls.log.clear()
    assert run_all(recipe, out, progress=False) == report
    assert calls.log == []

    # 4. an attack field edited: only the attack stage is redone
    recipe.write_text(RECIPE.replace("max_samples = 32", "max_samples = 24"))
    calls.log.clear()
    run_all(recipe, out, progress=False)
    assert calls.log == ["attack"]

    # 5. a deploy field both targets read: both simulated again, then energy and attack; no training
    recipe.write_text(RECIPE.replace("max_samples = 40", "max_samples = 36").replace("max_samples = 32",
                                                                                      "max_samples = 24"))
    calls.log.clear()
    report = run_all(recipe, out, progress=False)
    assert calls.log == ["simulate:torch", "simulate:loihi-emu", "energy"]  # the attack has its own samples
    assert report["targets"]["torch"]["n_samples"] == 36

    # 6. a training field: everything from training on
    recipe.write_text(RECIPE.replace("seed = 1", "seed = 2"))
    calls.log.clear()
    run_all(recipe, out, progress=False)
    assert calls.log == ["train", "export", "source", "simulate:torch", "simulate:loihi-emu", "energy", "attack"]


def test_a_target_rerun_alone_invalidates_what_reads_it(tmp_path, monkeypatch):
    """`simulate --target torch` between two runs: the next run redoes energy (it sums the new
    outputs) even though every file it lists is there."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.replace('targets = ["torch", "loihi-emu"]', 'targets = ["torch"]')
                      .replace('sections = ["clean", "fgsm"]', 'sections = ["clean"]'))
    out = tmp_path / "out"
    run_all(recipe, out, progress=False)
    stages.simulate_stage(load_run(out), ["torch"], progress=False)
    calls = Calls(monkeypatch)
    run_all(recipe, out, progress=False)
    assert calls.log == ["energy"]


@pytest.mark.slow
def test_sigkill_during_a_target_then_resume(tmp_path, monkeypatch):
    """A real `neurodeploy run` process killed (SIGKILL) once its first target is recorded: the rerun
    redoes exactly the stages the ledger does not hold, in chain order, and nothing else."""
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "neurodeploy.cli", "-q", "run", str(recipe), "--out", str(out)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ledger = out / "stages.json"
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if ledger.is_file() and "simulate:torch" in ledger.read_text():
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = set(json.loads(ledger.read_text()))
    assert {"train", "export", "source", "simulate:torch"} <= done
    load_run(out)  # every file the kill left is whole (atomic renames): the check passes
    chain = ["simulate:loihi-emu", "energy", "attack"]
    calls = Calls(monkeypatch)
    report = run_all(recipe, out, progress=False)
    assert calls.log == [k for k in chain if k not in done]
    assert set(report["targets"]) == {"torch", "loihi-emu"} and "robustness" in report
