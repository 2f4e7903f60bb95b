"""Build and run a residual (DAG) Loihi program as a Lava process graph, in the Lava child process.

netx HDF5 describes a chain of layers only, so a program with several synaptic inputs per layer
(:mod:`..dag`, SEW-ResNet's ADD) is built here directly from lava-nc processes:

- per layer, B copies side by side: one ``LIFReset`` (lava proc/lif/process.py; fixed point
  ``PyLifResetModelBitAcc``: du = iDecay − 1 as netx passes it, lava-dl netx/hdf5.py
  ``get_neuron_params``, dv = vDecay, bias_exp 6, vth = vThMant) with ``reset_interval = T`` and
  ``reset_offset = 2 + depth`` — netx's staggered reset, with the DAG depth in place of the index;
- per synaptic input, one ``Sparse`` (block-diagonal B copies, weight_exp 0: the integer weights on
  the even 8-bit grid are used as they are) or, when the shortcut must wait for the longer branch,
  a ``DelaySparse`` with the program's delay (lava proc/sparse/models.py: delay D reaches the
  neuron D + 1 steps later, ≤ 63 on Loihi 2); all synapses of a layer connect to its neurons'
  ``a_in``, and a Lava in-port sums its incoming connections (magma core/model/py/ports.py
  ``PyInPortVectorDense.recv`` reduces them with +): W·a + W·b, the ADD;
- the probes of :mod:`.procs.probes`: every neuron layer's per-neuron counts (``per_neuron``) from
  global step 2 + depth on (the parent computes synops from them for every synapse), the readout's
  summed synaptic input (all of its synapses connected to one probe ``a_in``).

Job files (``job.json`` + ``job.npz``, never pickles): ``job["graph"]["layers"]`` lists per layer
``name, n, depth, readout, vth, du, dv, bias`` and its ``synapses`` (``source`` = layer index or −1
for the input, ``delay``, ``bits`` = the incoming message bits); ``w<i>_<k>_{data,indices,indptr,shape}``
hold one copy's CSR weights and ``bias<i>`` the bias mantissas. This module imports numpy, scipy
and Lava only (it runs in the Lava worker environment); the probe classes are passed in.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

MAX_TAPS = 8  # = procs.probes.MAX_TAPS (not imported here: this file must load without Lava's processes)


def _weights(data: Any, i: int, k: int, copies: int) -> sparse.csr_matrix:
    """B copies of one synapse's CSR weights on the block diagonal (int32; B = 1: the one copy)."""
    p = f"w{i}_{k}_"
    one = sparse.csr_matrix((data[p + "data"].astype(np.int32), data[p + "indices"], data[p + "indptr"]),
                            shape=tuple(int(v) for v in data[p + "shape"]))
    return one if copies == 1 else sparse.block_diag([one] * copies, format="csr", dtype=np.int32)


def batchable(job: dict) -> bool:
    """The graph can be built ``batched``: no synapse with a delay (``DelaySparse`` is 1-D only)."""
    return all(int(syn["delay"]) == 0 for spec in job["graph"]["layers"] for syn in spec["synapses"])


def _synapse(w: sparse.csr_matrix, delay: int, bits: int) -> Any:
    """A Sparse (no delay) or DelaySparse with one delay D for every synapse."""
    from lava.proc.sparse.process import DelaySparse, Sparse

    if delay == 0:
        return Sparse(weights=w, num_message_bits=bits, weight_exp=0, num_weight_bits=8)
    d = w.copy()
    d.data = np.full(d.nnz, int(delay), dtype=int)
    return DelaySparse(weights=w, delays=d, max_delay=int(delay), num_message_bits=bits, weight_exp=0,
                       num_weight_bits=8)


def build(job: dict, data: Any, ctrl_dir: str, probe_cls: type, source_cls: type,
          batched: bool = False) -> tuple[Any, list]:
    """The process graph of ``job`` (B = ``job["copies"]``); returns (the spike source, the probes).

    The input and the chunk count come per run through ``ctrl_dir`` (:mod:`.procs.probes`), so the
    graph is built once and run for many segments (:mod:`.worker`).

    ``batched`` (:func:`batchable` graphs): every process gets the shape ``(n, B)`` — the B copies
    along a trailing axis instead of block-diagonal — and every synapse is a
    :class:`.procs.batched.BatchedSparse` holding one copy of the weights (Lava's sparse model then
    computes W·S for all B samples in one product); binary spikes are declared 1-bit messages there
    (same values, the product branch); the source and every probe are one
    :func:`.procs.probes.Recorder` process (≤ 8 layers: one process woken per step instead of
    L + 1), and the readout layer has no LIF (its neurons never fire and nothing reads them: its
    probe sums the synaptic currents). ``job["chain"]``: the probes are those of the netx chain
    (``job["layers"]``: ``per_neuron`` as asked, synops from ``fanout_<i>``) instead of the DAG's
    per-neuron counts."""
    from lava.proc.lif.process import LIFReset

    B, T = job["copies"], job["T"]
    chain = bool(job.get("chain"))
    n_in = int(job["n_in"]) * B
    layers = job["graph"]["layers"]
    taps = []  # each layer's probe parameters
    for i, spec in enumerate(layers):
        shape = (int(spec["n"]), B) if batched else (int(spec["n"]) * B,)
        tap = dict(shape=shape, first=2 + int(spec["depth"]), period=T, index=i,
                   fault=job["fault"] if i == 0 else "", heartbeat=i == 0, batched=batched)
        if spec["readout"]:
            tap.update(mode="current", fanout=None)
        elif chain:
            fan = data[f"fanout_{i + 1}"] if f"fanout_{i + 1}" in data else None
            tap.update(mode="spikes", fanout=fan, per_neuron=bool(job["layers"][i].get("per_neuron")))
        else:
            tap.update(mode="spikes", fanout=None, per_neuron=True)
        taps.append(tap)
    if batched and len(taps) <= MAX_TAPS:  # source and probes in one process (procs.probes.Recorder)
        from neurodeploy.targets.loihi.lava.procs.probes import Recorder

        rec = Recorder(n_in, ctrl_dir, B, taps)
        src, ports, probes = rec, [rec.tap(i) for i in range(len(taps))], [rec] * len(taps)
    else:
        src = source_cls(n_in, ctrl_dir, copies=B) if batched else source_cls(n_in, ctrl_dir)
        probes = [probe_cls(copies=B, ctrl_dir=ctrl_dir, **tap) for tap in taps]
        ports = [p.a_in for p in probes]
    neurons: list = []
    for i, spec in enumerate(layers):
        n = int(spec["n"]) * B
        lif = None
        # batched: no LIF for the readout — its neurons never fire (vth = VTH_MAX) and nothing reads
        # them; its probe sums the synaptic currents themselves (below)
        if not (batched and spec["readout"]):
            bias = np.tile(data[f"bias{i}"].astype(np.int32), B) if spec["bias"] else np.zeros(n, np.int32)
            if batched:
                bias = np.ascontiguousarray(bias.reshape(B, -1).T)  # column b = copy b
            lif = LIFReset(shape=taps[i]["shape"], du=int(spec["du"]), dv=int(spec["dv"]), vth=int(spec["vth"]),
                           bias_mant=bias, bias_exp=6, reset_interval=T, reset_offset=2 + int(spec["depth"]))
        if not spec["readout"]:
            lif.s_out.connect(ports[i])
        for k, syn in enumerate(spec["synapses"]):
            if batched:
                from neurodeploy.targets.loihi.lava.procs.batched import BatchedSparse

                conn = BatchedSparse(weights=_weights(data, i, k, 1), copies=B, num_message_bits=max(1, int(syn["bits"])),
                                     weight_exp=0, num_weight_bits=8)
            else:
                conn = _synapse(_weights(data, i, k, B), int(syn["delay"]), int(syn["bits"]))
            pre = src.s_out if syn["source"] < 0 else neurons[syn["source"]].s_out
            pre.connect(conn.s_in)
            if lif is not None:
                conn.a_out.connect(lif.a_in)  # several connections into one a_in are summed (the ADD)
            if spec["readout"]:
                conn.a_out.connect(ports[i])  # the readout's v[T]/2^6 = Σ_t of these summed currents
        neurons.append(lif)
    return src, probes
