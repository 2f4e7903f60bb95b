"""ANN-to-SNN conversion: copy weights, then initialise thresholds layer by layer.

Per neuron layer, the threshold is the given percentile (99.7 by default) of the layer's
pre-activation — its input current over all T steps and a batch of training images — computed
with the earlier layers' thresholds already installed, times a scaling factor (Rathi & Roy,
DIET-SNN; HIRE-SNN §4).
"""
from __future__ import annotations

import torch
from torch import nn

from ..snn.network import SpikingNetwork


def copy_ann_weights(ann: nn.Module, snn: SpikingNetwork) -> None:
    """Load the ANN twin's weights into the SNN (same layer names; the ANN is a module whose children
    are the layers, or the executor with ReLU slots, whose ``layers`` are)."""
    target = snn.layers.state_dict()
    layers = ann.layers if isinstance(ann, SpikingNetwork) else ann
    src = {k: v for k, v in layers.state_dict().items() if k in target}
    missing = [k for k in target if k not in src and not k.endswith(("threshold", "leak"))]
    if missing:
        raise ValueError(f"ANN and SNN layers differ: {missing}")
    snn.layers.load_state_dict({**target, **src})


@torch.no_grad()
def init_thresholds(snn: SpikingNetwork, x: torch.Tensor, percentile: float, scale: float) -> dict[str, float]:
    """Set each neuron layer's threshold from its input current; returns the thresholds."""
    thresholds: dict[str, float] = {}
    captured: dict[str, torch.Tensor] = {}
    was = snn.training
    snn.eval()
    for name, neuron in snn.neurons():
        def hook(mod, inp, out, _name=name):
            captured[_name] = inp[0].detach()

        h = neuron.register_forward_hook(hook)
        try:
            snn(x)
        finally:
            h.remove()
        cur = captured.pop(name).flatten()
        if cur.numel() > 16_000_000:
            cur = cur[torch.randperm(cur.numel(), generator=torch.Generator().manual_seed(0))[:16_000_000]]
        th = float(torch.quantile(cur.float(), percentile / 100.0)) * scale
        th = max(th, 1e-3)
        neuron.threshold.data.fill_(th)
        thresholds[name] = th
    snn.train(was)
    return thresholds


def convert(ann: nn.Module, snn: SpikingNetwork, x: torch.Tensor, percentile: float, scale: float) -> dict[str, float]:
    """ANN twin -> SNN: copy weights, initialise thresholds; leaks stay at their initial value."""
    copy_ann_weights(ann, snn)
    return init_thresholds(snn, x, percentile, scale)
