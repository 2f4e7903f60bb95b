"""Event frames -> Loihi input spikes (shared by ``loihi-emu`` and ``lava``).

An event frame ``[T, C, H, W]`` holds, per pixel and time bin, the number of events (tonic's
``ToFrame``; :func:`neurodeploy.data.events.to_frames`). Loihi receives one message per pixel and
step, so a count c becomes:

- ``event_spikes = "graded"`` (default): one graded spike whose payload is the count, clipped to
  the payload width, payload = min(c, 2^event_bits − 1) (Loihi 2 graded spikes; in Lava the first
  synapse multiplies its weight by the payload: ``lava/proc/dense/models.py``
  ``PyDenseModelBitAcc.run_spk``, ``weights.dot(s_in)`` when ``num_message_bits > 0``). Exact
  whenever no count exceeds the cap.
- ``event_spikes = "binary"``: one binary spike where c ≥ 1 (counts above 1 are clipped to 1; the
  events lost are counted).

Counts that are not integers (an attacked or noised frame) are rounded to the nearest integer and
negative values set to 0; both are counted. :class:`EventStats` keeps the measured figures per
run, which the targets write as a line of the deployment log and into ``Outputs.info``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ...errors import TargetError

EVENT_SPIKES = ("graded", "binary")


@dataclass
class EventStats:
    """Measured on the frames a target was given: events (Σ rounded counts), events lost by clipping."""

    samples: int = 0
    events: int = 0
    clipped: int = 0  # events lost: Σ max(c − cap, 0)
    clipped_pixels: int = 0  # pixel-steps whose count exceeded the cap
    max_count: int = 0
    rounded: int = 0  # values that were not integers
    negative: int = 0  # values below 0 (set to 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def payload_cap(mode: str, bits: int) -> int:
    """The largest value one input message carries: 2^bits − 1 (graded) or 1 (binary)."""
    return (1 << bits) - 1 if mode == "graded" else 1


def check_options(mode: str, bits: int) -> None:
    if mode not in EVENT_SPIKES:
        raise TargetError(f"options['event_spikes'] = {mode!r}; choose one of {', '.join(EVENT_SPIKES)}")
    if not 1 <= bits <= 16:
        raise TargetError(f"options['event_bits'] = {bits}; choose a payload width in [1, 16] bits")


def event_spikes(x: torch.Tensor, timesteps: int, mode: str, bits: int,
                 stats: EventStats | None = None) -> torch.Tensor:
    """Input messages ``[T, B, n_in]`` (int64) for event frames ``x`` ``[B, T, C, H, W]`` of counts.

    payload = min(round(max(x, 0)), cap) with cap = :func:`payload_cap`; ``stats`` (if given)
    accumulates the events and how many were lost by clipping.
    """
    if x.dim() < 3 or x.shape[1] != timesteps:
        raise TargetError(f"loihi: event input must be frames [N, T={timesteps}, C, H, W] of event counts, "
                          f"got {tuple(x.shape)}")
    c = x.detach().to(torch.float64).reshape(x.shape[0], timesteps, -1)
    if not bool(torch.isfinite(c).all()):
        raise TargetError("loihi: event frames contain NaN or infinite values")
    r = torch.round(c)
    neg = r < 0
    r = r.clamp(min=0).to(torch.int64)
    cap = payload_cap(mode, bits)
    out = r.clamp(max=cap)
    if stats is not None:
        stats.samples += int(x.shape[0])
        stats.events += int(r.sum())
        stats.clipped += int((r - out).sum())
        stats.clipped_pixels += int((r > cap).sum())
        stats.max_count = max(stats.max_count, int(r.max()) if r.numel() else 0)
        stats.rounded += int((c != torch.round(c)).sum())
        stats.negative += int(neg.sum())
    return out.transpose(0, 1).contiguous()


def coding_line(mode: str, bits: int, shape: tuple[int, ...], timesteps: int) -> str:
    """The compile-time lowering line: how event counts become Loihi input messages."""
    frame = f"[T={timesteps}, {', '.join(str(s) for s in shape)}]"
    if mode == "graded":
        cap = payload_cap(mode, bits)
        return (f"event input: frames {frame} of event counts sent as {bits}-bit graded spikes, payload = the "
                f"count ≤ {cap} per pixel and step (exact up to {cap}; larger counts clipped to {cap}, counted per "
                f"run); the first layer's threshold stays in event units; a graded spike is one message "
                f"(input synops count messages, not events)")
    return (f"event input: frames {frame} of event counts sent as binary spikes, one spike where the count "
            f"≥ 1 (counts > 1 clipped to 1, the lost events counted per run)")


def stats_line(stats: EventStats, mode: str, bits: int) -> str:
    """The measured lowering line of one run: K of M events clipped (and any rounding)."""
    cap = payload_cap(mode, bits)
    pct = 100.0 * stats.clipped / stats.events if stats.events else 0.0
    line = (f"event input (measured on {stats.samples} samples): {stats.clipped} of {stats.events} events clipped "
            f"({pct:.3g}%; {stats.clipped_pixels} pixel-steps had a count > {cap}, the largest {stats.max_count}) "
            f"by the {'graded payload ≤ ' + str(cap) if mode == 'graded' else 'binary spike'}")
    if stats.rounded or stats.negative:
        line += (f"; {stats.rounded} non-integer values rounded to the nearest count, {stats.negative} negative "
                 f"values set to 0")
    return line
