"""The typed options of the Loihi 2 targets (``loihi-emu``, ``lava``): a light module (no Lava, no
lowering), so a recipe's ``[deploy.loihi-emu]`` / ``[deploy.lava]`` table is checked without them."""
from __future__ import annotations

from dataclasses import dataclass

from ..base import TargetOptions


@dataclass
class LoihiOptions(TargetOptions):
    """What the Loihi lowering (:mod:`.lowering`) reads: the shared options plus the graded bits."""

    graded_bits: int = 8
    """``input_spikes = "graded"``: the input is sent as q = round(x·(2^bits − 1)) graded spikes."""
    event_spikes: str = "graded"
    """Event-frame input: "graded" (the count as the spike payload, clipped to ``event_bits``) |
    "binary" (one spike where the count is ≥ 1); see :mod:`.event_input`."""
    event_bits: int = 4
    """Graded event payload width: counts above 2^bits − 1 are clipped (and counted)."""


@dataclass
class LavaOptions(LoihiOptions):
    """The ``lava`` target's options: the lowering's plus how the Lava simulation is run."""

    copies: int = 64
    """B: samples side by side in one Lava network (a trailing axis of every process, ``batched``, or
    block-diagonal sparse layers)."""
    max_samples_per_run: int = 4096
    """Samples per Lava run (child process); more are run in several."""
    stall_s: float = 60.0
    """No simulated step for that long = a dead worker: the run is stopped."""
    work_dir: str = ""
    """Keep the netx and probe files in this folder ("" = a temporary folder removed after the run)."""
    record_raster: int = 0
    """Samples whose full spike rasters are returned (for spike-exact checks)."""
    fast_synapses: bool = True
    """Declare hidden-layer spikes as 1-bit messages so Lava's CPU synapses compute a sparse W·s."""
    sparse_reader: bool = True
    """Patch netx's weight reader in the child to keep the B-copy block-diagonal weights sparse."""
    batched: bool = True
    """Lay the B copies along a trailing axis of every Lava process, each synapse holding one copy of
    the weights (Lava's sparse model computes W·S for all B samples at once, :mod:`.lava.procs.batched`);
    False: B block-diagonal copies built by netx (a program with delays is never batched)."""
    prestart: bool = True
    """Start the (persistent, per process) Lava worker at compile time, so Lava's import overlaps
    with what happens before ``run``."""
    fault: str = ""
    """Tests only: "kill" kills a Lava worker, "raise" raises inside one."""


__all__ = ["LavaOptions", "LoihiOptions"]
