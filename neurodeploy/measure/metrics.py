"""Streaming counters over batches, torchmetrics-style: ``update()`` / ``compute()`` / ``reset()``.

Each accumulator has a functional twin that computes the same thing on one batch:
:class:`SpikingActivity` ↔ :func:`~.activity.spiking_activity_per_sample` (HIRE-SNN Definition 1),
:class:`SynOpCounter` ↔ :func:`~.ops.exact_synops` (spikes × real fan-out),
:class:`PerturbationDistance` ↔ :func:`~.activity.perturbation_distance` /
:func:`~.activity.spike_perturbation_distance` (Definition 2).

Sums are kept in float64 so that long streams do not lose counts.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..snn.network import SpikingNetwork
from .activity import perturbation_distance, spike_perturbation_distance
from .graph import OpGraph, graph_from_network
from .ops import exact_synops


class SpikingActivity:
    """Definition 1 per neuron layer, streamed: SA = Σ spikes / (samples · neurons), TASA = SA / T.

    ``update(spike_counts)`` takes layer -> spikes per sample ``[B]`` (``SpikingNetwork.spike_counts``
    or ``Outputs.layer_spikes``); ``compute()`` returns layer -> {spikes_per_sample, sa, tasa, sa_std};
    ``per_sample()`` the SA of every sample seen.
    """

    def __init__(self, neurons: dict[str, int], timesteps: int, keep_samples: bool = True) -> None:
        self.neurons, self.timesteps, self.keep_samples = dict(neurons), timesteps, keep_samples
        self.reset()

    @classmethod
    def for_network(cls, net: SpikingNetwork, keep_samples: bool = True) -> "SpikingActivity":
        g = graph_from_network(net)
        return cls({n.name: n.out_size for n in g.neuron_nodes()}, net.timesteps, keep_samples)

    def reset(self) -> None:
        self.total: dict[str, float] = {k: 0.0 for k in self.neurons}
        self.square: dict[str, float] = {k: 0.0 for k in self.neurons}
        self.samples: dict[str, int] = {k: 0 for k in self.neurons}
        self._per_sample: dict[str, list[np.ndarray]] = {k: [] for k in self.neurons}

    def update(self, spike_counts: dict[str, Any]) -> None:
        for k, v in spike_counts.items():
            if k not in self.neurons:
                continue
            a = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64).reshape(-1)
            sa = a / self.neurons[k]
            self.total[k] += float(a.sum())
            self.square[k] += float((sa * sa).sum())
            self.samples[k] += a.size
            if self.keep_samples:
                self._per_sample[k].append(sa)

    def compute(self) -> dict[str, dict[str, float]]:
        out = {}
        for k, n in self.neurons.items():
            m = self.samples[k]
            if not m:
                continue
            spk = self.total[k] / m
            sa = spk / n
            out[k] = {"spikes_per_sample": spk, "sa": sa, "tasa": sa / self.timesteps,
                      "sa_std": float(np.sqrt(max(self.square[k] / m - sa * sa, 0.0))), "samples": m}
        return out

    def per_sample(self) -> dict[str, np.ndarray]:
        """SA of every sample seen, per layer (needs ``keep_samples``)."""
        return {k: np.concatenate(v) for k, v in self._per_sample.items() if v}

    def plot(self, ax=None):
        """Bar chart of SA and TASA per layer -> ``(fig, ax)``."""
        from ..report.figures_energy import plot_activity

        rows = [{"name": k, "sa": v["sa"], "tasa": v["tasa"]} for k, v in self.compute().items()]
        fig = plot_activity({"source": rows}, ax=ax)
        return fig, fig.axes[0] if ax is None else ax


class SynOpCounter:
    """Exact synaptic operations (each spike × its real fan-out) per synaptic layer, streamed.

    ``update(spike_maps)`` takes neuron layer -> spikes per neuron ``[B, ...]`` summed over T;
    ``compute()`` returns layer -> mean synaptic ops per sample.
    """

    def __init__(self, net: SpikingNetwork | OpGraph) -> None:
        self.graph = net if isinstance(net, OpGraph) else graph_from_network(net)
        self.reset()

    def reset(self) -> None:
        self.total: dict[str, float] = {}
        self.samples = 0

    def update(self, spike_maps: dict[str, torch.Tensor]) -> None:
        counts = exact_synops(self.graph, spike_maps)
        for k, v in counts.items():
            self.total[k] = self.total.get(k, 0.0) + float(v.double().sum())
        if spike_maps:
            self.samples += int(next(iter(spike_maps.values())).shape[0])

    def compute(self) -> dict[str, float]:
        return {k: v / self.samples for k, v in self.total.items()} if self.samples else {}


class PerturbationDistance:
    """Definition 2, streamed: mean input PD ‖x − x̂‖₂ and mean spike PD per layer ‖s − ŝ‖₂.

    ``update(x, x_hat, maps, maps_hat)``: images and the spike maps (counts over T) they produced.
    """

    def __init__(self, timesteps: int | None = None, norm: str = "rate") -> None:
        self.timesteps, self.norm = timesteps, norm
        self.reset()

    def reset(self) -> None:
        self.input_total = 0.0
        self.layer_total: dict[str, float] = {}
        self.samples = 0

    def update(self, x: torch.Tensor, x_hat: torch.Tensor, maps: dict[str, torch.Tensor] | None = None,
               maps_hat: dict[str, torch.Tensor] | None = None) -> None:
        self.input_total += float(perturbation_distance(x, x_hat).double().sum())
        self.samples += int(x.shape[0])
        if maps is not None and maps_hat is not None:
            for k, v in spike_perturbation_distance(maps, maps_hat, self.timesteps, self.norm).items():
                self.layer_total[k] = self.layer_total.get(k, 0.0) + float(v.sum())

    def compute(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        return {"input": self.input_total / self.samples,
                "layers": {k: v / self.samples for k, v in self.layer_total.items()}}
