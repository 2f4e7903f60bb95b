"""CIFAR-10 / CIFAR-100 through torchvision, from a local folder only (never downloaded).

``data.path`` is the folder that holds ``cifar-10-batches-py`` / ``cifar-100-python`` (the archives
from https://www.cs.toronto.edu/~kriz/cifar.html, extracted), or that folder itself. Images are
float32 in [0, 1], ``[N, 3, 32, 32]``; normalisation belongs to the model so attacks work in pixel
space. Training augmentation (HIRE-SNN / DIET-SNN): random 32×32 crop of the image padded by 4 px
with reflection, then a horizontal flip with probability 1/2.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..recipe import DataConfig
from .datasets import Dataset, register_dataset

log = logging.getLogger(__name__)

_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Per sample: crop H×W from the reflect-padded image at a random offset, flip with p = 1/2."""
    b, c, h, w = x.shape
    xp = F.pad(x, (padding,) * 4, mode="reflect")
    off = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(b):
        oy, ox = int(off[i, 0]), int(off[i, 1])
        img = xp[i, :, oy:oy + h, ox:ox + w]
        out[i] = img.flip(-1) if flip[i] else img
    return out


def _root(cfg: DataConfig, name: str) -> Path:
    folder = _FOLDERS[name]
    if not cfg.path:
        raise DataError(f"{name}: set data.path to the local folder holding {folder}/ "
                        "(CIFAR is never downloaded)")
    p = Path(cfg.path).expanduser()
    if p.name == folder:
        p = p.parent
    if not (p / folder).is_dir():
        raise DataError(f"{p / folder}: {name} not found; extract the python version of the dataset "
                        f"there (nothing is downloaded)")
    return p


def _load_cifar(cfg: DataConfig, seed: int, name: str) -> Dataset:
    import torchvision

    root = _root(cfg, name)
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise DataError(f"{root / _FOLDERS[name]}: cannot read {name} ({e})") from None

    def arr(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))).float().div_(255.0)
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)

    xtr, ytr = arr(train)
    xte, yte = arr(test)
    log.info("%s: %d train / %d test images from %s", name, len(xtr), len(xte), root)
    return Dataset(name, xtr, ytr, xte, yte, (3, 32, 32), 10 if name == "cifar10" else 100,
                   augment=random_crop_flip if cfg.augment else None)


@register_dataset("cifar10")
def _cifar10(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR-10 (the official 50,000 / 10,000 split; ``test_fraction`` is not used)."""
    return _load_cifar(cfg, seed, "cifar10")


@register_dataset("cifar100")
def _cifar100(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR-100 (the official 50,000 / 10,000 split; ``test_fraction`` is not used)."""
    return _load_cifar(cfg, seed, "cifar100")
