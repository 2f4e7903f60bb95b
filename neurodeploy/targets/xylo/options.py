"""The ``xylo`` target's typed options: a light module (no rockpool), so a recipe's ``[deploy.xylo]``
table is checked without importing the simulator."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import TargetOptions


@dataclass
class XyloOptions(TargetOptions):
    """What the Xylo lowering (:mod:`.lower`) reads, besides the shared options."""

    input_levels: float = 8.0
    """Direct (analog) input, ``input_spikes = "graded"``: events per unit of input value and step,
    round(x·L) events, at most 15 per channel and step (Xylo's input limit)."""
    weight_bits: int = 8
    """Signed weight bits given to rockpool's ``channel_quantize`` (Xylo: 8)."""
    threshold_bits: int = 16
    """Signed threshold bits given to ``channel_quantize`` (Xylo: 16-bit state and threshold)."""


__all__ = ["XyloOptions"]
