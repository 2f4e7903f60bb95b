"""The fast path of the fixed-point CUBA neuron of ``loihi-emu``: the same integers as
:func:`.emu.cuba` (Lava ``PyLifModelBitAcc``, lava/proc/lif/models.py:138-186), with fewer, fused,
allocation-free passes over ``[B, n]`` per step and everything that does not feed the next step
(spikes, active updates, v ≥ 2θ) computed after the loop, vectorised over T.

The fused C kernel of :mod:`.cuba_c` (every layer without a recurrent weight, on the CPU) runs
first when it can be built; otherwise two torch kernels, chosen per layer; each returns ``None`` (the caller then runs :func:`.emu.cuba`) when
its exactness condition fails on the batch at hand:

* **IF / memoryless** (iDecay = 4096, vDecay ∈ {0, 4096}, no recurrent weight): u = a << 6 (no
  state), so in float32, in Lava's units: x = (a + b)·64, v[t] = clamp(v_reset[t−1] + x[t])
  (v[t] = clamp(x[t]) for vDecay = 4096), s = v > vThMant·64, v_reset = v·[v ≤ vThMant·64].
  Exact: |a| < 2^17 (checked, else ``None``: u could wrap), |b| < 2^12, so |x| < 2^23 + 2^18 and
  |v_reset| < 2^23 are integers below 2^24 (exact in float32); their sum, if its magnitude
  exceeds 2^24, is rounded to a float still ≥ 2^24 in magnitude (rounding is monotone), which
  the clamp to ±(2^23 − 1) maps to the same value as the exact sum. The clamp is skipped when the
  batch's bounds show it cannot act. Worked in slices of the batch that stay in cache.
* **General CUBA** (decays, recurrent input): float64 in scaled units (Lava's own integers):
  sgn(d)·(|d| >> 12) with d = u·(4096 − iDecay) is trunc(u·c), c = (4096 − iDecay)/2^12 — the
  product u·c is a dyadic rational with at most 24 + 12 = 36 significant bits (|u| < 2^24,
  4096 − iDecay < 2^13), exact in float64's 53 bits, so trunc gives Lava's shift exactly; all sums
  stay below 2^26. The 24-bit wrap of u is applied when it can happen (|a|·2^6·4096/iDecay ≥ 2^23).
"""
from __future__ import annotations

import numpy as np
import torch

from .cuba_c import c_cuba
from .program import DECAY_UNITY, LoihiLayer

U_MAX = 1 << 23  # 24-bit state
USE_C = True  # try the fused C kernel first (tests switch it off to check the torch kernels)
V_UNITS_MAX = 1 << 17  # |v| < 2^17 in units of 64 <=> Lava's clamp at ±(2^23 - 1) never acts


def _bias(layer: LoihiLayer, like: torch.Tensor) -> torch.Tensor | None:
    if layer.bias is None or not np.any(layer.bias):
        return None
    return torch.as_tensor(np.asarray(layer.bias), dtype=like.dtype, device=like.device).reshape(-1)


def fast_cuba(a: torch.Tensor, layer: LoihiLayer, count: bool = True, out: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None:
    """Spikes ``[T, B, n]`` (float32 0/1), active updates ``[B]`` and v ≥ 2θ steps ``[B]`` (multi-spike
    layers; int64) for the synaptic input ``a`` ``[T, B, n]`` (float32 integers, contiguous; the IF
    kernel works in its storage, so ``a`` is consumed unless ``None`` is returned); ``None`` when the
    batch leaves the range in which the kernel is exact (module docstring)."""
    if a.numel() == 0:
        return None
    if USE_C:
        res = c_cuba(a, layer, count, out)  # the fused integer kernel (.cuba_c), when it can be built
        if res is not None:
            return res
    lo, hi = torch.aminmax(a)
    if not (float(lo) > -V_UNITS_MAX and float(hi) < V_UNITS_MAX):
        return None  # u = a << 6 could wrap: the reference handles it
    if layer.i_decay == DECAY_UNITY and layer.v_decay in (0, DECAY_UNITY) and layer.recurrent is None:
        return _if_kernel(a, layer, count)
    return _general_kernel(a, layer, count, float(max(-float(lo), float(hi))))


CHUNK = 1 << 17  # elements of one [b, n] slice worked on step by step (512 KB of float32: stays in L2)


def _if_kernel(a: torch.Tensor, layer: LoihiLayer, count: bool):  # noqa: ANN202
    T, B, n = a.shape
    b = _bias(layer, a)
    # x = (a + b)·64 = u + (b << 6), in a's own storage: becomes v, step by step, in place (a is
    # recovered as x/64 − b for the active count before step t changes x[t])
    x = (a.add_(b) if b is not None else a).mul_(64.0)
    b64 = None if b is None else b * 64.0
    lo, hi = float(torch.amin(x)), float(torch.amax(x))
    vth = float(layer.vth << 6)
    memory = layer.v_decay == 0  # IF: v[t] = v_reset[t−1] + x[t]; else memoryless v[t] = x[t]
    # |v| ≤ max(θ, 0) + max x above and ≥ T·min x below: inside ±(2^23 − 1), Lava's clamp never acts
    clamp = (vth + max(hi, 0.0) >= U_MAX - 1 or (T if memory else 1) * min(lo, 0.0) <= -(U_MAX - 1))
    s = torch.empty_like(x)
    act = torch.zeros(B, dtype=torch.float64, device=a.device) if count else None
    over = torch.zeros(B, dtype=torch.float64, device=a.device) if layer.multi_spike else None
    cb = max(1, min(B, CHUNK // max(n, 1)))
    keep = torch.empty(cb, n, dtype=x.dtype, device=x.device)
    tmp = torch.empty_like(keep)
    for b0 in range(0, B, cb):
        b1 = min(B, b0 + cb)
        k, w = keep[:b1 - b0], tmp[:b1 - b0]
        for t in range(T):
            xt = x[t, b0:b1]
            if act is not None:  # u ≠ 0: a² ≠ 0 (a = x/64 − b, in units of 64 here)
                torch.sub(xt, b64, out=w).mul_(w) if b64 is not None else torch.mul(xt, xt, out=w)
            if memory and t:
                xt.addcmul_(x[t - 1, b0:b1], k)  # + v_reset[t−1] = v[t−1]·[v[t−1] ≤ θ]
            if clamp:
                xt.clamp_(-U_MAX + 1, U_MAX - 1)
            torch.gt(xt, vth, out=s[t, b0:b1])
            if memory:
                torch.le(xt, vth, out=k)
            if act is not None:  # active: u ≠ 0 or v ≠ 0, i.e. u² + v² ≠ 0 (integers: no cancellation)
                act[b0:b1] += torch.ne(w.addcmul_(xt, xt), 0.0, out=w).sum(1)
            if over is not None:
                over[b0:b1] += torch.ge(xt, 2 * vth, out=w).sum(1)
    return s, (act.to(torch.int64) if act is not None else None), (over.to(torch.int64) if over is not None
                                                                     else None)


def _general_kernel(a: torch.Tensor, layer: LoihiLayer, count: bool, amax: float):  # noqa: ANN202
    T, B, n = a.shape
    cu = (DECAY_UNITY - layer.i_decay) / DECAY_UNITY  # exact dyadic multipliers
    cv = (DECAY_UNITY - layer.v_decay) / DECAY_UNITY
    rec = None
    if layer.recurrent is not None:
        rec = torch.as_tensor(layer.recurrent, dtype=torch.float32, device=a.device).T.contiguous()
        amax += float(np.abs(layer.recurrent).sum(1).max())  # |W_rec·s| bound: exact in float32 below 2^24
        if amax >= V_UNITS_MAX:
            return None
    # |u| ≤ 64·max|a|·Σ_k cu^k: below 2^23 for every T (or for these T when iDecay = 0) means no wrap ever
    u_bound = 64 * amax * (T if layer.i_decay == 0 else DECAY_UNITY / layer.i_decay)
    wrap = cu != 0 and u_bound >= U_MAX
    b = _bias(layer, a)
    a64 = a.to(torch.float64).mul_(64.0)  # u's input a << 6
    b64 = None if b is None else b.to(torch.float64) * 64.0
    u = torch.zeros(B, n, dtype=torch.float64, device=a.device)
    v = torch.zeros_like(u)
    ubuf = torch.empty_like(a64) if count else None
    vbuf = torch.empty_like(a64)  # v after the clamp, before the reset
    s = torch.empty(T, B, n, dtype=torch.float32, device=a.device)
    tmp = torch.empty_like(u)
    r = torch.empty(B, n, dtype=torch.float32, device=a.device) if rec is not None else None
    vth = float(layer.vth << 6)
    for t in range(T):
        if cu == 0.0:
            u.copy_(a64[t])
        else:
            torch.mul(u, cu, out=tmp)
            torch.trunc(tmp, out=u)
            u.add_(a64[t])
        if rec is not None and t > 0:
            u.add_(torch.mm(s[t - 1], rec, out=r), alpha=64.0)
        if wrap:  # into (−2^23, 2^23]: one wrap suffices, |u| < 2^24 (decayed |u| < 2^23 plus |a << 6| < 2^23)
            u.sub_((u > U_MAX).to(u.dtype), alpha=2.0 * U_MAX).add_((u <= -U_MAX).to(u.dtype), alpha=2.0 * U_MAX)
        if cv == 1.0:
            v.add_(u)
        elif cv == 0.0:
            v.copy_(u)
        else:
            torch.mul(v, cv, out=tmp)
            torch.trunc(tmp, out=v)
            v.add_(u)
        if b64 is not None:
            v.add_(b64)
        v.clamp_(-U_MAX + 1, U_MAX - 1)
        vbuf[t].copy_(v)
        if ubuf is not None:
            ubuf[t].copy_(u)
        torch.gt(v, vth, out=s[t])
        v.mul_(torch.le(v, vth, out=tmp))
    active = _active(ubuf, vbuf) if count else None
    return s, active, (_over(vbuf, 2 * vth) if layer.multi_spike else None)


def _active(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Neuron-steps with u ≠ 0 or v ≠ 0, per sample: |u| + |v| ≠ 0 (integers: no cancellation)."""
    return torch.count_nonzero(u.abs() + v.abs(), dim=(0, 2)) if u.dim() == 3 else \
        torch.count_nonzero(u.abs() + v.abs(), dim=1)


def _over(v: torch.Tensor, two_theta: float) -> torch.Tensor:
    """Neuron-steps with v ≥ 2θ before the reset, per sample."""
    return torch.count_nonzero(torch.ge(v, two_theta), dim=(0, 2))
