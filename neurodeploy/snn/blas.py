"""Dense layers' GEMMs on the CPU through numpy's BLAS when torch's is the slower one.

PyTorch's CPU wheels bundle Intel MKL for float32 ``mm``; on non-Intel CPUs MKL takes a generic code
path. Measured on this project's AMD EPYC machine (1 thread, VGG5's fc1: [192, 8192] × [8192, 4096]):
torch.mm 990 ms, numpy's OpenBLAS (Haswell kernels) 552-635 ms, for the forward product and both
backward products alike. :func:`linear` computes ``x Wᵀ (+ b)`` and its gradients ``g W`` and ``gᵀ x``
with ``numpy.matmul`` on views of the same memory (no copies) as one autograd node.

Only the summation order inside the GEMM differs from ``torch.nn.functional.linear`` (float rounding,
~1e-7 relative). The backend is chosen once per process, deterministically: numpy's BLAS when it is
OpenBLAS and the CPU vendor is not Intel, else torch; the environment variable ``NEURODEPLOY_BLAS``
(``torch`` | ``numpy``) overrides the choice. numpy's BLAS threads follow ``OMP_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` (the Makefile's 1), not ``torch.set_num_threads``.
"""
from __future__ import annotations

import functools
import logging
import os

import torch
from torch import nn

from . import buffers

log = logging.getLogger(__name__)

MIN_MACS = 1 << 20  # below this a GEMM is too small for the backend to matter (numpy's call overhead)


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.lru_cache(maxsize=1)
def backend() -> str:
    """``"numpy"`` or ``"torch"``: which library runs the CPU float32 GEMMs of :func:`linear`."""
    env = os.environ.get("NEURODEPLOY_BLAS", "").strip().lower()
    if env in ("torch", "numpy"):
        choice = env
    else:
        choice = "torch"
        try:
            import numpy as np

            cfg = np.show_config(mode="dicts") or {}
            blas = str(cfg.get("Build Dependencies", {}).get("blas", {}).get("name", "")).lower()
            vendor = _cpu_vendor()
            if "openblas" in blas and vendor and vendor != "GenuineIntel":
                choice = "numpy"
        except Exception:  # noqa: BLE001 - any failure keeps torch's GEMM
            choice = "torch"
    log.info("dense-layer GEMMs on the CPU: %s", "numpy's OpenBLAS" if choice == "numpy" else "torch")
    return choice


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (2-D float32 CPU) by numpy.matmul into a fresh torch tensor (views, no copies)."""
    import numpy as np

    out = buffers.empty((a.shape[0], b.shape[1]), a.dtype)  # reused pages (buffers.py); matmul overwrites it
    np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.numpy())
    return out


class _BlasLinear(torch.autograd.Function):
    """y = x Wᵀ; dx = g W, dW = gᵀ x (the products of torch's LinearBackward, by numpy's BLAS)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return _mm(x, w.t())

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        g = g.contiguous()  # e.g. the stride-0 gradient of a sum readout
        gx = _mm(g, w) if ctx.needs_input_grad[0] else None
        gw = _mm(g.t(), x) if ctx.needs_input_grad[1] else None
        return gx, gw


def usable(layer: nn.Module, x: torch.Tensor) -> bool:
    """True when :func:`linear` may stand in for ``layer(x)``: an nn.Linear without hooks on a 2-D
    float32 CPU input, a GEMM big enough to matter, backend numpy, not tracing/compiling/exporting."""
    if type(layer) is not nn.Linear or x.dim() != 2 or x.dtype != torch.float32 or x.device.type != "cpu":
        return False
    w = layer.weight
    if w.dtype != torch.float32 or w.device.type != "cpu" or x.shape[0] * w.numel() < MIN_MACS:
        return False
    if layer._forward_hooks or layer._forward_pre_hooks or nn.modules.module._global_forward_hooks \
            or nn.modules.module._global_forward_pre_hooks:
        return False  # someone observes this call (counting, recording): run the module itself
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return backend() == "numpy"


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` with the GEMMs (forward and backward) through numpy's BLAS; see :func:`usable`."""
    x = x.contiguous()
    w = layer.weight
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        y = _BlasLinear.apply(x, w)
    else:
        y = _mm(x, w.t())
    return y if layer.bias is None else y + layer.bias
