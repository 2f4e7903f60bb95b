"""SynSense Speck 2f through sinabs: lower, discretise, check the chip's limits, simulate on CPU.

``compile`` turns the NIR chain into one sinabs ``DynapcnnLayer`` per core (see
:mod:`.speck_lower` for every change it makes), discretises it with
``DynapcnnNetwork(discretize=True)`` (8-bit weights, 16-bit threshold and state), checks the
Speck 2f limits from ``targets/speck2f.toml`` and maps the layers onto the 9 cores with sinabs'
``Speck2FConfigBuilder.map_layers_to_cores``. A network that does not fit fails with a
:class:`~neurodeploy.errors.TargetError` naming the layer, what it needs and what a core has.

``run`` simulates the discretised network time bin by time bin on CPU (sinabs' DynapcnnLayer
forward: integer-valued conv -> IAF with MultiSpike -> sum pooling). Inputs become events first
(rate coding, graded count coding, or the event frames as they are). Synaptic operations are
counted with sinabs' synops hooks (their fan-out maps) on a copy of the network, per sample:
synops = Σ_inputs events × fan-out; spikes per NIR neuron node; logits = output spike counts.

samna (SynSense's runtime) is never imported unless the real one is installed; see
:mod:`._samna_shim`. Only :meth:`SpeckTarget.make_config` needs it.
"""
from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nir
import torch
from tqdm.auto import tqdm

from ..data.encoding import rate_code
from ..errors import TargetError
from ..ir.metadata import DeployMeta
from ..recipe import Profile
from ._samna_shim import SamnaUnavailableError, ensure_dynapcnn_importable, real_samna, real_samna_available
from .base import Deployment, Outputs, Target, register_target
from .speck_options import SpeckOptions

if TYPE_CHECKING:  # sinabs is imported on first use, so that the recipe reader can see SpeckOptions cheaply
    from sinabs.backend.dynapcnn import DynapcnnNetwork

    from .speck_lower import CoreLayer, Lowered

log = logging.getLogger(__name__)

_DEFAULT_LIMITS: dict[str, Any] = {
    "cores": 9, "max_kernel_size": 16, "strides": [1, 2, 4, 8], "max_padding": 7, "pooling": [1, 2, 4],
    "fan_out": 2, "max_input_size": [128, 128], "max_output_size": [64, 64], "max_channels": 1024,
}


_READOUT = "<readout>"  # key of the IAF layer the target adds after a non-spiking last layer


def _ki(n: float) -> str:
    n = int(n)
    return f"{n // 1024}Ki" if n >= 1024 and n % 1024 == 0 else str(n)


def _shapes(lowered: Lowered) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(input shape, neuron shape) of every core, from the layer geometry alone (no forward pass)."""
    out = []
    c, h, w = lowered.input_shape
    for layer in lowered.layers:
        conv = layer.conv
        if isinstance(conv, torch.nn.Linear):
            if conv.in_features != c * h * w:
                raise TargetError(f"node {layer.synapse!r}: Linear expects {conv.in_features} inputs, "
                                  f"gets {c}×{h}×{w}")
            shape_in, (c, h, w) = (c, h, w), (conv.out_features, 1, 1)
        else:
            (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
            shape_in = (c, h, w)
            c, h, w = conv.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        out.append((shape_in, (c, h, w)))
        h, w = h // layer.pool, w // layer.pool
    return out


def check_geometry(lowered: Lowered, limits: dict[str, Any]) -> None:
    """Speck's per-core limits other than memory; TargetError naming the layer and the limit."""
    lim = {**_DEFAULT_LIMITS, **limits}
    n = len(lowered.layers)
    if n > lim["cores"]:
        raise TargetError(f"the network needs {n} cores ({', '.join(x.label for x in lowered.layers)}); "
                          f"Speck has {lim['cores']}")
    for layer, (shape_in, shape_n) in zip(lowered.layers, _shapes(lowered)):
        where = f"layer {layer.label!r}"
        conv = layer.conv
        if isinstance(conv, torch.nn.Conv2d):
            k, s, p = conv.kernel_size, conv.stride, conv.padding
        else:
            k, s, p = shape_in[1:], (1, 1), (0, 0)
        if k[0] != k[1]:
            raise TargetError(f"{where}: kernel {k[0]}×{k[1]} is not square (Speck needs square kernels; a Linear "
                              "layer's kernel is its input's height × width)")
        if k[0] > lim["max_kernel_size"]:
            raise TargetError(f"{where}: kernel {k[0]}×{k[1]} > {lim['max_kernel_size']}×{lim['max_kernel_size']}, "
                              "the largest a Speck core has")
        if any(v not in lim["strides"] for v in s):
            raise TargetError(f"{where}: stride {tuple(s)}; Speck strides are {lim['strides']}")
        if any(v > lim["max_padding"] for v in p):
            raise TargetError(f"{where}: padding {tuple(p)} > {lim['max_padding']}")
        if layer.pool not in lim["pooling"]:
            raise TargetError(f"{where}: sum pooling {layer.pool}×{layer.pool} ({'+'.join(layer.pool_nodes)}); "
                              f"Speck pools by {lim['pooling']}")
        if max(shape_in[0], shape_n[0]) > lim["max_channels"]:
            raise TargetError(f"{where}: {max(shape_in[0], shape_n[0])} channels > {lim['max_channels']}")
        hi, wi = lim["max_input_size"]
        if shape_in[1] > hi or shape_in[2] > wi:
            raise TargetError(f"{where}: input {shape_in[1]}×{shape_in[2]} > {hi}×{wi}, a core's largest input")
        ho, wo = lim["max_output_size"]
        if shape_n[1] > ho or shape_n[2] > wo:
            raise TargetError(f"{where}: output feature map {shape_n[1]}×{shape_n[2]} > {ho}×{wo}, a core's largest "
                              "output; downsample earlier (stride or pooling)")
    # a sequential chain: every core sends to one destination (<= fan_out)
    if lim["fan_out"] < 1:
        raise TargetError("profile limits.fan_out must be >= 1")


def _memory_error(label: str, need: dict[str, int], limits: dict[str, Any]) -> str | None:
    km, nm = limits.get("kernel_memory"), limits.get("neuron_memory")
    if not km or not nm:
        return None
    bm = limits.get("bias_memory", [1024] * len(km))
    if any(need["kernel"] <= k and need["neuron"] <= n and need["bias"] <= b for k, n, b in zip(km, nm, bm)):
        return None
    cores = ", ".join(f"core {i}: {_ki(k)}/{_ki(n)}" for i, (k, n) in enumerate(zip(km, nm)))
    return (f"layer {label!r} needs {_ki(need['kernel'])} kernel-memory and {_ki(need['neuron'])} neuron-memory "
            f"entries (bias {need['bias']}); no Speck 2f core has that much (kernel/neuron per core: {cores}). "
            "Use fewer channels, a smaller kernel or a smaller feature map")


@dataclass
class SpeckProgram:
    """What ``compile`` produces: the discretised sinabs network and where each core went."""

    network: DynapcnnNetwork
    layers: list[CoreLayer]  # one per core, in order (NIR node names of synapse and neuron)
    layer2core: dict[int, int]  # sinabs DynapcnnLayer index -> Speck core

    @property
    def cores(self) -> list:
        """The sinabs DynapcnnLayers in chain order."""
        return [self.network.dynapcnn_layers[i] for i in sorted(self.network.dynapcnn_layers)]


@register_target
class SpeckTarget(Target):
    """SynSense Speck 2f, simulated through sinabs' DynapcnnNetwork (discretised) on CPU."""

    name = "speck"
    profile_name = "speck2f"
    needs_spiking_input = True
    Options = SpeckOptions
    fixed_point = True

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("sinabs") is None:
            return False, "sinabs is not installed (pip install --no-deps sinabs==3.1.3; see ENVIRONMENT)"
        return True, ""

    # ------------------------------------------------------------------ compile
    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: SpeckOptions | Mapping[str, Any] | None = None) -> Deployment:
        """Lower, discretise, check the limits and map onto the cores; every change is logged.

        Options: :class:`~.speck_options.SpeckOptions` (``input_spikes``, ``input_levels``, ``leak``,
        ``readout``, ``readout_threshold``, ``weight_clip_percentile``, ``discretize``, ...).
        """
        from .speck_lower import _input_coding, lower

        prof = self.load_profile(profile)
        opts: SpeckOptions = self.resolve_options(options, prof)  # type: ignore[assignment]
        limits = dict(prof.limits) if prof else {}
        dep = Deployment(self.name, graph, meta, prof, options=opts)
        dep.info["options"] = {k: v for k, v in opts.explicit().items() if isinstance(v, (int, float, str, bool))}
        lowered = lower(graph, meta, opts, dep.log)
        for layer in lowered.layers:
            if not layer.neuron:
                continue
            zero = type(layer.spike.reset_fn).__name__ == "MembraneReset"
            fire = ("Speck fires ⌊v/threshold⌋ times per time bin, as the source (multi-spike)"
                    if layer.source_spike == "multi" else
                    "Speck fires when v ≥ threshold (source: v > threshold) and can fire several times "
                    "per time bin when many input events arrive (source: at most once per step)")
            dep.log(f"{layer.neuron}: IAF neurons, reset "
                    f"{'to zero (return_to_zero = true)' if zero else 'by subtraction (return_to_zero = false)'} as in "
                    f"the source; {fire}")
        check_geometry(lowered, limits)
        dn = self._discretise(lowered, dep)
        l2c = self._map_cores(dn, lowered, limits, dep)
        dep.artifact = SpeckProgram(dn, lowered.layers, l2c)
        dep.info.update({
            "input_coding": _input_coding(meta, opts),
            "input_gain": lowered.input_gain,
            "seed": opts.seed,
            "cores": [{"layer": x.label, "synapse": x.synapse, "neuron": x.neuron, "pool": x.pool,
                       "threshold": x.threshold} for x in lowered.layers],
            "readout": opts.readout,
            "samna": real_samna_available()[1],
        })
        return dep

    def _discretise(self, lowered: Lowered, dep: Deployment) -> DynapcnnNetwork:
        """``DynapcnnNetwork(discretize=True)``; logs the scale, rounding and clipping per core."""
        ensure_dynapcnn_importable()  # before sinabs.backend.dynapcnn (it imports samna)
        from sinabs.backend.dynapcnn import DynapcnnNetwork
        from sinabs.backend.dynapcnn.discretize import determine_discretization_scale

        from .speck_lower import STATE_MAX

        floats = [(x.conv.weight.detach().clone(), x.threshold) for x in lowered.layers]
        discretize = dep.options.discretize
        try:
            dn = DynapcnnNetwork(lowered.model, input_shape=lowered.input_shape, discretize=discretize)
        except (ValueError, TypeError, RuntimeError) as e:  # sinabs' own structure checks
            raise TargetError(f"sinabs could not build the Speck network: {e}") from None
        cores = [dn.dynapcnn_layers[i] for i in sorted(dn.dynapcnn_layers)]
        if len(cores) != len(lowered.layers):
            raise TargetError(f"sinabs made {len(cores)} cores of {len(lowered.layers)} layers")
        if not discretize:
            dep.log("NOT DISCRETISED (option discretize = false, for diagnosis only): float weights and thresholds, "
                    "this is not what the chip runs")
            return dn
        for layer, core, (w, th) in zip(lowered.layers, cores, floats):
            wq = core.conv_layer.weight.detach().reshape(-1)
            thq = float(core.spk_layer.spike_threshold)
            low = float(core.spk_layer.min_v_mem)
            s = thq / th if th else float("nan")
            sw = float(determine_discretization_scale(w, 8))
            w = w.reshape(-1)
            err = float((wq / s - w).abs().mean() / w.abs().max()) if s == s else float("nan")
            zeroed = int(((wq == 0) & (w != 0)).sum())
            if wq.abs().max() > 128 or abs(thq) > STATE_MAX + 1 or abs(low) > STATE_MAX + 1:
                raise TargetError(f"layer {layer.label!r}: discretised values out of range "
                                  f"(max |w| {float(wq.abs().max())}, threshold {thq}, threshold_low {low})")
            limited = "" if s >= sw * 0.999 else (f"; the threshold limits the scale to {s:.4g} < {sw:.4g}, so the "
                                                   "weights use less than the full 8-bit range")
            dep.info.setdefault("discretisation", {})[layer.label] = {
                "scale": s, "weight_int_min": int(wq.min()), "weight_int_max": int(wq.max()),
                "threshold": th, "threshold_int": int(thq), "threshold_low_int": int(low),
                "weight_rounding_error": err, "weights_rounded_to_zero": zeroed}
            dep.log(f"{layer.label}: discretised with scale {s:.4g} (sinabs): weights -> int8 "
                    f"[{int(wq.min())}, {int(wq.max())}] (max |w| {float(w.abs().max()):.4g}), mean rounding error "
                    f"{100 * err:.2f}% of max |w|, {zeroed} of {w.numel()} non-zero weights rounded to 0; threshold "
                    f"{th:.4g} -> {int(thq)} (16-bit); state clipped below at threshold_low {int(low)} "
                    f"(= {low / thq:.1f}·threshold; "
                    f"{'the source has no lower bound' if layer.min_v is None else 'the source floor'}){limited}")
        return dn

    def _map_cores(self, dn: DynapcnnNetwork, lowered: Lowered, limits: dict[str, Any],
                   dep: Deployment) -> dict[int, int]:
        """Memory check against the profile, then sinabs' Speck 2f layer-to-core mapping."""
        ensure_dynapcnn_importable()
        from sinabs.backend.dynapcnn.chips.speck2f import Speck2FConfigBuilder

        cores = [dn.dynapcnn_layers[i] for i in sorted(dn.dynapcnn_layers)]
        summary = {}
        for layer, core in zip(lowered.layers, cores):
            need = {k: int(v) for k, v in core.memory_summary().items()}
            summary[layer.label] = need
            msg = _memory_error(layer.label, need, limits)
            if msg:
                raise TargetError(msg)
        try:
            l2c = Speck2FConfigBuilder.map_layers_to_cores(dn.dynapcnn_layers)
        except ValueError as e:
            needs = "; ".join(f"{k}: kernel {_ki(v['kernel'])}, neuron {_ki(v['neuron'])}" for k, v in summary.items())
            raise TargetError(f"the layers fit Speck 2f's cores one by one but not all at once ({needs}): {e}") from None
        mapping = {lowered.layers[i].label: int(l2c[idx]) for i, idx in enumerate(sorted(dn.dynapcnn_layers))}
        dep.info["memory"] = summary
        dep.info["core_mapping"] = mapping
        km, nm = limits.get("kernel_memory", []), limits.get("neuron_memory", [])
        parts = []
        for label, core in mapping.items():
            need = summary[label]
            cap = f" of {_ki(km[core])}/{_ki(nm[core])}" if core < len(km) and core < len(nm) else ""
            parts.append(f"{label} -> core {core} (kernel/neuron {_ki(need['kernel'])}/{_ki(need['neuron'])}{cap})")
        dep.log("core mapping (sinabs Speck2FConfigBuilder.map_layers_to_cores): " + "; ".join(parts))
        return {int(k): int(v) for k, v in l2c.items()}

    # ------------------------------------------------------------------ run
    def events(self, dep: Deployment, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The events the chip receives for inputs ``x``: ``[B, T, C, H, W]`` counts per pixel and bin."""
        T = dep.meta.timesteps
        coding = dep.info["input_coding"]
        if coding == "events":
            if x.dim() != 5 or x.shape[1] != T:
                raise TargetError(f"speck: event input must be [N, T={T}, C, H, W], got {tuple(x.shape)}")
            return x.float()
        if x.dim() != 4:
            raise TargetError(f"speck: image input must be [N, C, H, W], got {tuple(x.shape)}")
        x = x.float().clamp(0.0, 1.0)
        if coding == "graded":
            return torch.round(x * dep.info["input_gain"]).unsqueeze(1).expand(-1, T, *x.shape[1:])
        return rate_code(x, T, generator, time_dim=1)

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256,
            progress: bool = False) -> Outputs:
        """Simulate the discretised network on ``x`` (images in [0, 1], or event frames [N, T, C, H, W]).

        Returns predictions (most output spikes), logits (output spike counts per class), spikes
        per NIR neuron node and synaptic operations per NIR synaptic node, all per sample.
        """
        from sinabs.hooks import conv_layer_synops_hook

        dep = deployment
        if len(x) == 0:
            raise TargetError("speck: no inputs to simulate")
        T = dep.meta.timesteps
        prog: SpeckProgram = dep.artifact
        layers = prog.layers
        dn = copy.deepcopy(prog.network)  # the hooks (and their hook_data) go on a copy
        cores = [dn.dynapcnn_layers[i] for i in sorted(dn.dynapcnn_layers)]
        cur: dict[str, torch.Tensor] = {}

        def spikes_hook(key):
            def hook(mod, inp, out):
                cur["spk:" + key] = out.reshape(-1, T, *out.shape[1:]).flatten(2).sum((1, 2))
            return hook

        def synops_hook(key):
            def hook(mod, inp, out):
                fan = mod.hook_data["connection_map"]  # sinabs: fan-out of every input position
                ev = inp[0].reshape(-1, T, *inp[0].shape[1:])
                cur["syn:" + key] = (ev * fan.unsqueeze(0)).flatten(2).sum((1, 2))
                cur["sinabs:" + key] = mod.hook_data["layer_synops_per_timestep"] * inp[0].shape[0]
            return hook

        for layer, core in zip(layers, cores):
            core.conv_layer.register_forward_hook(conv_layer_synops_hook)  # sinabs' counter first
            core.conv_layer.register_forward_hook(synops_hook(layer.synapse))
            core.spk_layer.register_forward_hook(spikes_hook(layer.neuron or _READOUT))
        gen = torch.Generator().manual_seed(int(dep.info["seed"]))
        potential = 0.0
        if dep.info.get("readout") == "potential":
            potential = float(cores[-1].spk_layer.spike_threshold) / layers[-1].threshold  # the integer scale
        acc: dict[str, list[torch.Tensor]] = {}
        logits, in_events = [], []
        check = [0.0, 0.0]
        with torch.no_grad():
            for i in tqdm(range(0, len(x), batch_size), desc="speck", disable=not progress, leave=False):
                ev = self.events(dep, x[i:i + batch_size], gen)
                b = ev.shape[0]
                for core in cores:
                    core.spk_layer.reset_states()
                out = dn(ev.reshape(b * T, *ev.shape[2:]))
                counts = out.reshape(b, T, -1).sum(1)
                if potential:  # what the output neurons integrated: spikes·threshold + what is left, / scale
                    spk = cores[-1].spk_layer
                    v = spk.v_mem.reshape(b, -1)
                    counts = (counts * float(spk.spike_threshold) + v) / potential
                logits.append(counts)
                in_events.append(ev.flatten(1).sum(1))
                for k, v in cur.items():
                    if k.startswith("sinabs:"):
                        check[0] += float(v)
                        check[1] += float(cur["syn:" + k[7:]].sum())
                    else:
                        acc.setdefault(k, []).append(v.clone())
                cur.clear()
        counts = torch.cat(logits).numpy()  # spike counts, or potentials in logit units
        preds = counts.argmax(1)
        top = counts.max(1, keepdims=True)
        ties = int(((counts == top).sum(1) > 1).sum())
        cat = {k: torch.cat(v).numpy() for k, v in acc.items()}
        spikes = {k[4:]: v for k, v in cat.items() if k.startswith("spk:") and k[4:] != _READOUT}
        synops = {k[4:]: v for k, v in cat.items() if k.startswith("syn:")}
        info = {
            "ties": ties,
            "readout_spikes_mean": float(cat["spk:" + _READOUT].mean()) if "spk:" + _READOUT in cat else None,
            "input_events_mean": float(torch.cat(in_events).mean()),
            "synops_sinabs_hooks_total": check[0],
            "synops_per_sample_total": check[1],
            "core_mapping": dep.info.get("core_mapping", {}),
            "memory": dep.info.get("memory", {}),
        }
        return Outputs(preds, counts, spikes, synops, info=info)

    # ------------------------------------------------------------------ chip configuration
    def make_config(self, deployment: Deployment, path: str | Path | None = None) -> Any:
        """The samna chip configuration (needs the real samna).

        With ``path``: ``*.bin`` is written with ``samna.speck2f.configuration_to_flash_binary`` (as
        in sinabs' docs, "Save Samna Config As Binary"), anything else as the configuration's JSON.
        """
        real, why = real_samna_available()
        if not real:
            raise SamnaUnavailableError(f"make_config needs SynSense's samna: {why}")
        device = (deployment.profile.options.get("device") if deployment.profile else None) or "speck2fdevkit"
        prog: SpeckProgram = deployment.artifact
        try:
            config = prog.network.make_config(layer2core_map=dict(prog.layer2core), device=device)
        except ValueError as e:
            raise TargetError(f"samna rejected the Speck configuration for {device}: {e}") from None
        if path is not None:
            path = Path(path)
            if path.suffix == ".bin":
                samna = real_samna()
                path.write_bytes(bytes(samna.speck2f.configuration_to_flash_binary(config)))
            elif hasattr(config, "to_json"):
                path.write_text(config.to_json(), encoding="utf-8")
            else:
                raise TargetError(f"{path}: this samna configuration has no JSON form; write a .bin file instead")
        return config


__all__ = ["SpeckProgram", "SpeckTarget", "check_geometry"]
