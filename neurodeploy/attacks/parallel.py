"""Independent chunks of an attack in several processes, with results that do not depend on how many.

The ensemble (:mod:`.ensemble`) attacks its samples in fixed chunks, each computed from its own
inputs and its own seed, so a chunk gives the same floats in whichever process it runs (all run
with one torch thread). :func:`map_chunks` runs ``fn(i)`` for every chunk index — in the calling
process when ``workers`` is 1, else in ``workers`` processes forked from it (Linux), which inherit the
model and the chunk closure instead of receiving them pickled, and send back only numpy arrays.

The children never outlive the caller: each asks the kernel to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``), a child that dies makes the pool raise (no hang), and the
pool is shut down when the map returns or fails. Without ``fork`` (macOS, Windows) or inside a
child already, the chunks run in the calling process.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import resource
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import torch

_JOB: Callable[[int], Any] | None = None
_IN_CHILD = False
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the workers, once their pool closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _init() -> None:
    global _IN_CHILD
    _IN_CHILD = True
    torch.set_num_threads(1)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() == 1:  # the parent died before the death signal was armed
        os._exit(1)


def _call(i: int) -> Any:
    assert _JOB is not None
    return _JOB(i)


def map_chunks(fn: Callable[[int], Any], n: int, workers: int = 1) -> list[Any]:
    """``[fn(0), ..., fn(n − 1)]``, in ``workers`` forked processes when more than one (see the module).
    ``fn`` must return picklable values (numpy arrays, numbers), never tensors."""
    workers = min(int(workers), n)
    if workers <= 1 or _IN_CHILD or "fork" not in mp.get_all_start_methods():
        return [fn(i) for i in range(n)]
    global _JOB
    _JOB = fn
    try:
        with warnings.catch_warnings():
            # the children only compute and pickle numpy arrays: no lock another thread may hold is needed
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init) as pool:
                return list(pool.map(_call, range(n)))
    finally:
        _JOB = None


__all__ = ["cpu_seconds", "map_chunks", "usable_cores"]
