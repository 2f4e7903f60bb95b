"""Two commands on one run folder at once never lose each other's results: report.json is updated
read-modify-write under an flock on the run folder (neurodeploy.run.run_lock)."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from neurodeploy.run import Run, run_lock
from neurodeploy.stages import run_all
from tiny_recipes import tiny_recipe

RECIPE = tiny_recipe("tiny-concurrent", """
[attack]
sections = ["clean", "fgsm"]
max_samples = 24
blackbox = "ann"
[deploy]
targets = ["torch"]
max_samples = 24
""")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("conc")
    (d / "r.toml").write_text(RECIPE)
    run_all(d / "r.toml", d / "run", progress=False)
    return d / "run"


def _start(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "neurodeploy.cli", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _race(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    report = json.loads((run / "report.json").read_text())
    del report["robustness"], report["targets"]["torch"]
    (run / "report.json").write_text(json.dumps(report))
    procs = [_start("simulate", str(run), "--target", "loihi-emu"), _start("simulate", str(run), "--target", "torch"),
             _start("attack", str(run), "--target", "loihi-emu")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    final = json.loads((run / "report.json").read_text())
    assert set(final["targets"]) == {"torch", "loihi-emu"}
    assert set(final["energy"]["targets"]) == {"torch", "loihi-emu"}  # the last energy stage saw both
    assert all("energy" in t for t in final["targets"].values())
    ledger = json.loads((run / "stages.json").read_text())
    assert {"simulate:loihi-emu", "simulate:torch"} <= set(ledger)
    assert final["robustness"]["source"]["fgsm"]["accuracy"] >= 0 and "attack" in ledger


@pytest.mark.slow
@pytest.mark.parametrize("rep", range(3))
def test_two_simulates_and_an_attack_keep_every_result(base_run, tmp_path, rep):
    """simulate --target loihi-emu ∥ simulate --target torch ∥ attack, three real processes, 3 times."""
    _race(base_run, tmp_path)


def _add_b(run_dir):
    Run(run_dir).update_report(lambda rep: rep["targets"].update({"b": {"accuracy": 0.5}}))


def test_update_report_waits_for_the_lock_holder(tmp_path):
    """The protocol, in-process: an update another process starts while this one holds the lock
    runs after it, on the report this one wrote (without the lock, "a" would be lost)."""
    import multiprocessing

    (tmp_path / "recipe.toml").write_text('name = "x"\n')
    run = Run(tmp_path)
    run.save_report({"targets": {}})
    with run_lock(tmp_path):
        r = run.report()  # this command's read: before the other one starts
        child = multiprocessing.get_context("fork").Process(target=_add_b, args=(tmp_path,))
        child.start()  # forked while the lock is held here: it must still wait for it
        time.sleep(0.5)
        assert child.is_alive()  # blocked on the lock
        r["targets"]["a"] = {"accuracy": 1.0}
        run.save_report(r)  # without the lock this write would drop the child's "b"
    child.join(60)
    assert child.exitcode == 0
    assert set(run.report()["targets"]) == {"a", "b"}
