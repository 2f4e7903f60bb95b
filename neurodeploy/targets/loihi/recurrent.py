"""Recurrent CubaLIF graphs (NIR ``CubaLIF`` with a recurrent ``Affine``) -> a fixed-point Loihi program.

Source (our torch reading, :class:`~neurodeploy.snn.kinds.CubaSpikingNeuron` run by the graph
executor, snnTorch ``RSynaptic``, snntorch/_neurons/rsynaptic.py:418-448):

    i[t] = α·i[t−1] + g·(W_ff·x[t] + W_rec·s[t−1] + b)          (α = 1 − dt/τ_syn)
    v[t] = λ·v[t−1] + i[t] − reset,  s[t] = v[t] > θ              (λ = 1 − dt/τ_mem)

Loihi CUBA (Lava ``PyLifModelBitAcc``, lava/proc/lif/models.py:138-186), per step:

    u ← sgn(u·(4096 − iDecay))·(|u·(4096 − iDecay)| >> 12) + (a << 6),
        a = W_ff·s_in[t] + W_rec·s[t−1]
    v ← sgn(v·(4096 − vDecay))·(|v·(4096 − vDecay)| >> 12) + u + (b << 6)
    s = v > vThMant << 6,  v ← 0 where s

Mapping: iDecay = round(4096·(1 − α)), vDecay = round(4096·(1 − λ)); W_ff and W_rec (times the
synaptic gain g) on the same 8-bit even grid with one scale σ (they add into the same current);
vThMant = round(σ·θ). The recurrent synapse delivers the previous step's spikes: Lava's Dense sends
at step t what it received at t − 1 (lava/proc/dense/models.py, ``run_spk``: ``a_out.send(a_buff)``
before computing the new buffer), and netx's ``dense_rec`` block connects the neuron's output back
to its input through such a Dense (lava/lib/dl/netx/blocks/process.py, ``RecurrentDense``). The
graph executor delays the same edge (snn/graph.py: the recurrent edge carries s[t−1], nothing at
t = 0), so both read s[t−1]; this is logged per layer.

What differs, logged per layer: the bias (the source adds it to the current i, Loihi's bias to v):
the first layer's bias becomes the weights of one extra input channel spiking at every step (exact);
a later layer's bias is mapped to its steady state b/(1 − α) on v (exact after the current's
transient α^t, logged with its length); the reset (Loihi sets v = 0
right after the spike; snnTorch's reset to zero with ``reset_delay=True`` discards the whole next
update v[t+1] = 0 — on Loihi v[t+1] = u[t+1] —, its subtraction keeps v − θ — on Loihi the residual
is lost).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...snn.kinds import CubaSpikingNeuron
from ...snn.network import SpikingNetwork
from .event_input import check_options, coding_line, payload_cap
from .lowering import (A_MAX, BIAS_MAX, DECAY_UNITY, HEADROOM, VTH_MAX, W_MAX, LoihiLayer, LoihiProgram,
                       quantize)
from .options import LoihiOptions

U_BOUND = 1 << 17  # |u|/2^6 must stay below 2^17 (24-bit current, no wrap)


def _chain(net: SpikingNetwork) -> list[tuple[str, str, str | None]]:
    """(synapse, neuron, recurrent synapse or None) per layer, from the input to the output.

    Accepted: input → Linear → CubaLIF [⇄ Linear] → Linear → CubaLIF … → output; anything else is refused
    with the node named.
    """
    succ: dict[str, list[str]] = {}
    for a, b in net.edges:
        succ.setdefault(a, []).append(b)
    rec_edges = {a: b for a, b in net.recurrent_edges}
    out: list[tuple[str, str, str | None]] = []
    cur = "input"
    while True:
        nxt = [n for n in succ.get(cur, []) if n != rec_edges.get(cur)]
        if nxt == ["output"]:
            break
        if len(nxt) != 1:
            raise UnsupportedLayerError(f"node {cur!r} feeds {nxt}: the recurrent Loihi lowering handles chains of "
                                        "Linear → CubaLIF layers (each with an optional recurrent Linear) only")
        syn = nxt[0]
        neu = succ.get(syn, [])
        if not isinstance(net.layers[syn], nn.Linear) or len(neu) != 1:
            raise UnsupportedLayerError(f"node {syn!r} ({type(net.layers[syn]).__name__}): the recurrent Loihi "
                                        "lowering needs one Linear feeding one CubaLIF per layer")
        n = neu[0]
        if not isinstance(net.layers[n], CubaSpikingNeuron):
            raise UnsupportedLayerError(f"node {n!r} ({type(net.layers[n]).__name__}): the recurrent Loihi lowering "
                                        "lowers CubaLIF neurons only")
        rec = rec_edges.get(n)
        if rec is not None and (not isinstance(net.layers[rec], nn.Linear) or succ.get(rec) != [n]):
            raise UnsupportedLayerError(f"recurrent edge {n}→{rec}: Loihi lowers a recurrent Linear from a neuron "
                                        "layer back to itself only")
        out.append((syn, n, rec))
        cur = n
    if len(rec_edges) != sum(r is not None for _, _, r in out):
        raise UnsupportedLayerError(f"recurrent edges {net.recurrent_edges}: only self-recurrent CubaLIF layers "
                                    "lower to Loihi")
    return out


def _float(m: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    w = m.weight.detach().double().numpy()
    b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
    return w, b


def _scalar(t: torch.Tensor, what: str, name: str) -> float:
    v = t.detach().double().reshape(-1)
    if v.numel() > 1 and not bool(torch.all(v == v[0])):
        raise UnsupportedLayerError(f"node {name!r}: per-neuron {what} cannot be lowered to Loihi (one register "
                                    "per layer in netx)")
    return float(v[0])


def _scale(w: np.ndarray, wr: np.ndarray | None, m_in: float, i_decay: int, theta: float,
           bias_v: np.ndarray | None) -> tuple[float, str]:
    """One σ for W_ff and W_rec (they add into the same current): the largest with 8-bit weights,
    |a| = |W_ff·s_in + W_rec·s| < 2^17, |u| ≤ |a|·4096/iDecay < 2^17 (the 24-bit current, no wrap), a
    17-bit threshold and a 13-bit bias; returns σ and the bound that binds."""
    both = w if wr is None else np.hstack([w, wr])
    fan = max(float((np.abs(w) * m_in).sum(1).max() + (np.abs(wr).sum(1).max() if wr is not None else 0.0)), 1e-300)
    bounds = {"8-bit weights": W_MAX / max(float(np.abs(both).max()), 1e-300),
              "|a| < 2^17 (all inputs active)": HEADROOM * A_MAX / fan,
              "24-bit current (|a|/(1 − α) < 2^17)": HEADROOM * U_BOUND * max(i_decay, 1) / DECAY_UNITY / fan,
              "17-bit threshold": HEADROOM * VTH_MAX / theta}
    if bias_v is not None:
        bounds["13-bit bias"] = BIAS_MAX / float(np.abs(bias_v).max())
    why = min(bounds, key=bounds.get)
    return bounds[why], why


def _log_rules(name: str, rec: str | None, reset: str, log_line: Callable[[str], None]) -> None:
    """The reset rule's difference and the recurrent edge's delay, one logged line each."""
    if reset == "zero_late":
        log_line(f"{name}: reset differs: the source (snnTorch reset_delay=True) discards the whole update of the "
                 f"step after a spike, v[t+1] = 0; Loihi sets v = 0 right after the spike and integrates "
                 f"v[t+1] = u[t+1]: a neuron that just fired keeps that step's current (netx has no refractory "
                 f"neuron that could discard it)")
    elif reset == "subtract":
        log_line(f"{name}: reset differs: the source subtracts θ (v[t+1] = λ·v[t] + i[t+1] − θ); Loihi resets to "
                 f"zero right after the spike (the residual v − θ is lost)")
    else:
        log_line(f"{name}: reset to zero right after the spike in the source and on Loihi (same rule)")
    if rec is not None:
        log_line(f"recurrent edge {name}→{rec}: a netx dense_rec synapse; Lava's Dense delivers at step t the "
                 f"spikes of step t − 1 (one step of synaptic delay), the torch executor delays the same edge "
                 f"(it carries s[t − 1], nothing at t = 0): same semantics, no extra delay. The source adds the "
                 f"recurrent Affine's bias from t = 0 (merged into the layer bias above)")


def lower_recurrent(net: SpikingNetwork, timesteps: int, options: LoihiOptions,
                    log_line: Callable[[str], None]) -> LoihiProgram:
    """Lower a chain of CubaLIF layers with optional self-recurrent dense weights (see the module docstring)."""
    if net.encoding != "events":
        raise UnsupportedLayerError(f"recurrent graph with encoding {net.encoding!r}: the recurrent Loihi lowering "
                                    "takes spike (event) input only; import the file with encoding='events'")
    events, bits = options.event_spikes, options.event_bits
    check_options(events, bits)
    shape = tuple(net.input_shape)
    log_line(coding_line(events, bits, shape, timesteps))
    layers: list[LoihiLayer] = []
    prev: str | None = None
    cur_shape = shape
    for k, (syn, name, rec) in enumerate(_chain(net)):
        neuron: CubaSpikingNeuron = net.layers[name]
        w, b = _float(net.layers[syn])
        wr, br = _float(net.layers[rec]) if rec is not None else (None, np.zeros(w.shape[0]))
        gain = np.broadcast_to(neuron.syn_gain.detach().double().numpy().reshape(-1), (w.shape[0],))
        w, b = w * gain[:, None], (b + br) * gain
        wr = wr * gain[:, None] if wr is not None else None
        bias_in = k == 0 and bool(np.any(b != 0))
        if bias_in:  # exact: a channel spiking at every step with weight b adds b to the current, as the source
            w, b = np.hstack([w, b[:, None]]), np.zeros_like(b)
            cur_shape = (cur_shape[0] + 1,)
        theta = _scalar(neuron.threshold, "thresholds", name)
        lam = min(max(_scalar(neuron.leak, "membrane leaks", name), 0.0), 1.0)
        alpha = min(max(float(neuron.syn_leak), 0.0), 1.0)
        di = int(round(DECAY_UNITY * (1.0 - alpha)))
        dv = int(round(DECAY_UNITY * (1.0 - lam)))
        alpha_q = (DECAY_UNITY - di) / DECAY_UNITY
        m_in = float(payload_cap(events, bits)) if k == 0 else 1.0
        bias_v = b / (1.0 - alpha_q) if np.any(b != 0) else None  # steady state of the current's bias
        sigma, why = _scale(w, wr, m_in, di, theta, bias_v)
        wq, wrq = quantize(w, sigma), (quantize(wr, sigma) if wr is not None else None)
        bq = None if bias_v is None else np.clip(np.round(bias_v * sigma), -BIAS_MAX - 1, BIAS_MAX).astype(np.int64)
        vth = int(round(theta * sigma))
        err = float(np.abs(wq - w * sigma).max()) / sigma
        err_r = "" if wrq is None else f", recurrent {rec}: max {float(np.abs(wrq - wr * sigma).max()) / sigma:.3g}"
        log_line(f"{syn}{' + ' + rec if rec else ''}: weights (times the synaptic gain) x{sigma:.4g} ({why} binds), "
                 f"one scale for {'both matrices (they add into the same current)' if rec else 'the layer'} -> 8-bit "
                 f"even grid [{int(min(wq.min(), wrq.min() if wrq is not None else 0))}, "
                 f"{int(max(wq.max(), wrq.max() if wrq is not None else 0))}] (step {2 / sigma:.3g} in float units; "
                 f"max rounding error: feed-forward {err:.3g}{err_r})")
        log_line(f"{name}: CubaLIF -> Loihi CUBA: synaptic α={alpha:.6g} -> iDecay={di} (α_q={alpha_q:.6g}, "
                 f"{di}/4096), membrane λ={lam:.6g} -> vDecay={dv} (λ_q={(DECAY_UNITY - dv) / DECAY_UNITY:.6g}, "
                 f"{dv}/4096), threshold {theta:.5g} -> vThMant={vth} (compared as v > vThMant<<6)")
        if bias_in:
            log_line(f"{name}: bias (synapse {syn}{' + ' + rec if rec else ''}, enters the synaptic current in the "
                     f"source from t = 0) -> weights of one extra input channel that spikes at every step "
                     f"(payload 1; {shape[0]} + 1 inputs): exact up to the weight rounding (Loihi's own bias adds "
                     f"to v, not to the current); its {timesteps} spikes per sample count as input synaptic events")
        if bq is not None:
            tr = float(np.abs(b).max())
            log_line(f"{name}: bias (synapse {syn}{' + ' + rec if rec else ''}, max |b| {tr:.4g}) enters the current "
                     f"in the source, the voltage on Loihi: written as its steady state b/(1 − α_q) -> bias "
                     f"mantissa [{int(bq.min())}, {int(bq.max())}] (bias_exp 6); differs in the first steps by "
                     f"b·α^(t+1)/(1 − α) (at t = 0 the Loihi bias is {1 / (1 - alpha_q):.3g}x the source's, < 1 % "
                     f"after {int(np.ceil(np.log(0.01) / np.log(max(alpha_q, 1e-9))))} steps)")
        _log_rules(name, rec, neuron.reset, log_line)
        layer = LoihiLayer(name=name, synapse=syn, folded=[], kind="dense", weight=wq, in_shape=cur_shape,
                           out_shape=(w.shape[0],), bias=bq, scale=sigma, vth=vth, i_decay=di, v_decay=dv,
                           input_neuron=prev, fanout=(w != 0).sum(0).astype(np.float64))
        if wrq is not None:
            layer.recurrent, layer.rec_synapse = wrq, rec
            layer.rec_fanout = (wr != 0).sum(0).astype(np.float64)
        layers.append(layer)
        prev, cur_shape = name, (w.shape[0],)
    log_line(f"readout: spike count of the last neuron layer {layers[-1].name} summed over T")
    log_line(f"latency: Lava adds one step per feed-forward layer ({len(layers)} layers); netx reset_interval="
             f"T={timesteps}, reset_offset=1 (staggered per layer)")
    return LoihiProgram(layers, shape, timesteps, "rate", options.graded_bits, options.seed, "count", events=events,
                        event_bits=bits, bias_input=layers[0].n_in == int(np.prod(shape)) + 1)


def recurrent_input(out_prev: torch.Tensor, rec: np.ndarray) -> torch.Tensor:
    """W_rec·s[t−1] for the spikes of the previous step ``[B, n]`` (float64 matmul: exact for these integers)."""
    w = torch.as_tensor(rec, dtype=torch.float64, device=out_prev.device)
    return (out_prev.to(torch.float64) @ w.T).round().to(torch.int64)


__all__ = ["lower_recurrent", "recurrent_input"]
