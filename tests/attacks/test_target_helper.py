"""The attack stage's target helper (stages/background.py): the target jobs run in a child process
that deployed the same targets, the report is the sequential one number for number, and the child
(and any Lava worker it started) is gone when the stage ends."""
from __future__ import annotations

import json
import os
import time

import pytest

from neurodeploy.attacks import sections as sections_mod
from neurodeploy.run import prepare_run_dir
from neurodeploy.stages import attack_stage, background, run_all
from tiny_recipes import tiny_recipe

ATTACK = """
[attack]
max_samples = 24
sweep_samples = 12
sweep_epsilons = [0.0, 0.03137254901960784, 1.0]
sweep_steps = [0, 1, 3]
query_samples = 6
query_budget = 8
random_samples = 3
sparsity_samples = 8
blackbox = "seed"
[deploy]
input_spikes = "graded"
"""


def _recipe(name: str, targets: list[str]) -> str:
    return tiny_recipe(name, ATTACK + f"targets = {json.dumps(targets)}\n", seed=2)


def _without_timings(tree):
    if isinstance(tree, dict):
        return {k: _without_timings(v) for k, v in tree.items() if "seconds" not in k}
    if isinstance(tree, list):
        return [_without_timings(v) for v in tree]
    return tree


def _both_ways(tmp_path, monkeypatch, targets: list[str]):
    """(robustness without the helper, robustness with it, helpers started) on one trained run."""
    monkeypatch.setenv("NEURODEPLOY_BACKGROUND", "0")
    (tmp_path / "r.toml").write_text(_recipe("tiny-helper", targets))
    report = run_all(tmp_path / "r.toml", tmp_path / "run", progress=False)
    sequential = json.loads(json.dumps(report["robustness"]))
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND")
    monkeypatch.setattr(background, "usable_cores", lambda: 2)
    started = []
    start = background.start_target_helper

    def spy(run, names):
        h = start(run, names)
        started.append(h)
        return h

    monkeypatch.setattr(background, "start_target_helper", spy)
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run", False)
    attack_stage(run, targets, progress=False)
    return sequential, run.report()["robustness"], started, run  # both as report.json holds them


def _gone(pid: int) -> bool:
    t0 = time.time()
    while time.time() - t0 < 10:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_the_report_is_the_sequential_one(tmp_path, monkeypatch):
    seq, par, started, run = _both_ways(tmp_path, monkeypatch, ["torch", "loihi-emu"])
    assert len(started) == 1 and started[0] is not None and started[0].failed is None
    assert started[0].proc.returncode == 0 and _gone(started[0].proc.pid)
    assert not background._jobs and not (run.dir / background.HELPER_LOG_NAME).exists()
    assert list(par) == list(seq)  # same keys in the same order
    assert list(_diff(_without_timings(par), _without_timings(seq))) == []
    for name in ("torch", "loihi-emu"):  # the helper's entries are there (not placeholders)
        assert 0.0 <= par[name]["transfer_pgd"]["accuracy"] <= 1.0 and par[name]["query"]["samples"] == 6
        assert name in par["sweeps"]["epsilon"][-1]["others"]


def test_a_helper_that_dies_leaves_its_jobs_to_this_process(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NEURODEPLOY_BACKGROUND", "0")
    (tmp_path / "r.toml").write_text(_recipe("tiny-helper-dies", ["torch"]))
    seq = run_all(tmp_path / "r.toml", tmp_path / "run", progress=False)["robustness"]
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND")
    monkeypatch.setattr(background, "usable_cores", lambda: 2)
    real = background.TargetHelperProcess.submit
    calls = []

    def submit(self, job, args, fallback):
        calls.append(job.__name__)
        if len(calls) == 2:  # kill it with a job in flight
            self.proc.kill()
            self.proc.wait()
        return real(self, job, args, fallback)

    monkeypatch.setattr(background.TargetHelperProcess, "submit", submit)
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run", False)
    with caplog.at_level("WARNING", logger="neurodeploy.stages.background"):
        attack_stage(run, ["torch"], progress=False)
    par = run.report()["robustness"]
    assert "target helper" in caplog.text and "computed here" in caplog.text
    assert len(calls) > 2 and not background._jobs
    assert list(_diff(_without_timings(par), _without_timings(seq))) == []


def test_no_helper_on_one_core_or_when_turned_off(tmp_path, monkeypatch):
    (tmp_path / "r.toml").write_text(_recipe("tiny-helper-off", ["torch"]))
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run", False)
    monkeypatch.setenv("NEURODEPLOY_BACKGROUND", "0")
    monkeypatch.setattr(background, "usable_cores", lambda: 2)
    assert background.start_target_helper(run, ["torch"]) is None
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND")
    monkeypatch.setattr(background, "usable_cores", lambda: 1)
    assert background.start_target_helper(run, ["torch"]) is None
    monkeypatch.setattr(background, "usable_cores", lambda: 2)
    assert background.start_target_helper(run, []) is None


def _slow_job(targets, seconds: float) -> float:  # a target job the helper imports from this file
    time.sleep(seconds)
    return seconds


def test_the_helper_exits_when_its_parent_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_BACKGROUND", "0")
    (tmp_path / "r.toml").write_text(_recipe("tiny-helper-eof", ["torch"]))
    run_all(tmp_path / "r.toml", tmp_path / "run", progress=False)
    monkeypatch.delenv("NEURODEPLOY_BACKGROUND")
    monkeypatch.setattr(background, "usable_cores", lambda: 2)
    here = os.path.dirname(os.path.abspath(__file__))  # this file and tiny_recipes.py, for the child
    path = (here, os.path.dirname(here), os.environ.get("PYTHONPATH"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
    run = prepare_run_dir(tmp_path / "r.toml", tmp_path / "run", False)
    helper = background.start_target_helper(run, ["torch"])
    try:
        assert helper.submit(_slow_job, (0.1,), lambda: None).result() == 0.1  # answered by the child
        helper.submit(_slow_job, (60.0,), lambda: None)
        time.sleep(1.0)
        t0 = time.time()
        helper.proc.stdin.close()  # what the parent's death does to the pipe, mid-job
        assert helper.proc.wait(timeout=30) == 3 and time.time() - t0 < 10
    finally:
        background.stop_all()
    assert not background._jobs


def test_pending_leaves_merge_like_values():
    P = sections_mod.Pending
    report: dict = {}
    sections_mod._merge(report, {"t": P(lambda: {"a": 1, "b": {"x": 1}})})
    sections_mod._merge(report, {"t": {"b": {"y": P.of(2)}, "c": 3}})
    sections_mod._merge(report, {"u": {"v": P(lambda: 4)}})
    assert sections_mod.resolve(report) == {"t": {"a": 1, "b": {"x": 1, "y": 2}, "c": 3}, "u": {"v": 4}}
    assert list(report["t"]) == ["a", "b", "c"]


@pytest.mark.slow
@pytest.mark.lava
def test_the_report_is_the_sequential_one_with_lava(tmp_path, monkeypatch):
    from neurodeploy.targets.loihi.lava import session

    seq, par, started, run = _both_ways(tmp_path, monkeypatch, ["loihi-emu", "lava"])
    assert started[0].failed is None and started[0].proc.returncode == 0
    assert list(_diff(_without_timings(par), _without_timings(seq))) == []
    assert par["lava"]["query"]["via"] == "loihi-emu" and "note" in par["lava"]
    mine = set(session.worker_pgids())  # this process's own worker (the sequential run's)
    time.sleep(1)
    assert _lava_processes_outside(mine) == []  # the helper's worker went with it
    session.shutdown()


def _lava_processes_outside(pgids: set[int]) -> list[int]:
    from neurodeploy.targets.loihi.lava import session

    left = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if str(session.RUNNER) in cmd and os.getpgid(int(d)) not in pgids:
                left.append(int(d))
        except OSError:
            continue
    return left


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            yield from _diff(u, v, f"{path}[{i}]")
    elif a != b and not (a != a and b != b):
        yield path, a, b
