"""Spiking activity (HIRE-SNN Definition 1) and perturbation distance (Definition 2).

Kundu et al., "HIRE-SNN: Harnessing the Inherent Robustness of Energy-Efficient Deep Spiking
Neural Networks by Training with Crafted Input Noise", ICCV 2021.

- Definition 1: SA of a layer = total spikes of all its neurons over all T steps / its number of
  neurons; TASA = SA / T (time-averaged spiking activity).
- Definition 2: perturbation distance PD = ‖x − x̂‖₂ between an image x and its perturbed
  (adversarial) variant x̂; per layer, the spike PD = ‖s − ŝ‖₂ between the layer's normalised spike
  maps for the two inputs (here: spike counts over T divided by T, i.e. each neuron's firing rate
  in [0, 1], or, with ``norm="l2"``, each map divided by its own L2 norm).
"""
from __future__ import annotations

import numpy as np
import torch


def spiking_activity(spikes_per_sample: np.ndarray | torch.Tensor | float, neurons: int) -> float:
    """Definition 1, averaged over samples: SA = mean(spikes over T, all neurons) / neurons."""
    return float(np.mean(np.asarray(spikes_per_sample, dtype=np.float64))) / neurons if neurons else 0.0


def spiking_activity_per_sample(spikes_per_sample: np.ndarray | torch.Tensor, neurons: int) -> np.ndarray:
    """Definition 1 per sample: SA_b = spikes_b / neurons (array of length B)."""
    a = np.asarray(spikes_per_sample, dtype=np.float64)
    return a / neurons if neurons else np.zeros_like(a)


def tasa(sa: float | np.ndarray, timesteps: int) -> float | np.ndarray:
    """TASA = SA / T."""
    return sa / timesteps


def layer_activity(spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SA and TASA per sample from a spike tensor ``[T, B, *neuron_shape]`` (Definition 1)."""
    T = spikes.shape[0]
    sa = spikes.sum(0).flatten(1).sum(1) / spikes[0, 0].numel()
    return sa, sa / T


def perturbation_distance(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Definition 2: PD = ‖x − x̂‖₂ per sample ``[B]`` (each sample flattened)."""
    return (x - x_hat).flatten(1).norm(p=2, dim=1)


def _normalise(m: torch.Tensor, norm: str, timesteps: int | None) -> torch.Tensor:
    m = m.flatten(1).to(torch.float64)
    if norm == "rate":
        if not timesteps:
            raise ValueError("norm='rate' needs the number of time steps")
        return m / timesteps
    if norm == "l2":
        return m / m.norm(dim=1, keepdim=True).clamp_min(1e-12)
    raise ValueError(f"norm must be 'rate' or 'l2', got {norm!r}")


def spike_perturbation_distance(maps: dict[str, torch.Tensor], maps_hat: dict[str, torch.Tensor],
                                timesteps: int | None = None, norm: str = "rate") -> dict[str, torch.Tensor]:
    """Definition 2 per layer: ‖s − ŝ‖₂ per sample ``[B]`` between normalised spike maps.

    ``maps`` / ``maps_hat``: layer -> spike counts over T per neuron ``[B, ...]`` for x and x̂
    (``SpikingNetwork.spike_maps``). ``norm="rate"`` divides by T (needs ``timesteps``);
    ``norm="l2"`` divides each sample's map by its L2 norm (a silent map stays zero).
    Layers present in only one dict are skipped.
    """
    out = {}
    for name, m in maps.items():
        if name not in maps_hat:
            continue
        if m.shape != maps_hat[name].shape:
            raise ValueError(f"layer {name!r}: spike maps of shapes {tuple(m.shape)} and {tuple(maps_hat[name].shape)}")
        out[name] = (_normalise(m, norm, timesteps) - _normalise(maps_hat[name], norm, timesteps)).norm(dim=1)
    return out
