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


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor  # [N, C, H, W] float in [0, 1] (or [N, T, C, H, W] event frames)
    y_train: torch.Tensor  # [N] int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]  # (C, H, W) of one frame
    num_classes: int

    def loader(self, split: str, batch_size: int, shuffle: bool, seed: int = 0):
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        g = torch.Generator().manual_seed(seed)
        ds = torch.utils.data.TensorDataset(x, y)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g)


_LOADERS: dict[str, Callable[[DataConfig, int], Dataset]] = {}


def register_dataset(name: str):
    def deco(fn: Callable[[DataConfig, int], Dataset]):
        _LOADERS[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load the recipe's dataset; the split depends only on ``seed`` and ``cfg.test_fraction``."""
    if cfg.name not in _LOADERS:
        raise DataError(f"unknown dataset {cfg.name!r}; available: {', '.join(list_datasets())}")
    return _LOADERS[cfg.name](cfg, seed)


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
