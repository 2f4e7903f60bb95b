"""N-MNIST, DVS Gesture and CIFAR10-DVS from a local folder, in tonic's layout (never downloaded).

``data.path`` is tonic's ``save_to`` folder (holding ``NMNIST/``, ``DVSGesture/``, ``CIFAR10DVS/``)
or the dataset's own folder. Layouts (as tonic extracts them):

- N-MNIST: ``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/<digit>/*.bin`` (34×34, 2 polarities);
  read by our own reader of the 40-bit event format (the same decoding as ``tonic.io.read_mnist_file``),
  so tonic is not needed.
- DVS Gesture: ``DVSGesture/ibmGestureTrain/user*_*/<label>.npy`` and ``ibmGestureTest`` (tonic's
  preprocessed files: columns x, y, p, t in ms; 128×128, 11 classes); read with numpy.
- CIFAR10-DVS: ``CIFAR10DVS/<class>/*.aedat4`` (128×128, 10 classes, no official split: a stratified
  ``test_fraction`` split with the recipe's seed); needs ``tonic`` and ``aedat`` to decode AEDAT4.

Each recording is binned into ``data.time_bins`` frames of equal duration over the recording
(``[N, T, 2, H, W]`` counts, tonic ``ToFrame(n_time_bins=T)``), optionally reduced in space to
``data.resolution`` px by summing (tonic ``Downsample`` + ``ToFrame``). Frames are stored as uint8
counts (saturating at 255) to keep tens of thousands of recordings in memory; the training loops
convert batches to float32.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..recipe import DataConfig
from .datasets import Dataset, register_dataset, stratified_split
from .events import make_events, to_frames

log = logging.getLogger(__name__)


def backend_available(name: str) -> bool:
    """Whether an optional package (``tonic``, ``aedat``) can be imported."""
    return importlib.util.find_spec(name) is not None


def read_nmnist_bin(path: str | Path) -> np.ndarray:
    """N-MNIST ``.bin`` file -> events (x, y, t µs, p). 5 bytes per event: x, y, p(bit 7) | t(23 bits);
    y == 240 marks a timestamp overflow (t += 2¹³ from there on)."""
    try:
        raw = np.fromfile(str(path), dtype=np.uint8).astype(np.int64)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) % 5:
        raise DataError(f"{path}: not an N-MNIST event file (size {len(raw)} is not a multiple of 5)")
    x, y = raw[0::5], raw[1::5]
    p = (raw[2::5] & 128) >> 7
    t = ((raw[2::5] & 127) << 16) | (raw[3::5] << 8) | raw[4::5]
    overflow = y == 240
    t = t + np.cumsum(overflow) * (1 << 13)
    keep = ~overflow
    return make_events(x[keep], y[keep], t[keep], p[keep])


def read_dvsgesture_npy(path: str | Path) -> np.ndarray:
    """tonic's preprocessed DVS Gesture ``.npy`` (columns x, y, p, t in ms) -> events (t in µs)."""
    try:
        a = np.load(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if a.ndim != 2 or a.shape[1] != 4:
        raise DataError(f"{path}: expected an [N, 4] array (x, y, p, t), got shape {a.shape}")
    return make_events(a[:, 0], a[:, 1], (a[:, 3] * 1000).astype(np.int64), a[:, 2])


def read_aedat4_events(path: str | Path) -> np.ndarray:
    """CIFAR10-DVS ``.aedat4`` -> events, through tonic (needs the ``aedat`` package)."""
    if not (backend_available("tonic") and backend_available("aedat")):
        raise DataError(f"{path}: reading AEDAT4 (CIFAR10-DVS) needs the optional packages tonic and aedat "
                        "(pip install tonic aedat)")
    from tonic.io import read_aedat4

    try:
        ev = read_aedat4(str(path))
    except Exception as e:  # the decoder raises plain Exceptions on malformed files
        raise DataError(f"{path}: cannot decode AEDAT4 ({e})") from None
    names = ev.dtype.names
    f = dict(zip(("t", "x", "y", "p"), names)) if names and names[0] not in ("x",) else {n: n for n in "xytp"}
    return make_events(ev[f["x"]], ev[f["y"]], ev[f["t"]], ev[f["p"]].astype(np.int64))


def _frames(events: np.ndarray, sensor: tuple[int, int, int], cfg: DataConfig) -> np.ndarray:
    w, h, p = sensor
    if cfg.time_bins < 1:
        raise DataError("event datasets need data.time_bins >= 1 (0 means the recipe's timesteps)")
    res = cfg.resolution
    if res and res != w:
        events = events.copy()
        events["x"] = events["x"] * res // w
        events["y"] = events["y"] * res // h
        w = h = res
    f = to_frames(events, (w, h, p), cfg.time_bins)
    return np.minimum(f, 255).astype(np.uint8)


def _locate(cfg: DataConfig, name: str, folder: str, marker: str) -> Path:
    if not cfg.path:
        raise DataError(f"{name}: set data.path to the local folder holding {folder}/ (tonic layout; "
                        "event datasets are never downloaded)")
    p = Path(cfg.path).expanduser()
    for cand in (p / folder, p):
        if (cand / marker).exists():
            return cand
    raise DataError(f"{p}: {name} not found (expected {p / folder / marker}); nothing is downloaded")


def _load_split(files: list[tuple[Path, int]], reader, sensor, cfg: DataConfig, what: str):
    if not files:
        raise DataError(f"{what}: no recordings found")
    frames = np.stack([_frames(reader(f), sensor, cfg) for f, _ in files])
    labels = np.array([lab for _, lab in files], np.int64)
    return torch.from_numpy(frames), torch.from_numpy(labels)


def _shape(sensor: tuple[int, int, int], cfg: DataConfig) -> tuple[int, int, int]:
    res = cfg.resolution
    return (sensor[2], res or sensor[1], res or sensor[0])


@register_dataset("nmnist", events=True)
def _nmnist(cfg: DataConfig, seed: int) -> Dataset:
    """N-MNIST (Orchard et al. 2015): 60,000 / 10,000 saccade recordings of MNIST, 34×34."""
    root = _locate(cfg, "nmnist", "NMNIST", "Train")
    sensor = (34, 34, 2)

    def files(split: str) -> list[tuple[Path, int]]:
        return [(f, int(f.parent.name)) for f in sorted((root / split).glob("[0-9]/*.bin"))]

    xtr, ytr = _load_split(files("Train"), read_nmnist_bin, sensor, cfg, str(root / "Train"))
    xte, yte = _load_split(files("Test"), read_nmnist_bin, sensor, cfg, str(root / "Test"))
    return Dataset("nmnist", xtr, ytr, xte, yte, _shape(sensor, cfg), 10, sensor_size=sensor,
                   input_range=(0.0, 255.0), integer_input=True)


@register_dataset("dvsgesture", events=True)
def _dvsgesture(cfg: DataConfig, seed: int) -> Dataset:
    """DVS128 Gesture (Amir et al. 2017): 11 gestures, 128×128, official user split."""
    root = _locate(cfg, "dvsgesture", "DVSGesture", "ibmGestureTrain")
    sensor = (128, 128, 2)

    def files(split: str) -> list[tuple[Path, int]]:
        return [(f, int(f.stem)) for f in sorted((root / split).glob("user*/*.npy"))]

    xtr, ytr = _load_split(files("ibmGestureTrain"), read_dvsgesture_npy, sensor, cfg, str(root / "ibmGestureTrain"))
    xte, yte = _load_split(files("ibmGestureTest"), read_dvsgesture_npy, sensor, cfg, str(root / "ibmGestureTest"))
    return Dataset("dvsgesture", xtr, ytr, xte, yte, _shape(sensor, cfg), 11, sensor_size=sensor,
                   input_range=(0.0, 255.0), integer_input=True)


CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@register_dataset("cifar10-dvs", events=True)
def _cifar10dvs(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR10-DVS (Li et al. 2017): 10,000 recordings, 128×128; stratified split by ``test_fraction``."""
    root = _locate(cfg, "cifar10-dvs", "CIFAR10DVS", "airplane")
    sensor = (128, 128, 2)
    files = [(f, i) for i, c in enumerate(CIFAR10DVS_CLASSES) for f in sorted((root / c).glob("*.aedat4"))]
    x, y = _load_split(files, read_aedat4_events, sensor, cfg, str(root))
    tr, te = stratified_split(y.numpy(), cfg.test_fraction, seed)
    return Dataset("cifar10-dvs", x[tr], y[tr], x[te], y[te], _shape(sensor, cfg), 10, sensor_size=sensor,
                   input_range=(0.0, 255.0), integer_input=True)
