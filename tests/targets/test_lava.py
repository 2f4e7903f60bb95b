"""The ``lava`` target: Lava (netx, fixed point) against the bit-exact emulator, and the child-process guard."""
from __future__ import annotations

import os

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from neurodeploy.errors import SimulationError
from neurodeploy.ir import read_nir
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.lava.child import group_members, run_in_group
from neurodeploy.targets.loihi.lava.session import shutdown
from neurodeploy.targets.loihi.emu import emulate



def _orphan_script(tmp_path, exit_code: int | None) -> list[str]:
    """A parent that forks two 'workers' which sleep forever; one of them is killed on purpose."""
    script = tmp_path / "orphans.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        kids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                time.sleep(1000)
                os._exit(0)
            kids.append(pid)
        os.kill(kids[0], signal.SIGKILL)   # one worker dies
        print("workers", kids, flush=True)
        code = {exit_code!r}
        if code is None:
            time.sleep(1000)               # the parent then hangs, as Lava does
        os._exit(code)                     # or leaves its surviving worker behind
    """))
    return [sys.executable, str(script)]


@pytest.mark.parametrize("exit_code", [None, 1, 0])
def test_child_group_is_killed_and_nothing_is_left(tmp_path, exit_code):
    t0 = time.time()
    if exit_code == 0:
        pgid, _ = run_in_group(_orphan_script(tmp_path, 0), 20, tmp_path / "log.txt")
    else:
        with pytest.raises(SimulationError) as e:
            run_in_group(_orphan_script(tmp_path, exit_code), 3, tmp_path / "log.txt")
        msg = str(e.value)
        assert ("timeout_s=3" in msg) if exit_code is None else ("exit code 1" in msg)
        assert "workers" in msg  # the log tail is in the message
        pgid = int(msg.split("process group ")[1].split()[0].strip(",;)"))
    assert group_members(pgid) == []
    assert time.time() - t0 < 15


def test_child_dies_with_its_parent_and_removes_its_job_folder(tmp_path):
    """SIGKILL the parent while its child (and the child's forked workers) run: within seconds no
    process of the child's group is left and the job folder is gone (watch_parent)."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "model.net").write_bytes(b"x" * 1024)
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from neurodeploy.targets.loihi.lava.child import watch_parent
        assert watch_parent(Path({str(job)!r}))
        for _ in range(2):
            if os.fork() == 0:
                time.sleep(1000)
                os._exit(0)
        print("pgid", os.getpgid(0), flush=True)
        time.sleep(1000)
    """))
    parent = tmp_path / "parent.py"
    parent.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from neurodeploy.targets.loihi.lava.child import run_in_group
        run_in_group([sys.executable, {str(child)!r}], 600, Path({str(tmp_path / "log.txt")!r}))
    """))
    proc = subprocess.Popen([sys.executable, str(parent)])
    log = tmp_path / "log.txt"
    deadline = time.time() + 60
    while time.time() < deadline and "pgid" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    pgid = int(log.read_text().split("pgid")[1].split()[0])
    assert len(group_members(pgid)) == 3  # the child and its two workers
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and (group_members(pgid) or job.exists()):
        time.sleep(0.1)
    assert group_members(pgid) == [], "the child outlived its parent"
    assert not job.exists(), "the job folder was left behind"


@pytest.fixture(scope="module")
def lava_run(digits_nir, digits_data):
    """One Lava run on 32 test samples (2 chunks of B = 16), rasters recorded for all of them."""
    graph, meta = read_nir(digits_nir)
    opts = {"input_spikes": "rate", "seed": 5, "copies": 16, "record_raster": 32, "timeout_s": 300}
    target = get_target("lava")
    dep = target.compile(graph, meta, options=opts)
    x = digits_data.x_test[:32]
    out = target.run(dep, x)
    return target, dep, x, out


@pytest.mark.lava
def test_lava_matches_emulator_spike_for_spike(lava_run):
    target, dep, x, out = lava_run
    program = dep.artifact
    ref = emulate(program, program.encode(x), raster=True)
    assert set(out.info["raster"]) == {"sn1", "sn2"}
    for name, lava_raster in out.info["raster"].items():
        emu_raster = ref["raster"][name].numpy()
        assert lava_raster.shape == emu_raster.shape == (program.timesteps, 32, lava_raster.shape[2])
        assert int((lava_raster != emu_raster).sum()) == 0, name  # zero mismatches, every neuron, every step
        assert lava_raster.sum() > 0
        assert (out.layer_spikes[name] == ref["spikes"][name].numpy()).all()
    assert (np.asarray(out.info["integer_logits"]) == ref["logits"].numpy()).all()
    emu = get_target("loihi-emu")
    eo = emu.run(emu.compile(dep.graph, dep.meta, options=dep.options), x)
    assert (eo.predictions == out.predictions).all()
    for k in eo.synops:
        assert np.allclose(eo.synops[k], out.synops[k]), k
    assert group_members(target.last_pgid) != []  # the worker stays for the next run ...
    assert shutdown() == [] and group_members(target.last_pgid) == []  # ... and leaves nothing when shut down


@pytest.mark.lava
def test_lava_agrees_with_float_source(lava_run):
    target, dep, x, out = lava_run
    src = get_target("torch")
    so = src.run(src.compile(dep.graph, dep.meta), x)
    assert float((so.predictions == out.predictions).mean()) >= 0.8
    assert any("netx" in ln for ln in dep.lowering)


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill", "raise"])
def test_lava_worker_failure_becomes_simulation_error(digits_nir, digits_data, fault):
    graph, meta = read_nir(digits_nir)
    target = get_target("lava")
    dep = target.compile(graph, meta, options={"copies": 4, "timeout_s": 300, "stall_s": 10, "fault": fault})
    t0 = time.time()
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    # a killed Lava process stalls the runtime (the heartbeat watchdog); a raise is reported by Lava at once
    with pytest.raises(SimulationError, match="no progress" if fault == "kill" else r"Exception\(s\) occurred"):
        target.run(dep, digits_data.x_test[:8])
    assert time.time() - t0 < 120  # found by the stall watchdog, long before timeout_s
    assert target.last_pgid is not None and group_members(target.last_pgid) == []
    left = (set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()) - shm_before
    assert left == set(), f"the failed worker's shared memory was left behind: {sorted(left)[:5]}"
    dead = target.last_pgid
    ok = target.run(target.compile(graph, meta, options={"copies": 4, "timeout_s": 300}), digits_data.x_test[:4])
    assert ok.info["workers_started"] == 1 and target.last_pgid != dead  # the next run starts a new worker


@pytest.mark.lava
@pytest.mark.slow  # ~40 s alone (netx builds 5 layers of 8 block-diagonal copies; Lava import), ~90 s on a busy machine
def test_cnn_sinabs_event_input_lava_equals_emulator_spike_for_spike(capsys):
    """The NIR paper's N-MNIST CNN (sinabs) on event frames: Lava equals loihi-emu per layer, per sample, per step."""
    from pathlib import Path

    import torch

    from neurodeploy.ir.importer import import_nir

    path = Path(__file__).parent.parent / "data" / "external" / "cnn_sinabs.nir"
    _, graph, meta, _ = import_nir(path, timesteps=8, encoding="events", convention="sinabs")
    x = torch.poisson(torch.full((8, 8, 2, 34, 34), 0.05), generator=torch.Generator().manual_seed(1))
    x[0, 1, 0, 16, 16] = 19.0  # 4 events above the 15 payload cap
    target = get_target("lava")
    dep = target.compile(graph, meta, options={"copies": 8, "record_raster": 8, "timeout_s": 600})
    out = target.run(dep, x)
    program = dep.artifact
    ref = emulate(program, program.encode(x), raster=True)
    assert set(out.info["raster"]) == {"1", "3", "6", "10", "12"}
    for name, lava_raster in out.info["raster"].items():
        emu_raster = ref["raster"][name].numpy()
        assert lava_raster.shape == emu_raster.shape == (8, 8, lava_raster.shape[2])
        assert int((lava_raster != emu_raster).sum()) == 0, name
        assert (out.layer_spikes[name] == ref["spikes"][name].numpy()).all(), name
    assert out.info["raster"]["6"].sum() > 0
    assert (np.asarray(out.info["integer_logits"]) == ref["logits"].numpy()).all()  # last layer's counts
    assert out.info["event_input"]["clipped"] == 4
    assert any("4 of" in ln and "events clipped" in ln for ln in dep.lowering)
    emu = get_target("loihi-emu")
    eo = emu.run(emu.compile(graph, meta), x)
    assert (eo.predictions == out.predictions).all()
    src = get_target("torch")
    so = src.run(src.compile(graph, meta), x)
    with capsys.disabled():
        print(f"\ncnn_sinabs on lava: {int(out.info['raster']['1'].sum())} layer-1 spikes equal to loihi-emu; "
              f"prediction agreement with torch {float((so.predictions == out.predictions).mean()):.3f} (8 samples), "
              f"{out.info['wall_s']:.1f} s wall")
    assert shutdown() == [] and group_members(target.last_pgid) == []
