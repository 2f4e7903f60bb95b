"""Spiking activity, operation counts and energy."""
from .activity import spiking_activity, tasa
from .energy import ann_energy, snn_energy
from .ops import LayerInfo, exact_synops, fanout_maps, synaptic_layers

__all__ = ["LayerInfo", "ann_energy", "exact_synops", "fanout_maps", "snn_energy", "spiking_activity",
           "synaptic_layers", "tasa"]
