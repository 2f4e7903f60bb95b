"""A bit-exact emulator of Loihi's fixed-point CUBA dynamics in torch (target ``loihi-emu``).

It runs a :class:`~neurodeploy.targets.loihi.lowering.LoihiProgram` layer by layer, vectorised over
the batch (CPU or CUDA), with the integer arithmetic of Lava's ``PyLifResetModelBitAcc``:

    u ← sgn(u·(4096 − iDecay))·(|u·(4096 − iDecay)| >> 12) + (a << 6), wrapped to 24 bits
    v ← clip(sgn(v·(4096 − vDecay))·(|v·(4096 − vDecay)| >> 12) + u + (b << 6), ±(2^23 − 1))
    s = v > (vThMant << 6),  v ← 0 where s

Lava's one-step latency per layer is pure pipeline delay: with netx's staggered reset every layer
sees each sample's T steps in its own local time, so the emulator runs each layer on the previous
layer's whole spike train (no delay) and matches Lava spike for spike. A residual (DAG) program
(:mod:`.dag`) is run the same way: a layer with several synaptic inputs sums W_k·s_k over its
sources' whole trains; on Lava the shortcut synapses are delayed to the same local time. The synaptic input
a = Σ_j w_ij·s_j is computed in float32 (exact: integers, every partial sum below 2^17 < 2^24).

:func:`emulate` runs samples in sub-batches of 64 through the fused integer C kernel of
:mod:`.cuba_c` (or, without a C compiler, the torch kernels of :mod:`.cuba`); ``reference=True``
runs the plain loop of :func:`cuba` that the fast path is tested against (same integers).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ...ir.metadata import DeployMeta
from ...recipe import Profile
from ..base import Deployment, Outputs, Target, register_target
from .event_input import EventStats, payload_cap, stats_line
from .lowering import DECAY_UNITY as DECAY
from .lowering import LoihiLayer, LoihiProgram, lower
from .options import LoihiOptions
from .cuba import fast_cuba
from .recurrent import recurrent_input

log = logging.getLogger(__name__)

U_MAX = 1 << 23  # 24-bit state
SUB_BATCH = 64  # samples emulated at once: the [T, B, n] trains of a layer stay in cache, no fresh pages per batch


def cuba(a: torch.Tensor, layer: LoihiLayer, active: torch.Tensor | None = None,
         over: torch.Tensor | None = None) -> torch.Tensor:
    """Fixed-point CUBA over a whole input sequence ``a`` ``[T, B, n]`` (int64) -> spikes ``[T, B, n]`` (bool).

    ``active`` (``[B]`` int64, optional) accumulates the active neuron updates: neuron-steps whose
    current or voltage is non-zero (Davies et al. 2018 price active and idle updates differently).
    ``over`` (``[B]`` int64, optional) accumulates the neuron-steps with v ≥ 2·(vThMant << 6) before
    the reset: where a multi-spike source neuron (sinabs) would have emitted two or more spikes.
    A layer with a ``recurrent`` matrix adds W_rec·s[t−1] to the step's input a[t] (:mod:`.recurrent`:
    Lava's Dense delivers the previous step's spikes).
    """
    T = a.shape[0]
    du, dv = DECAY - layer.i_decay, DECAY - layer.v_decay  # decay multipliers (4096 = no decay)
    lo, hi = torch.aminmax(a) if a.numel() else (torch.tensor(0), torch.tensor(0))  # one pass, no |a| copy
    rec = layer.recurrent
    if du == 0 and rec is None and int(hi) < (U_MAX >> 6) and int(lo) > -(U_MAX >> 6):
        dtype = torch.int32 if dv in (0, DECAY) else torch.int64
        u_all = a.to(dtype) << 6  # current = this step's input, no 24-bit wrap possible
        direct = True
    else:
        u_all = a.to(torch.int64) << 6
        dtype, direct = torch.int64, False
    u = torch.zeros(a.shape[1:], dtype=dtype, device=a.device)
    v = torch.zeros_like(u)
    bias = None if layer.bias is None else (torch.as_tensor(layer.bias, device=a.device) << 6).to(dtype)
    vth = layer.vth << 6
    out = torch.empty(a.shape, dtype=torch.bool, device=a.device)
    with _one_thread():
        _cuba_loop(T, u_all, u, v, bias, vth, du, dv, direct, out, active, over, rec)
    return out


@contextlib.contextmanager
def _one_thread():
    """Element-wise ops on ~10^5-10^6 entries run faster on one thread (and 10x faster on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _cuba_loop(T, u_all, u, v, bias, vth, du, dv, direct, out, active, over, rec=None) -> None:  # noqa: ANN001
    for t in range(T):
        if direct:
            u = u_all[t]
        else:
            d = u * du
            a = u_all[t] if rec is None or t == 0 else u_all[t] + (recurrent_input(out[t - 1], rec) << 6)
            u = torch.sign(d) * (d.abs() >> 12) + a
            u = torch.where(u > U_MAX, u - 2 * U_MAX, u)
            u = torch.where(u <= -U_MAX, u + 2 * U_MAX, u)
        if dv == DECAY:
            v = v + u
        elif dv == 0:
            v = u.clone()
        else:
            d = v * dv
            v = torch.sign(d) * (d.abs() >> 12) + u
        if bias is not None:
            v += bias
        v.clamp_(-U_MAX + 1, U_MAX - 1)
        if active is not None:
            active += torch.count_nonzero((u | v).flatten(1), dim=1)
        if over is not None:
            over += torch.count_nonzero((v >= 2 * vth).flatten(1), dim=1)
        s = v > vth
        v.masked_fill_(s, 0)
        out[t] = s



def emulate(program: LoihiProgram, spikes: torch.Tensor, raster: bool = False,
            reference: bool = False) -> dict[str, Any]:
    """Run the program on input spikes ``[T, B, n_in]``.

    Returns ``{'spikes': {layer: [B] spike counts}, 'maps': {layer: [B, n] counts per neuron},
    'logits': [B, classes] integer readout, 'raster': {layer: [T, B, n] bool} (if asked),
    'over_2theta': {multi-spike layer: [B] neuron-steps with v ≥ 2θ}}``. The fast path
    (:func:`.cuba.fast_cuba`: the fused C kernel or the torch kernels; float32 spike trains; an input
    that is the same at every step — graded image input — pushed through its first synapse once;
    sub-batches of ``SUB_BATCH`` samples with their spike buffers reused) gives the same integers as
    ``reference=True`` (:func:`emulate_reference`); a layer whose batch leaves the fast kernel's exact
    range runs the reference :func:`cuba`.
    """
    if reference:
        return emulate_reference(program, spikes, raster)
    B = spikes.shape[1]
    ws: dict[int, torch.Tensor] = {}  # one spike buffer per layer, reused by every sub-batch
    if B <= SUB_BATCH:
        return _emulate_fast(program, spikes, raster, ws)
    parts = [_emulate_fast(program, spikes[:, i:i + SUB_BATCH], raster, ws) for i in range(0, B, SUB_BATCH)]
    res: dict[str, Any] = {k: {name: torch.cat([p[k][name] for p in parts], 1 if k == "raster" else 0)
                               for name in parts[0][k]} for k in ("spikes", "maps", "raster", "active", "over_2theta")}
    res["logits"] = torch.cat([p["logits"] for p in parts])
    return res


def _empty_result() -> dict[str, Any]:
    return {"spikes": {}, "maps": {}, "raster": {}, "active": {}, "over_2theta": {}}


def _last_use(program: LoihiProgram) -> dict[str | None, int]:
    """Each spike train's last consumer (layer index): a chain keeps one train, a DAG its shortcuts."""
    last: dict[str | None, int] = {}
    for i, layer in enumerate(program.layers):
        for syn in layer.synapses():
            last[syn.input_neuron] = i
    return last


def _emulate_fast(program: LoihiProgram, spikes: torch.Tensor, raster: bool, ws: dict[int, torch.Tensor]
                  ) -> dict[str, Any]:
    T, B = spikes.shape[:2]
    res: dict[str, Any] = _empty_result()
    last_use = _last_use(program)
    inp = spikes.to(torch.float32)  # exact: input messages are integers < 2^16
    const = T > 1 and bool((inp == inp[:1]).all())
    trains: dict[str | None, torch.Tensor] = {None: inp}
    for i, layer in enumerate(program.layers):
        a = None
        for syn in layer.synapses():  # several synaptic inputs (a residual ADD) are summed: W·a + W·b
            src = trains[syn.input_neuron]
            if syn.input_neuron is None and const:  # W·s[0] at every step: one product instead of T
                y = syn.apply(src[0]).unsqueeze(0).expand(T, B, -1)
            else:
                y = syn.apply(src.reshape(T * B, -1)).reshape(T, B, -1)
            a = y if a is None else a + y
        for k in [k for k, j in last_use.items() if j == i]:
            trains.pop(k, None)
        a = a.contiguous().round_()  # integers already (|partial sums| < 2^17 < 2^24); as the reference
        if layer.readout:
            a64 = a.to(torch.float64)
            v = a64.cumsum(0)  # exact: |v| < T·2^17
            res["active"][layer.name] = torch.count_nonzero(a64.abs() + v.abs(), dim=(0, 2))
            res["logits"] = v[-1].to(torch.int64)
            break
        if i not in ws:
            ws[i] = torch.empty(a.numel(), dtype=torch.float32, device=a.device)
        with _one_thread():
            out = fast_cuba(a, layer, out=ws[i])
        if out is None:
            log.debug("%s: the batch leaves the fast kernel's exact range, reference CUBA", layer.name)
            act = torch.zeros(B, dtype=torch.int64, device=spikes.device)
            over = torch.zeros(B, dtype=torch.int64, device=spikes.device) if layer.multi_spike else None
            lo, hi = torch.aminmax(a)
            s = cuba(a.to(torch.int32 if max(-float(lo), float(hi)) < 2 ** 30 else torch.int64), layer, act,
                     over).to(torch.float32)
        else:
            s, act, over = out
        res["active"][layer.name] = act
        if over is not None:
            res["over_2theta"][layer.name] = over
        m = s.sum(0).to(torch.int64)
        res["maps"][layer.name] = m
        res["spikes"][layer.name] = m.sum(1)
        if raster:
            res["raster"][layer.name] = s > 0
        if layer.name in last_use:
            trains[layer.name] = s
    if "logits" not in res:
        res["logits"] = res["maps"][program.layers[-1].name]
    return res


def emulate_reference(program: LoihiProgram, spikes: torch.Tensor, raster: bool = False) -> dict[str, Any]:
    """The reference emulator (int64 :func:`cuba` per layer, one simple loop): what :func:`emulate` must equal.

    Returns ``{'spikes': {layer: [B] spike counts}, 'maps': {layer: [B, n] counts per neuron},
    'logits': [B, classes] integer readout, 'raster': {layer: [T, B, n] bool} (if asked),
    'over_2theta': {multi-spike layer: [B] neuron-steps with v ≥ 2θ}}``.
    """
    T, B = spikes.shape[:2]
    res: dict[str, Any] = _empty_result()
    last_use = _last_use(program)  # a layer's spike train is kept until its last consumer ran
    trains: dict[str | None, torch.Tensor] = {None: spikes.to(torch.float32)}  # exact: |partial sums| < 2^17
    for i, layer in enumerate(program.layers):
        a = None
        for syn in layer.synapses():  # several synaptic inputs (a residual ADD) are summed: W·a + W·b
            y = syn.apply(trains[syn.input_neuron].reshape(T * B, -1)).reshape(T, B, -1)
            a = y if a is None else a + y
        for k in [k for k, j in last_use.items() if j == i]:
            trains.pop(k, None)
        if layer.readout:
            ai = a.round().to(torch.int64)
            v = ai.cumsum(0)
            res["active"][layer.name] = ((ai != 0) | (v != 0)).flatten(2).sum((0, 2))
            res["logits"] = v[-1]
            break
        act = torch.zeros(B, dtype=torch.int64, device=spikes.device)
        over = torch.zeros(B, dtype=torch.int64, device=spikes.device) if layer.multi_spike else None
        a = a.round_()
        lo, hi = torch.aminmax(a) if a.numel() else (torch.tensor(0.0), torch.tensor(0.0))
        s = cuba(a.to(torch.int32 if max(-float(lo), float(hi)) < 2 ** 30 else torch.int64), layer, act, over)
        res["active"][layer.name] = act
        if over is not None:
            res["over_2theta"][layer.name] = over
        m = s.sum(0)
        res["maps"][layer.name] = m
        res["spikes"][layer.name] = m.sum(1)
        if raster:
            res["raster"][layer.name] = s
        if layer.name in last_use:
            trains[layer.name] = s.to(torch.float32)
    if "logits" not in res:
        res["logits"] = res["maps"][program.layers[-1].name]
    return res


def synops_from_maps(program: LoihiProgram, in_spikes: torch.Tensor | None, maps: dict[str, torch.Tensor]
                     ) -> dict[str, np.ndarray]:
    """Synaptic ops per sample, keyed by NIR synaptic node: Σ_neurons spikes × real fan-out."""
    out: dict[str, np.ndarray] = {}
    for layer in program.layers:
        for syn in layer.synapses():  # synapses of one NIR node (a consumer of an ADD) add up
            if syn.fanout is None:
                continue
            fan = torch.as_tensor(syn.fanout, dtype=torch.float64)
            if syn.input_neuron is None:
                if in_spikes is None:
                    continue
                src = (in_spikes != 0).sum(0).to(torch.float64)
            elif syn.input_neuron in maps:
                src = maps[syn.input_neuron].to(torch.float64)
            else:
                continue
            v = (src.cpu() @ fan).numpy()
            out[syn.synapse] = out[syn.synapse] + v if syn.synapse in out else v
        if layer.recurrent is not None and layer.rec_fanout is not None and layer.name in maps:
            rf = torch.as_tensor(layer.rec_fanout, dtype=torch.float64)
            out[layer.rec_synapse] = (maps[layer.name].to(torch.float64).cpu() @ rf).numpy()
    return out


def neuron_updates(program: LoihiProgram, n: int) -> dict[str, np.ndarray]:
    """Neuron updates per sample: every neuron (readout included) is updated at each of the T steps."""
    return {layer.name: np.full(n, layer.n_out * program.timesteps, dtype=np.float64) for layer in program.layers}


def logits_to_float(program: LoihiProgram, logits: np.ndarray) -> np.ndarray:
    """The integer readout in the source's units (divided by the readout layer's weight scale)."""
    last = program.layers[-1]
    return logits.astype(np.float64) / last.scale if last.readout else logits.astype(np.float64)


@register_target
class LoihiEmuTarget(Target):
    """Bit-exact torch emulation of the Lava/Loihi 2 deployment (fast, batched, no Lava needed)."""

    name = "loihi-emu"
    profile_name = "loihi2"
    needs_spiking_input = False
    Options = LoihiOptions
    fixed_point = True
    finetunable = True

    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: LoihiOptions | Mapping[str, Any] | None = None) -> Deployment:
        prof = self.load_profile(profile)
        opts = self.resolve_options(options, prof)
        dep = Deployment(self.name, graph, meta, prof, options=opts)
        program, net = lower(graph, meta, opts, dep.log)
        dep.artifact = program
        given = opts.explicit()
        dep.info.update({"options": {k: given[k] for k in ("input_spikes", "seed", "event_spikes", "event_bits")
                                     if k in given},
                         "layers": [_layer_info(layer) for layer in program.layers]})
        return dep

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256, progress: bool = False) -> Outputs:
        program: LoihiProgram = deployment.artifact
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        preds, logits, spikes, synops, active, over = [], [], {}, {}, {}, {}
        stats = EventStats()
        for i in tqdm(range(0, len(x), batch_size), desc="loihi-emu", disable=not progress, leave=False):
            s_in = program.encode(x[i:i + batch_size], offset=i, stats=stats).to(device)
            res = emulate(program, s_in)
            for k, v in res["over_2theta"].items():
                over[k] = over.get(k, 0) + int(v.sum())
            lg = res["logits"].cpu().numpy()
            logits.append(lg)
            preds.append(lg.argmax(1))
            for k, v in res["spikes"].items():
                spikes.setdefault(k, []).append(v.cpu().numpy().astype(np.float64))
            for k, v in synops_from_maps(program, s_in, res["maps"]).items():
                synops.setdefault(k, []).append(v)
            for k, v in res["active"].items():
                active.setdefault(k, []).append(v.cpu().numpy().astype(np.float64))
        cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
        lg = np.concatenate(logits)
        info = {"integer_logits": lg.tolist(), "timesteps": program.timesteps,
                "neuron_updates_active": {k: v.tolist() for k, v in cat(active).items()}}
        if program.is_dag:  # latency: the shortcuts run in parallel, so the longest path counts (.dag)
            info["pipeline_layers"] = 1 + max(layer.depth for layer in program.layers)
        log_event_stats(deployment, program, stats, info)
        if over:
            steps = {layer.name: layer.n_out * program.timesteps * len(x) for layer in program.layers}
            info["multi_spike_steps"] = over
            deployment.log("multi-spike source neurons (measured on %d samples): neuron-steps with v ≥ 2θ on Loihi, "
                           "where the source emits ≥ 2 spikes and Loihi one: %s" % (len(x), ", ".join(
                               f"{k} {v} of {steps[k]}" for k, v in over.items())))
        return Outputs(np.concatenate(preds), logits_to_float(program, lg), cat(spikes), cat(synops),
                       neuron_updates(program, len(x)), info=info)


def log_event_stats(deployment: Deployment, program: LoihiProgram, stats: EventStats, info: dict) -> None:
    """Event input: the measured clipping of this run as a lowering line and ``info['event_input']``."""
    if program.events:
        info["event_input"] = {"event_spikes": program.events, "payload_max": payload_cap(program.events,
                                                                                          program.event_bits),
                               **stats.as_dict()}
        deployment.log(stats_line(stats, program.events, program.event_bits))


def _layer_info(layer: LoihiLayer) -> dict[str, Any]:
    info = _chain_layer_info(layer)
    if layer.extra or layer.delay:  # a DAG layer (.dag): every synaptic input, its source and Lava delay
        info["depth"] = layer.depth
        info["inputs"] = [{"synapse": s.synapse, "source": s.input_neuron or "input", "delay": s.delay}
                          for s in layer.synapses()]
    return info


def _chain_layer_info(layer: LoihiLayer) -> dict[str, Any]:
    return {"name": layer.name, "synapse": layer.synapse, "folded": layer.folded, "kind": layer.kind,
            "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape), "vth_mant": layer.vth,
            "v_decay": layer.v_decay, "i_decay": layer.i_decay, "weight_scale": layer.scale,
            "readout": layer.readout, "weight_range": [int(layer.weight.min()), int(layer.weight.max())]}
