"""The spiking neuron: a pure step function and a thin module around it.

HIRE-SNN (Kundu et al., ICCV 2021) eq. 1-2, DIET-SNN style, reset by subtraction:

    u_i[t+1] = λ · u_i[t] + Σ_j w_ij · O_j[t] − v_th · O_i[t]
    O_i[t]   = 1 if u_i[t] / v_th − 1 > 0 else 0

λ = 1 gives integrate-and-fire. With reset to zero the subtraction becomes u · (1 − O).
The state is (u, O) of the previous step; the step's output spikes come from the potential that
already includes the step's input, so there is no extra delay per layer.

Other producers' neurons differ in three explicit strategies (fields of :class:`NeuronSpec`, one
entry each in the graph metadata; the defaults are the neuron above):

- ``spike``: ``"single"`` (O = H(u/v_th − 1), at most one spike per step) or ``"multi"``
  (O = ⌊u/v_th⌋ for u > 0: sinabs' MultiSpike, sinabs/activation/spike_generation.py:39-41, the
  default of sinabs/layers/iaf.py:52; its gradient is the single-spike surrogate at u, as sinabs'
  BackwardClass does, spike_generation.py:7-14);
- ``min_v``: a membrane floor u ← relu(u − min_v) + min_v every step (sinabs lif.py:41-44;
  ``sinabs.from_nir`` sets −v_th for IF, sinabs/nir.py:87-92); ``None``: no floor;
- ``reset_at``: ``"next"`` (above: the reset is applied in the next step together with the leak)
  or ``"now"`` (sinabs/layers/functional/lif.py:30-44, snnTorch ``reset_delay=False``, Norse: the
  potential is reset right after the spike, floored, and the next step decays the reset value,
  u[t+1] = λ·reset(u[t]) + x).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from . import buffers
from .surrogate import ATanSurrogate, LinearSurrogate


class NeuronState(NamedTuple):
    u: torch.Tensor  # membrane potential after the last step (before its reset; after it with reset_at "now")
    s: torch.Tensor  # spikes of the last step


SPIKE_FNS = ("single", "multi")
RESET_AT = ("next", "now")


@dataclass(frozen=True)
class Dynamics:
    """The strategies that differ between producers (see the module docstring); defaults = HIRE-SNN."""

    spike: str = "single"  # single | multi
    min_v: float | None = None  # membrane floor (None: none)
    reset_at: str = "next"  # next | now

    def __post_init__(self) -> None:
        if self.spike not in SPIKE_FNS:
            raise ValueError(f"unknown spike function {self.spike!r}; choose one of {', '.join(SPIKE_FNS)}")
        if self.reset_at not in RESET_AT:
            raise ValueError(f"unknown reset_at {self.reset_at!r}; choose one of {', '.join(RESET_AT)}")

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_DYNAMICS


DEFAULT_DYNAMICS = Dynamics()


def spikes_of(u: torch.Tensor, threshold: torch.Tensor, spike: str,
              surrogate: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The spike function: ``single`` H(u/v_th − 1) through the surrogate; ``multi`` ⌊u/v_th⌋·[u > 0]
    (sinabs MultiSpike, spike_generation.py:39-41) whose gradient is the single spike's surrogate
    (sinabs BackwardClass, spike_generation.py:7-14): the count is added straight-through."""
    one = surrogate(u / threshold - 1.0)
    if spike == "single":
        return one
    count = (u > 0) * torch.div(u, threshold, rounding_mode="trunc")
    return one + (count - one).detach()  # integers: exactly the count, with the surrogate's gradient


def _reset_now(u: torch.Tensor, s: torch.Tensor, threshold: torch.Tensor, reset: str) -> torch.Tensor:
    """sinabs MembraneSubtract u − O·v_th / MembraneReset u·[O = 0] (sinabs/activation/reset_mechanism.py:141-168)."""
    return u - s * threshold if reset == "subtract" else u * (s == 0).to(u.dtype)


def _floor(u: torch.Tensor, min_v: float | None) -> torch.Tensor:
    """relu(u − min_v) + min_v, sinabs' clip written as it is (sinabs/layers/functional/lif.py:41-44)."""
    return u if min_v is None else torch.relu(u - min_v) + min_v


def neuron_step(
    x: torch.Tensor,
    state: NeuronState | None,
    threshold: torch.Tensor,
    leak: torch.Tensor,
    reset: str,
    surrogate: Callable[[torch.Tensor], torch.Tensor],
    dynamics: Dynamics = DEFAULT_DYNAMICS,
) -> tuple[torch.Tensor, NeuronState]:
    """One time step of HIRE-SNN eq. 1-2 (or the producer's variant ``dynamics``). ``x`` is
    Σ_j w_ij O_j[t]; returns (spikes, new state)."""
    if dynamics.reset_at == "now":  # sinabs lif_forward_single order: decay + input, spike, reset, floor
        u = x if state is None else leak * state.u + x
        s = spikes_of(u, threshold, dynamics.spike, surrogate)
        return s, NeuronState(_floor(_reset_now(u, s, threshold, reset), dynamics.min_v), s)
    if state is None:
        u = x
    elif reset == "subtract":
        u = leak * state.u + x - threshold * state.s
    elif dynamics.spike == "single":
        u = leak * state.u * (1.0 - state.s) + x
    else:
        u = leak * state.u * (state.s == 0).to(x.dtype) + x
    u = _floor(u, dynamics.min_v)
    s = spikes_of(u, threshold, dynamics.spike, surrogate)
    return s, NeuronState(u, s)


def _surrogate_grad_(z: torch.Tensor, kind: int, scale: float) -> torch.Tensor:
    """dO/dz of :mod:`.surrogate`, in place on ``z`` (kind 0: linear γ·max(0, 1 − |z|); 1: ATan
    (α/2)/(1 + (π/2·α·z)²))."""
    if kind == 0:
        return z.abs_().neg_().add_(1.0).clamp_(min=0.0).mul_(scale)
    return z.mul_(math.pi / 2 * scale).square_().add_(1.0).reciprocal_().mul_(scale / 2)


def _dsig_consts(th: float, kind: int, scale: float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The constants of :func:`_dsig_times_` for a scalar v_th, once per backward: (−c, 1/k, c/v_th)
    for ATan (k = α/2v_th, c = π/2·α/√k), (−1, unused, 1/v_th) for linear, as 0-dim tensors."""
    if kind == 1:
        k = scale / (2 * th)
        c = math.pi / 2 * scale / math.sqrt(k)
        a, b, alpha = -c, 1.0 / k, c / th
    else:
        a, b, alpha = -1.0, 0.0, 1.0 / th
    mk = lambda v: torch.full((), v, dtype=like.dtype, device=like.device)  # noqa: E731
    return mk(a), mk(b), alpha


def _dsig_times_(u: torch.Tensor, d_o: torch.Tensor, out: torch.Tensor, th: float, kind: int, scale: float,
                 consts: tuple[torch.Tensor, torch.Tensor, float]) -> None:
    """``out`` ← d_o · σ'(u/v_th − 1) / v_th for a scalar v_th, in as few passes as possible.

    ATan: (α/2v_th)/(1 + (π/2·α·z)²) = 1/(1/k + w²) with k = α/2v_th, w = c·u/v_th − c, c = π/2·α/√k:
    w in one pass (add with alpha), 1/k + w·w in one (addcmul), d_o / that in one: 3 passes;
    linear: −(γ/v_th)·min(|z| − 1, 0) (6 passes). The order differs from the step-by-step autograd
    graph's, so the gradient agrees with it to float rounding, not bit for bit. ``consts``: from
    :func:`_dsig_consts`.
    """
    neg_c, inv_k, alpha = consts
    torch.add(neg_c, u, alpha=alpha, out=out)
    if kind == 1:
        torch.addcmul(inv_k, out, out, out=out)
        torch.div(d_o, out, out=out)
    else:
        out.abs_().sub_(1.0).clamp_(max=0.0).mul_(d_o).mul_(-scale / th)


def _spike_floor(threshold: torch.Tensor) -> float | None:
    """The smallest float ``u`` with fl(u / v_th) > 1 for a scalar v_th > 0, or None.

    Correctly rounded division is monotonic in ``u``, so ``u ≥ floor`` ⟺ fl(u/v_th) > 1 ⟺
    :func:`neuron_step`'s (u/v_th − 1) > 0 for every float: the spike test in one pass instead of
    a division and a comparison, with bit-identical spikes.
    """
    th = threshold.detach()
    if th.dim() != 0 or not th.is_floating_point() or th.device.type != "cpu":
        return None if th.dim() != 0 or not th.is_floating_point() else _floor_of(th)
    return _floor_cached(float(th), th.dtype)  # exact: a CPU float scalar round-trips through a Python float


@functools.lru_cache(maxsize=256)
def _floor_cached(th: float, dtype: torch.dtype) -> float | None:
    """:func:`_floor_of` once per (v_th, dtype): the search costs ~a dozen scalar ops per forward."""
    return _floor_of(torch.tensor(th, dtype=dtype))


def _floor_of(th: torch.Tensor) -> float | None:
    if not bool(th > 0):
        return None
    c = torch.nextafter(th, torch.zeros_like(th))  # below v_th: fl(c / v_th) ≤ 1
    inf = torch.full_like(th, math.inf)
    for _ in range(8):  # one or two steps past v_th
        if bool(c / th > 1):
            return float(c)
        c = torch.nextafter(c, inf)
    return None


def _steps(a: torch.Tensor, sl: slice) -> tuple[torch.Tensor, ...]:
    """The time steps of ``a[:, sl]`` as views (one unbind instead of a select and slice per use)."""
    return (a if sl == slice(None) else a[:, sl]).unbind(0)


class _FusedRecurrence(torch.autograd.Function):
    """The whole time loop of :func:`neuron_step` as one autograd node.

    Forward repeats :func:`neuron_step`'s arithmetic exactly (same operations in the same order, so
    the spikes are bit-identical) without recording a graph and keeps ``u[t]`` for backward.
    Backward runs the recurrence in reverse by hand, a few kernels per step written in place into
    the gradient buffer (fresh large buffers cost page faults on CPU), for reset by subtraction::

        dO[t] = ∂L/∂O[t] − v_th · du[t+1]                 (zero reset: − λ·u[t] · du[t+1])
        du[t] = dO[t] · σ'(z[t]) / v_th + λ · du[t+1]     (zero reset: λ·(1 − O[t]) · du[t+1])
        dx[t] = du[t];   dλ = Σ_t du[t]·u[t−1]            (zero reset: ·(1 − O[t−1]))
        dv_th = Σ_t −dO[t]·σ'(z[t])·u[t]/v_th² − du[t]·O[t−1]   (zero reset: first term only)

    with z = u / v_th − 1 and σ' the surrogate's derivative. The initial state (carried across
    HIRE-SNN periods) is detached by :class:`SpikingNeuron`, so it gets no gradient.
    """

    @staticmethod
    def forward(ctx, x, threshold, leak, u0, s0, zero_reset: bool, kind: int, scale: float):  # type: ignore[override]
        T = x.shape[0]
        u_seq = buffers.empty(x.shape, x.dtype, x.device)  # every element is written below
        s_seq = buffers.empty(x.shape, x.dtype, x.device)
        th_f = float(threshold) if threshold.dim() == 0 else None
        floor = _spike_floor(threshold) if threshold.dtype == x.dtype else None
        chunks = _chunks(x)
        scratch = torch.empty_like(x[0][chunks[0]])  # reused: a fresh temporary per op costs page faults
        for sl in chunks:
            u = None if u0 is None else u0[sl]
            s = None if s0 is None else s0[sl]
            xs, outs, ss = _steps(x, sl), _steps(u_seq, sl), _steps(s_seq, sl)
            tmp = scratch[: xs[0].shape[0]]
            for t in range(T):
                xt, out = xs[t], outs[t]
                if u is None:
                    u = out.copy_(xt)
                elif zero_reset:
                    u = torch.add(leak * u * (1.0 - s), xt, out=out)
                else:  # u ← λ·u + x − v_th·O, the operations of neuron_step in its order
                    torch.mul(leak, u, out=tmp).add_(xt)
                    if th_f is not None:  # O ∈ {0, 1}: v_th·O is exact, so a − v_th·O in one kernel is the same
                        u = torch.sub(tmp, s, alpha=th_f, out=out)
                    else:
                        u = torch.sub(tmp, threshold * s, out=out)
                # neuron_step's (u / v_th − 1) > 0, written as u / v_th > 1: the same for every float
                # (a − 1 is exact for a in [0.5, 2] and cannot round to 0 elsewhere); for a scalar
                # v_th as u ≥ the smallest float passing it (_spike_floor), one pass
                if floor is not None:
                    s = torch.ge(u, floor, out=ss[t])
                else:
                    s = torch.gt(torch.div(u, threshold, out=tmp), 1.0, out=ss[t])
        ctx.save_for_backward(s_seq, threshold, leak, u0, s0, u_seq)
        ctx.zero_reset, ctx.kind, ctx.scale = zero_reset, kind, scale
        u_last, s_last = u_seq[-1].clone(), s_seq[-1].clone()
        ctx.mark_non_differentiable(u_last, s_last)
        return s_seq, u_last, s_last

    @staticmethod
    def backward(ctx, g_out, _gu_last, _gs_last):  # type: ignore[override]
        s_seq, th, lam, u0, s0, u_all = ctx.saved_tensors
        zero = ctx.zero_reset
        T = u_all.shape[0]
        need_th, need_lam = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        scalar = th.dim() == 0 and lam.dim() == 0
        th_f, lam_f = (float(th), float(lam)) if scalar else (None, None)
        gx = buffers.empty(s_seq.shape, s_seq.dtype, s_seq.device)  # every element is written below
        # Σ_t dO·σ'/v_th·u,  Σ_t du[t]·O[t−1],  Σ_t du[t]·∂u[t]/∂λ  (per neuron and sample)
        acc_z = torch.zeros_like(u_all[0]) if need_th else None
        acc_r = torch.zeros_like(u_all[0]) if need_th and not zero else None
        acc_l = torch.zeros_like(u_all[0]) if need_lam else None
        chunks = _chunks(s_seq)
        scratch = torch.empty_like(u_all[0][chunks[0]])
        consts = _dsig_consts(th_f, ctx.kind, ctx.scale, u_all) if scalar else None
        for sl in chunks:
            ust, gxs, gos, sst = _steps(u_all, sl), _steps(gx, sl), _steps(g_out, sl), _steps(s_seq, sl)
            tmp = scratch[: ust[0].shape[0]]
            for t in range(T - 1, -1, -1):
                u_t, du = ust[t], gxs[t]
                nxt = gxs[t + 1] if t < T - 1 else None
                # du[t] ← dO[t] · σ'(u/v_th − 1)/v_th, then + the λ-path from u[t+1]
                if nxt is None:
                    d_o = gos[t]
                elif zero:
                    d_o = gos[t] - lam * u_t * nxt
                elif scalar:
                    d_o = torch.sub(gos[t], nxt, alpha=th_f, out=tmp)
                else:
                    d_o = gos[t] - th * nxt
                if scalar:
                    _dsig_times_(u_t, d_o, du, th_f, ctx.kind, ctx.scale, consts)
                else:
                    torch.div(u_t, th, out=du)
                    _surrogate_grad_(du.sub_(1.0), ctx.kind, ctx.scale).div_(th).mul_(d_o)
                if need_th:
                    acc_z[sl].addcmul_(du, u_t)
                if nxt is not None:
                    if zero:
                        du.add_(lam * (1.0 - sst[t]) * nxt)
                    elif scalar:
                        du.add_(nxt, alpha=lam_f)
                    else:
                        du.add_(lam * nxt)
                if t > 0 or u0 is not None:  # the terms through u[t−1], O[t−1] (the carried state at t = 0)
                    u_prev, s_prev = (ust[t - 1], sst[t - 1]) if t > 0 else (u0[sl], s0[sl])
                    if acc_r is not None:
                        acc_r[sl].addcmul_(du, s_prev)
                    if need_lam:
                        acc_l[sl].addcmul_(du, u_prev * (1.0 - s_prev) if zero else u_prev)
        g_th = g_lam = None
        if need_th:
            g = acc_z.div_(th).neg_()  # −Σ dO·σ'·u / v_th²
            if acc_r is not None:
                g = g.sub_(acc_r)  # reset by subtraction: −Σ du[t]·O[t−1]
            g_th = g.sum_to_size(th.shape) if th.dim() else g.sum()
        if need_lam:
            g_lam = acc_l.sum_to_size(lam.shape) if lam.dim() else acc_l.sum()
        return gx, g_th, g_lam, None, None, None, None, None


_CHUNK = 1 << 18  # elements per step worked on together: the step's few tensors stay in the L2 cache


def _chunks(x: torch.Tensor) -> list[slice]:
    """Slices of the batch dimension (dim 1 of ``[T, B, ...]``) of about ``_CHUNK`` elements per step.

    The recurrence is elementwise, so running it chunk by chunk gives the same numbers; for large
    layers (VGG on 32×32) it keeps the per-step tensors in cache instead of streaming every pass
    through memory. Small layers, and tensors on a GPU, are one chunk.
    """
    if x.dim() < 2 or x.shape[1] <= 1 or x.device.type != "cpu":
        return [slice(None)]
    per = max(1, x[0, 0].numel())
    nb = max(1, _CHUNK // per)
    if nb >= x.shape[1]:
        return [slice(None)]
    return [slice(b, min(b + nb, x.shape[1])) for b in range(0, x.shape[1], nb)]


_FUSABLE = {LinearSurrogate: 0, ATanSurrogate: 1}


def fused_sequence(
    x: torch.Tensor,
    state: NeuronState | None,
    threshold: torch.Tensor,
    leak: torch.Tensor,
    reset: str,
    surrogate: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, NeuronState] | None:
    """:func:`neuron_step` over all of ``x`` (``[T, B, ...]``) as one autograd node (see
    :class:`_FusedRecurrence`); returns (spikes ``[T, B, ...]``, last state, not differentiable),
    or ``None`` when the surrogate or reset is not one the hand-written backward knows."""
    kind = _FUSABLE.get(type(surrogate))
    if kind is None or reset not in ("subtract", "zero") or x.shape[0] == 0:
        return None
    scale = surrogate.gamma if kind == 0 else surrogate.alpha  # type: ignore[attr-defined]
    u0, s0 = (None, None) if state is None else (state.u, state.s)
    s_seq, u, s = _FusedRecurrence.apply(x, threshold, leak, u0, s0, reset == "zero", kind, scale)
    return s_seq, NeuronState(u, s)


@dataclass
class NeuronSpec:
    """Everything that defines a neuron layer; maps one-to-one onto NIR IF/LIF + metadata."""

    threshold: float = 1.0
    leak: float = 1.0
    reset: str = "subtract"
    train_threshold: bool = True
    train_leak: bool = True
    spike: str = "single"  # single | multi (floor(u/v_th) spikes per step, sinabs MultiSpike)
    min_v: float | None = None  # membrane floor (sinabs min_v_mem); None: none
    reset_at: str = "next"  # next (HIRE-SNN eq. 1) | now (sinabs, snnTorch reset_delay=False, Norse)

    @property
    def dynamics(self) -> Dynamics:
        return Dynamics(self.spike, self.min_v, self.reset_at)


class SpikingNeuron(nn.Module):
    """A layer of neurons with a per-layer trainable threshold and leak (leak clamped to ≤ 1).

    ``forward`` takes the whole sequence ``[T, B, ...]`` and returns spikes of the same shape; the
    time loop lives here and nowhere else: as one fused autograd node (:func:`fused_sequence`) for
    the built-in surrogates, else step by step through :func:`neuron_step` (``fused = False``
    forces that path; both give identical spikes and, up to rounding, identical gradients).
    """

    sequence_aware = True  # the executor hands it the whole sequence [T, B, ...]

    def __init__(self, spec: NeuronSpec | None = None, surrogate: Callable | None = None) -> None:
        super().__init__()
        spec = spec or NeuronSpec()
        self.reset = spec.reset
        self.dynamics = spec.dynamics  # spike function, floor, reset timing (Dynamics)
        self.surrogate = surrogate or LinearSurrogate()
        self.threshold = nn.Parameter(torch.tensor(float(spec.threshold)), requires_grad=spec.train_threshold)
        self.leak = nn.Parameter(torch.tensor(float(spec.leak)), requires_grad=spec.train_leak)
        self.state: NeuronState | None = None  # kept only when carry_state is set (HIRE periods)
        self.carry_state = False

    def clamp_(self) -> None:
        """Keep parameters in their valid range (leak ≤ 1, threshold > 0); call after each update."""
        with torch.no_grad():
            self.leak.clamp_(min=0.0, max=1.0)
            self.threshold.clamp_(min=1e-3)

    fused = True  # run the time loop as one autograd node (fused_sequence) when the surrogate allows

    def step(self, x: torch.Tensor, state: NeuronState | None) -> tuple[torch.Tensor, NeuronState]:
        """One time step (:func:`neuron_step`), for an executor running a recurrent cycle step by step."""
        return neuron_step(x, state, self.threshold, self.leak, self.reset, self.surrogate, self.dynamics)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state if self.carry_state else None
        # tracing (ONNX export, torch.jit) needs the plain ops: an autograd.Function is opaque to it
        fuse = self.fused and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()
        dyn = self.dynamics
        # the fused node knows single spikes without floor, reset in the next step (HIRE-SNN)
        fuse = fuse and dyn.is_default
        res = fused_sequence(x, state, self.threshold, self.leak, self.reset, self.surrogate) if fuse else None
        if res is not None:
            spikes, state = res
        else:  # step by step through neuron_step (any surrogate, any dynamics)
            out = []
            for xt in x.unbind(0):
                s, state = neuron_step(xt, state, self.threshold, self.leak, self.reset, self.surrogate, dyn)
                out.append(s)
            spikes = torch.stack(out)
        if self.carry_state and state is not None:
            self.state = NeuronState(state.u.detach(), state.s.detach())
        return spikes

    def extra_repr(self) -> str:
        th, lam = (float(torch.as_tensor(v).detach().reshape(-1)[0]) for v in (self.threshold, self.leak))
        text = f"threshold={th:.4g}, leak={lam:.4g}, reset={self.reset}"
        d = self.dynamics
        if not d.is_default:
            text += f", spike={d.spike}, min_v={d.min_v}, reset_at={d.reset_at}"
        return text
