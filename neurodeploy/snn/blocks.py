"""Residual blocks: composite ``sequence_aware`` modules usable inside :class:`SpikingNetwork`.

Two connect styles:

- ``"sew"`` — spike-element-wise block (Fang et al., NeurIPS 2021, "Deep Residual Learning in
  Spiking Neural Networks") with the ADD connect function:
  ``O = SN(BN(conv2(SN(BN(conv1(S)))))) + shortcut(S)``, where the shortcut is the identity on the
  input spikes, or ``SN(BN(conv1x1(S)))`` when shape changes. The output is a spike *count* map
  (values 0, 1, 2), which the next block's convolution takes as input.
- ``"membrane"`` — the spiking ResNet of DIET-SNN / HIRE-SNN: the shortcut current is added to the
  second convolution's current before the second neuron,
  ``O = SN(conv2(SN(conv1(S))) + shortcut(S))``, shortcut = identity or conv1x1 (bias-free).

A block is built once as a template with empty neuron slots; :meth:`ResidualBlock.build` fills them
with :class:`SpikingNeuron` (SNN) or ReLU (ANN twin), exactly like ``None`` slots of a model spec,
so the parameter names are identical in both forms and ANN weights load into the SNN by name.
The SNN form receives ``[T, B, C, H, W]``; the ANN form receives ``[B, C, H, W]``.

For export, :meth:`ResidualBlock.nir_subgraph` returns NIR nodes with BatchNorm folded into the
preceding convolution (:func:`fold_batchnorm`), NIR ``Scale(1)`` nodes as the fan-out point and the
ADD junction (NIR sums all edges that enter a node).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .neuron import NeuronSpec, SpikingNeuron

CONNECTS = ("sew", "membrane")


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module | None) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` at inference.

    With s = γ / sqrt(σ² + eps): W' = W · s (per output channel), b' = (b − μ) · s + β.
    ``bn`` None or Identity returns a copy of ``conv`` (with a zero bias when it had none).
    """
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True)
    w = conv.weight.detach().clone()
    b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels)
    if isinstance(bn, nn.BatchNorm2d):
        var = bn.running_var if bn.running_var is not None else torch.ones_like(w[:, 0, 0, 0])
        mean = bn.running_mean if bn.running_mean is not None else torch.zeros_like(b)
        s = (bn.weight.detach() if bn.weight is not None else 1.0) / torch.sqrt(var + bn.eps)
        beta = bn.bias.detach() if bn.bias is not None else 0.0
        w = w * s.reshape(-1, 1, 1, 1)
        b = (b - mean) * s + beta
    out.weight.data.copy_(w)
    out.bias.data.copy_(b)
    return out


class _Slot(nn.Module):
    """An unfilled neuron slot (raises if the block is used before :meth:`ResidualBlock.build`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("ResidualBlock used before build(): its neuron slots are empty")


class ResidualBlock(nn.Module):
    """A basic residual block (two 3×3 convs) for SNNs and their ANN twins; see the module docstring.

    Parameters: ``cin``/``cout`` channels, ``stride`` of the first conv (and the 1×1 shortcut),
    ``connect`` ``"sew"`` | ``"membrane"``, ``batchnorm`` (SEW-ResNet: yes; HIRE-SNN: no, bias-free),
    ``dropout`` after the first neuron (one mask per sample over time in the SNN).
    """

    sequence_aware = True

    def __init__(self, cin: int, cout: int, stride: int = 1, connect: str = "sew", batchnorm: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if connect not in CONNECTS:
            raise ValueError(f"unknown connect {connect!r}; choose one of {', '.join(CONNECTS)}")
        self.connect = connect
        self.ann = False
        bn = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        # registration order = forward order (init_thresholds calibrates neurons in this order)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.sn1: nn.Module = _Slot()
        self.dropout = dropout
        self.drop1: nn.Module = nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        self.has_down = stride != 1 or cin != cout
        if self.has_down:
            self.down_conv = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.down_bn = bn(cout)
            if connect == "sew":
                self.down_sn: nn.Module = _Slot()
        self.sn2: nn.Module = _Slot()

    # ------------------------------------------------------------------ building
    def build(self, neuron: NeuronSpec, surrogate: Callable | None, ann: bool) -> "ResidualBlock":
        """Fill the neuron slots: SpikingNeuron (SNN) or ReLU (ANN twin); returns ``self``."""
        self.ann = ann
        for name, mod in list(self.named_children()):
            if isinstance(mod, _Slot):
                setattr(self, name, nn.ReLU() if ann else SpikingNeuron(neuron, surrogate))
        if self.dropout > 0:
            from .network import TimeDropout

            self.drop1 = nn.Dropout(self.dropout) if ann else TimeDropout(self.dropout)
        return self

    # ------------------------------------------------------------------ forward
    def _st(self, mod: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """A stateless layer on ``[T, B, ...]`` (SNN, merged to T·B) or ``[B, ...]`` (ANN)."""
        if self.ann:
            return mod(h)
        t, b = h.shape[:2]
        y = mod(h.reshape(t * b, *h.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop1(self.sn1(self._st(self.bn1, self._st(self.conv1, x))))
        out = self._st(self.bn2, self._st(self.conv2, out))
        short = x
        if self.has_down:
            short = self._st(self.down_bn, self._st(self.down_conv, x))
        if self.connect == "sew":
            if self.has_down:
                short = self.down_sn(short)
            return self.sn2(out) + short  # ADD connect function
        return self.sn2(out + short)

    # ------------------------------------------------------------------ export
    def nir_subgraph(self, prefix: str, in_shape: tuple, dt: float) -> tuple[dict, list, str, str]:
        """NIR nodes and edges of this block (inference form: BN folded, dropout dropped).

        Node names are ``f"{prefix}.{child}"`` — the same names ``SpikingNetwork.neurons()``
        reports for the nested neurons — plus ``{prefix}.input`` (a ``Scale(1)`` fan-out node,
        the entry) and for SEW ``{prefix}.add`` (a ``Scale(1)`` junction summing the two paths,
        the exit). For the membrane block the exit is ``{prefix}.sn2``, which sums the conv2 and
        shortcut currents. Returns ``(nodes, edges, entry, exit)``.
        """
        import nir

        from ..ir.to_nir import MODULE_MAP

        if self.ann:
            raise TypeError("nir_subgraph: export the SNN form of the block, not its ANN twin")
        in_shape = tuple(int(s) for s in in_shape)
        p = f"{prefix}."
        nodes: dict = {}
        edges: list = []
        conv_node, neuron_node = MODULE_MAP[nn.Conv2d], MODULE_MAP[SpikingNeuron]

        def conv(name: str, c: nn.Conv2d, bn: nn.Module, shape: tuple) -> tuple:
            folded = fold_batchnorm(c, bn)
            nodes[p + name] = conv_node(folded, shape, dt)
            with torch.no_grad():
                return tuple(folded(torch.zeros(1, *shape)).shape[1:])

        nodes[p + "input"] = nir.Scale(np.ones(in_shape, np.float32))
        s1 = conv("conv1", self.conv1, self.bn1, in_shape)
        nodes[p + "sn1"] = neuron_node(self.sn1, s1, dt)
        s2 = conv("conv2", self.conv2, self.bn2, s1)
        nodes[p + "sn2"] = neuron_node(self.sn2, s2, dt)
        edges += [(p + "input", p + "conv1"), (p + "conv1", p + "sn1"), (p + "sn1", p + "conv2"),
                  (p + "conv2", p + "sn2")]
        short = p + "input"
        if self.has_down:
            conv("down_conv", self.down_conv, self.down_bn, in_shape)
            edges.append((p + "input", p + "down_conv"))
            short = p + "down_conv"
            if self.connect == "sew":
                nodes[p + "down_sn"] = neuron_node(self.down_sn, s2, dt)
                edges.append((p + "down_conv", p + "down_sn"))
                short = p + "down_sn"
        if self.connect == "sew":
            nodes[p + "add"] = nir.Scale(np.ones(s2, np.float32))
            edges += [(p + "sn2", p + "add"), (short, p + "add")]
            return nodes, edges, p + "input", p + "add"
        edges.append((short, p + "sn2"))
        return nodes, edges, p + "input", p + "sn2"

    def extra_repr(self) -> str:
        return f"connect={self.connect}, ann={self.ann}"
