"""Keep freed tensor memory in the process instead of handing it back to the OS after every use.

PyTorch's CPU allocator takes each tensor from glibc's ``malloc`` (c10/core/impl/alloc_cpu.cpp
``alloc_cpu``: ``posix_memalign``) and frees it when the tensor dies. glibc serves blocks above its
mmap threshold with a fresh ``mmap`` and unmaps them on ``free``; smaller ones come from the heap,
whose free top is trimmed back to the OS above the trim threshold (``M_TRIM_THRESHOLD``, 128 KiB
by default; the mmap threshold grows dynamically up to 32 MiB). A spiking network's forward and
backward allocate and drop tensors of a few MiB at every layer and time step, so each pass writes
into fresh pages: every 4 KiB page is a page fault and a zeroing in the kernel. Measured here
(2 cores, 1 torch thread, the demo's digits SNN, one batched 13-lane attack gradient of 247 rows,
:mod:`neurodeploy.attacks.lanes`): 142–188 ms per pass with glibc's defaults, 96–115 ms with the
settings below — the same floats, only the page faults gone.

:func:`keep_freed_memory` sets ``M_MMAP_THRESHOLD`` to glibc's maximum (32 MiB on 64-bit: blocks up
to that size come from the heap, and fixing it turns off the dynamic threshold) and
``M_TRIM_THRESHOLD`` to 1 GiB (the heap keeps up to that much freed memory for reuse). Peak memory
is unchanged; what a process holds after its peak may stay higher. ``import neurodeploy`` calls it
(the command line, its child processes, a user's script); ``NEURODEPLOY_MALLOC=default`` set before
the import leaves glibc alone. On a libc
without ``mallopt`` (musl, macOS) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit (4 * 1024 * 1024 * sizeof(long))
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; True when glibc accepted them."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("NEURODEPLOY_MALLOC", "").lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


__all__ = ["keep_freed_memory"]
