"""Several gradient estimators in one batched pass: *lanes*.

The gradient estimators of :mod:`.gradients` change only the backward of the spike function
(the forward is H(z) for all of them), so the iterates of several ensemble members — each its own
estimator and loss — can share one forward/backward pass: the rows of the batch are grouped by
member (a *lane*, lane-major and contiguous), every spiking layer runs its time loop once for all
rows, and its backward applies each lane's surrogate derivative σ'_l to that lane's rows only.
A row's gradient is then exactly the one its member would get alone (every operation of the
network acts per row; the surrogate, the adaptive width and the BPTR rate are per row too).

The neuron is the default one of :mod:`neurodeploy.snn.neuron` (HIRE-SNN eq. 1-2: one spike per
step, no floor, reset in the next step, by subtraction or to zero). Its forward repeats the
operations of ``_FusedRecurrence.forward`` (neurodeploy/snn/neuron.py) in the same order, so the
spikes are bit-identical to the model's; its backward is the reverse recurrence written there::

    dO[t] = ∂L/∂O[t] − v_th · du[t+1]                 (zero reset: − λ·u[t] · du[t+1])
    du[t] = dO[t] · σ'_l(u[t]/v_th − 1) / v_th + λ · du[t+1]     (zero reset: λ·(1 − O[t])·du[t+1])

and for a BPTR lane (Ding et al. 2022) dx[t] = Σ_t' ∂L/∂O[t'] · 1[0 < r < 1] / (T·v_th) with
r = mean_t(x)/v_th, the backward of ``gradients._rate_forward``. Only ∂/∂x is computed (the
attack needs no weight, threshold or leak gradient). :func:`lane_support` says why a model cannot
run in lanes (another neuron, a carried state, an unknown training surrogate); the ensemble then
runs the member alone through :class:`~.estimators.SourceEstimator`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..snn.neuron import SpikingNeuron
from ..snn.surrogate import ATanSurrogate, LinearSurrogate
from .estimators import SourceEstimator, eval_mode
from .gradients import SURROGATES_BY_NAME, ShapeSurrogate, spiking_layers

Derivative = Callable[[torch.Tensor], torch.Tensor]  # z -> dO/dz


def surrogate_derivative(sur: object) -> Derivative | None:
    """dO/dz of a surrogate object (the formulas of snn/surrogate.py:_Spike.backward and
    :class:`.gradients.ShapeSurrogate`), or ``None`` for a surrogate these do not cover."""
    if isinstance(sur, ShapeSurrogate):
        return sur.derivative
    if type(sur) is LinearSurrogate:
        g = sur.gamma
        return lambda z: g * torch.clamp(1.0 - z.abs(), min=0.0)
    if type(sur) is ATanSurrogate:
        a = sur.alpha
        return lambda z: (a / 2) / (1 + (math.pi / 2 * a * z) ** 2)
    return None


def lane_support(model: nn.Module, names: Sequence[str] = ("train",)) -> str:
    """Why ``model`` cannot run the estimators ``names`` in lanes ("" when it can)."""
    layers = spiking_layers(model)
    if not layers:
        return "no SpikingNeuron layers"
    for m in layers:
        if not m.dynamics.is_default or m.reset not in ("subtract", "zero"):
            return f"neuron {m.extra_repr()} is not the default neuron (lanes know HIRE-SNN eq. 1-2 only)"
        if m.carry_state:
            return "a neuron carries its state across calls"
        if "train" in names and surrogate_derivative(m.surrogate) is None:
            return f"training surrogate {type(m.surrogate).__name__} has no lane derivative"
    other = [n for n in names if n not in SURROGATES_BY_NAME and n not in ("train", "bptr")]
    return f"unknown estimators {other}" if other else ""


class _LaneNeuron(torch.autograd.Function):
    """One spiking layer's time loop for all lanes; backward per lane (see the module)."""

    @staticmethod
    def forward(ctx, x, threshold, leak, zero_reset: bool, lanes: tuple):  # type: ignore[override]
        T = x.shape[0]
        u_seq = torch.empty(x.shape, dtype=x.dtype)
        s_seq = torch.empty(x.shape, dtype=x.dtype)
        th_f = float(threshold) if threshold.dim() == 0 else None
        tmp = torch.empty_like(x[0])
        u = s = None
        for t in range(T):  # the operations of neuron.py _FusedRecurrence.forward, in its order
            xt, out = x[t], u_seq[t]
            if u is None:
                u = out.copy_(xt)
            elif zero_reset:
                u = torch.add(leak * u * (1.0 - s), xt, out=out)
            else:
                torch.mul(leak, u, out=tmp).add_(xt)
                u = torch.sub(tmp, s, alpha=th_f, out=out) if th_f is not None else \
                    torch.sub(tmp, threshold * s, out=out)
            s = torch.gt(torch.div(u, threshold, out=tmp), 1.0, out=s_seq[t])
        ctx.save_for_backward(x if any(k == "bptr" for _, _, k in lanes) else None, u_seq, s_seq, threshold, leak)
        ctx.zero_reset, ctx.lanes = zero_reset, lanes
        return s_seq

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        x, u_seq, s_seq, th, lam = ctx.saved_tensors
        T, zero = u_seq.shape[0], ctx.zero_reset
        # σ'_l(u/v_th − 1)/v_th for every step of each lane's rows at once (the derivatives act per
        # element, the adaptive one per (step, sample): the steps are folded into its sample axis);
        # then the reverse recurrence once over all rows (a BPTR lane's rows are overwritten after)
        sig = torch.empty_like(u_seq)
        rates = []
        for a, b, kind in ctx.lanes:
            if kind == "bptr":
                rates.append((a, b))
                sig[:, a:b] = 0.0
                continue
            u = u_seq[:, a:b]
            z = (u / th - 1.0).reshape(T * (b - a), *u.shape[2:])
            sig[:, a:b] = kind(z).view(u.shape)
        gx = torch.empty_like(u_seq)
        if not _c_recurrence(g_out, u_seq, s_seq, sig, gx, th, lam, zero):
            _recurrence(g_out, u_seq, s_seq, sig, gx, th, lam, zero)
        for a, b in rates:
            r = x[:, a:b].mean(0) / th
            pas = ((r > 0) & (r < 1)).to(g_out.dtype) / (T * th)  # torch.clamp's backward: 0 at the bounds
            gx[:, a:b] = (g_out[:, a:b].sum(0) * pas).unsqueeze(0)
        return gx, None, None, None, None


def _recurrence(g_out: torch.Tensor, u_seq: torch.Tensor, s_seq: torch.Tensor, sig: torch.Tensor, gx: torch.Tensor,
                th: torch.Tensor, lam: torch.Tensor, zero: bool) -> None:
    """The reverse recurrence of the module docstring into ``gx``, step by step over all rows."""
    T = u_seq.shape[0]
    nxt = None
    for t in range(T - 1, -1, -1):
            if nxt is None:
                d_o = g_out[t]
            else:
                d_o = g_out[t] - lam * u_seq[t] * nxt if zero else g_out[t] - th * nxt
            du = d_o * sig[t] / th
            if nxt is not None:
                du = du + (lam * (1.0 - s_seq[t]) * nxt if zero else lam * nxt)
            gx[t] = du
            nxt = du


# The same recurrence in one pass over memory per step (C, float32, the operations of _recurrence in its
# order: built with -ffp-contract=off, so every product and sum rounds as torch's do; tests compare them)
_SRC = r"""
#include <stdint.h>
void lane_bwd(const float *g, const float *u, const float *s, const float *sig, float *gx,
              int64_t T, int64_t N, float th, float lam, int zero) {
    const float *gt = g + (T - 1) * N, *qt = sig + (T - 1) * N;
    float *ot = gx + (T - 1) * N;
    for (int64_t j = 0; j < N; j++) ot[j] = (gt[j] * qt[j]) / th;
    for (int64_t t = T - 2; t >= 0; t--) {
        const float *gt = g + t * N, *qt = sig + t * N, *ut = u + t * N, *st = s + t * N;
        const float *nx = gx + (t + 1) * N;
        float *ot = gx + t * N;
        if (zero) {
            for (int64_t j = 0; j < N; j++) {
                float d_o = gt[j] - (lam * ut[j]) * nx[j];
                ot[j] = (d_o * qt[j]) / th + (lam * (1.0f - st[j])) * nx[j];
            }
        } else {
            for (int64_t j = 0; j < N; j++) {
                float d_o = gt[j] - th * nx[j];
                ot[j] = (d_o * qt[j]) / th + lam * nx[j];
            }
        }
    }
}
"""
_lib = None  # None: not tried; False: not available


def _declare(lib) -> None:
    import ctypes

    p, i64, f = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    lib.lane_bwd.argtypes = [p, p, p, p, p, i64, i64, f, f, ctypes.c_int]
    lib.lane_bwd.restype = None


def _c_recurrence(g_out: torch.Tensor, u_seq: torch.Tensor, s_seq: torch.Tensor, sig: torch.Tensor, gx: torch.Tensor,
                  th: torch.Tensor, lam: torch.Tensor, zero: bool) -> bool:
    """:func:`_recurrence` by the C kernel; False (nothing done) when it cannot run here: a threshold or
    leak per neuron, another dtype or device, no compiler (:mod:`neurodeploy.ckernel`)."""
    global _lib
    if th.numel() != 1 or lam.numel() != 1 or g_out.dtype != torch.float32 or g_out.device.type != "cpu":
        return False
    if _lib is None:
        from ..ckernel import load

        _lib = load("lanes", _SRC, _declare, "the torch recurrence") or False
    if _lib is False:
        return False
    g = g_out.contiguous()
    tensors = [g, u_seq, s_seq, sig, gx]
    if not all(t.is_contiguous() and t.dtype == torch.float32 for t in tensors):
        return False
    T = u_seq.shape[0]
    _lib.lane_bwd(*(t.data_ptr() for t in tensors), T, u_seq[0].numel(), float(th), float(lam), int(zero))
    return True


class Lanes:
    """Estimator names per lane and the lane of every row of the current batch (lane-major)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        self.derivs: dict[SpikingNeuron, list] = {}
        for m in spiking_layers(model):
            self.derivs[m] = [self._kind(n, m) for n in self.names]
        self.row_lane: torch.Tensor | None = None  # [rows] lane index, non-decreasing

    @staticmethod
    def _kind(name: str, m: SpikingNeuron):
        if name == "bptr":
            return "bptr"
        sur = m.surrogate if name == "train" else SURROGATES_BY_NAME[name]()
        return surrogate_derivative(sur)

    def slices(self, m: SpikingNeuron, rows: int) -> tuple:
        lanes = self.row_lane if self.row_lane is not None else torch.zeros(rows, dtype=torch.long)
        if len(lanes) != rows:
            raise RuntimeError(f"lanes: {rows} rows given, {len(lanes)} expected")
        vals, counts = torch.unique_consecutive(lanes, return_counts=True)
        out, a = [], 0
        for v, c in zip(vals.tolist(), counts.tolist()):
            out.append((a, a + c, self.derivs[m][v]))
            a += c
        return tuple(out)

    @contextlib.contextmanager
    def __call__(self, model: nn.Module) -> Iterator[None]:
        """The gradient variant: every spiking layer's forward runs :class:`_LaneNeuron`."""
        layers = list(self.derivs)
        for m in layers:
            def fwd(x: torch.Tensor, m: SpikingNeuron = m) -> torch.Tensor:
                return _LaneNeuron.apply(x, m.threshold.detach(), m.leak.detach(), m.reset == "zero",
                                         self.slices(m, x.shape[1]))
            m.forward = fwd  # type: ignore[method-assign]
        try:
            yield
        finally:
            for m in layers:
                del m.forward


class LaneEstimator(SourceEstimator):
    """A :class:`SourceEstimator` whose gradient runs the lanes ``names`` side by side, each row with
    its lane's estimator and loss (``losses[l](logits, y) -> [rows]``). :meth:`select` tells it the
    lane of each row of the next calls (the rows still attacked, in order); with one lane every row
    is that lane's. Predictions are the model's own (:meth:`SourceEstimator.predict`)."""

    def __init__(self, model: nn.Module, names: Sequence[str], losses: Sequence[Callable], n_classes: int | None = None,
                 *, eot_samples: int | None = None, seed: int = 0) -> None:
        self.lanes = Lanes(model, names)
        super().__init__(model, n_classes, eot_samples=eot_samples, seed=seed, gradient_variant=self.lanes)
        self.losses = list(losses)
        self.row_lane_all: torch.Tensor | None = None

    def assign(self, row_lane: torch.Tensor) -> None:
        """The lane of every row of the whole stacked batch (non-decreasing)."""
        self.row_lane_all = row_lane

    def select(self, rows: torch.Tensor | None) -> None:
        """The rows (indices into the stacked batch, ascending) the next calls are given; ``None``: all."""
        ra = self.row_lane_all
        self.lanes.row_lane = None if ra is None else (ra if rows is None else ra[rows])

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lanes = self.lanes.row_lane
        if lanes is None or len(self.losses) == 1:
            return self.losses[0](logits, y)
        vals, counts = torch.unique_consecutive(lanes, return_counts=True)
        parts, a = [], 0
        for v, c in zip(vals.tolist(), counts.tolist()):
            parts.append(self.losses[v](logits[a:a + c], y[a:a + c]))
            a += c
        return torch.cat(parts)

    def loss_and_gradient(self, x: torch.Tensor, y: torch.Tensor, loss=None):  # type: ignore[override]
        """As :meth:`SourceEstimator.loss_and_gradient`, with each row's lane loss (``loss`` ignored)."""
        return super().loss_and_gradient(x, y, self._loss)


__all__ = ["LaneEstimator", "Lanes", "lane_support", "surrogate_derivative", "eval_mode"]
