"""The persistent Lava worker (neurodeploy/targets/loihi/lava/session.py, worker.py): one worker and
one built network serve many runs with the same spikes, and nothing outlives the process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.ir import read_nir
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.emu import emulate
from neurodeploy.targets.loihi.lava import session
from neurodeploy.targets.loihi.lava.child import _shared_memory_of, group_members

pytestmark = pytest.mark.lava


def _same(a, b) -> None:
    assert np.array_equal(np.asarray(a.info["integer_logits"]), np.asarray(b.info["integer_logits"]))
    assert set(a.layer_spikes) == set(b.layer_spikes)
    for k in a.layer_spikes:
        assert np.array_equal(a.layer_spikes[k], b.layer_spikes[k]), k
    for k in a.synops:
        assert np.array_equal(a.synops[k], b.synops[k]), k


def test_runs_reuse_one_worker_and_one_network_with_identical_spikes(digits_nir, digits_data):
    graph, meta = read_nir(digits_nir)
    target = get_target("lava")
    opts = {"input_spikes": "rate", "seed": 3, "timeout_s": 600}
    x = digits_data.x_test[:20]
    dep = target.compile(graph, meta, options={**opts, "copies": 8})
    first = target.run(dep, x)  # 20 samples: 3 chunks of 8 side by side (the last one half empty)
    pgid = target.last_pgid
    again = target.run(dep, x)  # the same network, already built: no new worker, no build
    assert again.info["workers_started"] == 0 and again.info["builds"] == 0 and target.last_pgid == pgid
    assert first.info["builds"] == 1
    _same(first, again)
    assert again.info["lava_steps"] > again.info["steps"]  # the zero-input steps that realign the resets
    ref = emulate(dep.artifact, dep.artifact.encode(x))
    assert np.array_equal(np.asarray(again.info["integer_logits"]), ref["logits"].numpy())
    for k, v in again.layer_spikes.items():
        assert np.array_equal(v, ref["spikes"][k].numpy()) and v.sum() > 0, k
    # another deployment (a new compile) of the same network: still the same worker and network
    dep2 = target.compile(graph, meta, options={**opts, "copies": 8})
    third = target.run(dep2, x)
    assert third.info["builds"] == 0 and target.last_pgid == pgid
    _same(first, third)
    # other widths and chunk sizes: one build each (per width), the same spikes
    for copies, per_run in ((8, 5), (3, 7), (20, 4096)):  # the worker keeps the last network only
        dep3 = target.compile(graph, meta, options={**opts, "copies": copies, "max_samples_per_run": per_run})
        out = target.run(dep3, x)
        assert target.last_pgid == pgid and out.info["workers_started"] == 0
        assert out.info["builds"] == (0 if copies == 8 else 1), (copies, per_run)
        _same(first, out)


def test_shutdown_stops_the_worker_and_leaves_no_process_folder_or_shared_memory(digits_nir, digits_data):
    graph, meta = read_nir(digits_nir)
    target = get_target("lava")
    dep = target.compile(graph, meta, options={"copies": 4, "timeout_s": 600})
    target.run(dep, digits_data.x_test[:4])
    worker = session._WORKERS[next(iter(session._WORKERS))]
    members = group_members(worker.pgid)
    assert len(members) > 3  # the worker and Lava's processes
    shm = _shared_memory_of(members)
    assert worker.session.is_dir()
    assert session.shutdown() == []
    assert group_members(worker.pgid) == [] and not worker.session.exists()
    assert [p for p in shm if Path(p).exists()] == []
    assert session.worker_pgids() == []


@pytest.mark.slow  # a second Python with torch and a Lava worker: ~20 s alone
def test_a_worker_left_by_a_killed_parent_is_gone(digits_nir, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import time, torch
        from neurodeploy.ir import read_nir
        from neurodeploy.targets import get_target
        graph, meta = read_nir({str(digits_nir)!r})
        target = get_target("lava")
        dep = target.compile(graph, meta, options={{"copies": 2}})
        target.run(dep, torch.rand(2, *meta.input_shape))
        from neurodeploy.targets.loihi.lava import session
        w = next(iter(session._WORKERS.values()))
        print("WORKER-INFO", w.pgid, w.session, flush=True)
        time.sleep(1000)
    """))
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and "WORKER-INFO" not in log.read_text() and proc.poll() is None:
            time.sleep(0.2)
        assert "WORKER-INFO" in log.read_text(), log.read_text()
        pgid, folder = log.read_text().split("WORKER-INFO")[1].split()[:2]
        assert len(group_members(int(pgid))) > 3 and Path(folder).is_dir()
        shm = _shared_memory_of(group_members(int(pgid)))
    finally:
        proc.send_signal(signal.SIGKILL)  # no atexit, no finally: only the worker's end-of-file watch is left
        proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and (group_members(int(pgid)) or Path(folder).exists()):
        time.sleep(0.1)
    assert group_members(int(pgid)) == [], "the worker outlived its parent"
    assert not Path(folder).exists(), "the worker's folder was left behind"
    assert shm and [p for p in shm if Path(p).exists()] == [], "the worker's shared memory was left behind"


def test_batched_build_equals_the_block_diagonal_netx_build(digits_nir, digits_data):
    """B copies along a trailing axis (procs/batched.py, the default) and B block-diagonal netx copies:
    the same counts, synops, readout and rasters, both equal to the emulator."""
    graph, meta = read_nir(digits_nir)
    target = get_target("lava")
    x = digits_data.x_test[:13]
    outs = {}
    for batched in (True, False):
        dep = target.compile(graph, meta, options={"input_spikes": "rate", "seed": 1, "timeout_s": 600, "copies": 5,
                                                   "record_raster": 7, "batched": batched})
        outs[batched] = target.run(dep, x)  # one Lava run: 3 columns of 5 samples side by side, 2 slots empty
        assert outs[batched].info["batched"] == int(batched)
    _same(outs[True], outs[False])
    for k, r in outs[False].info["raster"].items():
        assert np.array_equal(outs[True].info["raster"][k], r) and r.any(), k
    ref = emulate(dep.artifact, dep.artifact.encode(x))
    assert np.array_equal(np.asarray(outs[True].info["integer_logits"]), ref["logits"].numpy())
    for k, v in outs[True].layer_spikes.items():
        assert np.array_equal(v, ref["spikes"][k].numpy()) and v.sum() > 0, k
