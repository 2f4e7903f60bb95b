"""Operation counts: HIRE-SNN Table 6 formulas and exact synaptic-operation counts.

FL_ANN of a conv layer = k² · H_o · W_o · C_o · C_i (per group: C_i / groups); of a linear layer
C_i · C_o. FL_SNN = FL_ANN × ζ, ζ the spiking activity of the layer's input.

Exact synaptic operations: every spike times its real fan-out — the number of synapses (output
neurons × kernel taps that actually land inside the output, edges and padding included) it
reaches. Pooling between a neuron layer and the next synaptic layer routes a spike to one pooled
position; its fan-out is that position's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..snn.network import SpikingNetwork
from ..snn.neuron import SpikingNeuron


@dataclass
class LayerInfo:
    """A synaptic layer (conv or linear) with the neuron layers on either side of it."""

    name: str
    kind: str  # conv | linear
    flops_ann: int
    input_neuron: str | None  # neuron layer feeding it (None: the network input)
    output_neuron: str | None  # neuron layer it drives (None: the readout)
    neurons: int  # neurons it drives (its output size)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _flops(m: nn.Module, out_shape: tuple[int, ...]) -> int:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        co, ho, wo = out_shape
        return kh * kw * ho * wo * co * (m.in_channels // m.groups)
    return m.in_features * m.out_features


def synaptic_layers(net: SpikingNetwork) -> list[LayerInfo]:
    """Describe the synaptic layers of a sequential network (shapes from a dry run)."""
    x = torch.zeros(1, *net.input_shape)
    infos: list[LayerInfo] = []
    last_neuron: str | None = None
    pending: LayerInfo | None = None
    with torch.no_grad():
        for name, m in net.layers.items():
            if isinstance(m, SpikingNeuron):
                if pending is not None:
                    pending.output_neuron = name
                    pending = None
                last_neuron = name
                continue
            in_shape = tuple(x.shape[1:])
            if not getattr(m, "sequence_aware", False):
                x = m.eval()(x)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                out_shape = tuple(x.shape[1:])
                kind = "conv" if isinstance(m, nn.Conv2d) else "linear"
                n = 1
                for d in out_shape:
                    n *= d
                pending = LayerInfo(name, kind, _flops(m, out_shape), last_neuron, None, n, in_shape, out_shape)
                infos.append(pending)
    return infos


def _routing(m: nn.Module) -> nn.Module:
    """The layer as spike routing: average pooling counts as sum pooling (one spike, one target)."""
    if isinstance(m, nn.AvgPool2d):
        k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
        return _Scaled(m, k[0] * k[1])
    return m


class _Scaled(nn.Module):
    def __init__(self, m: nn.Module, s: float) -> None:
        super().__init__()
        self.m, self.s = m, s

    def forward(self, x):
        return self.m(x) * self.s


def fanout_maps(net: SpikingNetwork) -> dict[str, torch.Tensor]:
    """For each synaptic layer fed by a neuron layer: fan-out of each of those neurons ``[...]``."""
    maps: dict[str, torch.Tensor] = {}
    route: list[nn.Module] = []
    src: str | None = None
    shape = None
    x = torch.zeros(1, *net.input_shape)
    with torch.no_grad():
        for name, m in net.layers.items():
            if isinstance(m, SpikingNeuron):
                src, route, shape = name, [], tuple(x.shape[1:])
                continue
            if isinstance(m, (nn.Conv2d, nn.Linear)) and src is not None:
                s = torch.zeros(1, *shape, requires_grad=True)
                with torch.enable_grad():
                    h = s
                    for r in route:
                        h = _routing(r).eval()(h)
                    if isinstance(m, nn.Conv2d):
                        y = F.conv2d(h, torch.ones_like(m.weight), None, m.stride, m.padding, m.dilation, m.groups)
                    else:
                        y = F.linear(h, torch.ones_like(m.weight))
                    (g,) = torch.autograd.grad(y.sum(), s)
                maps[name] = g[0].round()
                src = None
            elif src is not None and not getattr(m, "sequence_aware", False):
                route.append(m)
            if not getattr(m, "sequence_aware", False):
                x = m.eval()(x)
    return maps


def exact_synops(net: SpikingNetwork, spike_maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Synaptic operations per sample ``[B]`` for each synaptic layer fed by spikes."""
    cache = getattr(net, "_fanout_cache", None)
    if cache is None:
        cache = fanout_maps(net)
        net._fanout_cache = cache  # type: ignore[attr-defined]
    infos = {i.name: i for i in synaptic_layers(net)} if not hasattr(net, "_layer_cache") else net._layer_cache
    net._layer_cache = infos  # type: ignore[attr-defined]
    out = {}
    for name, fan in cache.items():
        src = infos[name].input_neuron
        if src in spike_maps:
            out[name] = (spike_maps[src] * fan).flatten(1).sum(1)
    return out
