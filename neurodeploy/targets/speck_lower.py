"""NIR graph -> a sinabs network one Speck core per layer, every change logged.

A DYNAP-CNN core computes ``Conv2d -> IAF -> sum pooling`` (sinabs ``DynapcnnLayer``), so the
sequential NIR chain is cut into groups ``synapse -> neuron -> [pooling]``. What does not map
one-to-one is changed and logged:

- average pooling k×k becomes sum pooling (Speck pools by routing a spike to one pooled address)
  and the next synaptic layer's weights are multiplied by 1/k² — exact in float:
  ``W·avg(s) = (W/k²)·sum(s)``; max pooling is refused;
- a multiplicative leak λ < 1 cannot be represented by Speck's IAF neurons: it is dropped
  (λ → 1) or, on request, approximated by a constant negative bias −(1−λ)·v_th/2 per step;
- the readout: the source's last layer is non-spiking (logits = its input summed over T);
  Speck reads spikes, so an IAF layer with threshold θ_out is added and the logits become its
  spike counts (≈ max(0, logit) / θ_out; option ``readout = "potential"`` instead reads the
  layer's integrated potential, spikes·θ_out + v_mem, at the end of the window);
- the input: Speck takes events, so analog images are rate-coded (Bernoulli(x) per step) or
  sent as round(x·L) events per step ("graded"), event datasets as they are;
- the reset mode maps onto Speck's ``return_to_zero`` flag (subtract -> false, zero -> true);
  Speck's neuron is sinabs' IAF with MultiSpike: a single-spike source neuron is logged as a
  difference, a membrane floor of the source (e.g. sinabs' min_v_mem = −v_th) is kept.

Discretisation is sinabs' (``DynapcnnNetwork(discretize=True)``): per core one scale s with
weights → round(s·w) in 8 bits and threshold → round(s·θ) in 16 bits. The lower bound of the
membrane potential (``min_v_mem``, Speck's threshold_low) is, unless the source neuron has a floor, put as deep as 16 bits allow, so the
scale is set by the weights (using the full 8-bit range) and the potential is almost unbounded
below, as in the source neuron. (sinabs' default ``min_v_mem=None`` counts as −2¹⁵ *float* units
and would force the scale to ≤ 1, rounding most weights to 0.)
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import nir
import numpy as np
import torch
from torch import nn

from ..errors import TargetError, UnsupportedLayerError
from ..ir.from_nir import NODE_MAP, chain_order, refuse_recurrent
from ..ir.metadata import DeployMeta
from ..snn.neuron import SpikingNeuron
from ._samna_shim import ensure_dynapcnn_importable
from .speck_options import SpeckOptions

ensure_dynapcnn_importable()  # before anything imports sinabs.backend.dynapcnn (it imports samna)

import sinabs.layers as sl  # noqa: E402
from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike  # noqa: E402
from sinabs.backend.dynapcnn.discretize import determine_discretization_scale  # noqa: E402

_SYNAPSES = (nir.Conv2d, nir.Linear, nir.Affine)
_NEURONS = (nir.IF, nir.LIF)
_POOLS = (nir.AvgPool2d, nir.SumPool2d)
STATE_MAX = 2 ** 15 - 1


@dataclass
class CoreLayer:
    """One DYNAP-CNN core: a synaptic node, the neurons it drives and the pooling after them."""

    synapse: str  # NIR node name of the Conv2d / Linear
    conv: nn.Module
    neuron: str = ""  # NIR neuron node name; "" for the readout layer the target adds
    spike: Any = None  # sinabs IAFSqueeze
    threshold: float = 1.0
    pool: int = 1  # sum pooling after the neurons
    pool_nodes: list[str] = field(default_factory=list)
    flatten_after: bool = False
    min_v: float | None = None  # the source neuron's membrane floor (None: none)
    source_spike: str = "single"  # the source neuron's spike function: single | multi

    @property
    def label(self) -> str:
        return f"{self.synapse}+{self.neuron or 'readout'}"


@dataclass
class Lowered:
    """The sinabs network and its groups, before ``DynapcnnNetwork``."""

    model: nn.Sequential
    layers: list[CoreLayer]
    input_shape: tuple[int, int, int]
    input_gain: float = 1.0  # graded input: events per unit of pixel value


def _square(v, what: str, name: str) -> int:
    a = np.atleast_1d(np.asarray(v)).astype(int).reshape(-1)
    if a.size > 1 and np.any(a != a[0]):
        raise UnsupportedLayerError(f"node {name!r}: Speck supports square {what} only, got {tuple(a)}")
    return int(a[0])


def _uniform_threshold(m: SpikingNeuron, name: str) -> float:
    th = m.threshold.detach().reshape(-1)
    if th.numel() > 1 and not torch.all(th == th[0]):
        raise TargetError(f"node {name!r}: per-neuron thresholds (min {float(th.min()):.4g}, max "
                          f"{float(th.max()):.4g}); a Speck core has one threshold for all its neurons")
    return float(th[0])


def make_iaf(threshold: float, reset: str, timesteps: int) -> sl.IAFSqueeze:
    """A Speck neuron layer: IAF, MultiSpike (several spikes per time bin, as the event-driven chip
    does when many input events arrive in one bin), reset by subtraction or to zero."""
    reset_fn = MembraneSubtract() if reset == "subtract" else MembraneReset()
    return sl.IAFSqueeze(num_timesteps=timesteps, spike_threshold=torch.tensor(float(threshold)),
                         spike_fn=MultiSpike, reset_fn=reset_fn, min_v_mem=-1.0)


def lower(graph: nir.NIRGraph, meta: DeployMeta, options: SpeckOptions | Mapping[str, Any] | None,
          log: Callable[[str], None]) -> Lowered:
    """Cut the NIR chain into cores and build the float sinabs network (not yet discretised)."""
    if not isinstance(options, SpeckOptions):
        options = SpeckOptions.from_mapping(options or {}, "speck options")
    refuse_recurrent(graph, "Speck")  # its cores feed forward only
    order = chain_order(graph, "<speck>")
    meta_in = meta
    meta = copy.deepcopy(meta)  # the NIR converters note what they did in meta; keep the caller's clean
    order = [n for n in order if type(graph.nodes[n]).__name__ != "Identity"]
    for name in order:
        node = graph.nodes[name]
        if "maxpool" in type(node).__name__.lower():
            raise UnsupportedLayerError(
                f"node {name!r} ({type(node).__name__}): max pooling cannot run on Speck (its cores only "
                "sum-pool spikes on the way to the next core); retrain with average pooling (model.pooling = 'avg')")
        if isinstance(node, nir.Threshold):
            raise _refuse_or(name, meta)
        if not isinstance(node, (*_SYNAPSES, *_NEURONS, *_POOLS, nir.Flatten, nir.Input, nir.Output)):
            raise UnsupportedLayerError(
                f"node {name!r} of type {type(node).__name__} has no Speck equivalent (supported: Conv2d, Linear, "
                "IF/LIF neurons, average/sum pooling, Flatten)")
    in_node = graph.nodes[order[0]]
    shape = tuple(meta.input_shape or np.asarray(in_node.input_type["input"]).reshape(-1).tolist())
    if len(shape) != 3:
        raise TargetError(f"Speck needs a (channels, height, width) input; the graph's input is {shape}")

    layers: list[CoreLayer] = []
    flatten_input = False
    scale_next = 1.0  # from average pooling, applied to the next synaptic layer
    avg_nodes: list[str] = []
    leak_mode = options.leak
    if leak_mode not in ("drop", "bias"):
        raise TargetError(f"speck option leak = {leak_mode!r}; choose 'drop' or 'bias'")
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        mod = NODE_MAP[type(node)](node, name, meta)
        cur = layers[-1] if layers else None
        if isinstance(node, _SYNAPSES):
            if cur is not None and not cur.neuron:
                raise UnsupportedLayerError(
                    f"node {name!r} follows synaptic node {cur.synapse!r} without neurons in between; a Speck "
                    "core is conv -> IAF -> pool, two synaptic layers in a row need to be merged first")
            if isinstance(mod, nn.Conv2d) and (mod.groups != 1 or tuple(mod.dilation) != (1, 1)):
                raise UnsupportedLayerError(f"node {name!r}: Speck runs dense convolutions only "
                                            f"(groups={mod.groups}, dilation={tuple(mod.dilation)})")
            if scale_next != 1.0:
                with torch.no_grad():
                    mod.weight.mul_(scale_next)
                log(f"{'+'.join(avg_nodes)}: average pooling -> sum pooling (Speck routes each spike to one pooled "
                    f"address); {name} weights x {scale_next:g} to compensate (exact in float)")
                scale_next, avg_nodes = 1.0, []
            layers.append(CoreLayer(name, mod))
        elif isinstance(node, _NEURONS):
            if cur is None or cur.neuron:
                raise UnsupportedLayerError(f"node {name!r}: neurons without a synaptic layer before them cannot "
                                            "be placed on a Speck core")
            assert isinstance(mod, SpikingNeuron)
            cur.neuron, cur.threshold = name, _uniform_threshold(mod, name)
            lam = float(mod.leak.detach())
            if lam < 1.0:
                if leak_mode == "drop":
                    log(f"{name}: leak λ = {lam:.4g} per step cannot be represented by Speck's IAF neurons; dropped "
                        f"(λ {lam:.4g} -> 1: the potential keeps the {100 * (1 - lam):.3g}% per step it lost)")
                else:
                    b = -(1.0 - lam) * cur.threshold / 2
                    conv = cur.conv
                    if conv.bias is None:
                        conv.bias = nn.Parameter(torch.zeros(conv.weight.shape[0]))
                    with torch.no_grad():
                        conv.bias.add_(b)
                    log(f"{name}: leak λ = {lam:.4g} per step cannot be represented by Speck's IAF neurons; "
                        f"approximated by a constant bias {b:.4g} per step (= -(1-λ)·v_th/2: exact only at "
                        f"u = v_th/2; λ becomes 1)")
            cur.spike = make_iaf(cur.threshold, getattr(mod, "reset", meta.reset_of(name)), meta.timesteps)
            _log_dynamics(name, mod, log)
            cur.min_v, cur.source_spike = mod.dynamics.min_v, mod.dynamics.spike
        elif isinstance(node, _POOLS):
            if cur is None or not cur.neuron:
                raise UnsupportedLayerError(f"node {name!r}: pooling before the first neurons (of the input) is not "
                                            "supported on Speck's cores")
            k = _square(node.kernel_size, "pooling", name)
            s = _square(node.stride, "pooling stride", name) if node.stride is not None else k
            p = _square(node.padding, "pooling padding", name) if getattr(node, "padding", None) is not None else 0
            if s != k or p != 0:
                raise UnsupportedLayerError(f"node {name!r}: Speck pools in non-overlapping k×k windows without "
                                            f"padding; got kernel {k}, stride {s}, padding {p}")
            cur.pool *= k
            cur.pool_nodes.append(name)
            if isinstance(node, nir.AvgPool2d):
                scale_next /= k * k
                avg_nodes.append(name)
        elif isinstance(node, nir.Flatten):
            if cur is None:
                flatten_input = True  # a Linear on the input becomes a conv whose kernel covers the input
            else:
                cur.flatten_after = True
    if not layers:
        raise TargetError("the graph has no synaptic layer to place on a Speck core")
    if scale_next != 1.0 or layers[-1].pool != 1:
        raise UnsupportedLayerError(f"node {layers[-1].pool_nodes[-1]!r}: pooling after the last layer has no "
                                    "destination core on Speck")

    gain = 1.0
    coding = _input_coding(meta_in, options)
    first = layers[0]
    if coding == "graded":
        gain = float(options.input_levels)
        with torch.no_grad():
            first.conv.weight.div_(gain)
            if first.conv.bias is not None:
                first.conv.bias.div_(gain)
        log(f"input: Speck takes events; the analog input is sent as round(x·{gain:g}) events per pixel and step "
            f"(graded count coding), {first.synapse} weights / {gain:g} (error ≤ 1/{2 * gain:g} of a pixel's range)")
    elif coding == "rate":
        log(f"input: Speck takes events; the analog input is rate-coded (one Bernoulli(x) event per pixel and "
            f"step, seed {options.seed})"
            + (" — the source uses direct (analog) input, so this coding adds noise the source does not have"
               if meta.encoding == "direct" else " — the source rate-codes too (different random draws)"))
    else:
        log("input: the event dataset's frames are sent as they are (event counts per pixel and step)")

    last = layers[-1]
    readout = options.readout
    if readout not in ("spikes", "potential"):
        raise TargetError(f"speck option readout = {readout!r}; choose 'spikes' or 'potential'")
    if not last.neuron:
        th = options.readout_threshold
        wmax = float(last.conv.weight.detach().abs().max())
        th = float(th) if th is not None else wmax * options.readout_threshold_scale
        if readout == "potential":  # as high as 16 bits allow next to 8-bit weights: it (almost) never fires
            th = 0.99 * STATE_MAX / _weight_scale(last.conv)
        last.threshold = th
        last.spike = make_iaf(th, "subtract", meta.timesteps)
        if readout == "spikes":
            log(f"readout: the source's last layer {last.synapse!r} is non-spiking (logits = its input summed over "
                f"T); Speck reads spikes, so an IAF layer (threshold {th:.4g}, reset by subtraction) is added after it "
                f"and the logits become its spike counts (≈ max(0, source logit) / {th:.4g}; a spike once sent is not "
                "taken back by later negative input); prediction = most spikes, ties to the lowest class index")
        else:
            log(f"readout: the source's last layer {last.synapse!r} is non-spiking; an IAF layer with the highest "
                f"threshold 16 bits allow ({th:.4g}) is added and the logits are read as its potential at the end of "
                "the window (spikes·threshold + v_mem, exact integers / scale) — on the chip this means reading neuron "
                "states through samna once per sample, not the usual spike readout")
    else:
        if readout == "potential":
            raise TargetError(f"speck option readout = 'potential' needs a non-spiking last layer; "
                              f"{last.neuron!r} spikes")
        log(f"readout: the last layer {last.neuron!r} is spiking; logits = its spike counts")

    clip = options.weight_clip_percentile
    mods: list[nn.Module] = [nn.Flatten()] if flatten_input else []
    for layer in layers:
        w = layer.conv.weight.detach()
        if clip < 100.0:
            lim = float(torch.quantile(w.abs().flatten().float(), clip / 100.0))
            n = int((w.abs() > lim).sum())
            with torch.no_grad():
                layer.conv.weight.clamp_(-lim, lim)
            log(f"{layer.synapse}: weights clipped to ±{lim:.4g} (percentile {clip:g}: {n} of {w.numel()} weights, "
                f"max |w| was {float(w.abs().max()):.4g}) to give the 8-bit grid a finer step")
        # threshold_low as deep as 16 bits allow, so that the weights, not min_v_mem, set the scale
        s = _weight_scale(layer.conv)
        floor = -STATE_MAX / s if layer.min_v is None else max(layer.min_v, -STATE_MAX / s)
        if layer.min_v is not None and floor != layer.min_v:
            log(f"{layer.neuron}: membrane floor {layer.min_v:.4g} is below what 16 bits allow at this layer's "
                f"scale; clipped to {floor:.4g}")
        layer.spike.min_v_mem = nn.Parameter(torch.tensor(floor), requires_grad=False)
        mods += [layer.conv, layer.spike]
        if layer.pool > 1:
            mods.append(sl.SumPool2d(layer.pool))
        if layer.flatten_after:
            mods.append(nn.Flatten())
    return Lowered(nn.Sequential(*mods), layers, (int(shape[0]), int(shape[1]), int(shape[2])), gain)


def _log_dynamics(name: str, mod: SpikingNeuron, log: Callable[[str], None]) -> None:
    """Speck's neuron is sinabs' IAF (MultiSpike, reset right after the spike): say where the source's differs."""
    d = mod.dynamics
    if d.spike == "single":
        log(f"{name}: the source emits at most one spike per step; Speck's IAF (sinabs MultiSpike) emits "
            "⌊v/θ⌋ when v overshoots several thresholds: spike counts can differ where inputs are strong")
    else:
        log(f"{name}: multi-spike neuron (⌊v/θ⌋ per step), as Speck's IAF")
    if d.min_v is not None:
        log(f"{name}: membrane floor {d.min_v:.4g} kept (Speck's threshold_low)")
    if d.reset_at == "next" and getattr(mod, "reset", "subtract") == "subtract" and float(mod.leak.detach()) < 1.0:
        log(f"{name}: the source subtracts θ after the leak (HIRE-SNN eq. 1); Speck has no leak, so the order "
            "does not matter once the leak is dropped")


def _refuse_or(name: str, meta: DeployMeta) -> UnsupportedLayerError:
    """Why a max pool of spikes (SumPool2d + Threshold, ``ir.to_nir._maxpool``) cannot run on Speck.

    An OR needs a neuron that fires once per time step however many of its inputs spiked. Speck's
    neurons are event-driven IAF: every input event is integrated on arrival and can trigger a spike
    (sinabs models this with MultiSpike, ``sinabs/activation/spike_generation.py:39``: spikes =
    trunc(v/θ)), and a core's configuration has no spike function to choose
    (``sinabs/backend/dynapcnn/chips/dynapcnn.py:160``: only threshold_high/low and return_to_zero).
    With weight 1 and threshold 1, n coincident spikes give n output events: a sum, never an OR; any
    threshold above 1 loses windows with a single spike. So no extra layer makes it exact.
    """
    pools = [p for p, d in meta.max_pools.items() if d.get("threshold") == name]
    what = f"max pool {pools[0]!r} of binary spikes, exported as SumPool2d + Threshold" if pools else "Threshold"
    return UnsupportedLayerError(
        f"node {name!r} ({what}): Speck cannot compute the OR of a max pool: its event-driven IAF neurons integrate "
        "every input event and emit one output event per threshold crossing, so n spikes in a pooling window give "
        "n events (sum pooling), never one; there is no per-step saturating neuron to add as an extra core. "
        "Retrain with average pooling (model.pooling = 'avg') for Speck")


def _weight_scale(conv: nn.Module, bits: int = 8) -> float:
    """sinabs' discretisation scale for weights (and bias) alone: the largest s with s·w in ``bits``."""
    s = float(determine_discretization_scale(conv.weight.detach(), bits))
    if conv.bias is not None and torch.any(conv.bias != 0):
        s = min(s, float(determine_discretization_scale(conv.bias.detach(), bits)))
    return s


def _input_coding(meta: DeployMeta, options: SpeckOptions) -> str:
    if meta.encoding == "events":
        return "events"
    coding = options.input_spikes
    if coding not in ("rate", "graded"):
        raise TargetError(f"speck option input_spikes = {coding!r}; choose 'rate' or 'graded'")
    return coding


__all__ = ["CoreLayer", "Lowered", "lower", "make_iaf"]
