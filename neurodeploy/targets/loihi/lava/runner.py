"""The child process that runs one Lava simulation, in the Lava worker environment (Python 3.10).

Started by :mod:`.target` as ``WORKER_PYTHON .../neurodeploy/targets/loihi/lava/runner.py JOB_DIR``
(by file path, not ``-m``: the worker environment holds only lava-nc, lava-dl, numpy, scipy and
h5py, and ``-m`` would execute ``neurodeploy/__init__`` and ``targets/__init__``, which import
torch). :func:`worker_imports` registers the packages this process needs without executing their
``__init__``; the files it runs (this one, :mod:`.child`, :mod:`.procs`, ``neurodeploy/errors.py``)
import only the standard library, numpy, scipy, h5py and Lava, and stay Python 3.10 code.

It reads ``JOB_DIR/job.json`` and ``JOB_DIR/job.npz`` (written by :mod:`.target`), loads the netx
file with ``netx.hdf5.Network(reset_interval=T, reset_offset=1, sparse_fc_layer=True)``, feeds all
samples back to back from a :class:`SpikeSource`, attaches a :class:`LayerProbe` to every layer
(the readout's probe listens to its synaptic input), runs ``Loihi2SimCfg(select_tag='fixed_pt')``
and always stops the runtime. The probes write ``probe_<i>.npz``; this process writes
``result.json`` and leaves with ``os._exit`` so no Lava atexit hook can hang it. Lava is imported
here only (importing it sets the multiprocessing start method). No pickle crosses the boundary:
JSON, npz (``allow_pickle`` off) and HDF5 only.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import types
import warnings
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parents[3]  # the neurodeploy package folder (this file: neurodeploy/targets/loihi/lava/)


def _register_package(name: str, path: Path) -> None:
    """Put package ``name`` (folder ``path``) in ``sys.modules`` without executing its ``__init__``;
    its submodules import as usual from ``path``."""
    if name in sys.modules:
        return
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(path)]
    mod = importlib.util.module_from_spec(spec)
    mod.__path__ = [str(path)]
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, mod)  # as the import system does for a submodule


def _rf_params_unavailable(device_params):  # noqa: ANN001, ANN202 - netx's signature
    """netx's ``neuron_params`` for RF layers: refused (an RF layer is a network this target cannot run)."""
    from neurodeploy.errors import UnsupportedLayerError  # importable once worker_imports() ran

    raise UnsupportedLayerError("netx RF neurons need lava-dl's slayer (torch), which the Lava worker environment "
                                "does not hold; neurodeploy writes CUBA neurons only (netx_file.py)")


def worker_imports() -> None:
    """Make ``neurodeploy.targets.loihi.lava.*`` and ``lava.lib.dl.netx.hdf5`` importable without torch.

    - ``neurodeploy``, ``neurodeploy.targets``, ``.loihi`` and ``.lava``: registered without their
      ``__init__`` (those import torch, nir and the target registry); the modules used here are
      plain files.
    - ``lava.lib.dl.netx``: lava-dl 0.6.0 ``lava/lib/dl/netx/__init__.py:7`` imports
      ``sequential_modules`` (torch) for ``netx.modules``, which is not used here; the package is
      registered without its ``__init__`` and ``netx.hdf5`` / ``utils`` / ``blocks`` load from
      their files (they import numpy, scipy, h5py and lava-nc).
    - ``netx/hdf5.py:19`` imports ``neuron_params`` from ``lava.lib.dl.slayer.neuron.rf`` (slayer is
      torch through and through); it is called only for RF neurons (``hdf5.py:194``), which
      neurodeploy never writes. A stand-in module gives a ``neuron_params`` that raises with that
      reason, so nothing of slayer is imported and an RF layer cannot pass silently.
    """
    if str(Path(__file__).resolve().parent) == str(Path(sys.path[0]).resolve()):
        sys.path.pop(0)  # started by path: this folder is not a top-level import location
    here = _PKG_DIR
    for name, sub in (("neurodeploy", ""), ("neurodeploy.targets", "targets"),
                      ("neurodeploy.targets.loihi", "targets/loihi"),
                      ("neurodeploy.targets.loihi.lava", "targets/loihi/lava")):
        _register_package(name, here / sub)
    try:
        dl = importlib.import_module("lava.lib.dl")  # a namespace package: no code runs
    except ImportError:
        dl = None
    netx_dir = next((Path(p) / "netx" for p in getattr(dl, "__path__", []) if (Path(p) / "netx").is_dir()), None)
    if netx_dir is None:
        raise ModuleNotFoundError("lava-dl's netx is not installed in this worker environment "
                                  "(requirements/lava-worker.txt)")
    _register_package("lava.lib.dl.netx", netx_dir)
    # Lava's compiler looks for process models in every module of the package that defines a
    # Process (lava-nc 0.10.0 lava/magma/compiler/compiler_graphs.py:848-868, import_module without a
    # guard): netx.hdf5.Network makes it import lava.lib.dl.netx.sequential_modules (torch). This
    # stand-in answers that import (the file defines no Process and no process model); the compiler's
    # second, guarded pass over the folder (:872-898) then fails on the file's torch import and
    # warns "Cannot import module", which is silenced for that file only.
    seq = types.ModuleType("lava.lib.dl.netx.sequential_modules", "not loaded: it needs torch (runner.worker_imports)")
    seq.__file__ = str(netx_dir / "sequential_modules.py")
    sys.modules.setdefault(seq.__name__, seq)
    warnings.filterwarnings("ignore", message=r"Cannot import module .*sequential_modules")
    if "lava.lib.dl.slayer.neuron.rf" not in sys.modules:
        for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron"):
            stand_in = types.ModuleType(name)
            stand_in.__path__ = []  # nothing else of slayer is importable here
            sys.modules[name] = stand_in
        rf = types.ModuleType("lava.lib.dl.slayer.neuron.rf")
        rf.neuron_params = _rf_params_unavailable
        sys.modules[rf.__name__] = rf


def sparse_netx_reader() -> None:
    """Make netx keep 2-D weights sparse (value-identical; stock netx densifies them as int64).

    netx reads every weight with ``h5py[...][()].astype(int)`` and runs ``optimize_weight_bits`` on
    the dense matrix, then converts it to CSR for ``sparse_fc_layer=True``. With B block-diagonal
    copies that is B² times the matrix (minutes and gigabytes). Here the weight is read by row
    blocks into CSR, and ``optimize_weight_bits`` computes the same scale, exponent, bit count and
    sign mode from the non-zero entries (plus the implicit zeros).
    """
    import numpy as np
    from lava.lib.dl.netx import hdf5 as nx_hdf5
    from lava.lib.dl.netx import utils as nx_utils
    from scipy import sparse

    orig_get = nx_utils.NetDict.__getitem__
    orig_opt = nx_utils.optimize_weight_bits

    def getitem(self, key):  # noqa: ANN001, ANN202
        # a dense_rec layer keeps stock reading: netx hstacks weight and weight_rec as numpy arrays
        if key == "weight" and key in self.f and self.f[key].ndim == 2 and "weight_rec" not in self.f:
            return _read_sparse(self.f[key])
        if key == "messageBits" and key in self.f:  # stock NetDict would wrap the dataset
            return int(self.f[key][()])
        return orig_get(self, key)

    def _read_sparse(ds):  # noqa: ANN001, ANN202
        rows, cols, vals = [], [], []
        if ds.chunks is not None:  # only the chunks that were written (the rest is the fill value 0)
            for i in range(ds.id.get_num_chunks()):
                r0, c0 = ds.id.get_chunk_info(i).chunk_offset
                blk = ds[r0:r0 + ds.chunks[0], c0:c0 + ds.chunks[1]].astype(np.int64)
                r, c = np.nonzero(blk)
                rows.append(r + r0)
                cols.append(c + c0)
                vals.append(blk[r, c])
        else:
            step = max(1, (1 << 24) // max(1, ds.shape[1]))
            for r0 in range(0, ds.shape[0], step):
                blk = ds[r0:r0 + step].astype(np.int64)
                r, c = np.nonzero(blk)
                rows.append(r + r0)
                cols.append(c)
                vals.append(blk[r, c])
        cat = (lambda a: np.concatenate(a) if a else np.zeros(0, np.int64))  # noqa: E731
        return sparse.csr_matrix((cat(vals), (cat(rows), cat(cols))), shape=ds.shape)

    def optimize(weight):  # noqa: ANN001, ANN202
        if not sparse.issparse(weight):
            return orig_opt(weight)
        w = weight.tocsr().astype(np.int64)
        w.sum_duplicates()
        data = w.data
        has_zero = w.nnz < w.shape[0] * w.shape[1]
        vals = np.concatenate([data, [0]]) if has_zero or not data.size else data
        max_weight, min_weight = vals.max(), vals.min()
        if (max_weight > 254 and min_weight < 0) or (min_weight < -256 and max_weight > 0):
            data = np.clip(data, -256, 254)
            vals = np.clip(vals, -256, 254)
            max_weight, min_weight = vals.max(), vals.min()
        if max_weight < 0:
            sign_mode, is_signed, scale = nx_utils.SYNAPSE_SIGN_MODE.INHIBITORY, 0, -256 / min_weight
        elif min_weight >= 0:
            sign_mode, is_signed, scale = nx_utils.SYNAPSE_SIGN_MODE.EXCITATORY, 0, 255 / max_weight
        else:
            sign_mode, is_signed = nx_utils.SYNAPSE_SIGN_MODE.MIXED, 1
            scale = np.min([127 / max_weight, -128 / min_weight])
        scale_bits = np.floor(np.log2(scale)) + is_signed
        n = 8
        while n > 0 and np.sum(np.abs(data / (2 ** n) - np.round(data / (2 ** n)))) != 0:
            n -= 1
        n -= is_signed
        num_weight_bits = 8 - scale_bits - n
        w.data = np.left_shift(data.astype(np.int32), int(scale_bits)).astype(int)
        return w, int(num_weight_bits), int(-scale_bits), sign_mode

    nx_utils.NetDict.__getitem__ = getitem
    nx_hdf5.optimize_weight_bits = optimize


def main(job_dir: str) -> int:
    job_dir_p = Path(job_dir)
    job = json.loads((job_dir_p / "job.json").read_text())
    import numpy as np

    data = np.load(job_dir_p / "job.npz", allow_pickle=False)
    t0 = time.time()
    worker_imports()
    import lava.lib.dl.netx.hdf5  # noqa: F401 - netx's package without its __init__ (worker_imports)
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from neurodeploy.targets.loihi.lava.procs.probes import LayerProbe, SpikeSource

    if job.get("sparse_reader", True):
        sparse_netx_reader()
    t_import = time.time() - t0
    if job.get("graph"):  # a residual (DAG) program: a Lava process graph instead of netx (graph_builder)
        return _run_graph(job, data, job_dir_p, t0, t_import, (LayerProbe, SpikeSource))

    net = netx.hdf5.Network(net_config=job["netx"], reset_interval=job["T"], reset_offset=1,
                            sparse_fc_layer=True, input_message_bits=job["input_message_bits"])
    t_netx = time.time() - t0 - t_import
    src = SpikeSource(data["input"])
    src.s_out.connect(net.inp)
    probes = []
    L = len(net.layers)
    for i, spec in enumerate(job["layers"]):
        layer = net.layers[i]
        common = dict(copies=job["copies"], first=2 + i, period=job["T"], chunks=job["chunks"],
                      last_step=job["steps"], fault=job["fault"] if i == 0 else "",
                      heartbeat=str(job_dir_p / "heartbeat") if i == 0 else "")
        if spec["readout"]:
            p = LayerProbe(shape=layer.synapse.a_out.shape, out_path=str(job_dir_p / f"probe_{i}.npz"),
                           mode="current", **common)
            layer.synapse.a_out.connect(p.a_in)
        else:
            fan = data[f"fanout_{i + 1}"] if f"fanout_{i + 1}" in data else None
            p = LayerProbe(shape=layer.out.shape, out_path=str(job_dir_p / f"probe_{i}.npz"), mode="spikes",
                           fanout=fan, raster_chunks=job["raster_chunks"], per_neuron=bool(spec.get("per_neuron")),
                           **common)
            layer.out.connect(p.a_in)
        probes.append(p)
    t_build = time.time() - t0
    t1 = time.time()
    try:
        net.run(condition=RunSteps(num_steps=job["steps"]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    finally:
        net.stop()
    t_run = time.time() - t1
    missing = [i for i in range(L) if not (job_dir_p / f"probe_{i}.npz").exists()]
    result = {"build_s": t_build, "import_s": t_import, "netx_s": t_netx, "run_s": t_run, "layers": L,
              "missing": missing, "start_s": t0 - float(job.get("t_submit", t0))}
    tmp = job_dir_p / "result.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, job_dir_p / "result.json")  # atomic: the parent never reads half a file
    return 0 if not missing else 3


def _run_graph(job: dict, data, job_dir: Path, t0: float, t_import: float, procs: tuple) -> int:  # noqa: ANN001
    """Run a DAG job with :mod:`.graph_builder` (loaded from this folder: it imports numpy and Lava only)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("neurodeploy_lava_graph_builder",
                                                  Path(__file__).with_name("graph_builder.py"))
    gb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gb)
    result = gb.run(job, data, job_dir, *procs)
    n = result["layers"]
    missing = [i for i in range(n) if not (job_dir / f"probe_{i}.npz").exists()]
    result.update({"import_s": t_import, "missing": missing, "start_s": t0 - float(job.get("t_submit", t0))})
    (job_dir / "result.json").write_text(json.dumps(result))
    return 0 if not missing else 3


if __name__ == "__main__":
    worker_imports()
    from neurodeploy.targets.loihi.lava.child import watch_parent

    watch_parent(Path(sys.argv[1]))  # die with the parent, and take the job folder along
    try:
        code = main(sys.argv[1])
    except BaseException as e:  # noqa: BLE001 - reported to the parent through the log and the exit code
        import traceback

        traceback.print_exc()
        print(f"neurodeploy lava runner failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
