"""Pooling and flatten folded into the one synaptic layer between two neuron layers (netx has no pooling).

For a pool with stride = size followed by a conv: a conv with kernel k·s, stride s·stride, padding
s·padding and weights w/k² (exact); otherwise every module is linear, so the chain is one dense
matrix (exact composition). Every fold is a line of the lowering log.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...ir.from_nir import SumPool2d

def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _chain_matrix(mods: list[nn.Module], in_shape: tuple[int, ...]) -> np.ndarray:
    """The exact matrix ``[n_out, n_in]`` of a chain of linear modules (identity basis pushed through)."""
    n = int(np.prod(in_shape))
    with torch.no_grad():
        h = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
        for m in mods:
            h = m.double()(h)
    return h.reshape(n, -1).T.numpy()


Folded = tuple[str, list[str], str, np.ndarray, dict, tuple, "np.ndarray | None"]


def _fold_group(group: list[tuple[str, nn.Module]], in_shape: tuple[int, ...],
                log_line: Callable[[str], None]) -> Folded:
    """Fold pooling/flatten into the one conv/linear of a group between two neuron layers.

    Returns (synapse name, folded names, kind, float weight, conv params, out shape, float bias per
    output neuron or None).
    """
    names = [n for n, _ in group]
    for n, m in group:
        if isinstance(m, nn.MaxPool2d):
            raise UnsupportedLayerError(f"node {n!r} (MaxPool2d): max pooling has no Loihi/netx equivalent; "
                                        "use average pooling (model.pooling = 'avg')")
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d, SumPool2d, nn.Flatten)):
            raise UnsupportedLayerError(f"node {n!r} ({type(m).__name__}) cannot be lowered to Loihi")
    syn = [(n, m) for n, m in group if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(syn) != 1:
        what = "no synaptic layer" if not syn else f"{len(syn)} synaptic layers {[n for n, _ in syn]}"
        raise UnsupportedLayerError(f"nodes {names}: {what} between two neuron layers; Loihi needs exactly one "
                                    "conv/linear per layer (a pooling layer must be followed by one)")
    sname, smod = syn[0]
    mods = [copy.deepcopy(m).double() for _, m in group]
    with torch.no_grad():
        zero_out = nn.Sequential(*mods).eval()(torch.zeros(1, *in_shape, dtype=torch.float64))
    out_shape = tuple(zero_out.shape[1:])
    bias = None
    if getattr(smod, "bias", None) is not None and torch.any(smod.bias != 0):
        if names.index(sname) != len(names) - 1:
            raise UnsupportedLayerError(f"node {sname!r}: a bias followed by pooling cannot be folded")
        bias = zero_out.reshape(-1).numpy().copy()  # per output neuron
        for m in mods:
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.data.zero_()
    pools = [(n, m) for n, m in group if isinstance(m, (nn.AvgPool2d, SumPool2d))]
    # exact conv folding: [pool (k = s, no padding, dims divisible by s)] -> conv (dilation 1, groups 1)
    if isinstance(smod, nn.Conv2d) and _pair(smod.dilation) == (1, 1) and smod.groups == 1:
        w = smod.weight.detach().double().numpy()
        stride, padding = _pair(smod.stride), _pair(smod.padding)
        if len(group) == 1:
            return sname, [], "conv", w, {"stride": stride, "padding": padding}, out_shape, bias
        if len(group) == 2 and isinstance(group[0][1], (nn.AvgPool2d, SumPool2d)):
            pname, pool = group[0]
            k, s = _pair(pool.kernel_size), _pair(pool.stride if pool.stride is not None else pool.kernel_size)
            pad = _pair(pool.padding)
            h, wd = in_shape[-2:]
            if k == s and pad == (0, 0) and h % s[0] == 0 and wd % s[1] == 0:
                f = 1.0 if isinstance(pool, SumPool2d) else 1.0 / (k[0] * k[1])
                wf = np.kron(w, np.ones((1, 1, k[0], k[1]))) * f
                st = (stride[0] * s[0], stride[1] * s[1])
                pd = (padding[0] * s[0], padding[1] * s[1])
                log_line(f"pooling: {pname} ({type(pool).__name__} {k[0]}x{k[1]}, stride {s[0]}) folded exactly into "
                         f"{sname}: kernel {wf.shape[2]}x{wf.shape[3]}, stride {st[0]}, padding {pd[0]}, weights "
                         f"x{f:g} (netx has no pooling layer)")
                return sname, [pname], "conv", wf, {"stride": st, "padding": pd, "pre_pool": k}, out_shape, bias
    # general case: every module is linear, so the chain is one matrix (exact composition)
    wm = _chain_matrix(mods, in_shape)
    for pname, pool in pools:
        k = _pair(pool.kernel_size)
        s = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        how = ("folded exactly" if k == s else
               f"lowered as a strided depthwise conv ({k[0]}x{k[1]}, stride {s[0]}, weight "
               f"{'1' if isinstance(pool, SumPool2d) else f'1/{k[0] * k[1]}'}) and composed exactly")
        log_line(f"pooling: {pname} ({type(pool).__name__} {k[0]}x{k[1]}, stride {s[0]}) {how} into {sname} "
                 f"as one dense {wm.shape[0]}x{wm.shape[1]} synaptic matrix (netx has no pooling layer)")
    flat = [n for n, m in group if isinstance(m, nn.Flatten)]
    if flat:
        log_line(f"flatten: {', '.join(flat)} absorbed into the dense matrix of {sname} (C,H,W order)")
    return sname, [n for n in names if n != sname], "dense", wm, {}, out_shape, bias


def _input_fanout(group: list[tuple[str, nn.Module]], in_shape: tuple[int, ...]) -> np.ndarray:
    """Real fan-out of each input pixel into the first synaptic layer (edges and padding included)."""
    mods = []
    for _, m in group:
        if isinstance(m, nn.Conv2d):
            c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                          bias=False)
            c.weight.data = torch.ones_like(m.weight)
            mods.append(c)
        elif isinstance(m, nn.Linear):
            lin = nn.Linear(m.in_features, m.out_features, bias=False)
            lin.weight.data = torch.ones_like(m.weight)
            mods.append(lin)
        else:
            mods.append(m)
    mat = _chain_matrix(mods, in_shape)
    return (mat != 0).sum(0).astype(np.float64)
