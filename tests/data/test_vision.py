"""CIFAR augmentation (random crop with reflect padding + horizontal flip) and the augmented loader."""
from __future__ import annotations

import torch

from neurodeploy.data import Dataset
from neurodeploy.data.vision import random_crop_flip


def test_crop_flip_is_a_shifted_reflected_window():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    seen_flip = seen_shift = False
    for _ in range(20):
        y = random_crop_flip(x, g, padding=2)
        assert y.shape == x.shape
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
        for i in range(2):
            found = False
            for oy in range(5):
                for ox in range(5):
                    win = padded[i, :, oy:oy + 8, ox:ox + 8]
                    if torch.equal(y[i], win) or torch.equal(y[i], win.flip(-1)):
                        found = True
                        seen_flip |= torch.equal(y[i], win.flip(-1)) and not torch.equal(win, win.flip(-1))
                        seen_shift |= (oy, ox) != (2, 2)
            assert found
    assert seen_flip and seen_shift


def test_loader_augments_training_batches_only():
    x = torch.rand(16, 3, 8, 8)
    y = torch.arange(16)
    d = Dataset("t", x, y, x, y, (3, 8, 8), 16, augment=lambda b, g: b * 0 - 1)
    xb, _ = next(iter(d.loader("train", 8, shuffle=False)))
    assert torch.all(xb == -1)
    xt, _ = next(iter(d.loader("test", 8, shuffle=False)))
    assert torch.equal(xt, x[:8])


def test_cifar_loads_from_local_folder_without_download(tmp_path, monkeypatch):
    """The loader asks torchvision for the local copy with download=False and keeps pixel space."""
    import numpy as np
    import torchvision

    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import DataConfig

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            n = 6 if train else 4
            self.data = np.full((n, 32, 32, 3), 255, np.uint8)
            self.data[:, 0, 0, 0] = 0
            self.targets = list(range(n))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        d = load_dataset(DataConfig(name="cifar10", path=str(path)), 0)
        assert d.x_train.shape == (6, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
        assert d.x_train.max() == 1.0 and d.x_train[0, 0, 0, 0] == 0.0  # [0, 1], channels first
        assert d.augment is random_crop_flip and d.num_classes == 10
    assert all(c[0] == str(tmp_path) and c[2] is False for c in calls)
    no_aug = load_dataset(DataConfig(name="cifar10", path=str(tmp_path), augment=False), 0)
    assert no_aug.augment is None
