"""Reused CPU memory for the training path's large per-step tensors.

A training step on the CPU allocates the same large tensors every step (the fused neuron's potentials,
spikes and input gradient, the dense layers' products and weight gradients, the pools' input
gradients). Above glibc's mmap threshold each one is a fresh mapping whose pages fault in on first
write and are returned to the kernel when freed: measured on this project's 2-core machine (1 thread),
writing a fresh 50 MB tensor 25-34 ms, the same tensor again 4 ms; a VGG5 step (T 6, batch 32) took
~104,000 minor page faults (~400 MB of fresh pages). With this pool: ~70,000 (the rest are ATen's own
convolution buffers); in one process alternating steps with and without it (and pool.py's backward; load ~4) CPU time
per step VGG5 2249 → 2039 ms, digits 14.6 → 11.3 ms, the weights after the steps bit-identical.
The pool then holds ~550 MB on VGG5 (memory the step has in use at its peak anyway).

:func:`empty` hands out views of storages it keeps. A storage is given out again only when nobody else
holds it any more: its use count (``torch._C._storage_Use_Count``: one for the pool's own reference,
one for every tensor viewing it, including tensors saved by autograd and parameter gradients) is 1.
So a buffer lives exactly as long as a fresh tensor would; only its pages are kept. The contents of a
reused buffer are whatever was last written: callers overwrite every element (as with ``torch.empty``).

Only CPU tensors of at least ``MIN_BYTES``; the pool keeps at most ``MAX_BYTES`` (least recently used
free storages are dropped first); :func:`clear` releases everything. Where the use count is not
available (another torch), :func:`empty` is ``torch.empty``.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import torch

MIN_BYTES = 1 << 20
MAX_BYTES = 4 << 30

_use_count = getattr(torch._C, "_storage_Use_Count", None)
_lock = threading.Lock()
_pool: "OrderedDict[int, list[torch.UntypedStorage]]" = OrderedDict()  # bytes -> storages, LRU order
_held = 0  # bytes held by the pool


def _free(st: torch.UntypedStorage) -> bool:
    return _use_count(st._cdata) == 1  # only the pool's reference


def _view(st: torch.UntypedStorage, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= d
    return torch.empty(0, dtype=dtype).set_(st, 0, shape, tuple(reversed(stride)))


def _evict(need: int) -> None:
    """Drop free storages, least recently used sizes first, until ``need`` more bytes fit."""
    global _held
    for key in list(_pool):
        if _held + need <= MAX_BYTES:
            return
        keep = []
        for st in _pool[key]:
            if _held + need > MAX_BYTES and _free(st):
                _held -= key
            else:
                keep.append(st)
        if keep:
            _pool[key] = keep
        else:
            del _pool[key]


def empty(shape, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype, device=device)`` (contiguous), on the CPU from reused memory."""
    global _held
    shape = tuple(int(s) for s in shape)
    dev = torch.device("cpu") if device is None else torch.device(device)
    nbytes = math.prod(shape) * dtype.itemsize
    if dev.type != "cpu" or nbytes < MIN_BYTES or _use_count is None:
        return torch.empty(shape, dtype=dtype, device=dev)
    with _lock:
        lst = _pool.get(nbytes)
        if lst is not None:
            _pool.move_to_end(nbytes)
            for st in lst:
                if _free(st):
                    return _view(st, shape, dtype)
        if _held + nbytes > MAX_BYTES:
            _evict(nbytes)
            if _held + nbytes > MAX_BYTES:
                return torch.empty(shape, dtype=dtype)
        st = torch.empty(nbytes, dtype=torch.uint8).untyped_storage()
        _pool.setdefault(nbytes, []).append(st)
        _pool.move_to_end(nbytes)
        _held += nbytes
        return _view(st, shape, dtype)


def empty_like(t: torch.Tensor) -> torch.Tensor:
    """A contiguous :func:`empty` of ``t``'s shape, dtype and device."""
    return empty(t.shape, t.dtype, t.device)


def held_bytes() -> int:
    """Bytes the pool holds (in use or free)."""
    return _held


def clear() -> None:
    """Forget every pooled storage (those still in use stay alive with their tensors)."""
    global _held
    with _lock:
        _pool.clear()
        _held = 0
