"""torch SNN -> NIR graph, by a table keyed by module type (NIRTorch style, user-extendable).

Shapes in NIR exclude the batch dimension. A neuron with leak λ and threshold v_th, discretised
with step dt, is NIR's LIF with τ = dt / (1 − λ), r = τ / dt, v_leak = 0 (forward Euler then gives
u ← λ·u + I), or NIR's IF with r = 1 / dt when λ = 1. Reset by subtraction is in the metadata.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedLayerError
from ..snn.network import SpikingNetwork, TimeDropout
from ..snn.neuron import SpikingNeuron
from .metadata import DeployMeta, write_meta

log = logging.getLogger(__name__)

Converter = Callable[[nn.Module, tuple[int, ...], float], "nir.NIRNode | None"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _conv(m: nn.Conv2d, in_shape, dt):
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    if isinstance(m.padding, str):
        raise UnsupportedLayerError(f"Conv2d padding={m.padding!r}: give explicit padding")
    return nir.Conv2d(
        input_shape=tuple(in_shape[1:]), weight=_np(m.weight), stride=m.stride, padding=m.padding,
        dilation=m.dilation, groups=m.groups, bias=bias,
    )


def _linear(m: nn.Linear, in_shape, dt):
    if m.bias is None:
        return nir.Linear(weight=_np(m.weight))
    return nir.Affine(weight=_np(m.weight), bias=_np(m.bias))


def _pair(v) -> np.ndarray:
    return np.array(v if isinstance(v, (tuple, list)) else (v, v))


def _avgpool(m: nn.AvgPool2d, in_shape, dt):
    stride = m.kernel_size if m.stride is None else m.stride
    return nir.AvgPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding))


def _flatten(m: nn.Flatten, in_shape, dt):
    start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
    end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start, end_dim=end)


def _neuron(m: SpikingNeuron, in_shape, dt):
    shape = tuple(in_shape)
    vth = np.broadcast_to(_np(m.threshold), shape).copy()
    lam = float(m.leak.detach().clamp(max=1.0))
    if lam >= 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, np.float32), v_threshold=vth, v_reset=np.zeros(shape, np.float32))
    tau = dt / (1.0 - lam)
    return nir.LIF(
        tau=np.full(shape, tau, np.float32), r=np.full(shape, tau / dt, np.float32),
        v_leak=np.zeros(shape, np.float32), v_threshold=vth, v_reset=np.zeros(shape, np.float32),
    )


def _skip(m, in_shape, dt):
    return None


def _refuse_maxpool(m, in_shape, dt):
    raise UnsupportedLayerError("MaxPool2d: max pooling has no NIR node (and no Lava/Speck equivalent); "
                                "use average pooling (model.pooling = 'avg')")


MODULE_MAP: dict[type, Converter] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.AvgPool2d: _avgpool,
    nn.Flatten: _flatten,
    SpikingNeuron: _neuron,
    nn.Dropout: _skip,
    TimeDropout: _skip,
    nn.Identity: _skip,
    nn.MaxPool2d: _refuse_maxpool,
}


def to_nir(net: SpikingNetwork, meta: DeployMeta, module_map: dict[type, Converter] | None = None) -> nir.NIRGraph:
    """Convert a sequential :class:`SpikingNetwork` to a NIR graph carrying ``meta``."""
    table = {**MODULE_MAP, **(module_map or {})}
    shape = tuple(meta.input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    x = torch.zeros(1, *shape)
    with torch.no_grad():
        for name, m in net.layers.items():
            conv = table.get(type(m))
            if conv is None:
                raise UnsupportedLayerError(f"layer {name!r} ({type(m).__name__}) has no NIR converter")
            try:
                node = conv(m, tuple(x.shape[1:]), meta.dt)
            except UnsupportedLayerError as e:
                raise UnsupportedLayerError(f"layer {name!r}: {e}") from None
            if not isinstance(m, SpikingNeuron):
                x = m.eval()(x) if not isinstance(m, TimeDropout) else x
            if node is None:
                log.debug("layer %s (%s) is the identity at inference; not exported", name, type(m).__name__)
                continue
            nodes[name] = node
            edges.append((prev, name))
            prev = name
    nodes["output"] = nir.Output(output_type={"output": np.array(tuple(x.shape[1:]))})
    edges.append((prev, "output"))
    meta.num_classes = int(np.prod(x.shape[1:]))
    meta.reset = {n: m.reset for n, m in net.neurons()}
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    write_meta(graph, meta)
    return graph


def write_nir(graph: nir.NIRGraph, path: str | Path) -> None:
    """Write a NIR graph atomically (temporary file, then rename)."""
    from ..util import atomic_path

    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
