"""The ``lava`` target: the lowered program simulated by Lava (lava-nc + lava-dl netx) in fixed point.

``compile`` lowers the NIR graph (:mod:`..lowering`, every change logged), writes the
single-copy netx HDF5 file when a ``work_dir`` is set, and starts the process's persistent Lava
worker (:mod:`.session`; ``prestart``) so Lava's import overlaps with what comes before ``run``.
``run`` sends each chunk as a job to that worker (its own session and process group, under the Lava
worker environment's Python 3.10, :mod:`.worker_env`; supervised under ``timeout_s`` / ``stall_s``):
by default (``batched``) the program is sent as a Lava process graph whose processes carry the B
samples along a trailing axis (:mod:`.procs.batched`: one copy of the weights per synapse, Lava's
Sparse model computing W·S), else (``batched = false``, or a recurrent program)
the one-copy netx file (tiled into B block-diagonal copies in the worker); either is written only when the
worker does not hold that network built already (:func:`_program_digest`), plus the input spikes;
the probes' per-sample counts come back as ``.npz`` files (JSON, npy/npz and HDF5 only: no pickles
either way). ``N`` samples take ⌈N/B⌉·T + L Lava steps (L layers of one-step latency) per chunk,
plus < T zero-input steps that realign the resets when the network is reused (:mod:`.worker`). A residual (DAG) program (:mod:`..dag`) is written as
a process-graph job instead (:func:`.netx_file.graph_job`, built in the child by
:mod:`.graph_builder`; netx cannot describe an add), with L the layers on its longest path.

Options: :class:`~neurodeploy.targets.loihi.options.LavaOptions` (recipe ``[deploy]`` and
``[deploy.lava]``, defaults from the profile's ``[options]``): ``copies``, ``timeout_s``,
``stall_s``, ``work_dir``, ``record_raster``, ``event_spikes`` / ``event_bits`` (how event-frame
counts are sent, :mod:`..event_input`), ... — each field documented there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ....errors import SimulationError
from ....ir.metadata import DeployMeta
from ....recipe import Profile
from ...base import Deployment, Outputs, Target, register_target
from ..emu import _layer_info, log_event_stats, logits_to_float, neuron_updates, synops_from_maps
from ..event_input import EventStats
from ..lowering import LoihiProgram, lower
from ..options import LavaOptions
from .netx_file import graph_job, write_netx
from .session import RUNNER, forget, get_worker
from .worker_env import find_worker_python, worker_env

log = logging.getLogger(__name__)


__all__ = ["RUNNER", "LavaTarget"]
_DIGESTS: dict[int, tuple[LoihiProgram, str]] = {}  # id(program) -> (program, digest): the last few programs


def _program_digest(program: LoihiProgram) -> str:
    """A content hash of everything the worker builds from (weights, biases, neuron constants,
    delays, fan-outs): equal digests = the same Lava network, so a built one is reused."""
    hit = _DIGESTS.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1]
    h = hashlib.sha1(f"{program.timesteps}:{program.input_message_bits}:{program.readout}".encode())
    for layer in program.layers:
        h.update(f"{layer.name}:{layer.i_decay}:{layer.v_decay}:{layer.vth}:{layer.readout}:{layer.depth}:"
                 f"{layer.delay}:{layer.input_neuron}".encode())
        for syn in layer.synapses():
            h.update(np.ascontiguousarray(syn.matrix()).tobytes())
            h.update(f"{getattr(syn, 'delay', 0)}:{getattr(syn, 'input_neuron', None)}".encode())
        for arr in (layer.bias, layer.recurrent, layer.fanout):
            h.update(b"-" if arr is None else np.ascontiguousarray(arr).tobytes())
    if len(_DIGESTS) > 8:
        _DIGESTS.clear()
    _DIGESTS[id(program)] = (program, h.hexdigest())
    return h.hexdigest()


def _lava_available() -> tuple[bool, str]:
    python, why = find_worker_python()
    return python is not None, why


@register_target
class LavaTarget(Target):
    """Intel Lava (Loihi 2 fixed-point simulation) through lava-dl netx."""

    name = "lava"
    profile_name = "loihi2"
    needs_spiking_input = False
    Options = LavaOptions
    fixed_point = True
    finetunable = True
    slow = True
    attack_stand_in = "loihi-emu"  # spike-exact (tests/targets/test_lava.py)

    def __init__(self) -> None:
        self.last_pgid: int | None = None  # process group of the last simulation (tests check it is gone)

    def available(self) -> tuple[bool, str]:
        return _lava_available()

    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: LavaOptions | Mapping[str, Any] | None = None) -> Deployment:
        prof = self.load_profile(profile)
        opts: LavaOptions = self.resolve_options(options, prof)  # type: ignore[assignment]
        dep = Deployment(self.name, graph, meta, prof, options=opts)
        program, _ = lower(graph, meta, opts, dep.log)
        dep.artifact = program
        recurrent = any(layer.recurrent is not None for layer in program.layers)
        delays = any(syn.delay for layer in program.layers for syn in layer.synapses())
        if opts.batched and not recurrent and not delays:
            dep.log(f"lava: built as a Lava process graph (lava-nc LIFReset + Sparse per synaptic input) with "
                    f"{opts.copies} samples side by side along a trailing axis of every process: each synapse holds "
                    f"one copy of the weights and Lava's bit-accurate Sparse model computes W·S for all samples in "
                    f"one sparse product (procs/batched.py; binary spikes declared 1-bit messages, values still 0/1)")
        elif program.is_dag:
            dep.log(f"lava: residual program built as a Lava process graph (lava-nc LIFReset + Sparse/DelaySparse "
                    f"per synaptic input, several inputs summed at one a_in; netx cannot describe an add): "
                    f"{opts.copies} samples side by side as block-diagonal copies per Lava run")
        else:
            dep.log(f"netx: every layer written as a netx 'dense' layer (convs unrolled to integer matrices); "
                    f"{opts.copies} samples side by side as block-diagonal sparse layers per Lava run "
                    f"(netx's weight reader patched in the child to stay sparse: same values, no B²-size dense copy)")
        if opts.fast_synapses and opts.sparse_reader and not (opts.batched and not recurrent and not delays):
            dep.log("netx: hidden-layer spikes declared as 1-bit messages (messageBits=1; values still 0/1) so "
                    "Lava's CPU synapses compute W·s as a sparse mat-vec (simulation speed only)")
        if any(layer.recurrent is not None for layer in program.layers):
            dep.log(f"netx: recurrent layers written as 'dense_rec'; netx resets the neurons between samples "
                    f"(reset_interval=T) but not the recurrent synapse's buffer, which would carry a sample's last "
                    f"spikes into the next sample's first step: each Lava run holds one sample per copy "
                    f"(≤ {opts.copies} samples per run, one netx build each), so every sample starts from zero state "
                    f"as on loihi-emu and in the source")
        dep.info.update({"options": opts.explicit(),
                         "layers": [_layer_info(layer) for layer in program.layers]})
        python, _ = find_worker_python()
        if python is not None and opts.prestart:  # Lava's import overlaps with what the caller does until run
            get_worker(python, worker_env())
        work = opts.work_dir
        if work and not program.is_dag:
            Path(work).mkdir(parents=True, exist_ok=True)
            dep.info["netx_file"] = str(write_netx(program, Path(work) / "model.net", copies=1))
        return dep

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256, progress: bool = False) -> Outputs:
        program: LoihiProgram = deployment.artifact
        opts: LavaOptions = deployment.options
        n = len(x)
        per_run = opts.max_samples_per_run
        if any(layer.recurrent is not None for layer in program.layers):
            per_run = min(per_run, opts.copies)  # one sample per copy: no carry-over through dense_rec (compile log)
        res: dict[str, list] = {"counts": [], "synops": [], "logits": [], "raster": []}
        timing = {"build_s": 0.0, "run_s": 0.0, "wall_s": 0.0, "steps": 0, "lava_steps": 0, "prepare_s": 0.0,
                  "child_start_s": 0.0, "import_s": 0.0, "netx_s": 0.0, "builds": 0, "workers_started": 0,
                  "batched": 0}
        stats = EventStats()
        B = max(1, min(opts.copies, n))  # every chunk at this width (a short last chunk pads: no second build)
        for i in tqdm(range(0, n, per_run), desc="lava", disable=not progress, leave=False):
            r = self._run_chunk(program, x[i:i + per_run], i, opts, stats, B)
            for k in res:
                res[k].append(r[k])
            for k in timing:
                timing[k] += r["timing"][k]
        names = [layer.name for layer in program.layers if not layer.readout]
        spikes = {nm: np.concatenate([c[j] for c in res["counts"]]).astype(np.float64) for j, nm in enumerate(names)}
        synops: dict[str, np.ndarray] = {}
        for j, layer in enumerate(program.layers if not program.is_dag else []):
            if layer.input_neuron is None:
                synops[layer.synapse] = np.concatenate([c["input"] for c in res["synops"]])
            else:
                synops[layer.synapse] = np.concatenate([c[layer.input_neuron] for c in res["synops"]])
            if layer.rec_synapse in res["synops"][0]:
                synops[layer.rec_synapse] = np.concatenate([c[layer.rec_synapse] for c in res["synops"]])
        if program.is_dag:  # per synapse, from the per-neuron counts (emu.synops_from_maps)
            synops = {k: np.concatenate([c[k] for c in res["synops"]]) for k in res["synops"][0]}
        lg = np.concatenate(res["logits"])
        info = {"integer_logits": lg.tolist(), "timesteps": program.timesteps,
                "samples_per_s": n / timing["wall_s"] if timing["wall_s"] else 0.0,
                **timing, "copies": opts.copies, "pgid": self.last_pgid}
        if program.is_dag:  # latency: the layers on the longest path (..dag)
            info["pipeline_layers"] = 1 + max(layer.depth for layer in program.layers)
        if res["raster"] and res["raster"][0]:
            info["raster"] = res["raster"][0]  # numpy [T, n, neurons] bool: only when record_raster is asked
        log_event_stats(deployment, program, stats, info)
        return Outputs(lg.argmax(1), logits_to_float(program, lg), spikes, synops, neuron_updates(program, n), info)

    def _run_chunk(self, program: LoihiProgram, x: torch.Tensor, offset: int, opts: LavaOptions,
                   stats: EventStats | None, B: int) -> dict:
        n = len(x)
        T = program.timesteps
        K = math.ceil(n / B)
        L = len(program.layers)
        # the deepest layer handles sample-local step t at global step t + 2 + depth (chain: depth = index)
        steps = K * T + (1 + max(layer.depth for layer in program.layers) if program.is_dag else L)
        t0 = time.time()
        python, why = find_worker_python()
        if python is None:
            raise SimulationError(f"lava: {why}")
        worker, started = get_worker(python, worker_env())  # started early, it imports Lava meanwhile
        self.last_pgid = worker.pgid
        s = program.encode(x, offset=offset, stats=stats).numpy()  # [T, n, n_in]
        n_in = s.shape[2]
        pad = np.zeros((T, K * B, n_in), dtype=np.int32)
        pad[:, :n] = s
        # column k*T + t, rows b*n_in..: sample k*B + b at its step t
        data = np.ascontiguousarray(pad.reshape(T, K, B, n_in).transpose(2, 3, 1, 0).reshape(B * n_in, K * T))
        raster_n = opts.record_raster
        raster_chunks = math.ceil(min(raster_n, n) / B) if raster_n else 0
        work = opts.work_dir
        job_dir = Path(tempfile.mkdtemp(prefix="lava-job-", dir=work or worker.session))  # gone with the worker
        try:
            fast = opts.fast_synapses and opts.sparse_reader
            tile = opts.sparse_reader and not program.is_dag  # the worker tiles a one-copy netx file B times
            recurrent = any(layer.recurrent is not None for layer in program.layers)
            # B copies along a trailing axis of every process, one copy of the weights per synapse
            # (.procs.batched); a recurrent program keeps netx's dense_rec
            batched = opts.batched and not recurrent
            key = (f"{_program_digest(program)}:B{B}:m{int(fast)}:t{int(tile)}:r{int(opts.sparse_reader)}"
                   f":b{int(batched)}:f{opts.fault}")
            job = {"key": key, "fresh": recurrent, "netx": str(job_dir / "model.net"), "T": T, "copies": B,
                   "batched": batched, "chain": not program.is_dag,
                   "chunks": K, "steps": steps, "n_in": n_in, "tile": tile,
                   "input_message_bits": program.input_message_bits, "raster_chunks": raster_chunks,
                   "fault": opts.fault,
                   "layers": [{"name": layer.name, "readout": layer.readout,
                               # per-neuron counts: the count readout, and a recurrent layer's synops
                               "per_neuron": (program.readout == "count" and j == L - 1) or layer.recurrent is not None}
                              for j, layer in enumerate(program.layers)]}
            if recurrent or worker.current_key != key:  # the worker builds: write what it reads
                if program.is_dag or batched:  # a Lava process graph built by graph_builder
                    graph, arrays = graph_job(program, message_bits=1 if fast or batched else 0)
                    job["graph"] = graph
                else:
                    write_netx(program, job_dir / "model.net", copies=1 if tile else B, message_bits=1 if fast else 0)
                    arrays = {}
                for j, layer in enumerate(program.layers):
                    if layer.fanout is not None and layer.input_neuron is not None:
                        arrays[f"fanout_{j}"] = layer.fanout
                np.savez(job_dir / "job.npz", **arrays)
            np.save(job_dir / "input.npy", data)
            (job_dir / "job.json").write_text(json.dumps(job))
            t_prep = time.time() - t0
            try:
                result = worker.submit(job_dir, opts.timeout_s, opts.stall_s)
            except SimulationError:
                forget(worker)
                raise
            worker.current_key = None if recurrent else key
            if result["missing"]:
                raise SimulationError(f"lava run in {job_dir}: the probes of layers {result['missing']} wrote no "
                                      f"result (log {worker.log_path})")
            out = self._collect(program, job_dir, n, B, K, T, raster_n, s)
            first_job = not worker.start_reported  # this run pays the worker's start (Python + Lava import)
            worker.start_reported = True
            ready = worker.ready_s() or 0.0
            waited = max(0.0, worker.t_start + ready - (t0 + t_prep)) if first_job else 0.0  # not hidden by prestart
            out["timing"] = {"build_s": result["build_s"], "run_s": result["run_s"], "wall_s": time.time() - t0,
                             "steps": steps, "lava_steps": result["lava_steps"], "prepare_s": t_prep,
                             "child_start_s": waited, "import_s": ready if first_job else 0.0,
                             "netx_s": result["netx_s"], "builds": int(result["built"]),
                             "batched": int(bool(result.get("batched"))),
                             "workers_started": int(started or first_job)}
            return out
        finally:
            if not work:
                shutil.rmtree(job_dir, ignore_errors=True)

    @staticmethod
    def _collect(program: LoihiProgram, job_dir: Path, n: int, B: int, K: int, T: int, raster_n: int,
                 s_in: np.ndarray) -> dict:
        counts, synops, raster, logits, maps = [], {}, {}, None, {}
        first = program.layers[0]
        synops["input"] = ((s_in != 0).sum(0).astype(np.float64) @ first.fanout) if first.fanout is not None \
            else np.zeros(n)
        for j, layer in enumerate(program.layers):
            try:
                z = np.load(job_dir / f"probe_{j}.npz")
            except OSError as e:
                raise SimulationError(f"lava run in {job_dir}: probe of layer {layer.name!r} wrote no result ({e})") \
                    from None
            if layer.readout:
                logits = z["acc"].reshape(K * B, -1)[:n]
                continue
            counts.append(z["counts"].reshape(K * B)[:n])
            if program.is_dag:
                maps[layer.name] = torch.as_tensor(z["acc"].reshape(K * B, -1)[:n])
            if program.readout == "count" and j == len(program.layers) - 1:
                logits = z["acc"].reshape(K * B, -1)[:n]  # the last layer's spike count per neuron
            synops[layer.name] = z["synops"].reshape(K * B)[:n]
            if layer.recurrent is not None and layer.rec_fanout is not None:  # its own spikes into W_rec
                synops[layer.rec_synapse] = z["acc"].reshape(K * B, -1)[:n].astype(np.float64) @ layer.rec_fanout
            if raster_n and "raster" in z:
                r = np.unpackbits(z["raster"], axis=-1, count=layer.n_out).astype(bool)  # [k, T, B, n]
                r = r.transpose(1, 0, 2, 3).reshape(T, -1, layer.n_out)[:, :min(raster_n, n)]
                raster[layer.name] = r
        if logits is None:
            raise SimulationError(f"lava run in {job_dir}: no readout was recorded")
        if program.is_dag:
            synops = synops_from_maps(program, torch.as_tensor(s_in), maps)
        return {"counts": counts, "synops": synops, "logits": logits, "raster": raster}
