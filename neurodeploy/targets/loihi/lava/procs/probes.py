"""A spike source and a per-sample probe, as small Lava processes (fixed-point CPU models), and
both roles for several layers in one process (:func:`Recorder`, used by the batched build).

Both serve a network that stays built across runs (:mod:`..worker`): every ``net.run`` is one
*segment* of global steps, described by ``<ctrl_dir>/seg_<τ>.json`` which the worker writes before
the run whose first step is τ (``{"t0", "end", "chunks", "raster_chunks", "out", "input"}``). A
process reads it at that step and holds it until the segment's ``end``; the next run's first step
is ``end + 1``. The input column 0 is sent at global step ``t0`` (≡ 1 mod T, so netx's periodic
reset, lava proc/lif/models.py:373 ``time_step % reset_interval == reset_offset``, falls on the
sample boundaries exactly as in a fresh network whose first step is 1).

``SpikeSource`` sends column τ − t0 of the segment's int32 input ``[n, K·T]`` (binary or graded
spikes) and zeros outside it. ``LayerProbe`` listens to one layer and keeps, per sample (chunk k,
copy b): the spike count Σ_t Σ_n s, the synaptic operations Σ_n fanout_n · Σ_t s_n, optionally the
spike count per neuron (``per_neuron``: the 'count' readout of a spiking last layer, DAG layers)
and the full raster; or, in ``current`` mode, the sum over the window of the received synaptic
input (the voltage of a non-firing readout neuron, divided by 2^6). Sample k of a layer occupies
the global steps [t0 − 1 + first + k·T, … + T). At the segment's last step it writes everything to
``<out>/probe_<index>.npz`` (one file, no Lava Var read back value by value). With ``heartbeat``
set, it writes the global step to ``<ctrl_dir>/heartbeat`` at a run's first step and every 8
steps, so the parent can tell a stalled runtime from a slow one.
"""
from __future__ import annotations

import json
import os
import signal

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


def read_segment(ctrl_dir: str, tau: int) -> dict:
    """The segment that starts at global step ``tau`` (written by the worker before the run)."""
    with open(os.path.join(ctrl_dir, f"seg_{tau}.json")) as f:
        return json.load(f)


class _Source:
    """What a spike source does per step (:class:`SpikeSource`, :class:`Recorder`)."""

    def __init__(self, n: int, ctrl: str, copies: int) -> None:
        self.n, self.ctrl, self.B = n, ctrl, copies
        self.shape = (n // copies, copies) if copies else (n,)
        self.next_start, self.t0, self.data = 1, 1, np.zeros((0, *self.shape), dtype=np.int32)
        self.zeros = np.zeros(self.shape, dtype=np.int32)

    def column(self, tau: int) -> np.ndarray:
        if tau == self.next_start:
            seg = read_segment(self.ctrl, tau)
            self.t0, self.next_start = int(seg["t0"]), int(seg["end"]) + 1
            data = np.load(seg["input"], allow_pickle=False).astype(np.int32)  # [B·n_in, K·T], rows b·n_in + i
            if self.B:  # step τ's column as (n_in, B): sample b in column b
                data = data.reshape(self.B, self.n // self.B, -1).transpose(2, 1, 0)
            else:
                data = data.T
            self.data = np.ascontiguousarray(data)
        i = tau - self.t0
        return self.data[i] if 0 <= i < self.data.shape[0] else self.zeros


class _Probe:
    """What a layer probe does per step (:class:`LayerProbe`, :class:`Recorder`); ``p`` its parameters."""

    def __init__(self, p: dict) -> None:
        self.B, self.first, self.T = int(p["copies"]), int(p["first"]), int(p["period"])
        self.ctrl, self.index = str(p["ctrl_dir"]), int(p["index"])
        self.mode, self.fault, self.heartbeat = str(p["mode"]), str(p["fault"]), bool(p["heartbeat"])
        self.n = int(np.prod(p["shape"])) // self.B
        fan = p["fanout"]
        self.fanout = None if fan is None else np.asarray(fan, dtype=np.float64).reshape(self.n)
        self.per_neuron = self.mode == "current" or bool(p.get("per_neuron", False))
        self.batched = bool(p.get("batched", False))  # a_in is (n, B) instead of (B·n,)
        self.next_start, self.seg = 1, None

    def _start(self, tau: int) -> None:
        seg = self.seg = read_segment(self.ctrl, tau)
        self.start, self.t0, self.end = tau, int(seg["t0"]), int(seg["end"])
        self.next_start = self.end + 1
        self.K, self.rk = int(seg["chunks"]), int(seg["raster_chunks"])
        self.counts = np.zeros((self.K, self.B), dtype=np.int64)
        self.synops = np.zeros((self.K, self.B), dtype=np.float64)
        self.acc = np.zeros((self.K, self.B, self.n), dtype=np.int64) if self.per_neuron else None
        self.raster = np.zeros((self.rk, self.T, self.B, self.n), dtype=bool) if self.rk else None

    def step(self, tau: int, x: np.ndarray) -> None:
        if tau == self.next_start:
            self._start(tau)
        if self.heartbeat and (tau == self.start or tau % 8 == 0):
            with open(os.path.join(self.ctrl, "heartbeat"), "w") as f:  # the parent watches this for stalls
                f.write(str(tau))
        if self.fault == "kill" and tau == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dies: Lava's runtime would wait forever
        if self.fault == "raise" and tau == 3:
            raise RuntimeError("fault injected into LayerProbe")
        k, t = divmod(tau - self.t0 + 1 - self.first, self.T)
        if 0 <= k < self.K:
            x = x.T if self.batched else x.reshape(self.B, self.n)
            if self.mode == "current":
                self.acc[k] += x
            else:
                nz = x != 0
                if self.acc is not None:
                    self.acc[k] += nz
                self.counts[k] += nz.sum(1)
                if self.fanout is not None:
                    self.synops[k] += nz @ self.fanout
                if k < self.rk:
                    self.raster[k, t] = nz
        if tau == self.end:
            out = {"counts": self.counts, "synops": self.synops}
            if self.acc is not None:
                out["acc"] = self.acc
            if self.raster is not None:
                out["raster"] = np.packbits(self.raster, axis=-1)
            path = os.path.join(self.seg["out"], f"probe_{self.index}.npz")
            np.savez(path + ".tmp.npz", **out)
            os.replace(path + ".tmp.npz", path)


class SpikeSource(AbstractProcess):
    """Sends the current segment's input column τ − t0 at global step τ (int32, ``n`` values)."""

    def __init__(self, n: int, ctrl_dir: str, copies: int = 0) -> None:
        shape = (n // copies, copies) if copies else (n,)  # copies: the batched layout (n_in, B)
        super().__init__(shape=shape, n=n, ctrl_dir=ctrl_dir, copies=copies)
        self.s_out = OutPort(shape=shape)


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:  # noqa: ANN001
        super().__init__(proc_params)
        p = self.proc_params
        self.src = _Source(int(p["n"]), str(p["ctrl_dir"]), int(p.get("copies", 0)))

    def run_spk(self) -> None:
        self.s_out.send(self.src.column(self.time_step))


class LayerProbe(AbstractProcess):
    """Per-sample counts of one layer (see the module docstring for the parameters)."""

    def __init__(self, shape: tuple[int], copies: int, first: int, period: int, ctrl_dir: str, index: int,
                 mode: str = "spikes", fanout: np.ndarray | None = None, fault: str = "", heartbeat: bool = False,
                 per_neuron: bool = False, batched: bool = False) -> None:
        super().__init__(shape=shape, copies=copies, first=first, period=period, ctrl_dir=ctrl_dir, index=index,
                         mode=mode, fanout=fanout, fault=fault, heartbeat=heartbeat, per_neuron=per_neuron,
                         batched=batched)
        self.a_in = InPort(shape=shape)


@implements(proc=LayerProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLayerProbeModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:  # noqa: ANN001
        super().__init__(proc_params)
        self.probe = _Probe(self.proc_params)

    def run_spk(self) -> None:
        self.probe.step(self.time_step, self.a_in.recv())


MAX_TAPS = 8  # layers a Recorder can listen to


class _Recorder(AbstractProcess):
    """The spike source and the probes of up to :data:`MAX_TAPS` layers in ONE Lava process: one
    process woken per step instead of L + 1 (Lava's runtime service commands and waits for every
    process at every step). ``taps[i]``: :class:`LayerProbe`'s parameters for in-port ``a_in<i>``
    (its ``shape`` included). The source sends first: every synapse sends its buffered output before
    it receives (lava proc/sparse/models.py:96), so nothing within a step waits on this process'
    in-ports before its out-port has sent. One class per tap count (``Recorder1`` … ``Recorder8``,
    made by :func:`Recorder`): Lava's builder wants a port for every LavaPyType of the model
    (magma/compiler/builders/py_builder.py:74-95) and picks the model by the exact process type."""

    def __init__(self, n: int, ctrl_dir: str, copies: int, taps: list[dict]) -> None:
        shape = (n // copies, copies)
        super().__init__(shape=shape, n=n, ctrl_dir=ctrl_dir, copies=copies, taps=taps)
        self.s_out = OutPort(shape=shape)
        for i, tap in enumerate(taps):
            setattr(self, f"a_in{i}", InPort(shape=tuple(tap["shape"])))

    def tap(self, i: int) -> InPort:
        return getattr(self, f"a_in{i}")


class _PyRecorderModel(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:  # noqa: ANN001
        super().__init__(proc_params)
        p = self.proc_params
        B = int(p["copies"])
        self.src = _Source(int(p["n"]), str(p["ctrl_dir"]), B)
        self.probes = [_Probe({"copies": B, "ctrl_dir": str(p["ctrl_dir"]), **tap}) for tap in p["taps"]]
        self.ins: list = []  # the ports, set on the model by Lava's builder after __init__

    def run_spk(self) -> None:
        tau = self.time_step
        if not self.ins:
            self.ins = [getattr(self, f"a_in{i}") for i in range(len(self.probes))]
        self.s_out.send(self.src.column(tau))
        for probe, port in zip(self.probes, self.ins):
            probe.step(tau, port.recv())


_RECORDERS: dict[int, type] = {}
for _k in range(1, MAX_TAPS + 1):
    _proc = type(f"Recorder{_k}", (_Recorder,), {"__module__": __name__})
    _attrs = {"__module__": __name__, "s_out": LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24),
              **{f"a_in{i}": LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) for i in range(_k)}}
    _model = type(f"PyRecorder{_k}Model", (_PyRecorderModel,), _attrs)
    _model.__annotations__ = {name: (PyOutPort if name == "s_out" else PyInPort) for name in _attrs if name[0] != "_"}
    _model = implements(proc=_proc, protocol=LoihiProtocol)(requires(CPU)(tag("fixed_pt")(_model)))
    globals()[_proc.__name__], globals()[_model.__name__] = _proc, _model  # found by Lava's compiler
    _RECORDERS[_k] = _proc


def Recorder(n: int, ctrl_dir: str, copies: int, taps: list[dict]) -> _Recorder:  # noqa: N802 - a process factory
    """A recorder process (:class:`_Recorder`) for ``taps`` (1 … :data:`MAX_TAPS` layers)."""
    if not 1 <= len(taps) <= MAX_TAPS:
        raise ValueError(f"a Recorder takes 1 to {MAX_TAPS} layers, got {len(taps)}")
    return _RECORDERS[len(taps)](n, ctrl_dir, copies, taps)
