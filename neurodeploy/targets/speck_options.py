"""The ``speck`` target's typed options: a light module (no sinabs), so a recipe's
``[deploy.speck]`` table is checked without importing the simulator."""
from __future__ import annotations

from dataclasses import dataclass

from .base import TargetOptions


@dataclass
class SpeckOptions(TargetOptions):
    """What the Speck lowering (:mod:`.speck_lower`) and discretisation read, besides the shared options."""

    input_levels: float = 8.0
    """``input_spikes = "graded"``: events per unit of pixel value (round(x·L) events per pixel and step)."""
    leak: str = "drop"
    """A leak λ < 1 Speck's IAF neurons cannot hold: "drop" it (λ → 1) | "bias" (a constant −(1−λ)·v_th/2)."""
    readout: str = "spikes"
    """"spikes": output spike counts (the chip's usual readout) | "potential": the output layer's
    integrated potential read at the end of the window."""
    readout_threshold: float | None = None
    """Spikes readout: the added output IAF layer's threshold in logit units (default: the largest
    |weight| of the last layer times ``readout_threshold_scale``)."""
    readout_threshold_scale: float = 1.0
    """Multiplies the default readout threshold."""
    weight_clip_percentile: float = 100.0
    """Clip each layer's weights at this percentile of |w| before discretising (100 = no clipping)."""
    discretize: bool = True
    """False only to measure what the discretisation costs (float weights: not what the chip runs)."""


__all__ = ["SpeckOptions"]
