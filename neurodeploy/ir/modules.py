"""Stateless torch modules for NIR node types that the model zoo does not use itself.

They are what :mod:`neurodeploy.ir.from_nir` builds for graphs written by other frameworks
(sinabs, snnTorch, Norse, hand-made); they take ``[N, ...]`` (N = T·B or B). Stateful neuron
kinds (CubaLIF, LI, I) live in :mod:`neurodeploy.snn.kinds`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..snn.surrogate import LinearSurrogate


class SumPool2d(nn.Module):
    """Sum pooling (NIR SumPool2d, sinabs SumPool2d): average pooling times the window size."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        area = (k[0] * k[1]) if isinstance(k, tuple) else k * k
        return F.avg_pool2d(x, k, self.stride, self.padding) * area


class Scale(nn.Module):
    """NIR Scale: elementwise product ``y = x ⊙ s`` with ``s`` shaped like one sample."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Heaviside(nn.Module):
    """NIR Threshold: stateless spike ``z = 1 if x > θ else 0``; the backward pass uses a surrogate of x − θ."""

    def __init__(self, threshold: torch.Tensor, surrogate: Callable | None = None) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32))
        self.surrogate = surrogate or LinearSurrogate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.surrogate(x - self.threshold)
