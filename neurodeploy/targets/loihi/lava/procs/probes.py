"""A spike source and a per-sample probe, as small Lava processes (fixed-point CPU models).

``SpikeSource`` sends column τ − 1 of an int32 array at global step τ (binary or graded spikes) and
zeros after its end. ``LayerProbe`` listens to one layer and keeps, per sample (chunk k, copy b):
the spike count Σ_t Σ_n s, the synaptic operations Σ_n fanout_n · Σ_t s_n, optionally the spike
count per neuron (``per_neuron``: the 'count' readout of a spiking last layer) and the full raster; or, in ``current`` mode, the sum over the window of the received synaptic input (the
voltage of a non-firing readout neuron, divided by 2^6). Sample k of a layer occupies the global
steps [first + k·T, first + (k+1)·T). At the last step it writes everything to ``out_path``
(``np.savez``), which avoids reading Lava Vars back value by value. With ``heartbeat`` set, it
writes the current step to that file every 8 steps, so the parent can tell a stalled runtime from
a slow one.
"""
from __future__ import annotations

import os
import signal

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeSource(AbstractProcess):
    """Sends ``data[:, τ − 1]`` (int32, shape [n, steps]) at step τ; zeros after the end."""

    def __init__(self, data: np.ndarray) -> None:
        super().__init__(shape=(data.shape[0],))
        self.s_out = OutPort(shape=(data.shape[0],))
        self.data = Var(shape=data.shape, init=data.astype(np.int32))


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    data: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        i = self.time_step - 1
        if i < self.data.shape[1]:
            self.s_out.send(self.data[:, i])
        else:
            self.s_out.send(np.zeros(self.data.shape[0], dtype=np.int32))


class LayerProbe(AbstractProcess):
    """Per-sample counts of one layer (see the module docstring for the parameters)."""

    def __init__(self, shape: tuple[int], copies: int, first: int, period: int, chunks: int, last_step: int,
                 out_path: str, mode: str = "spikes", fanout: np.ndarray | None = None, raster_chunks: int = 0,
                 fault: str = "", heartbeat: str = "", per_neuron: bool = False) -> None:
        super().__init__(shape=shape, copies=copies, first=first, period=period, chunks=chunks, last_step=last_step,
                         out_path=out_path, mode=mode, fanout=fanout, raster_chunks=raster_chunks, fault=fault,
                         heartbeat=heartbeat, per_neuron=per_neuron)
        self.a_in = InPort(shape=shape)


@implements(proc=LayerProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLayerProbeModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:  # noqa: ANN001
        super().__init__(proc_params)
        p = self.proc_params
        self.B, self.first, self.T = int(p["copies"]), int(p["first"]), int(p["period"])
        self.K, self.last, self.out_path = int(p["chunks"]), int(p["last_step"]), str(p["out_path"])
        self.mode, self.fault, self.heartbeat = str(p["mode"]), str(p["fault"]), str(p["heartbeat"])
        self.n = int(np.prod(p["shape"])) // self.B
        fan = p["fanout"]
        self.fanout = None if fan is None else np.asarray(fan, dtype=np.float64).reshape(self.n)
        self.counts = np.zeros((self.K, self.B), dtype=np.int64)
        self.synops = np.zeros((self.K, self.B), dtype=np.float64)
        per_neuron = self.mode == "current" or bool(p.get("per_neuron", False))
        self.acc = np.zeros((self.K, self.B, self.n), dtype=np.int64) if per_neuron else None
        self.rk = int(p["raster_chunks"])
        self.raster = np.zeros((self.rk, self.T, self.B, self.n), dtype=bool) if self.rk else None

    def run_spk(self) -> None:
        x = self.a_in.recv()
        tau = self.time_step
        if self.heartbeat and (tau == 1 or tau % 8 == 0):
            with open(self.heartbeat, "w") as f:  # the parent watches this for stalls
                f.write(str(tau))
        if self.fault == "kill" and tau == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dies: Lava's runtime would wait forever
        if self.fault == "raise" and tau == 3:
            raise RuntimeError("fault injected into LayerProbe")
        k, t = divmod(tau - self.first, self.T)
        if 0 <= k < self.K:
            x = x.reshape(self.B, self.n)
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
        if tau == self.last:
            out = {"counts": self.counts, "synops": self.synops}
            if self.acc is not None:
                out["acc"] = self.acc
            if self.raster is not None:
                out["raster"] = np.packbits(self.raster, axis=-1)
            tmp = self.out_path + ".tmp.npz"
            np.savez(tmp, **out)
            os.replace(tmp, self.out_path)
