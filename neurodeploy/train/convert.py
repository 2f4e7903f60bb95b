"""ANN-to-SNN conversion: copy weights, then initialise thresholds layer by layer.

Per neuron layer, the threshold comes from the layer's pre-activation (its input current) on a
batch of training images, computed with the earlier layers' thresholds already installed, times a
scaling factor (Rathi & Roy, DIET-SNN; HIRE-SNN §4). Two rules (``train.convert.rule``):

- ``step_max`` (default, the authors' code): at every step t the nearest-rank percentile of that
  step's current over the batch and all neurons, ``k = 1 + round(0.01·q·(n − 1))``-th smallest
  value, and the threshold is the maximum over t (floored at 0) — DIET-SNN self_models/
  vgg_spiking.py and hiresnn2021 vgg_spiking_nodewise.py ``percentile`` / ``forward(find_max_mem=
  True)``: ``cur = self.percentile(self.features[l](out_prev).view(-1), 99.7); if cur > max_mem:
  max_mem = cur`` inside the loop over t; ``find_threshold`` uses one batch (``batch_idx == 0``).
- ``pooled`` (the rule before issue 19): one linearly interpolated quantile of the current pooled
  over all T steps.
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


RULES = ("step_max", "pooled")
_MAX_ELEMENTS = 16_000_000


def nearest_rank_percentile(t: torch.Tensor, q: float) -> float:
    """The authors' percentile: the ``k``-th smallest value, ``k = 1 + round(0.01·q·(n − 1))``
    (Python's ``round``, as in hiresnn2021 vgg_spiking_nodewise.py ``percentile``)."""
    flat = t.reshape(-1).float()
    k = 1 + round(0.01 * float(q) * (flat.numel() - 1))
    return float(flat.kthvalue(k).values)


def _subsample(cur: torch.Tensor) -> torch.Tensor:
    if cur.numel() <= _MAX_ELEMENTS:
        return cur
    return cur[torch.randperm(cur.numel(), generator=torch.Generator().manual_seed(0))[:_MAX_ELEMENTS]]


def threshold_from_current(cur: torch.Tensor, percentile: float, rule: str = "step_max") -> float:
    """The threshold (before scaling) of a layer whose input current over the run is ``cur``
    (``[T, B, ...]``): see the module docstring for the rules."""
    if rule == "step_max":
        return max([0.0] + [nearest_rank_percentile(_subsample(c.flatten()), percentile) for c in cur])
    if rule == "pooled":
        return float(torch.quantile(_subsample(cur.flatten()).float(), percentile / 100.0))
    raise ValueError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")


@torch.no_grad()
def init_thresholds(snn: SpikingNetwork, x: torch.Tensor, percentile: float, scale: float,
                    rule: str = "step_max") -> dict[str, float]:
    """Set each neuron layer's threshold from its input current (``rule``: ``step_max`` |
    ``pooled``, see the module docstring); returns the thresholds."""
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
        th = threshold_from_current(captured.pop(name), percentile, rule) * scale
        th = max(th, 1e-3)
        neuron.threshold.data.fill_(th)
        thresholds[name] = th
    snn.train(was)
    return thresholds


def convert(ann: nn.Module, snn: SpikingNetwork, x: torch.Tensor, percentile: float, scale: float,
            rule: str = "step_max") -> dict[str, float]:
    """ANN twin -> SNN: copy weights, initialise thresholds; leaks stay at their initial value."""
    copy_ann_weights(ann, snn)
    return init_thresholds(snn, x, percentile, scale, rule)
