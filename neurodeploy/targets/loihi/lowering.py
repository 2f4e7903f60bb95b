"""NIR graph -> a fixed-point Loihi program (shared by the ``lava`` and ``loihi-emu`` targets).

Every change is one line of the deployment's lowering log. The program is a chain of layers, each
one synapse (a conv or a dense matrix of 8-bit integer weights) followed by a layer of Loihi CUBA
neurons (Lava's ``LIF``/``LIFReset``, fixed point), except a readout layer that never fires; in a
residual graph (:mod:`.dag`) a layer has one synapse per summand of the ADD that feeds it.

Loihi fixed-point CUBA (Lava ``PyLifModelBitAcc``), per step with synaptic input a = Σ_j w_ij·s_j:

    u ← sgn(u·(4096 − iDecay))·(|u·(4096 − iDecay)| >> 12) + (a << 6)      (24-bit, wraps)
    v ← sgn(v·(4096 − vDecay))·(|v·(4096 − vDecay)| >> 12) + u + (b << 6)  (24-bit, saturates)
    s = v > (vThMant << 6);  v ← 0 where s

Mapping of our neuron (u ← λ·u + I − v_th·s, spike when u > v_th):
- iDecay = 4096: the current is exactly the step's input (no synaptic filter);
- vDecay = round(4096·(1 − λ)) (0 for IF);
- weights scaled by a per-layer factor σ and rounded to the 8-bit even grid, w_q = 2·round(σ·w/2)
  ∈ [−256, 254]; vThMant = round(σ·θ·Q) with Q the input spike magnitude (1, or the graded
  spike's full scale for the first layer); σ is the largest factor that keeps the weights in 8 bits,
  the threshold in 17 bits and |a| < 2^17 (so that a << 6 fits the 24-bit current);
- reset to zero (Loihi) where the source subtracts the threshold (logged: an accuracy cost);
- one spike per step where the source emits several (sinabs' MultiSpike; logged per layer,
  the emulator counts the steps with v ≥ 2θ);
- event frames (counts) become graded input spikes with the count as payload (≤ 2^event_bits − 1,
  Q = 1) or binary spikes (:mod:`.event_input`; the clipped events are measured per run);
- average/sum pooling (netx has none) folded into the next synaptic layer: for stride = size a
  conv with kernel k·s, stride s·stride, padding s·padding and weights w/k² (exact); otherwise a
  strided depthwise conv composed with the next layer into one dense matrix (exact: both linear);
- max pooling of spikes (NIR SumPool2d + Threshold, as ``to_nir`` exports it) becomes its own layer
  of memoryless neurons computing the OR (:mod:`.or_layer`): exact for binary spikes, one extra step
  of latency;
- the readout layer (no neuron in the source) becomes a non-firing CUBA integrator whose
  voltage v[T]/2^6 = Σ_t a[t] is read per sample: exactly the source's 'sum over T' readout, up to
  the weight quantisation.

Lava adds one step of latency per layer (the synapse buffers its output). With netx's staggered
reset (``reset_interval = T``, ``reset_offset = 1``) layer i handles sample k in the global steps
[k·T + 2 + i, (k+1)·T + 2 + i): in each layer's local time there is no delay at all, which is what
the emulator computes.

Recurrent graphs (CubaLIF layers with a recurrent Affine) are lowered by :mod:`.recurrent` (current
decay, a second dense matrix delivering the previous step's spikes, netx ``dense_rec``).

Residual graphs (SEW-ResNet's ADD, membrane-add blocks) are lowered by :mod:`.dag`: the ADD is
carried by its consumers' synapses (W·(a + b) = W·a + W·b, exact in integers), and each shortcut
synapse is delayed on Lava to meet the longer branch.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, Callable

import nir
import numpy as np
import torch
from torch import nn

from ...errors import TargetError, UnsupportedLayerError
from ...ir.from_nir import SumPool2d, from_nir
from ...ir.metadata import DeployMeta
from ...ir.modules import Heaviside
from ...measure.ops import fanout_maps
from ...snn.network import SpikingNetwork, TimeDropout
from ...snn.neuron import SpikingNeuron
from .event_input import check_options, coding_line, payload_cap
from .options import LoihiOptions
from .program import (A_MAX, BIAS_MAX, DECAY_UNITY, HEADROOM, VTH_MAX, W_MAX, W_MIN,  # noqa: F401  (re-exported)
                      LoihiLayer, LoihiProgram)

log = logging.getLogger(__name__)

def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _chain_matrix(mods: list[nn.Module], in_shape: tuple[int, ...]) -> np.ndarray:
    """The exact matrix ``[n_out, n_in]`` of a chain of linear modules (identity basis pushed through)."""
    n = int(np.prod(in_shape))
    with torch.no_grad():
        h = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
        for m in mods:
            h = m.double()(h)
    return h.reshape(n, -1).T.numpy()


Folded = tuple[str, list[str], str, np.ndarray, dict, tuple, "np.ndarray | None"]


def _fold_group(group: list[tuple[str, nn.Module]], in_shape: tuple[int, ...],
                log_line: Callable[[str], None]) -> Folded:
    """Fold pooling/flatten into the one conv/linear of a group between two neuron layers.

    Returns (synapse name, folded names, kind, float weight, conv params, out shape, float bias per
    output neuron or None).
    """
    names = [n for n, _ in group]
    for n, m in group:
        if isinstance(m, nn.MaxPool2d):
            raise UnsupportedLayerError(f"node {n!r} (MaxPool2d): lower max pooling through its NIR form (to_nir "
                                        "exports it as SumPool2d + Threshold, an OR of binary spikes)")
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d, SumPool2d, nn.Flatten)):
            raise UnsupportedLayerError(f"node {n!r} ({type(m).__name__}) cannot be lowered to Loihi")
    syn = [(n, m) for n, m in group if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(syn) != 1:
        what = "no synaptic layer" if not syn else f"{len(syn)} synaptic layers {[n for n, _ in syn]}"
        raise UnsupportedLayerError(f"nodes {names}: {what} between two neuron layers; Loihi needs exactly one "
                                    "conv/linear per layer (a pooling layer must be followed by one)")
    sname, smod = syn[0]
    mods = [copy.deepcopy(m).double() for _, m in group]
    with torch.no_grad():
        zero_out = nn.Sequential(*mods).eval()(torch.zeros(1, *in_shape, dtype=torch.float64))
    out_shape = tuple(zero_out.shape[1:])
    bias = None
    if getattr(smod, "bias", None) is not None and torch.any(smod.bias != 0):
        if names.index(sname) != len(names) - 1:
            raise UnsupportedLayerError(f"node {sname!r}: a bias followed by pooling cannot be folded")
        bias = zero_out.reshape(-1).numpy().copy()  # per output neuron
        for m in mods:
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.data.zero_()
    pools = [(n, m) for n, m in group if isinstance(m, (nn.AvgPool2d, SumPool2d))]
    # exact conv folding: [pool (k = s, no padding, dims divisible by s)] -> conv (dilation 1, groups 1)
    if isinstance(smod, nn.Conv2d) and _pair(smod.dilation) == (1, 1) and smod.groups == 1:
        w = smod.weight.detach().double().numpy()
        stride, padding = _pair(smod.stride), _pair(smod.padding)
        if len(group) == 1:
            return sname, [], "conv", w, {"stride": stride, "padding": padding}, out_shape, bias
        if len(group) == 2 and isinstance(group[0][1], (nn.AvgPool2d, SumPool2d)):
            pname, pool = group[0]
            k, s = _pair(pool.kernel_size), _pair(pool.stride if pool.stride is not None else pool.kernel_size)
            pad = _pair(pool.padding)
            h, wd = in_shape[-2:]
            if k == s and pad == (0, 0) and h % s[0] == 0 and wd % s[1] == 0:
                f = 1.0 if isinstance(pool, SumPool2d) else 1.0 / (k[0] * k[1])
                wf = np.kron(w, np.ones((1, 1, k[0], k[1]))) * f
                st = (stride[0] * s[0], stride[1] * s[1])
                pd = (padding[0] * s[0], padding[1] * s[1])
                log_line(f"pooling: {pname} ({type(pool).__name__} {k[0]}x{k[1]}, stride {s[0]}) folded exactly into "
                         f"{sname}: kernel {wf.shape[2]}x{wf.shape[3]}, stride {st[0]}, padding {pd[0]}, weights "
                         f"x{f:g} (netx has no pooling layer)")
                return sname, [pname], "conv", wf, {"stride": st, "padding": pd, "pre_pool": k}, out_shape, bias
    # general case: every module is linear, so the chain is one matrix (exact composition)
    wm = _chain_matrix(mods, in_shape)
    for pname, pool in pools:
        k = _pair(pool.kernel_size)
        s = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        how = ("folded exactly" if k == s else
               f"lowered as a strided depthwise conv ({k[0]}x{k[1]}, stride {s[0]}, weight "
               f"{'1' if isinstance(pool, SumPool2d) else f'1/{k[0] * k[1]}'}) and composed exactly")
        log_line(f"pooling: {pname} ({type(pool).__name__} {k[0]}x{k[1]}, stride {s[0]}) {how} into {sname} "
                 f"as one dense {wm.shape[0]}x{wm.shape[1]} synaptic matrix (netx has no pooling layer)")
    flat = [n for n, m in group if isinstance(m, nn.Flatten)]
    if flat:
        log_line(f"flatten: {', '.join(flat)} absorbed into the dense matrix of {sname} (C,H,W order)")
    return sname, [n for n in names if n != sname], "dense", wm, {}, out_shape, bias


def _scale(w: np.ndarray, kind: str, theta: float, q_in: float, bias: np.ndarray | None,
           q_max: float | None = None) -> tuple[float, str]:
    """The largest σ with 8-bit weights, a 17-bit threshold and |a| < 2^17 in the worst case.

    σ = min(254 / max|w|, 0.95·2^17 / (max_i Σ_j |w_ij| · M), 0.95·(2^17 − 1) / (θ·Q), 4095 / (max|b|·Q))
    with Q the integer units of one input unit and M the largest input message (default Q; for
    event counts Q = 1 and M = the payload cap); returns σ and the name of the bound that binds.
    """
    return scale_bound([(w, kind, q_in if q_max is None else q_max)], theta, q_in, bias)


def scale_bound(parts: list[tuple[np.ndarray, str, float]], theta: float, q_in: float,
                bias: np.ndarray | None) -> tuple[float, str]:
    """σ over all synapses of one layer: ``parts`` = (float weight, kind, largest input message M_k).

    σ = min(254 / max_k max|W_k|, 0.95·2^17 / Σ_k (max_i Σ_j |W_k,ij|)·M_k, 0.95·(2^17 − 1) / (θ·Q),
    4095 / (max|b|·Q)): :func:`_scale` with the fan-in bound summed over the summands (residual
    layers, :mod:`.dag`).
    """
    wmax = max((float(np.abs(w).max()) if w.size else 0.0) for w, _, _ in parts)
    if wmax == 0.0:
        return 1.0, "all weights are zero"
    fan = sum(float(np.abs(w).sum(axis=(1, 2, 3) if k == "conv" else 1).max()) * m for w, k, m in parts)
    active = "all inputs active" if len(parts) == 1 else "all inputs of all summands active"
    bounds = {"8-bit weights": W_MAX / wmax, f"|a| < 2^17 ({active})": HEADROOM * A_MAX / fan}
    if np.isfinite(theta):
        bounds["17-bit threshold"] = HEADROOM * VTH_MAX / (theta * q_in)
    if bias is not None and np.abs(bias).max() > 0:
        bounds["13-bit bias"] = BIAS_MAX / (float(np.abs(bias).max()) * q_in)
    why = min(bounds, key=bounds.get)
    return bounds[why], why


def quantize(w: np.ndarray, sigma: float) -> np.ndarray:
    """w_q = 2·round(σ·w / 2), clipped to the 8-bit even grid [−256, 254]."""
    return np.clip(np.round(w * sigma / 2.0) * 2.0, W_MIN, W_MAX).astype(np.int64)


def configure_neurons(layer: LoihiLayer, net: SpikingNetwork, neuron_name: str | None, theta: float, lam: float,
                      scale: float, log_line: Callable[[str], None]) -> None:
    """Set a layer's CUBA parameters (or make it the non-firing readout) and log the mapping.

    ``scale`` = σ·Q, the integer units of one float unit of synaptic input; vThMant = round(θ·scale),
    vDecay = round(4096·(1 − λ)) (see the module docstring for the CUBA equations).
    """
    readout, sname = layer.readout, layer.synapse
    if readout:
        layer.vth = VTH_MAX
        log_line(f"readout {sname}: non-firing CUBA integrator (iDecay=4096, vDecay=0, vThMant={VTH_MAX}); "
                 f"logits = v[T]/2^6 = Σ_t Σ_j w_q·s_j[t] read per sample through a probe on its synaptic "
                 f"input, divided by {scale:.4g} (exactly the source's 'sum over T' up to weight rounding)")
    else:
        vth = int(round(theta * scale))
        if vth < 1 or vth > VTH_MAX:
            raise TargetError(f"node {neuron_name!r}: threshold mantissa {vth} outside [1, {VTH_MAX}]")
        layer.vth = vth
        dv = int(round(DECAY_UNITY * (1.0 - lam)))
        layer.v_decay, layer.i_decay = dv, DECAY_UNITY
        lam_q = (DECAY_UNITY - dv) / DECAY_UNITY
        leak_txt = ("IF (λ = 1): vDecay = 0" if dv == 0 else
                    f"leak λ={lam:.6g} -> vDecay={dv} (λ_q={lam_q:.6g})")
        log_line(f"{neuron_name}: neuron -> Loihi CUBA: iDecay=4096 (current = the step's input), {leak_txt}, "
                 f"threshold {theta:.5g} -> vThMant={vth} (x{scale:.4g}; compared as v > vThMant<<6)")
        reset = net.layers[neuron_name].reset
        if reset == "subtract":
            log_line(f"{neuron_name}: reset by subtraction in the source -> reset to zero on Loihi "
                     f"(residual charge above threshold is lost)")
        dyn = getattr(net.layers[neuron_name], "dynamics", None)
        if dyn is not None and dyn.spike == "multi":
            layer.multi_spike = True
            log_line(f"{neuron_name}: multi-spike neuron in the source (sinabs MultiSpike: ⌊v/θ⌋ spikes per "
                     f"step where v ≥ θ, v −= spikes·θ) -> one spike per step on Loihi (v > θ, then v = 0; "
                     f"v saturates at ±2^23): spike trains differ in every step with v ≥ 2θ (the loihi-emu run "
                     f"counts those steps) and at v = θ exactly")
        if dyn is not None and dyn.min_v is not None:
            log_line(f"{neuron_name}: membrane floor {dyn.min_v:.4g} of the source dropped (Loihi CUBA has none)")


def as_options(options: LoihiOptions | Mapping[str, Any] | None) -> LoihiOptions:
    """The typed lowering options (a mapping is checked field by field)."""
    if isinstance(options, LoihiOptions):
        return options
    return LoihiOptions.from_mapping(options or {}, "loihi lowering options")


def input_coding(net: SpikingNetwork, timesteps: int, options: LoihiOptions,
                 log_line: Callable[[str], None]) -> tuple[str, int, int, str, int]:
    """Check and log how the input becomes spikes; returns (input_spikes, graded_bits, seed, events, event_bits)."""
    input_spikes = options.input_spikes
    if input_spikes not in ("rate", "graded"):
        raise TargetError(f"options['input_spikes'] = {input_spikes!r}; choose rate or graded")
    graded_bits = options.graded_bits
    seed = options.seed
    events = options.event_spikes if net.encoding == "events" else ""
    event_bits = options.event_bits
    if events:
        check_options(events, event_bits)
    shape = tuple(net.input_shape)
    if events:
        log_line(coding_line(events, event_bits, shape, timesteps))
    elif input_spikes == "graded":
        log_line(f"input: the direct analog input is sent as {graded_bits}-bit graded spikes "
                 f"q = round(x·{(1 << graded_bits) - 1}) at each of the T={timesteps} steps (first-layer "
                 f"threshold scaled by the same factor)")
    else:
        log_line(f"input: the direct analog input is rate-coded, s[t] ~ Bernoulli(x) per pixel and step "
                 f"(T={timesteps}, seed {seed}); the source sees the constant analog value")
    return input_spikes, graded_bits, seed, events, event_bits


def lower_network(net: SpikingNetwork, timesteps: int, options: LoihiOptions | Mapping[str, Any] | None,
                  log_line: Callable[[str], None], fanouts: dict[str, torch.Tensor] | None = None) -> LoihiProgram:
    """Lower a sequential float :class:`SpikingNetwork` (as rebuilt from NIR) to a :class:`LoihiProgram`.

    ``options``: :class:`LoihiOptions` (or a mapping of its fields; any subclass, e.g. the lava
    target's, is fine). A neuron whose source emits several spikes per step (sinabs' MultiSpike,
    ``dynamics.spike == "multi"``) is marked ``multi_spike`` and logged: Loihi emits one.
    """
    options = as_options(options)
    input_spikes, graded_bits, seed, events, event_bits = input_coding(net, timesteps, options, log_line)
    shape = tuple(net.input_shape)
    for name, m in net.layers.items():
        if isinstance(m, nn.MaxPool2d):
            raise UnsupportedLayerError(f"node {name!r} (MaxPool2d): lower max pooling through its NIR form "
                                        "(to_nir exports it as SumPool2d + Threshold, an OR of binary spikes)")
    fan = fanouts if fanouts is not None else fanout_maps(net)
    items = [(n, m) for n, m in net.layers.items() if not isinstance(m, (nn.Dropout, TimeDropout, nn.Identity))]
    dropped = [n for n, m in net.layers.items() if isinstance(m, (nn.Dropout, TimeDropout, nn.Identity))]
    if dropped:
        log_line(f"dropout/identity layers {dropped} removed (identity at inference)")
    layers: list[LoihiLayer] = []
    group: list[tuple[str, nn.Module]] = []
    cur_shape, prev_neuron = shape, None
    or_layers: list[str] = []  # max pools of spikes lowered as OR layers (.or_layer)

    def close(neuron_name: str | None, neuron: SpikingNeuron | None) -> None:
        nonlocal cur_shape, prev_neuron
        sname, folded, kind, w, conv, out_shape, bias = _fold_group(group, cur_shape, log_line)
        first = not layers
        q_in = float((1 << graded_bits) - 1) if (first and input_spikes == "graded" and not events) else 1.0
        q_max = float(payload_cap(events, event_bits)) if (first and events) else q_in
        readout = neuron is None
        if readout:
            theta, lam = float("inf"), 1.0
        else:
            th = neuron.threshold.detach().double().reshape(-1).numpy()
            lam = float(neuron.leak.detach().clamp(0.0, 1.0))
            if th.size > 1 and not np.all(th == th[0]):
                # per-neuron thresholds: divide each neuron's weights (and bias) by its threshold
                thr = np.broadcast_to(th.reshape(-1) if th.size == int(np.prod(out_shape)) else th,
                                      (int(np.prod(out_shape)),))
                per_row = thr if kind == "dense" else None
                if per_row is None:
                    raise UnsupportedLayerError(f"node {neuron_name!r}: per-neuron thresholds on a conv layer are "
                                                "not supported by the Loihi lowering")
                w = w / per_row[:, None]
                bias = bias / per_row if bias is not None else None
                log_line(f"{neuron_name}: per-neuron thresholds folded into the rows of {sname} (threshold 1)")
                theta = 1.0
            else:
                theta = float(th[0])
        sigma, why = _scale(w, kind, theta, q_in, bias, q_max)
        wq = quantize(w, sigma)
        bq = None
        if bias is not None:
            bq = np.clip(np.round(bias * sigma * q_in), -BIAS_MAX - 1, BIAS_MAX).astype(np.int64)
        err = float(np.abs(wq - w * sigma).max()) / sigma if sigma > 0 else 0.0
        nz = int(np.count_nonzero(wq))
        log_line(f"{sname}: weights x{sigma:.4g} ({why} binds) -> 8-bit even grid [{int(wq.min())}, {int(wq.max())}]"
                 f" (step {2 / sigma:.3g} in float units, max rounding error {err:.3g}, {nz}/{wq.size} nonzero)"
                 + (f", bias mantissa [{int(bq.min())}, {int(bq.max())}] (bias_exp 6)" if bq is not None else ""))
        layer = LoihiLayer(name=neuron_name or sname, synapse=sname, folded=folded, kind=kind, weight=wq,
                           in_shape=cur_shape, out_shape=out_shape, stride=conv.get("stride", (1, 1)),
                           padding=conv.get("padding", (0, 0)), pre_pool=conv.get("pre_pool"), bias=bq,
                           scale=sigma * q_in, readout=readout, input_neuron=prev_neuron)
        configure_neurons(layer, net, neuron_name, theta, lam, sigma * q_in, log_line)
        if not readout:
            prev_neuron = neuron_name
        if layer.input_neuron is not None and sname in fan:
            layer.fanout = fan[sname].reshape(-1).double().numpy()
        elif layer.input_neuron is None or layer.input_neuron in or_layers:
            layer.fanout = _input_fanout(group, cur_shape)
        layers.append(layer)
        cur_shape = out_shape
        group.clear()

    for name, m in items:
        if isinstance(m, SpikingNeuron):
            if not group:
                raise UnsupportedLayerError(f"node {name!r}: a neuron layer without a synaptic layer before it")
            close(name, m)
        elif isinstance(m, Heaviside):  # a max pool of spikes exported as SumPool2d + Threshold
            from .or_layer import or_layer

            layers.append(or_layer(name, m, group, cur_shape, prev_neuron, log_line))
            cur_shape, prev_neuron = layers[-1].out_shape, name
            or_layers.append(name)
            group.clear()
        else:
            group.append((name, m))
    if group:
        close(None, None)
        readout = "potential"
    else:
        readout = "count"
        log_line(f"readout: spike count of the last neuron layer {layers[-1].name} summed over T")
    extra = (f", {len(or_layers)} of them OR layers for max pooling ({', '.join(or_layers)}: +{len(or_layers)} "
             f"step{'s' if len(or_layers) > 1 else ''} of latency)" if or_layers else "")
    log_line(f"latency: Lava adds one step per layer ({len(layers)} layers{extra}); samples are fed back to back with "
             f"netx reset_interval=T={timesteps}, reset_offset=1, so each layer sees each sample's T steps")
    for i, layer in enumerate(layers):
        layer.depth = i
    return LoihiProgram(layers, shape, timesteps, input_spikes, graded_bits, seed, readout, events=events,
                        event_bits=event_bits)


def _input_fanout(group: list[tuple[str, nn.Module]], in_shape: tuple[int, ...]) -> np.ndarray:
    """Real fan-out of each input pixel into the first synaptic layer (edges and padding included)."""
    mods = []
    for _, m in group:
        if isinstance(m, nn.Conv2d):
            c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                          bias=False)
            c.weight.data = torch.ones_like(m.weight)
            mods.append(c)
        elif isinstance(m, nn.Linear):
            lin = nn.Linear(m.in_features, m.out_features, bias=False)
            lin.weight.data = torch.ones_like(m.weight)
            mods.append(lin)
        else:
            mods.append(m)
    mat = _chain_matrix(mods, in_shape)
    return (mat != 0).sum(0).astype(np.float64)


def lower(graph: nir.NIRGraph, meta: DeployMeta, options: LoihiOptions | Mapping[str, Any] | None,
          log_line: Callable[[str], None]) -> tuple[LoihiProgram, SpikingNetwork]:
    """Lower a NIR graph: rebuild the float network from the graph, then :func:`lower_network`."""
    net = from_nir(graph, meta)
    if net.recurrent_edges:  # CubaLIF layers with a recurrent Affine (.recurrent)
        from .recurrent import lower_recurrent

        net.eval()
        opts = options if isinstance(options, LoihiOptions) else LoihiOptions.from_mapping(options or {}, "loihi "
                                                                                           "lowering options")
        return lower_recurrent(net, meta.timesteps, opts, log_line), net
    if not net.is_chain:  # residual joins (SEW ADD, membrane add): several synapses per layer (.dag)
        from .dag import lower_dag

        net.eval()
        return lower_dag(net, meta.timesteps, options, log_line), net
    net.eval()
    return lower_network(net, meta.timesteps, options, log_line), net
