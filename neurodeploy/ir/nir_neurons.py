"""NIR neuron nodes (IF, LIF, CubaLIF, LI, I) -> our neuron modules, discretised with the producer's
convention (:mod:`.conventions`; the mapping is explained in :mod:`.from_nir`'s docstring).

Every node's mapping (decay, gain folded into the threshold, reset, spike function, floor, dt and
where each came from) is a line in ``meta.mapping``; a dt that makes the dynamics meaningless is
refused or warned about there.
"""
from __future__ import annotations

import logging
import math

import nir
import numpy as np
from torch import nn

from ..errors import IRError
from ..snn.kinds import CubaSpikingNeuron, LeakyIntegrator
from ..snn.neuron import Dynamics, NeuronSpec, SpikingNeuron
from .conventions import CONVENTIONS
from .metadata import DeployMeta
from .nir_fields import _arr, _kind, _note, _refuse, _scalar_or_tensor, _uniform

log = logging.getLogger(__name__)

OWN = ("neurodeploy", "imported")  # producers whose parameters are in our canonical form


MIN_DECAY = 1e-6  # a per-step decay below this forgets the membrane every step: dt is almost surely wrong


def _decay(node, name: str, tau, meta: DeployMeta, what: str) -> tuple[float, np.ndarray]:
    """(λ, dt/τ) for a time constant under the convention: Euler 1 − dt/τ or exp(−dt/τ).

    A dt that makes the dynamics meaningless is loud: Euler with dt > τ (λ < 0, unstable) and a
    per-step decay below ``MIN_DECAY`` with dt never given (the default 1.0) are errors asking for
    ``--dt``; dt/τ > 1 or a decay below ``MIN_DECAY`` with a dt the user or file gave are warnings
    (in the log and in the node's mapping line).
    """
    dt, conv = meta.dt, CONVENTIONS[meta.convention]
    tau = _arr(tau)
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise _refuse(name, node, f"{what} must be finite and positive, got {np.unique(tau)[:4]}")
    lam = _uniform(np.exp(-dt / tau) if conv.decay == "exp" else 1.0 - dt / tau)
    if not math.isfinite(lam):
        raise _refuse(name, node, f"{what} differs between neurons ({tau.min():.4g}..{tau.max():.4g}); "
                                  "our neuron layers have one leak")
    hint = f"dt = {dt:g} ({meta.dt_source}); pass --dt in the file's time unit (e.g. the producer's step)"
    if not 0.0 <= lam <= 1.0:
        raise _refuse(name, node, f"{what} = {tau.min():.4g} is smaller than dt: forward Euler "
                                  f"(λ = 1 − dt/τ = {lam:.4g}) is unstable; {hint}")
    ratio = float(np.max(dt / tau))
    if lam < MIN_DECAY and meta.dt_source == "default":
        raise _refuse(name, node, f"{what} = {tau.min():.4g} with the default dt decays the membrane by "
                                  f"{lam:.3g} per step (dt/τ = {ratio:.3g}): the neuron forgets every step; {hint}")
    if lam < MIN_DECAY or ratio > 1.0:
        warn = f"WARNING dt/τ = {ratio:.3g}, per-step decay {lam:.3g} ({hint})"
        log.warning("NIR node %s (%s): %s", name, what, warn)
        meta.mapping[name + ".warning"] = warn
    return lam, dt / tau


def _zero(node, name: str, field: str) -> None:
    v = getattr(node, field, None)
    if v is not None and np.any(_arr(v) != 0):
        raise _refuse(name, node, f"{field} != 0 is not supported (our neurons rest at 0 and reset to 0 "
                                  "or by subtraction)")


def _reset(node, name: str, meta: DeployMeta) -> str:
    """The user's override, else the convention's reset, else the metadata's (NIR: zero)."""
    if name in meta.reset:
        return meta.reset[name]
    conv = CONVENTIONS[meta.convention]
    return conv.reset if conv.reset is not None and meta.producer not in OWN else meta.reset_of(name)


def _dynamics(node, name: str, meta: DeployMeta, th: np.ndarray, reset: str) -> tuple[Dynamics, str]:
    """The spike function, floor and reset timing: our metadata's entry, else the convention's."""
    if name in meta.neurons:
        d = dict(meta.neurons[name])
        return Dynamics(d.get("spike", "single"), d.get("min_v"), d.get("reset_at", "next")), "metadata"
    conv = CONVENTIONS[meta.convention]
    min_v = None
    if conv.floor == "-v_th" and isinstance(node, nir.IF):
        t = _uniform(th)
        if not math.isfinite(t):
            raise _refuse(name, node, "the membrane floor −v_th needs one threshold per layer "
                                      f"({th.min():.4g}..{th.max():.4g})")
        min_v = -t
    reset_at = conv.reset_at
    if reset == "zero" and conv.spike == "single" and min_v is None:
        reset_at = "next"  # u·[O = 0] before or after the leak: the same numbers (×0 and ×1 are exact)
    return Dynamics(conv.spike, min_v, reset_at), f"convention {conv.name}"


def _spiking(node, name: str, meta: DeployMeta) -> nn.Module:
    """IF, LIF and CubaLIF -> :class:`SpikingNeuron` (CubaLIF: :class:`CubaSpikingNeuron`), read
    with the producer's convention (:mod:`neurodeploy.ir.conventions`)."""
    dt, conv_name = meta.dt, meta.convention
    if conv_name not in CONVENTIONS:
        raise IRError(f"unknown parameter convention {conv_name!r}; choose one of {', '.join(CONVENTIONS)}")
    conv = CONVENTIONS[conv_name]
    exp = conv.decay == "exp"
    _zero(node, name, "v_reset")
    vth = _arr(node.v_threshold)
    r = _arr(node.r)
    syn = None
    if isinstance(node, nir.IF):
        leak, gain = 1.0, r * (1.0 if exp else dt)
        text = f"λ = 1, gain = r·dt = {_fmt(gain)}" if not exp else f"λ = 1, gain = r = {_fmt(gain)} ({conv_name})"
        if conv_name == "sinabs" and np.any(r != 1):
            text += " (NB sinabs.from_nir ignores r, sinabs/nir.py:87-92: our reading keeps it)"
    else:
        _zero(node, name, "v_leak")
        tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
        leak, f = _decay(node, name, tau, meta, "τ" if isinstance(node, nir.LIF) else "τ_mem")
        gain = r if exp else r * f
        text = (f"λ = exp(−dt/τ) = {leak:.6g}, gain = r = {_fmt(gain)}" if exp
                else f"λ = 1 − dt/τ = {leak:.6g}, gain = r·dt/τ = {_fmt(gain)}")
        if isinstance(node, nir.CubaLIF):
            a_s, f_s = _decay(node, name, node.tau_syn, meta, "τ_syn")
            w_in = _arr(node.w_in)
            g_s = a_s * w_in if exp else w_in * f_s
            syn = (a_s, g_s)
            text += f"; synapse α = {a_s:.6g}, gain = {_fmt(g_s)}"
    text = f"{_kind(node)}: " + text
    gain = np.broadcast_to(gain, vth.shape) if vth.shape else gain
    if np.any(gain <= 0):
        raise _refuse(name, node, "r must be positive (the input gain r·dt/τ folds into the threshold)")
    if np.any(vth <= 0):
        raise _refuse(name, node, "v_threshold must be positive")
    th = vth / gain
    reset = _reset(node, name, meta)
    dyn, origin = _dynamics(node, name, meta, np.asarray(th), reset)
    if syn and meta.convention == "snntorch":
        # snnTorch runs CubaLIF as Synaptic/RSynaptic with reset_delay=True (its default, used in
        # training; the importer's reset_delay=False path fails with init_hidden=True,
        # rsynaptic.py:366-370): the reset of a spike at t−1 is applied in step t ("next"), and a
        # reset to zero discards step t's whole membrane update
        dyn = Dynamics(dyn.spike, dyn.min_v, "next")
        if reset == "zero":
            reset = "zero_late"
            text += "; snnTorch reset: v[t] = (λ·v[t−1] + i[t])·(1 − s[t−1]) (rsynaptic.py:441-448)"
        else:
            text += "; snnTorch reset_delay=True: v[t] = λ·v[t−1] + i[t] − θ·s[t−1] (rsynaptic.py:441-448)"
    spec = NeuronSpec(threshold=1.0, leak=leak, reset=reset, spike=dyn.spike, min_v=dyn.min_v, reset_at=dyn.reset_at)
    m = CubaSpikingNeuron(spec, syn[0], _scalar_or_tensor(syn[1])) if syn else SpikingNeuron(spec)
    m.threshold = nn.Parameter(_scalar_or_tensor(th), requires_grad=m.threshold.requires_grad)
    note = (f"{text}; threshold v_th/gain = {_fmt(th)}; reset {reset} ({dyn.reset_at}); spike {dyn.spike}; "
            f"floor {dyn.min_v} ({origin}); dt = {dt}")
    _note(meta, name, note)
    return m


def _integrator(node, name: str, meta: DeployMeta) -> nn.Module:
    """LI and I -> :class:`LeakyIntegrator` (non-spiking)."""
    dt, conv = meta.dt, meta.convention
    r = _arr(node.r)
    if isinstance(node, nir.I):
        leak, gain = 1.0, r * dt
        text = f"I: λ = 1, gain = r·dt = {_fmt(gain)}"
    else:
        _zero(node, name, "v_leak")
        leak, f = _decay(node, name, node.tau, meta, "τ")
        gain = r if CONVENTIONS[conv].decay == "exp" else r * f
        text = f"LI: λ = {leak:.6g}, gain = {_fmt(gain)} ({conv} convention)"
    _note(meta, name, f"{text}; dt = {dt}")
    return LeakyIntegrator(leak, _scalar_or_tensor(np.asarray(gain)))


def _fmt(a) -> str:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return "[]"
    return f"{a[0]:.6g}" if np.allclose(a, a[0]) else f"{a.min():.4g}..{a.max():.4g} (per neuron)"
