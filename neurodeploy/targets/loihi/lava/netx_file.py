"""Write a lowered Loihi program as a lava-dl netx HDF5 file, with plain h5py.

Layout read by ``lava.lib.dl.netx.hdf5.Network``: ``layer/<i>/{type, shape, weight, neuron/...}``.
Every layer is written as ``dense`` (convolutions unrolled to their integer matrices): Lava's CPU
Conv loops over channel pairs and is slow, while sparse dense layers run fast. ``copies = B`` puts
B independent copies of the network side by side (block-diagonal weights), so one Lava run
simulates B samples at once; only the diagonal blocks are stored (chunked, compressed HDF5). A
layer with a recurrent matrix is written as ``dense_rec`` with ``weight_rec`` (lava-dl netx
hdf5.py ``create_dense(rec=True)``: one weight grid for the hstack of both, blocks/process.py
``RecurrentDense``: the neuron's spikes reach its own input through a Dense, one step later).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..lowering import VTH_MAX, LoihiProgram


def _s10(txt: str) -> np.ndarray:
    return np.array([txt.encode("ascii")], dtype="S10")


def _block_diagonal(g: h5py.Group, key: str, m: np.ndarray, B: int) -> None:
    """``g[key]``: B copies of the integer matrix ``m`` on the diagonal (chunked; off-diagonal chunks unwritten)."""
    o, n = m.shape
    ds = g.create_dataset(key, shape=(o * B, n * B), dtype="int16", chunks=(min(o, 1024), min(n, 1024)),
                          compression="gzip", compression_opts=1, fillvalue=0)
    for b in range(B):
        ds[b * o:(b + 1) * o, b * n:(b + 1) * n] = m.astype(np.int16)


def write_netx(program: LoihiProgram, path: str | Path, copies: int = 1, message_bits: int = 0) -> Path:
    """Write ``program`` (B = ``copies`` block-diagonal copies) to a netx HDF5 file; returns the path.

    ``message_bits = 1`` marks the CUBA neurons' spikes as 1-bit graded messages: the values are the
    same 0/1, but Lava's CPU synapses then use a sparse matrix-vector product instead of slicing
    the weight matrix's columns at every step (several times faster). The runner's patched netx
    reader understands the ``messageBits`` field.
    """
    path = Path(path)
    B = int(copies)
    with h5py.File(path, "w") as f:
        root = f.create_group("layer")
        for i, layer in enumerate(program.layers):
            m = layer.matrix()
            o, n = m.shape
            g = root.create_group(str(i))
            g.create_dataset("type", data=_s10("dense" if layer.recurrent is None else "dense_rec"))
            g.create_dataset("shape", data=np.array([o * B]))
            _block_diagonal(g, "weight", m, B)
            if layer.recurrent is not None:  # netx RecurrentDense: s_out -> Dense(weight_rec) -> a_in (1 step delay)
                _block_diagonal(g, "weight_rec", layer.recurrent, B)
            if layer.bias is not None:
                g.create_dataset("bias", data=np.tile(layer.bias.astype(np.int64), B))
            nr = g.create_group("neuron")
            nr.create_dataset("type", data="CUBA")
            nr.create_dataset("iDecay", data=int(layer.i_decay))
            nr.create_dataset("vDecay", data=int(layer.v_decay))
            nr.create_dataset("vThMant", data=int(VTH_MAX if layer.readout else layer.vth))
            nr.create_dataset("refDelay", data=1)
            nr.create_dataset("gradedSpike", data=False)
            if message_bits and not layer.readout:
                nr.create_dataset("messageBits", data=int(message_bits))
        f.attrs["producer"] = "neurodeploy"
        f.attrs["copies"] = B
        f.attrs["layer_names"] = ",".join(layer.name for layer in program.layers)
    return path


def graph_job(program: LoihiProgram, message_bits: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """A residual (DAG) program as the job of :mod:`.graph_builder` (netx cannot describe an ADD).

    Returns ``(spec, arrays)``: ``spec["layers"]`` per layer (name, n, depth, readout, vth, du =
    iDecay − 1, dv = vDecay, bias, synapses with source index / −1 = input, delay and incoming
    message bits), ``arrays`` one copy's CSR weights ``w<i>_<k>_*`` and biases ``bias<i>`` (npz).
    ``message_bits = 1`` declares hidden spikes as 1-bit messages (a sparse W·s on Lava's CPU).
    """
    from scipy import sparse

    index = {layer.name: i for i, layer in enumerate(program.layers)}
    layers, arrays = [], {}
    for i, layer in enumerate(program.layers):
        syns = []
        for k, syn in enumerate(layer.synapses()):
            m = sparse.csr_matrix(syn.matrix())
            for key, v in (("data", m.data), ("indices", m.indices), ("indptr", m.indptr),
                           ("shape", np.array(m.shape))):
                arrays[f"w{i}_{k}_{key}"] = np.asarray(v)
            src = -1 if syn.input_neuron is None else index[syn.input_neuron]
            syns.append({"source": src, "delay": int(syn.delay),
                         "bits": int(program.input_message_bits if src < 0 else message_bits)})
        if layer.bias is not None:
            arrays[f"bias{i}"] = layer.bias.astype(np.int64)
        layers.append({"name": layer.name, "n": layer.n_out, "depth": int(layer.depth), "readout": layer.readout,
                       "vth": int(VTH_MAX if layer.readout else layer.vth), "du": int(layer.i_decay) - 1,
                       "dv": int(layer.v_decay), "bias": layer.bias is not None, "synapses": syns})
    return {"layers": layers}, arrays
