"""The persistent Lava worker's loop, in the Lava worker environment (Python 3.10; started by
:mod:`.runner`, driven by :mod:`.session` in the toolkit's process).

One worker serves every Lava run of its parent process: Lava is imported once, and the network of
the last job stays built (and compiled: its Lava runtime and process models stay up) while the
next job has the same ``key`` (program, B, message bits). Each job is one *segment* of global
steps on that network (:mod:`.procs.probes`): the worker writes ``<session>/seg_<τ>.json`` and
runs ``lead + K·T + L`` more steps, ``lead`` the zero-input steps that bring the first input
column to a step ≡ 1 (mod T). Those steps are what a fresh network sees between two chunks of one
run (zero-input windows, each starting with netx's staggered reset), so every sample gets the
spikes it gets in a network of its own — the sample-to-sample independence the back-to-back
chunks already rely on. A recurrent (``dense_rec``) program is built afresh for each job
(``fresh``): its recurrent synapse would carry spikes across those windows.

Protocol (JSON lines on stdin, never pickles): ``{"cmd": "run", "job": JOB_DIR}`` → the worker
reads ``JOB_DIR/job.json`` (+ ``job.npz`` for a build, ``input.npy`` for the segment) and writes
``JOB_DIR/result.json`` (timings) once the probes wrote ``probe_<i>.npz``; ``{"cmd": "quit"}`` →
the runtime is stopped and the worker exits. End of file on stdin means the parent is gone: the
session folder is removed and the whole process group (Lava's processes included) is SIGKILLed,
as :func:`.child.watch_parent` does. A failing job prints the traceback and exits with code 2.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

WATCH_ENV = "NEURODEPLOY_WATCH_PARENT"  # = child.WATCH_ENV: stdin is the parent's pipe


def _reader(session: Path, cmds: queue.Queue) -> None:
    """Commands from stdin into ``cmds``; at end of file (the parent is gone) clean up and die.

    Reads fd 0 with ``os.read``, not through ``sys.stdin``: the Lava processes are forked while this
    thread blocks, and a forked child closing ``sys.stdin`` (multiprocessing does) would wait forever
    for the buffered reader's lock held here."""
    buf = b""
    while True:
        try:
            chunk = os.read(0, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                cmds.put(json.loads(line))
    if os.environ.get(WATCH_ENV) == "1":
        shutil.rmtree(session, ignore_errors=True)
        _unlink_group_shm()  # the mappings stay valid until the group dies, just below
        os.killpg(os.getpgid(0), signal.SIGKILL)
    cmds.put({"cmd": "quit"})


def _unlink_group_shm() -> None:
    """Unlink the shared-memory channels this process group has mapped or open: a Lava runtime that is
    killed, or that failed inside a process, does not unlink them itself (as :func:`.child.kill_group`)."""
    try:
        from neurodeploy.targets.loihi.lava.child import _shared_memory_of, group_members

        for path in _shared_memory_of(group_members(os.getpgid(0))):
            try:
                os.unlink(path)
            except OSError:
                pass
    except Exception:  # noqa: BLE001 - cleanup only: the caller exits or kills the group whatever happens
        pass


class _State:
    """The network kept built between jobs."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.net: Any = None  # the Lava process whose run/stop drive the whole graph
        self.layers = 0
        self.step = 0  # global steps run on this network
        self.batched = False  # built with the B copies along a trailing axis (graph_builder.build)

    def stop(self) -> None:
        if self.net is not None:
            net, self.net, self.key = self.net, None, None
            net.stop()


def _build(job: dict, job_dir: Path, session: Path, runner: Any) -> tuple[Any, int, float, bool]:
    """The network of ``job``, compiled; returns (process to run, layer count, netx seconds, batched)."""
    import numpy as np
    from lava.magma.core.run_configs import Loihi2SimCfg

    from neurodeploy.targets.loihi.lava.procs.probes import LayerProbe, SpikeSource

    data = np.load(job_dir / "job.npz", allow_pickle=False)
    ctrl, t0 = str(session), time.time()
    batched = False
    if job.get("graph"):  # a residual (DAG) program: a Lava process graph (graph_builder)
        import importlib.util

        spec = importlib.util.spec_from_file_location("neurodeploy_lava_graph_builder",
                                                      Path(__file__).with_name("graph_builder.py"))
        gb = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gb)
        batched = bool(job.get("batched")) and gb.batchable(job)
        net, probes = gb.build(job, data, ctrl, LayerProbe, SpikeSource, batched=batched)
        t_netx = 0.0
    else:
        import lava.lib.dl.netx.hdf5  # noqa: F401 - imported for netx jobs only (~0.35 s: scipy.signal, stats)
        from lava.lib.dl import netx

        runner.sparse_netx_reader()  # once per process (runner)
        runner.COPIES["B"] = int(job["copies"]) if job.get("tile") else 1
        net = netx.hdf5.Network(net_config=job["netx"], reset_interval=job["T"], reset_offset=1,
                                sparse_fc_layer=True, input_message_bits=job["input_message_bits"])
        t_netx = time.time() - t0
        src = SpikeSource(int(np.prod(net.inp.shape)), ctrl)
        src.s_out.connect(net.inp)
        probes = []
        for i, spec in enumerate(job["layers"]):
            layer = net.layers[i]
            common = dict(copies=job["copies"], first=2 + i, period=job["T"], ctrl_dir=ctrl, index=i,
                          fault=job["fault"] if i == 0 else "", heartbeat=i == 0)
            if spec["readout"]:
                p = LayerProbe(shape=layer.synapse.a_out.shape, mode="current", **common)
                layer.synapse.a_out.connect(p.a_in)
            else:
                fan = data[f"fanout_{i + 1}"] if f"fanout_{i + 1}" in data else None
                p = LayerProbe(shape=layer.out.shape, mode="spikes", fanout=fan,
                               per_neuron=bool(spec.get("per_neuron")), **common)
                layer.out.connect(p.a_in)
            probes.append(p)
    net.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))  # Lava's compiler and process start
    return net, len(probes), t_netx, batched


def run_job(state: _State, job_dir: Path, session: Path, runner: Any) -> dict:
    """Run one job (one segment) on the kept network, building it first when the key differs."""
    from lava.magma.core.run_conditions import RunSteps

    job = json.loads((job_dir / "job.json").read_text())
    t0 = time.time()
    built, t_netx = False, 0.0
    if state.net is None or state.key != job["key"] or job.get("fresh"):
        state.stop()
        (session / "heartbeat").unlink(missing_ok=True)  # the parent's stall clock waits for the first step
        state.net, state.layers, t_netx, state.batched = _build(job, job_dir, session, runner)
        state.key, state.step, built = job["key"], 0, True
    t_build = time.time() - t0
    T = int(job["T"])
    start = state.step + 1
    first_col = start + (-state.step) % T  # ≡ 1 (mod T): netx's resets fall on the sample boundaries
    end = first_col - 1 + int(job["steps"])
    seg = {"t0": first_col, "end": end, "chunks": job["chunks"], "raster_chunks": job["raster_chunks"],
           "out": str(job_dir), "input": str(job_dir / "input.npy")}
    seg_file = session / f"seg_{start}.json"
    seg_file.write_text(json.dumps(seg))
    t1 = time.time()
    state.net.run(condition=RunSteps(num_steps=end - state.step))
    state.step = end
    seg_file.unlink(missing_ok=True)
    missing = [i for i in range(state.layers) if not (job_dir / f"probe_{i}.npz").exists()]
    return {"built": built, "build_s": t_build, "netx_s": t_netx, "run_s": time.time() - t1,
            "layers": state.layers, "missing": missing, "lava_steps": end - start + 1, "batched": state.batched}


def serve(session: Path, runner: Any) -> int:
    """The worker's loop (module docstring); returns the exit code."""
    t_start = time.time()
    cmds: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(session, cmds), name="commands", daemon=True).start()
    from lava.magma.core.run_conditions import RunSteps  # noqa: F401
    from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401
    from lava.proc.lif.process import LIFReset  # noqa: F401

    import neurodeploy.targets.loihi.lava.procs.batched  # noqa: F401
    import neurodeploy.targets.loihi.lava.procs.probes  # noqa: F401

    ready = {"import_s": time.time() - t_start, "pid": os.getpid()}
    (session / "ready.json").write_text(json.dumps(ready))
    state = _State()
    while True:
        cmd = cmds.get()
        if cmd.get("cmd") != "run":
            state.stop()
            return 0
        job_dir = Path(cmd["job"])
        try:
            result = run_job(state, job_dir, session, runner)
        except BaseException as e:  # noqa: BLE001 - reported to the parent through the log and the exit code
            traceback.print_exc()
            print(f"neurodeploy lava runner failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            _unlink_group_shm()  # the parent kills the group next
            return 2
        tmp = job_dir / "result.json.tmp"
        tmp.write_text(json.dumps(result))
        os.replace(tmp, job_dir / "result.json")  # atomic: the parent never reads half a file
        sys.stdout.flush()
