"""Spiking activity, HIRE-SNN Definition 1.

SA of a layer = total spikes of all its neurons over all T steps / its number of neurons;
TASA = SA / T (time-averaged spiking activity).
"""
from __future__ import annotations

import numpy as np


def spiking_activity(spikes_per_sample: np.ndarray | float, neurons: int) -> float:
    """SA = spikes (over T, all neurons) / neurons, averaged over samples."""
    return float(np.mean(spikes_per_sample)) / neurons if neurons else 0.0


def tasa(sa: float, timesteps: int) -> float:
    """TASA = SA / T."""
    return sa / timesteps
