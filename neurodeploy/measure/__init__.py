"""Spiking activity, operation counts and energy (HIRE-SNN Definitions 1-2, Table 6, eq. 7/8, Table 7;
chip energy from counted events with the targets' profiles; NeuroBench's metrics beside ours)."""
from .activity import (layer_activity, perturbation_distance, spike_perturbation_distance, spiking_activity,
                       spiking_activity_per_sample, tasa)
from .energy import ann_energy, chip_constants, chip_energy, row_energies, snn_energy
from .graph import OpGraph, graph_from_network, graph_from_nir
from .metrics import PerturbationDistance, SpikingActivity, SynOpCounter
from .neurobench_compat import NeuroBenchCounter, neurobench_metrics, static_metrics
from .ops import OpRow, add_flops, conv_flops, exact_ops, exact_synops, fanout_maps, linear_flops, op_rows, pool_flops
from .stage import energy_table, input_event_maps, latency, measure_report, perturbation_report, source_spike_maps
from .summary import energy_section, layer_table

__all__ = [
    "NeuroBenchCounter", "OpGraph", "OpRow", "PerturbationDistance", "SpikingActivity", "SynOpCounter", "add_flops",
    "ann_energy", "chip_constants", "chip_energy", "conv_flops", "energy_section", "energy_table", "exact_ops",
    "exact_synops", "fanout_maps", "graph_from_network", "graph_from_nir", "input_event_maps", "latency",
    "layer_activity", "layer_table", "linear_flops", "measure_report", "neurobench_metrics", "op_rows",
    "perturbation_distance", "perturbation_report", "pool_flops", "row_energies", "snn_energy", "source_spike_maps",
    "spike_perturbation_distance", "spiking_activity", "spiking_activity_per_sample", "static_metrics", "tasa",
]
