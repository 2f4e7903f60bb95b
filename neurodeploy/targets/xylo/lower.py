"""A dense / recurrent spiking network -> a Xylo™Audio 3 (SYNS65302) specification, through Rockpool.

Pipeline (rockpool 3.1.0, every step logged): the float network (:func:`~neurodeploy.ir.from_nir.from_nir`)
-> one ``LinearTorch`` + ``LIFTorch`` per layer (rockpool/nn/modules/torch/{linear,lif}_torch.py;
recurrent weights as ``LIFTorch(has_rec=True, w_rec=...)``) -> ``mapper`` (rockpool/devices/xylo/
syns65302/xylo_mapper.py: design rules, hidden/output neuron allocation; the last layer becomes the
output neurons, every other layer hidden neurons, hidden-to-hidden weights go into ``weights_rec``)
-> ``channel_quantize`` (rockpool/transform/quantize_methods.py: per target neuron, the largest
|weight| becomes 127) -> the integer specification ``XyloSim.from_specification`` takes.

Rockpool's own NIR import (rockpool/nn/modules/torch/nir.py, ``from_nir``) is not used: it takes
``dt = min(tau_mem / (1 + r))`` instead of the file's dt, ignores ``w_in`` and drops the recurrent
Affine's bias (warning only), so it would not read the Braille files the way snnTorch runs them.

Xylo's neuron, as measured on xylosim 0.1.3 (tests/targets/test_xylo.py probes it), per step t:

    i[t] = D_s(i[t−1] + W·s[t]),   v[t] = D_m(v[t−1]) + i[t] + b,   D_k(x) = x − (x >> dash_k)
    (x >> dash is an arithmetic shift; a positive x that would not decay loses 1)
    n = min(⌊v/θ⌋, 31) spikes when v ≥ θ (output neurons: at most 1), v ← v − n·θ (subtractive reset)

with 16-bit saturating state. The source (:class:`~neurodeploy.snn.kinds.CubaSpikingNeuron`):
i[t] = α·i[t−1] + g·W·x[t], v[t] = λ·v[t−1] + i[t] − reset, one spike when v > θ. So: α → dash_syn
= round(log2(1/(1 − α))) (rockpool: dash = round(log2(τ/dt)), lif_bitshift_torch.py
``calc_bitshift_decay``), α_q = 1 − 2^−dash; Xylo's current is α_q·(i + W·s), so the weights are
divided by α_q (exact in real arithmetic); θ → ⌊σθ⌋ + 1 so that v ≥ θ_q ⇔ v > σθ for integer v.
Each hop from one neuron layer to the next takes one step on Xylo (input → first layer: none): the
target runs T + L − 1 steps and reads layer k over steps [k, k + T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...errors import TargetError
from ...snn.network import SpikingNetwork
from .graph import DASH_MAX, DASH_MIN, Layer, XyloLimitError, chain, check_limits, dash_of, layers_of

MAX_EVENTS_IN = 15  # input events per channel and step (rockpool docs, devices/xylo-overview)
MAX_SPIKES_HIDDEN = 31  # rockpool lif_bitshift_torch.py: max_spikes_per_dt = 31
DRAIN_STEPS = 8  # a non-spiking readout: zero-input steps after the window (dash_syn = 1: 0.4 % left)


@dataclass
class XyloSpec:
    """What ``compile`` produces: the integer specification and where each layer's neurons are."""

    spec: dict[str, Any]
    layers: list[Layer]
    ids: list[np.ndarray]  # per layer: hidden neuron ids (output layer: output neuron ids)
    timesteps: int
    dt: float
    bias_channel: bool  # one extra input channel spiking at every step carries the first layer's bias
    n_inputs: int
    pre: list[nn.Module] = field(default_factory=list)  # input-side pooling/flatten done by the host
    readout: bool = False  # the last layer is a non-spiking Linear read as the output neurons' Vmem
    drain: int = 0  # extra zero-input steps so that the readout's current drains into its Vmem
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def delay(self) -> int:
        """Steps from the input to the output layer (one per hop between neuron layers)."""
        return len(self.layers) - 1


def rockpool_modules(layers: list[Layer], dashes: list[tuple[int, int]], gains: list[float],
                     biases_v: list[np.ndarray], bias_channel: bool, dt: float) -> Any:
    """``(Sequential(LinearTorch, LIFTorch, ...), [the LIFTorch modules])`` with the weights times the
    layer's gain and τ = dt·2^dash (so the mapper's log2(τ/dt) is the chosen dash)."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    mods = []
    for k, (x, (ds, dm), g, bv) in enumerate(zip(layers, dashes, gains, biases_v)):
        w = x.w * g
        if k == 0 and bias_channel:
            w = np.hstack([w, (x.b * layer_gain(x, ds))[:, None]])
        mods.append(LinearTorch((w.shape[1], w.shape[0]), weight=torch.tensor(w.T, dtype=torch.float32),
                                has_bias=False))
        rec = None if x.wr is None else torch.tensor((x.wr * layer_gain(x, ds)).T, dtype=torch.float32)
        th = float(x.theta) if math.isfinite(x.theta) else 1e30
        mods.append(LIFTorch(w.shape[0], tau_syn=dt * 2.0 ** ds, tau_mem=dt * 2.0 ** dm, threshold=th,
                             bias=torch.tensor(bv, dtype=torch.float32), dt=dt, has_rec=rec is not None, w_rec=rec))
    return Sequential(*mods), mods[1::2]


def layer_gain(x: Layer, dash_syn: int) -> float:
    """What Xylo's current filter needs on the weights: 1/α_q for a CubaLIF layer (the current is
    α_q·(i + W·s)); (1 − α_q)/α_q for a layer without synaptic filter (LIF/IF, the readout): the
    total charge α_q·W/(1 − α_q) of one input then equals the source's W, spread over the steps."""
    aq = 1.0 - 2.0 ** -dash_syn
    return 1.0 / aq if x.alpha > 0 else (1.0 - aq) / aq


def lower(net: SpikingNetwork, timesteps: int, dt: float, limits: dict[str, Any], weight_bits: int,
          threshold_bits: int, log_line: Callable[[str], None], input_gain: float = 1.0) -> XyloSpec:
    """Map the network onto Xylo™Audio 3 with rockpool's mapper and channel_quantize (module docstring).

    ``input_gain``: the source's input per Xylo input event (1/L for graded coding of direct input)."""
    from rockpool.transform.quantize_methods import channel_quantize

    from .backend import xylo_audio3

    pre_names = chain(net)[0]
    layers = layers_of(net)
    pre = [net.layers[n] for n in pre_names]
    with torch.no_grad():
        z = torch.zeros(1, *net.input_shape)
        for m in pre:
            z = m(z)
    n_in = int(z.numel())
    if pre:
        log_line(f"input: {' → '.join(f'{n} ({type(m).__name__})' for n, m in zip(pre_names, pre))} done by the host "
                 f"before the input coding (linear, ahead of the first weights): {tuple(net.input_shape)} -> {n_in} "
                 "input channels")
    bias_channel = bool(np.any(layers[0].b != 0))
    log_line(check_limits(layers, n_in + bias_channel, limits))
    readout = layers[-1].neuron is None
    dashes, gains, biases_v = [], [], []
    for k, x in enumerate(layers):
        ds, aq = dash_of(x.alpha)
        dm, lq = dash_of(x.lam)
        dashes.append((ds, dm))
        g = layer_gain(x, ds) * (input_gain if k == 0 else 1.0)
        gains.append(g)
        what = ("CubaLIF" if x.alpha > 0 else "readout (non-spiking Linear): output neurons as integrators"
                if x.neuron is None else "LIF/IF (no synaptic filter: Xylo always has one)")
        log_line(f"{x.label}: {what} -> Xylo: synaptic α={x.alpha:.6g} -> dash_syn={ds} (α_q={aq:.6g}, error "
                 f"{aq - x.alpha:+.3g}), membrane λ={x.lam:.6g} -> dash_mem={dm} (λ_q={lq:.6g}, error "
                 f"{lq - x.lam:+.3g}); τ = dt·2^dash with dt={dt:g} s (rockpool: dash = round(log2(τ/dt)), "
                 f"clipped to [{DASH_MIN}, {DASH_MAX}])")
        why = ("Xylo decays the current after adding the step's input, i = α_q·(i + W·s)" if x.alpha > 0 else
               "Xylo's shortest current filter spreads each input over the following steps (1/2, 1/4, ...); this "
               "keeps the total charge, not its timing")
        inp = f", × {input_gain:.4g} per input event" if k == 0 and input_gain != 1.0 else ""
        log_line(f"{x.synapse}{' + ' + x.rec if x.rec else ''}: weights × {layer_gain(x, ds):.4g}{inp} ({why})")
        bv = np.zeros(x.w.shape[0])
        if np.any(x.b != 0) and not (k == 0 and bias_channel):
            bv = x.b / (1.0 - aq) if x.alpha > 0 else x.b.copy()
            log_line(f"{x.label}: bias (max |b| {np.abs(x.b).max():.4g}) enters the current in the source, the "
                     f"membrane on Xylo: written as its steady state b/(1 − α_q); differs in the first steps by "
                     f"b·α^(t+1)/(1 − α)")
        biases_v.append(bv)
    if bias_channel:
        log_line(f"{layers[0].label}: bias (enters the current from t = 0) -> weights of one extra input channel "
                 f"spiking once at every step ({n_in} + 1 inputs): exact up to the weight rounding")
    x3 = xylo_audio3()
    model, lifs = rockpool_modules(layers, dashes, gains, biases_v, bias_channel, dt)
    try:
        spec = x3.mapper(model.as_graph(), weight_dtype="float", threshold_dtype="float", dash_dtype="float",
                         max_hidden_neurons=int(limits.get("hidden_neurons", 992)),
                         max_output_neurons=int(limits.get("outputs", 16)))
    except x3.DRCError as e:
        raise XyloLimitError(f"rockpool's Xylo™Audio 3 mapper refused the network: {e}") from None
    _full_size(spec)
    ids = _layer_ids(spec["mapped_graph"], lifs, int(limits.get("hidden_neurons", 992)))
    floats = {k: np.array(spec[k], dtype=np.float64) for k in ("weights_in", "weights_rec", "weights_out",
                                                               "threshold", "threshold_out", "bias", "bias_out")}
    q = channel_quantize(**{**spec, "bias": None, "bias_out": None}, bits_per_weight=weight_bits,
                         bits_per_threshold=threshold_bits)
    spec.update(q)
    _thresholds_and_biases(spec, floats, weight_bits, threshold_bits, layers, ids, log_line)
    for key in ("dash_syn", "dash_mem", "dash_syn_out", "dash_mem_out", "dash_syn_2"):
        spec[key] = np.clip(np.round(np.asarray(spec[key], dtype=np.float64)), DASH_MIN, DASH_MAX).astype(int)
    for x, nid in zip(layers[:-1], ids[:-1]):
        log_line(f"{x.label}: {len(nid)} hidden neurons (ids {int(nid.min())}..{int(nid.max())}), fires up to "
                 f"{MAX_SPIKES_HIDDEN} spikes per step (⌊v/θ⌋; the source: at most 1)")
    drain = DRAIN_STEPS if readout else 0
    if readout:
        log_line(f"{layers[-1].label}: {len(ids[-1])} output neurons with the largest threshold (never fire): the "
                 f"readout is their membrane potential after T + {len(layers) - 1} + {drain} steps (the current "
                 f"drains, < {100 * 0.5 ** drain:.1f} % left) ÷ the weight scale σ, in the source's units; 16-bit "
                 "state saturates (counted at run time)")
    else:
        log_line(f"{layers[-1].label}: {len(ids[-1])} output neurons, at most 1 spike per step")
    for x in layers:
        _reset_line(x, log_line)
    log_line(f"timing: each hop between neuron layers takes one step on Xylo (the source: none, except the "
             f"recurrent edges, delayed one step in both); {len(layers) - 1} hop(s): the target runs T + "
             f"{len(layers) - 1} steps and reads layer k over steps [k, k + T)")
    return XyloSpec(spec, layers, ids, timesteps, dt, bias_channel, n_in + bias_channel, pre=pre, readout=readout,
                    drain=drain)


def _full_size(spec: dict) -> None:
    """One synapse per neuron, weights indexed by hidden neuron id: the syns65302 mapper returns
    ``weights_in`` ``[inputs, IEN, 1]`` (the first IEN hidden neurons) and ``weights_out`` ``[OEN,
    outputs]`` (the last OEN hidden neurons, as ``XyloSim.from_specification`` reads them); both are
    widened to all hidden neurons (zeros elsewhere), which the simulator accepts (IEN, OEN <= RSN)."""
    sq = {}
    for k in ("weights_in", "weights_rec"):
        w = np.asarray(spec[k], dtype=np.float64)
        if w.ndim == 3:
            if w.shape[2] != 1 and np.any(w[..., 1:] != 0):
                raise TargetError("xylo: the mapper used the second synapse of the hidden neurons; one is expected")
            w = w[..., 0]
        sq[k] = w
    rsn = sq["weights_rec"].shape[0]
    w_in = np.zeros((sq["weights_in"].shape[0], rsn))
    w_in[:, :sq["weights_in"].shape[1]] = sq["weights_in"]
    w_out_m = np.asarray(spec["weights_out"], dtype=np.float64)
    w_out = np.zeros((rsn, w_out_m.shape[1]))
    w_out[rsn - w_out_m.shape[0]:] = w_out_m
    spec.update(weights_in=w_in, weights_rec=sq["weights_rec"], weights_out=w_out)


def _layer_ids(graph: Any, lifs: list[Any], n_hidden_max: int) -> list[np.ndarray]:
    """Hidden neuron ids (rows/columns of weights_in/rec) per layer and, for the last layer, output
    indices (columns of weights_out), from the mapped graph's neuron modules."""
    from rockpool.graph import GenericNeurons, find_modules_of_subclass

    by = {id(m.computational_module): np.asarray(m.hw_ids, dtype=int)
          for m in find_modules_of_subclass(graph, GenericNeurons)}
    ids = [by[id(m)] for m in lifs]
    hidden = np.concatenate(ids[:-1])
    if sorted(hidden.tolist()) != list(range(len(hidden))):
        raise TargetError(f"xylo: rockpool allocated hidden neuron ids {sorted(hidden.tolist())[:8]}...; expected "
                          f"0..{len(hidden) - 1}")
    ids[-1] = ids[-1] - n_hidden_max  # output neurons are numbered after the hidden ones (mapper)
    return ids


def _thresholds_and_biases(spec: dict, floats: dict, wbits: int, tbits: int, layers: list[Layer],
                           ids: list[np.ndarray], log_line: Callable[[str], None]) -> None:
    """θ_q = ⌊σθ⌋ + 1 and b_q = round(σ·b) with channel_quantize's per-neuron scale σ = 127 / max |w|
    (rockpool 3.1.0 scales the hidden bias only when two synapses are used: quantize_methods.py,
    channel_quantize), σ lowered where θ would not fit the 16-bit threshold. The weights are
    requantised with that σ, as channel_quantize does."""
    wmax, tmax = 2 ** (wbits - 1) - 1, 2 ** (tbits - 1) - 1
    w_in, w_rec, w_out = floats["weights_in"], floats["weights_rec"], floats["weights_out"]
    for part in ("hidden", "output"):
        w = np.abs(np.vstack([w_in, w_rec])) if part == "hidden" else np.abs(w_out)
        th, bias = ("threshold", "bias") if part == "hidden" else ("threshold_out", "bias_out")
        m = w.max(0)
        sigma = np.where(m > 0, wmax / np.where(m > 0, m, 1.0), 1.0)
        t = floats[th]
        integrate = part == "output" and layers[-1].neuron is None  # the readout never fires
        if not integrate:
            sigma = np.minimum(sigma, np.where(t > 0, (tmax - 1) / np.where(t > 0, t, 1.0), sigma))
        rounded = np.asarray(spec[th]).copy()
        if part == "hidden":
            spec["weights_in"] = np.round(w_in * sigma[None]).astype(int)
            spec["weights_rec"] = np.round(w_rec * sigma[None]).astype(int)
        else:
            spec["weights_out"] = np.round(w_out * sigma[None]).astype(int)
        spec[th] = np.full(len(t), tmax) if integrate else np.clip(np.floor(t * sigma) + 1, 1, tmax).astype(int)
        spec[bias] = np.clip(np.round(floats[bias] * sigma), -tmax - 1, tmax).astype(int)
        spec[f"sigma_{part}"] = sigma
        for x, nid in (zip(layers[:-1], ids[:-1]) if part == "hidden" else [(layers[-1], ids[-1])]):
            keys = ("weights_in", "weights_rec") if part == "hidden" else ("weights_out",)
            wq = np.concatenate([np.asarray(spec[k])[:, nid].reshape(-1) for k in keys])
            wf = np.concatenate([(floats[k][:, nid] * sigma[nid][None]).reshape(-1) for k in keys])
            nz = wf != 0
            err = float(np.abs(wq[nz] - wf[nz]).max()) if nz.any() else 0.0
            zero = int(((wq == 0) & nz).sum())
            s, thq = sigma[nid], np.asarray(spec[th])[nid]
            thr = (f"threshold {tmax} (the largest: the readout integrates and never fires)" if integrate else
                   f"threshold {x.theta:.5g} -> {int(thq.min())}..{int(thq.max())} ({tbits}-bit, ⌊σθ⌋ + 1 as Xylo "
                   f"fires at v ≥ θ and the source at v > θ; channel_quantize's round(σθ): "
                   f"{int(rounded[nid].min())}..{int(rounded[nid].max())})")
            line = (f"{x.synapse}{' + ' + x.rec if x.rec else ''}: channel_quantize ({wbits}-bit, per target neuron: "
                    f"max |w| -> {wmax}), scale σ {s.min():.4g}..{s.max():.4g} -> weights [{int(wq.min())}, "
                    f"{int(wq.max())}], max rounding error {err:.3g} LSB, {zero} of {int(nz.sum())} non-zero weights "
                    f"rounded to 0; {thr}")
            if np.any(floats[bias][nid] != 0):
                bq = np.asarray(spec[bias])[nid]
                line += f"; bias -> [{int(bq.min())}, {int(bq.max())}] (σ·b, rounded)"
            log_line(line)


def _reset_line(x: Layer, log_line: Callable[[str], None]) -> None:
    if x.neuron is None:
        return
    if x.reset == "subtract":
        log_line(f"{x.neuron}: reset by subtraction in the source and on Xylo (same rule)")
    elif x.reset == "zero_late":
        log_line(f"{x.neuron}: reset differs: the source (snnTorch reset_delay=True) discards the whole update of "
                 "the step after a spike (v[t+1] = 0); Xylo resets by subtraction only (v − θ is kept)")
    else:
        log_line(f"{x.neuron}: reset differs: the source resets to zero; Xylo resets by subtraction only "
                 "(the residual v − θ is kept)")


__all__ = ["XyloLimitError", "XyloSpec", "layer_gain", "lower"]
