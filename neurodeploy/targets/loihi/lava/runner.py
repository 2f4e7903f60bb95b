"""The persistent Lava worker process, in the Lava worker environment (Python 3.10).

Started by :mod:`.session` as ``WORKER_PYTHON .../neurodeploy/targets/loihi/lava/runner.py SESSION_DIR``
(by file path, not ``-m``: the worker environment holds only lava-nc, lava-dl, numpy, scipy and
h5py, and ``-m`` would execute ``neurodeploy/__init__`` and ``targets/__init__``, which import
torch). :func:`worker_imports` registers the packages this process needs without executing their
``__init__``; the files it runs (this one, :mod:`.worker`, :mod:`.child`, :mod:`.graph_builder`,
:mod:`.procs`, ``neurodeploy/errors.py``) import only the standard library, numpy, scipy, h5py and
Lava, and stay Python 3.10 code.

:func:`.worker.serve` then imports Lava once and runs the jobs the parent sends (JSON lines on
stdin): a batched graph job (the default, :mod:`.graph_builder` with ``batched``: every process
shaped ``(n, B)``, :mod:`.procs.batched`) is built from lava-nc processes without netx (netx is
imported at the first netx job only); a netx file is loaded with ``netx.hdf5.Network(reset_interval=T, reset_offset=1,
sparse_fc_layer=True)`` through the patched reader of :func:`sparse_netx_reader` (B copies side
by side), fed from a :class:`SpikeSource`, with a :class:`LayerProbe` on every layer (the readout's
probe listens to its synaptic input), under ``Loihi2SimCfg(select_tag='fixed_pt')``; the network
stays built for the next job with the same key. The probes write ``probe_<i>.npz``; the worker
writes ``result.json`` and leaves with ``os._exit`` so no Lava atexit hook can hang it. Lava is
imported here only (importing it sets the multiprocessing start method). No pickle crosses the
boundary: JSON, npy/npz (``allow_pickle`` off) and HDF5 only.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
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


COPIES = {"B": 1}  # B block-diagonal copies the patched reader builds from a one-copy file (sparse_netx_reader)


def _tile_csr(one, copies: int):  # noqa: ANN001, ANN202 - scipy CSR in and out
    """``copies`` copies of the CSR matrix ``one`` on the block diagonal (equal to the matrix a
    B-copy netx file holds, netx_file.write_netx; built in O(B·nnz) without a dense step)."""
    import numpy as np
    from scipy import sparse

    one = one.tocsr()
    one.sum_duplicates()
    if copies == 1:
        return one
    o, n = one.shape
    nnz = one.nnz
    indptr = np.concatenate([one.indptr[:-1] + b * nnz for b in range(copies)] + [[copies * nnz]])
    indices = np.concatenate([one.indices + b * n for b in range(copies)])
    return sparse.csr_matrix((np.tile(one.data, copies), indices, indptr), shape=(o * copies, n * copies))


def sparse_netx_reader() -> None:
    """Make netx keep 2-D weights sparse (value-identical; stock netx densifies them as int64), and
    read a one-copy file as ``COPIES["B"]`` block-diagonal copies. Called by the first netx build
    of the worker (a batched build does not import netx); later calls return at once.

    netx reads every weight with ``h5py[...][()].astype(int)`` and runs ``optimize_weight_bits`` on
    the dense matrix, then converts it to CSR for ``sparse_fc_layer=True``. With B block-diagonal
    copies that is B² times the matrix (minutes and gigabytes). Here the one-copy weight is read by
    row blocks into CSR and tiled B times on the diagonal (``shape`` × B, ``bias`` tiled; a
    ``dense_rec`` layer keeps stock dense reading, tiled with ``np.kron``), and
    ``optimize_weight_bits`` (lava-dl netx/utils.py:80) computes the same scale, exponent, bit count
    and sign mode from the distinct non-zero values (plus the implicit zeros): max, min and the
    power-of-two divisibility test depend on the set of values only.
    """
    if COPIES.get("patched"):
        return  # patched already: a second wrap would tile twice
    COPIES["patched"] = 1
    import numpy as np
    from lava.lib.dl.netx import hdf5 as nx_hdf5
    from lava.lib.dl.netx import utils as nx_utils
    from scipy import sparse

    orig_get = nx_utils.NetDict.__getitem__
    orig_opt = nx_utils.optimize_weight_bits

    def getitem(self, key):  # noqa: ANN001, ANN202
        B = COPIES["B"]
        layer = isinstance(key, str) and "weight" in self.f and key in self.f
        # a dense_rec layer keeps stock reading: netx hstacks weight and weight_rec as numpy arrays
        if layer and key == "weight" and self.f[key].ndim == 2 and "weight_rec" not in self.f:
            return _tile_csr(_read_sparse(self.f[key]), B)
        if layer and B > 1 and key in ("weight", "weight_rec") and self.f[key].ndim == 2:
            w = orig_get(self, key)
            return np.kron(np.eye(B, dtype=w.dtype), w)
        if layer and B > 1 and key == "bias":
            return np.tile(orig_get(self, key), B)
        if layer and B > 1 and key == "shape":
            return orig_get(self, key) * B
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

    def _distinct(data):  # noqa: ANN001, ANN202 - np.unique in O(n) for the small integer range of weights
        if not data.size:
            return data
        lo, hi = int(data.min()), int(data.max())
        if hi - lo > 1 << 20:
            return np.unique(data)
        return np.flatnonzero(np.bincount(data - lo)) + lo

    def optimize(weight):  # noqa: ANN001, ANN202
        if not sparse.issparse(weight):
            return orig_opt(weight)
        w = weight.tocsr().astype(np.int64)
        w.sum_duplicates()
        data = w.data
        has_zero = w.nnz < w.shape[0] * w.shape[1]
        u = _distinct(data)  # the statistics below depend on the distinct values only
        vals = np.concatenate([u, [0]]) if has_zero or not u.size else u
        max_weight, min_weight = vals.max(), vals.min()
        if (max_weight > 254 and min_weight < 0) or (min_weight < -256 and max_weight > 0):
            data, u = np.clip(data, -256, 254), np.clip(u, -256, 254)
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
        while n > 0 and np.sum(np.abs(u / (2 ** n) - np.round(u / (2 ** n)))) != 0:
            n -= 1
        n -= is_signed
        num_weight_bits = 8 - scale_bits - n
        w.data = np.left_shift(data.astype(np.int32), int(scale_bits)).astype(int)
        return w, int(num_weight_bits), int(-scale_bits), sign_mode

    nx_utils.NetDict.__getitem__ = getitem
    nx_hdf5.optimize_weight_bits = optimize


if __name__ == "__main__":
    worker_imports()
    from neurodeploy.targets.loihi.lava.worker import serve

    sys.stdout.flush()
    os._exit(serve(Path(sys.argv[1]), sys.modules[__name__]))
