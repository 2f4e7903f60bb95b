"""Event-camera data: tonic's event format, binning into frames, and ``event-digits``.

Events are numpy structured arrays with the fields ``x, y, t, p`` (tonic's N-MNIST dtype: int64
each; t in microseconds, p ∈ {0 = OFF, 1 = ON}). :func:`to_frames` bins them into ``n_bins``
frames of equal duration, ``[n_bins, 2, H, W]`` event counts (tonic ``ToFrame(n_time_bins=...)``).

``event-digits`` turns each 8×8 digit into an event recording the way N-MNIST was recorded
(Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets using
saccades"): the image sits on a 12×12 canvas and moves along three straight saccades (a triangle
of ±2 px, 100 ms each, sampled every 5 ms with bilinear sub-pixel motion); each pixel is a DVS
pixel that emits one ON (OFF) event each time its log intensity L = ln(I + 0.05) rises (falls) by
the contrast threshold C = 0.15 from its last reference level. Everything is deterministic.
"""
from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])

# event-digits generation constants
CANVAS = 12
MARGIN = 2
SACCADES = ((0.0, 0.0), (2.0, 1.0), (1.0, 2.0), (0.0, 0.0))  # triangle vertices (dx, dy) in px
SACCADE_US = 100_000
SUBSTEPS = 20  # samples per saccade (5 ms each)
CONTRAST = 0.15
LOG_EPS = 0.05
DURATION_US = SACCADE_US * (len(SACCADES) - 1)


def make_events(x, y, t, p) -> np.ndarray:
    """A structured event array (tonic format) from four equally long sequences, sorted by t."""
    ev = np.empty(len(x), EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev[np.argsort(ev["t"], kind="stable")]


def to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], n_bins: int,
              duration: int | None = None, t_start: int | None = None) -> np.ndarray:
    """Bin events into ``[n_bins, P, H, W]`` float32 counts; ``sensor_size`` = (W, H, P) as in tonic.

    Bin of an event: ⌊(t − t_start) · n_bins / duration⌋ clipped to [0, n_bins − 1], with
    t_start = the first event's t and duration = last − first + 1 unless given.
    """
    w, h, pol = sensor_size
    frames = np.zeros((n_bins, pol, h, w), np.float32)
    if len(events) == 0:
        return frames
    t = events["t"].astype(np.int64)
    t0 = int(t.min()) if t_start is None else int(t_start)
    dur = int(t.max()) - t0 + 1 if duration is None else int(duration)
    b = np.clip((t - t0) * n_bins // max(dur, 1), 0, n_bins - 1)
    p = events["p"].astype(np.int64) if pol > 1 else np.zeros(len(events), np.int64)
    np.add.at(frames, (b, p, events["y"].astype(np.int64), events["x"].astype(np.int64)), 1.0)
    return frames


def _place(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Images [N, 8, 8] on the canvas at offset (MARGIN + dx, MARGIN + dy), bilinear for fractions."""
    n, h, w = images.shape
    out = np.zeros((n, CANVAS, CANVAS), np.float64)
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            if wx * wy == 0:
                continue
            y0, x0 = MARGIN + iy + oy, MARGIN + ix + ox
            out[:, y0:y0 + h, x0:x0 + w] += wx * wy * images
    return out


def saccade_path() -> list[tuple[int, float, float]]:
    """(t in µs, dx, dy) of every sample along the three saccades, starting at t = 0."""
    path = [(0, *SACCADES[0])]
    for s in range(len(SACCADES) - 1):
        (ax, ay), (bx, by) = SACCADES[s], SACCADES[s + 1]
        for k in range(1, SUBSTEPS + 1):
            a = k / SUBSTEPS
            path.append((s * SACCADE_US + k * SACCADE_US // SUBSTEPS, ax + a * (bx - ax), ay + a * (by - ay)))
    return path


def digits_to_event_counts(images: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The DVS simulation: per sample time, (t, ON counts [N, 12, 12], OFF counts [N, 12, 12])."""
    images = np.asarray(images, np.float64).reshape(len(images), images.shape[-2], images.shape[-1])
    path = saccade_path()
    ref = np.log(_place(images, path[0][1], path[0][2]) + LOG_EPS)
    out = []
    for t, dx, dy in path[1:]:
        L = np.log(_place(images, dx, dy) + LOG_EPS)
        d = L - ref
        n = np.floor(np.abs(d) / CONTRAST + 1e-9)  # crossings of the contrast threshold
        on = np.where(d > 0, n, 0).astype(np.int64)
        off = np.where(d < 0, n, 0).astype(np.int64)
        ref = ref + np.sign(d) * n * CONTRAST
        out.append((t, on, off))
    return out


def event_digits_events(images: np.ndarray) -> list[np.ndarray]:
    """The event recording of every image, as tonic structured arrays (x, y, t, p)."""
    counts = digits_to_event_counts(images)
    per: list[list[np.ndarray]] = [[] for _ in range(len(images))]
    for t, on, off in counts:
        for pol, c in ((1, on), (0, off)):
            idx, yy, xx = np.nonzero(c)
            reps = c[idx, yy, xx]
            for i in np.unique(idx):
                m = idx == i
                k = np.repeat(np.arange(m.sum()), reps[m])
                per[i].append(make_events(xx[m][k], yy[m][k], np.full(len(k), t), np.full(len(k), pol)))
    return [make_events([], [], [], []) if not p else make_events(*(np.concatenate([e[f] for e in p])
                                                                     for f in ("x", "y", "t", "p"))) for p in per]


def event_digits_frames(images: np.ndarray, n_bins: int) -> np.ndarray:
    """Frames ``[N, n_bins, 2, 12, 12]`` of the event recordings (equal to :func:`to_frames` of
    :func:`event_digits_events` with t_start = 0 and duration = the recording's 300 ms)."""
    frames = np.zeros((len(images), n_bins, 2, CANVAS, CANVAS), np.float32)
    for t, on, off in digits_to_event_counts(images):
        b = min(t * n_bins // DURATION_US, n_bins - 1)
        frames[:, b, 1] += on
        frames[:, b, 0] += off
    return frames
