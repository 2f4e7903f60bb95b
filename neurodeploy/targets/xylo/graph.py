"""Read a dense / recurrent spiking network as Xylo layers, and check Xylo™Audio 3's limits.

:func:`chain` accepts input → [AvgPool2d, Flatten: done by the host] → Linear → spiking neuron
[⇄ recurrent Linear] → ... → spiking neuron | non-spiking Linear (readout) → output, and refuses
anything else naming the node (convolutions, pooling after a layer, skip connections).
:func:`check_limits` checks the chip's resources (profile ``[limits]``, sources there) before
rockpool's mapper runs, so an error names the limit and the layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import TargetError, UnsupportedLayerError
from ...snn.kinds import CubaSpikingNeuron
from ...snn.network import SpikingNetwork
from ...snn.neuron import SpikingNeuron

DASH_MIN, DASH_MAX = 1, 15  # dash 0 zeroes the state every step (x − x >> 0 = 0); 4-bit bit-shift


class XyloLimitError(TargetError):
    """The network does not fit Xylo: names the limit, what the layer needs and what the chip has."""


@dataclass
class Layer:
    """One neuron layer of the source, its float parameters (synaptic gain folded into the weights)."""

    synapse: str
    neuron: str | None  # None: the non-spiking readout (output neurons that integrate, read as Vmem)
    rec: str | None
    w: np.ndarray  # [n_out, n_in]
    wr: np.ndarray | None  # [n, n] (row: target)
    b: np.ndarray  # bias on the synaptic current (Affine biases, times the gain)
    theta: float
    alpha: float
    lam: float
    reset: str

    @property
    def label(self) -> str:
        return self.neuron or f"{self.synapse} (readout)"


def _scalar(t: torch.Tensor, what: str, name: str) -> float:
    v = t.detach().double().reshape(-1)
    if v.numel() > 1 and not bool(torch.all(v == v[0])):
        raise UnsupportedLayerError(f"node {name!r}: per-neuron {what} are not lowered to Xylo yet (one value "
                                    "per layer)")
    return float(v[0])


def chain(net: SpikingNetwork) -> tuple[list[str], list[tuple[str, str | None, str | None]]]:
    """(nodes before the first Linear, [(synapse, neuron or None, recurrent synapse or None)]): input →
    [AvgPool2d, Flatten: done by the host] → Linear → neuron [⇄ Linear] → ... → neuron | Linear (a
    non-spiking readout, neuron None) → output. Anything else fails naming the node."""
    succ: dict[str, list[str]] = {}
    for a, b in net.edges:
        succ.setdefault(a, []).append(b)
    rec_of = dict(net.recurrent_edges)
    out: list[tuple[str, str | None, str | None]] = []
    pre: list[str] = []
    cur = net.input_node
    while True:
        nxt = [n for n in succ.get(cur, []) if n != rec_of.get(cur)]
        if nxt == [net.output_node]:
            break
        if len(nxt) != 1:
            raise UnsupportedLayerError(f"node {cur!r} feeds {nxt}: the Xylo lowering takes chains of Linear → "
                                        "spiking-neuron layers (each with an optional recurrent Linear)")
        syn = nxt[0]
        mod = net.layers[syn]
        if isinstance(mod, (nn.Flatten, nn.AvgPool2d)) and not out:
            pre.append(syn)
            cur = syn
            continue
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)):
            raise UnsupportedLayerError(f"node {syn!r} ({type(mod).__name__}): Xylo has no convolution or pooling "
                                        "(dense and recurrent layers only); use Speck for convolutional networks")
        neu = succ.get(syn, [])
        if not isinstance(mod, nn.Linear):
            raise UnsupportedLayerError(f"node {syn!r} ({type(mod).__name__}): the Xylo lowering needs a Linear "
                                        "feeding a spiking neuron layer")
        if neu == [net.output_node]:
            out.append((syn, None, None))  # non-spiking readout: output neurons as integrators (Vmem)
            break
        if len(neu) != 1 or not isinstance(net.layers[neu[0]], SpikingNeuron):
            raise UnsupportedLayerError(f"node {syn!r} feeds {neu}: the Xylo lowering needs one spiking neuron "
                                        "layer after each Linear")
        n = neu[0]
        rec = rec_of.get(n)
        if rec is not None and (not isinstance(net.layers[rec], nn.Linear) or succ.get(rec) != [n]):
            raise UnsupportedLayerError(f"recurrent edge {n}→{rec}: Xylo lowers a recurrent Linear from a neuron "
                                        "layer back to itself only")
        out.append((syn, n, rec))
        cur = n
    if len(rec_of) != sum(r is not None for _, _, r in out):
        raise UnsupportedLayerError(f"recurrent edges {net.recurrent_edges}: only self-recurrent layers lower "
                                    "to Xylo")
    return pre, out


def _lin(m: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    w = m.weight.detach().double().numpy()
    return w, (m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0]))


def layers_of(net: SpikingNetwork) -> list[Layer]:
    """The float layers: weights times the synaptic gain, the recurrent Affine's bias merged."""
    layers = []
    for syn, name, rec in chain(net)[1]:
        if name is None:
            w, b = _lin(net.layers[syn])
            layers.append(Layer(syn, None, None, w, None, b, math.inf, 0.0, 1.0, "none"))
            continue
        neuron = net.layers[name]
        w, b = _lin(net.layers[syn])
        wr, br = _lin(net.layers[rec]) if rec is not None else (None, np.zeros(w.shape[0]))
        cuba = isinstance(neuron, CubaSpikingNeuron)
        gain = (np.broadcast_to(neuron.syn_gain.detach().double().numpy().reshape(-1), (w.shape[0],))
                if cuba else np.ones(w.shape[0]))
        alpha = min(max(float(neuron.syn_leak), 0.0), 1.0) if cuba else 0.0
        layers.append(Layer(syn, name, rec, w * gain[:, None], None if wr is None else wr * gain[:, None],
                            (b + br) * gain, _scalar(neuron.threshold, "thresholds", name),
                            alpha, min(max(_scalar(neuron.leak, "membrane leaks", name), 0.0), 1.0), neuron.reset))
    return layers


def dash_of(decay: float) -> tuple[int, float]:
    """The bit-shift for a decay factor (rockpool: round(log2(τ/dt)), τ/dt = 1/(1 − decay)), clipped
    to [1, 15]; returns dash and the decay Xylo applies, 1 − 2^−dash."""
    d = DASH_MAX if decay >= 1.0 - 2.0 ** -(DASH_MAX + 1) else int(round(math.log2(1.0 / (1.0 - decay))))
    d = min(max(d, DASH_MIN), DASH_MAX)
    return d, 1.0 - 2.0 ** -d


def check_limits(layers: list[Layer], n_inputs: int, limits: dict[str, Any]) -> str:
    """Xylo™Audio 3's resources (profile [limits]); XyloLimitError naming the limit and the layer.
    Returns one line of what the network uses of each."""
    lim = {"inputs": 16, "hidden_neurons": 992, "outputs": 16, "input_expansion_neurons": 128,
           "output_expansion_neurons": 128, "hidden_weights": 31744, "max_fan_out": 1024, **limits}
    if len(layers) < 2:
        raise XyloLimitError(f"layer {layers[0].neuron!r} is the only neuron layer; Xylo needs hidden neurons and "
                             "output neurons (at least two neuron layers, rockpool at_least_two_neuron_layers_needed)")
    first, last = layers[0], layers[-1]
    if n_inputs > lim["inputs"]:
        raise XyloLimitError(f"layer {first.synapse!r}: {n_inputs} input channels > {lim['inputs']}, Xylo's input "
                             "channels")
    hidden = sum(x.w.shape[0] for x in layers[:-1])
    if hidden > lim["hidden_neurons"]:
        raise XyloLimitError(f"layers {', '.join(x.label for x in layers[:-1])}: {hidden} hidden neurons > "
                             f"{lim['hidden_neurons']}, Xylo's hidden neurons")
    if last.w.shape[0] > lim["outputs"]:
        raise XyloLimitError(f"layer {last.label!r}: {last.w.shape[0]} output neurons > {lim['outputs']}, Xylo's "
                             "output channels")
    if last.wr is not None:
        raise XyloLimitError(f"layer {last.label!r}: output neurons cannot be recurrent on Xylo (edge "
                             f"{last.neuron}→{last.rec}); add a non-recurrent output layer")
    if first.w.shape[0] > lim["input_expansion_neurons"]:
        raise XyloLimitError(f"layer {first.label!r}: {first.w.shape[0]} neurons receive the input > "
                             f"{lim['input_expansion_neurons']}, Xylo's input expansion neurons")
    feed = layers[-2]
    if feed.w.shape[0] > lim["output_expansion_neurons"]:
        raise XyloLimitError(f"layer {feed.label!r}: {feed.w.shape[0]} neurons project to the output > "
                             f"{lim['output_expansion_neurons']}, Xylo's output expansion neurons")
    hw = [(x.synapse, int((x.w != 0).sum())) for x in layers[1:-1]]
    hw += [(x.rec, int((x.wr != 0).sum())) for x in layers if x.wr is not None]
    if sum(n for _, n in hw) > lim["hidden_weights"]:
        raise XyloLimitError(f"weight memory: {', '.join(f'{k} {n}' for k, n in hw)} = {sum(n for _, n in hw)} "
                             f"hidden-to-hidden weights > {lim['hidden_weights']}, Xylo's hidden weight memory")
    for k, x in enumerate(layers[:-1]):
        fan = (layers[k + 1].w != 0).sum(0) + ((x.wr != 0).sum(0) if x.wr is not None else 0)
        if fan.max() > lim["max_fan_out"]:
            raise XyloLimitError(f"layer {x.label!r}: a neuron projects to {int(fan.max())} synapses > "
                                 f"{lim['max_fan_out']}, Xylo's fan-out per hidden neuron")
    fans = [int(((layers[k + 1].w != 0).sum(0) + ((x.wr != 0).sum(0) if x.wr is not None else 0)).max())
            for k, x in enumerate(layers[:-1])]
    return (f"resources (Xylo Audio 3): {n_inputs} of {lim['inputs']} input channels, {hidden} of "
            f"{lim['hidden_neurons']} hidden neurons, {last.w.shape[0]} of {lim['outputs']} outputs, input expansion "
            f"{first.w.shape[0]} of {lim['input_expansion_neurons']}, output expansion {feed.w.shape[0]} of "
            f"{lim['output_expansion_neurons']}, {sum(n for _, n in hw)} of {lim['hidden_weights']} hidden weights, "
            f"largest fan-out {max(fans)} of {lim['max_fan_out']}")


__all__ = ["DASH_MAX", "DASH_MIN", "Layer", "XyloLimitError", "chain", "check_limits", "dash_of", "layers_of"]
