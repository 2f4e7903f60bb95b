"""A fused C kernel of Lava's fixed-point CUBA step for ``loihi-emu`` (one pass per neuron and step,
integers only), built once with the system C compiler and loaded through ctypes; without a
compiler (or with ``NEURODEPLOY_NO_C_KERNEL=1``) :mod:`.cuba`'s torch kernels run instead.

Per neuron and step, in int32 (Lava ``PyLifModelBitAcc``, lava/proc/lif/models.py:138-186, and
the reference loop :func:`.emu.cuba` line for line, including its 24-bit wrap of u):

    u ← sgn(u·du)·(|u·du| >> 12) + (a << 6);  u −= 2^24 if u > 2^23;  u += 2^24 if u ≤ −2^23
    v ← sgn(v·dv)·(|v·dv| >> 12) + u + (b << 6), clamped to ±(2^23 − 1)
    s = v > vThMant << 6;  v ← 0 where s

with du = 4096 − iDecay, dv = 4096 − vDecay. The input a is float32 holding integers (exact below
2^24, which the lowering's |a| < 2^17 guarantees; the kernel is used only when |a| < 2^17 holds on
the batch, so a << 6 fits 24 bits and every sum below fits int32: |u|, |v| ≤ 2^23, |b << 6| < 2^19);
the decay product uses the exact split in ``dec`` (no 64-bit multiply, so it vectorises). It also counts the active updates (u ≠ 0 or v ≠ 0) and the steps with v ≥ 2θ.
"""
from __future__ import annotations

import ctypes
import logging

import numpy as np
import torch

from ...ckernel import load
from .program import DECAY_UNITY, LoihiLayer

log = logging.getLogger(__name__)

_SRC = r"""
#include <stdint.h>
#include <stdlib.h>
/* sgn(x*m) * (|x*m| >> 12) in int32 for |x| < 2^25, 0 <= m <= 4096: with |x| = h*4096 + l,
   |x|*m >> 12 = h*m + (l*m >> 12) exactly, and h*m, l*m < 2^25 (no 64-bit product needed) */
static inline int32_t dec(int32_t x, int32_t m) {
    int32_t ax = x < 0 ? -x : x;
    int32_t r = (ax >> 12) * m + (((ax & 4095) * m) >> 12);
    return x < 0 ? -r : r;
}
/* a, s: [T, B, n] float32; bias: [n] int32 or 0; act, over: [B] int64 or 0 */
void cuba(const float *a, const int32_t *bias, int64_t T, int64_t B, int64_t n, int32_t vth,
          int32_t du, int32_t dv, float *s, int64_t *act, int64_t *over) {
    const int32_t U = 1 << 23, th = vth << 6, th2 = 2 * th;
    int32_t *u = calloc(n, sizeof(int32_t)), *v = calloc(n, sizeof(int32_t));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < n; j++) { u[j] = 0; v[j] = 0; }
        int64_t na = 0, no = 0;
        for (int64_t t = 0; t < T; t++) {
            const float *at = a + (t * B + b) * n;
            float *st = s + (t * B + b) * n;
            int32_t ca = 0, co = 0;
            if (du == 0 && dv == 4096) {                   /* IF: no decay, u = a << 6 */
                for (int64_t j = 0; j < n; j++) {
                    int32_t uj = ((int32_t)at[j]) * 64;
                    uj = uj > U ? uj - 2 * U : uj;
                    uj = uj <= -U ? uj + 2 * U : uj;
                    int32_t vj = v[j] + uj + (bias ? bias[j] * 64 : 0);
                    vj = vj > U - 1 ? U - 1 : (vj < -U + 1 ? -U + 1 : vj);
                    ca += (uj != 0) | (vj != 0);
                    co += vj >= th2;
                    int32_t sp = vj > th;
                    st[j] = (float)sp;
                    v[j] = sp ? 0 : vj;
                }
            } else {
                for (int64_t j = 0; j < n; j++) {
                    int32_t uj = (du == 0 ? 0 : dec(u[j], du)) + ((int32_t)at[j]) * 64;
                    uj = uj > U ? uj - 2 * U : uj;
                    uj = uj <= -U ? uj + 2 * U : uj;
                    int32_t vj = (dv == 4096 ? v[j] : (dv == 0 ? 0 : dec(v[j], dv))) + uj
                                 + (bias ? bias[j] * 64 : 0);
                    vj = vj > U - 1 ? U - 1 : (vj < -U + 1 ? -U + 1 : vj);
                    ca += (uj != 0) | (vj != 0);
                    co += vj >= th2;
                    int32_t sp = vj > th;
                    st[j] = (float)sp;
                    u[j] = uj;
                    v[j] = sp ? 0 : vj;
                }
            }
            na += ca;
            no += co;
        }
        if (act) act[b] = na;
        if (over) over[b] = no;
    }
    free(u); free(v);
}
"""

_lib: ctypes.CDLL | None | bool = None  # None: not tried yet; False: not available


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.cuba.argtypes = [p, p, i64, i64, i64, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, p, p, p]
    lib.cuba.restype = None


def _build() -> ctypes.CDLL | bool:
    """The kernel, compiled once into the user's cache (:mod:`neurodeploy.ckernel`); False if impossible."""
    return load("cuba", _SRC, _declare, "loihi-emu's torch kernels") or False


def available() -> bool:
    global _lib
    if _lib is None:
        _lib = _build()
    return _lib is not False


def c_cuba(a: torch.Tensor, layer: LoihiLayer, count: bool = True, out: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None:
    """Spikes ``[T, B, n]`` (float32 0/1), active updates and v ≥ 2θ steps ``[B]`` (int64) for a CPU
    float32 input ``a`` ``[T, B, n]`` of integers, a layer without a recurrent weight; ``None`` when the
    kernel is unavailable or does not apply. ``out``: a float32 buffer of at least T·B·n elements for the
    spikes (reused across batches: no fresh pages to fault in)."""
    if layer.recurrent is not None or a.device.type != "cpu" or a.dtype != torch.float32 or not available():
        return None
    a = a.contiguous()
    lo, hi = torch.aminmax(a)
    if not (float(lo) > -(1 << 17) and float(hi) < (1 << 17)):
        return None  # a << 6 beyond 24 bits: the int32 bounds above do not hold (the reference handles it)
    T, B, n = a.shape
    s = torch.empty_like(a) if out is None or out.numel() < a.numel() else out.view(-1)[:a.numel()].view(T, B, n)
    act = torch.zeros(B, dtype=torch.int64) if count else None
    over = torch.zeros(B, dtype=torch.int64) if layer.multi_spike else None
    bias = None
    if layer.bias is not None and np.any(layer.bias):
        bias = np.ascontiguousarray(np.broadcast_to(np.asarray(layer.bias, np.int32).reshape(-1), (n,)))
    ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
    _lib.cuba(a.data_ptr(), None if bias is None else bias.ctypes.data, T, B, n, int(layer.vth),
              DECAY_UNITY - layer.i_decay, DECAY_UNITY - layer.v_decay, s.data_ptr(), ptr(act), ptr(over))
    return s, act, over
