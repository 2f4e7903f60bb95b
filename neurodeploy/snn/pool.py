"""2×2 average pooling (stride 2) on the CPU with a cheaper forward than ``F.avg_pool2d``'s NCHW kernel.

The model zoo's pools (``nn.AvgPool2d(2)``) follow neurons; ATen's CPU kernel
(aten/src/ATen/native/cpu/AvgPoolKernel.cpp ``cpu_avg_pool``) loops over every output pixel and
its window, ``sum = 0; sum += x[ih][iw] (row by row); out = sum / 4``. :func:`avg_pool2x2` computes
the same sums in the same order with four strided whole-tensor adds, ``((x₀₀ + x₀₁) + x₁₀) + x₁₁``,
then ÷ 4: the same floats (the kernel's leading ``0 +`` only turns −0 into +0). Measured (1 thread,
digits net [512, 16, 8, 8]): 1.51 → 0.47 ms. On large maps (above ``MAX_NUMEL``: on VGG's 12.6 M-element
map the four strided passes were slower than the kernel) the forward is the kernel itself. Backward
(every size): each input cell gets grad_output / 4 written once, the values of ATen's
``avg_pool2d_backward`` without its zero-fill pass (see ``_AvgPool2x2.backward``).
"""
from __future__ import annotations

import torch
from torch import nn

from . import buffers

MAX_NUMEL = 1 << 23


class _AvgPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape = x.shape
        if x.numel() > MAX_NUMEL:  # the kernel itself (on a large map it is the faster forward)
            return torch.nn.functional.avg_pool2d(x, 2)
        y = x[..., 0::2, 0::2] + x[..., 0::2, 1::2]
        y += x[..., 1::2, 0::2]
        y += x[..., 1::2, 1::2]
        return y.div_(4.0)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        # ATen's avg_pool2d_backward (AvgPoolKernel.cpp cpu_avg_pool_backward) zero-fills the input
        # gradient, then adds grad_output / 4 to each of the window's 4 cells: every cell gets
        # 0 + g/4. Here g·0.25 (= g/4 exactly: a power of two) is written once into each cell (no
        # zero-fill pass, reused pages: buffers.py); the only difference is the kernel's 0 + −0 = +0.
        n, c, h, w = ctx.shape
        gi = buffers.empty((n, c, h, w), g.dtype)
        win = gi.view(n, c, h // 2, 2, w // 2, 2)  # [.., window row, row in it, window col, col in it]
        q = torch.mul(g, 0.25)
        win[:, :, :, 0, :, 0].copy_(q)  # two strided writes of the first row of every window,
        win[:, :, :, 0, :, 1].copy_(q)
        win[:, :, :, 1].copy_(win[:, :, :, 0])  # then the second row as a copy of the first
        return gi


def usable(layer: nn.Module, x: torch.Tensor) -> bool:
    """True for an ``nn.AvgPool2d(2)`` (stride 2, no padding, floor mode, no divisor override) without
    hooks on a small contiguous 4-D float CPU input of even height and width."""
    if type(layer) is not nn.AvgPool2d or layer._forward_hooks or layer._forward_pre_hooks:
        return False
    k, st = layer.kernel_size, layer.stride
    if k not in (2, (2, 2)) or st not in (2, (2, 2)) or layer.padding not in (0, (0, 0)) or layer.ceil_mode \
            or layer.divisor_override is not None:
        return False
    if x.dim() != 4 or x.device.type != "cpu" or not x.is_floating_point() or not x.is_contiguous():
        return False
    if x.shape[2] % 2 or x.shape[3] % 2:
        return False
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return False
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)`` (see the module docstring)."""
    return _AvgPool2x2.apply(x)
