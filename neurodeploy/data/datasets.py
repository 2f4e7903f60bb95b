"""Datasets, loaded by name from the recipe. Nothing is ever downloaded.

``digits`` is scikit-learn's bundled UCI handwritten digits (1,797 real 8×8 images, 10 classes),
scaled to [0, 1] (the raw values are 0..16) and split with a fixed seed, stratified by class.
Normalisation, if a model wants any, lives inside the model so that attacks work in pixel space.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import DataError
from ..recipe import DataConfig
from ..registry import Registry


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor  # [N, C, H, W] float in [0, 1] (or [N, T, C, H, W] event frames)
    y_train: torch.Tensor  # [N] int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]  # (C, H, W) of one frame
    num_classes: int
    # training augmentation ``augment(x_batch, generator) -> x_batch`` (CIFAR: crop + flip)
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    sensor_size: tuple[int, int, int] | None = None  # event data: (W, H, P) as in tonic
    # the valid inputs in the data's own units (attacks project onto them; attacks.base.InputDomain)
    input_range: tuple[float, float] = (0.0, 1.0)
    integer_input: bool = False  # values are whole event counts (attacked inputs are rounded)

    def loader(self, split: str, batch_size: int, shuffle: bool, seed: int = 0):
        """Batches of (x, y); training batches are augmented (seeded by ``seed``) when the dataset has one."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        g = torch.Generator().manual_seed(seed)
        ds = torch.utils.data.TensorDataset(x, y)
        if split != "train" or self.augment is None:
            return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g)
        aug_gen = torch.Generator().manual_seed(seed + 7919)
        augment = self.augment

        def collate(batch):
            xb = torch.stack([b[0] for b in batch]).float()
            return augment(xb, aug_gen), torch.stack([b[1] for b in batch])

        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, collate_fn=collate)


#: Every dataset loader by name (``(cfg, seed) -> Dataset``); unknown names raise DataError.
DATASETS: Registry[Callable[[DataConfig, int], Dataset]] = Registry("dataset", error=DataError)
#: the registered datasets whose samples are event frames ``[T, C, H, W]`` (encoding "events")
EVENT_DATASETS: set[str] = set()


def register_dataset(name: str, events: bool = False) -> Callable[[Callable[[DataConfig, int], Dataset]],
                                                                   Callable[[DataConfig, int], Dataset]]:
    """Decorator: register a loader ``(cfg, seed) -> Dataset`` under ``name`` (a taken name raises
    RegistryError); ``events``: its samples are event frames, read with ``encoding = "events"`` only."""
    if events:
        EVENT_DATASETS.add(name)
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load the recipe's dataset; the split depends only on ``seed`` and ``cfg.test_fraction``."""
    return DATASETS.get(cfg.name)(cfg, seed)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), stratified by class, from a seeded permutation."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as float32 images [N, 1, 8, 8] in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return x, d.target.astype(np.int64)


@register_dataset("digits")
def _digits(cfg: DataConfig, seed: int) -> Dataset:
    x, y = digits_arrays()
    tr, te = stratified_split(y, cfg.test_fraction, seed)
    return Dataset(
        "digits",
        torch.from_numpy(x[tr]),
        torch.from_numpy(y[tr]),
        torch.from_numpy(x[te]),
        torch.from_numpy(y[te]),
        (1, 8, 8),
        10,
    )


@register_dataset("event-digits", events=True)
def _event_digits(cfg: DataConfig, seed: int) -> Dataset:
    """The digits as event-camera recordings (see :mod:`.events`), binned into ``cfg.time_bins``
    frames: x is ``[N, T, 2, 12, 12]``, 1 where a pixel emitted at least one event of that
    polarity in the bin (binary frames keep inputs in [0, 1] like images, the box attacks
    project onto); same split as ``digits``."""
    from .events import CANVAS, event_digits_frames

    if cfg.time_bins < 1:
        raise DataError("event-digits: data.time_bins must be >= 1 (0 means the recipe's timesteps; "
                        "set it or load the dataset through a recipe)")
    x, y = digits_arrays()
    frames = np.minimum(event_digits_frames(x[:, 0], cfg.time_bins), 1.0)
    tr, te = stratified_split(y, cfg.test_fraction, seed)
    return Dataset("event-digits", torch.from_numpy(frames[tr]), torch.from_numpy(y[tr]),
                   torch.from_numpy(frames[te]), torch.from_numpy(y[te]), (2, CANVAS, CANVAS), 10,
                   sensor_size=(CANVAS, CANVAS, 2), input_range=(0.0, 1.0), integer_input=True)


from . import neuromorphic as _neuromorphic  # noqa: E402,F401  (registers nmnist, dvsgesture, cifar10-dvs)
from . import vision as _vision  # noqa: E402,F401  (registers cifar10, cifar100)
