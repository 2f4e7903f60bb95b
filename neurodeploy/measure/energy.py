"""Energy estimates from operation counts and a hardware profile.

HIRE-SNN eq. 8 (direct input): E_SNN = FL¹ · E_MAC + Σ_{l≥2} FL^l_SNN · E_AC;
eq. 7 (rate input): E_SNN = Σ_l FL^l_SNN · E_AC; ANN: E_ANN = Σ_l FL^l_ANN · E_MAC.
Constants (Table 7, 45 nm CMOS, Horowitz ISSCC 2014) come from targets/cmos45nm.toml.
"""
from __future__ import annotations

from typing import Sequence

from ..recipe import Profile


def snn_energy(flops_snn: Sequence[float], flops_ann_first: float, profile: Profile, precision: str,
               direct_input: bool) -> float:
    """Joules per sample by eq. 8 (direct input: first layer MACs) or eq. 7 (spiking input)."""
    e_mac, e_ac = profile.joules(f"mac_{precision}"), profile.joules(f"ac_{precision}")
    if direct_input:
        return flops_ann_first * e_mac + sum(flops_snn[1:]) * e_ac
    return sum(flops_snn) * e_ac


def ann_energy(flops_ann: Sequence[float], profile: Profile, precision: str) -> float:
    """Joules per sample of the ANN: Σ FL_ANN · E_MAC."""
    return sum(flops_ann) * profile.joules(f"mac_{precision}")
