"""Target ``xylo``: SynSense Xylo™Audio 3 (SYNS65302), simulated bit-precisely by ``xylosim`` through Rockpool.

``compile`` maps the network with :func:`.lower.lower` (rockpool's mapper and channel_quantize;
every change logged) and checks the chip's limits from ``profiles/xylo-audio3.toml``. ``run`` feeds
each sample to ``XyloSim.from_specification`` (rockpool/devices/xylo/syns63300/xylo_sim.py, the
simulator rockpool uses for Xylo™Audio 3: ``syns65302/__init__`` imports it) and counts, from the
simulator's recorded state (``evolve(record=True)``: ``Spikes`` per hidden neuron and step, the
output spike raster), spikes per NIR neuron node and synaptic operations per NIR synaptic node
(events × the integer fan-out the chip holds). Logits = output spike counts over the window.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.encoding import rate_code
from ...errors import TargetError
from ...ir.metadata import DeployMeta
from ...recipe import Profile
from ..base import Deployment, Outputs, Target, register_target
from .backend import xylo_status
from .lower import MAX_EVENTS_IN
from .options import XyloOptions

log = logging.getLogger(__name__)

_SPEC_KEYS = ("weights_in", "weights_out", "weights_rec", "dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2",
              "dash_syn_out", "threshold", "threshold_out", "bias", "bias_out", "weight_shift_in",
              "weight_shift_rec", "weight_shift_out", "aliases")


@register_target
class XyloTarget(Target):
    """Xylo™Audio 3 through rockpool 3.1.0's mapper, channel_quantize and the xylosim 0.1.3 simulator."""

    name = "xylo"
    profile_name = "xylo-audio3"
    needs_spiking_input = True
    Options = XyloOptions
    fixed_point = True

    def available(self) -> tuple[bool, str]:
        return xylo_status()

    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: XyloOptions | Mapping[str, Any] | None = None) -> Deployment:
        """Lower and quantise for Xylo; XyloLimitError (a TargetError) naming the limit and the layer."""
        from ...ir.from_nir import from_nir
        from .lower import lower

        prof = self.load_profile(profile)
        opts: XyloOptions = self.resolve_options(options, prof)  # type: ignore[assignment]
        dep = Deployment(self.name, graph, meta, prof, options=opts)
        net = from_nir(graph, meta)
        net.eval()
        dt = float(meta.dt)
        if net.encoding == "events":
            dep.log(f"input: event counts per channel and step as Xylo input events (at most 15 per channel and "
                    f"step; more are clipped and counted at run time)")
        elif opts.input_spikes == "graded":
            dep.log(f"input: direct (analog) input -> round(x·{opts.input_levels:g}) events per channel at every step "
                    f"(at most 15)")
        else:
            dep.log("input: direct (analog) input -> Bernoulli rate code, one event with probability x per step")
        gain = 1.0 / opts.input_levels if net.encoding != "events" and opts.input_spikes == "graded" else 1.0
        xs = lower(net, meta.timesteps, dt, dict(prof.limits) if prof else {}, opts.weight_bits, opts.threshold_bits,
                   dep.log, input_gain=gain)
        dep.artifact = xs
        physical = meta.dt_source != "default"
        if not physical:
            dep.log(f"time: dt = {dt:g} is the default, not a physical step (the network has no time unit): no "
                    "duration per sample is reported, so the time-priced energy is not charged")
        dep.info.update({
            "chip": "Xylo Audio 3 (SYNS65302)", "dt": dt, "dt_physical": physical, "encoding": net.encoding,
            "layers": [{"synapse": x.synapse, "neuron": x.neuron, "recurrent": x.rec, "neurons": int(len(i)),
                        "ids": [int(i.min()), int(i.max())]} for x, i in zip(xs.layers, xs.ids)],
            "inputs": xs.n_inputs, "bias_channel": xs.bias_channel,
            "dash_syn": [int(v) for v in xs.spec["dash_syn"]], "dash_mem": [int(v) for v in xs.spec["dash_mem"]],
            "options": {k: v for k, v in opts.explicit().items() if isinstance(v, (int, float, str, bool))},
        })
        return dep

    def events(self, dep: Deployment, x: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        """Input events ``[B, T, channels]`` (int, before clipping to 15) for inputs ``x``."""
        xs = dep.artifact
        T = xs.timesteps
        n_in = xs.n_inputs - xs.bias_channel
        if dep.info["encoding"] == "events":
            if x.dim() < 3 or x.shape[1] != T:
                raise TargetError(f"xylo: event input must be [N, T={T}, ...], got {tuple(x.shape)}")
            ev = x.reshape(x.shape[0], T, -1).float()
        else:
            x = x.float().clamp(0.0, 1.0)
            with torch.no_grad():
                for m in xs.pre:  # the input-side pooling, done by the host (logged at compile time)
                    x = m(x)
            x = x.reshape(x.shape[0], -1)
            if dep.options.input_spikes == "graded":
                ev = torch.round(x * dep.options.input_levels).unsqueeze(1).expand(-1, T, -1)
            else:
                ev = rate_code(x, T, generator, time_dim=1)
        if ev.shape[2] != n_in:
            raise TargetError(f"xylo: the network takes {n_in} input channels, the input has {ev.shape[2]}")
        if bool((ev < 0).any()) or bool((ev != ev.round()).any()):
            raise TargetError("xylo: input events must be non-negative integer counts")
        return ev.round().to(torch.int64).numpy()

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256,
            progress: bool = False) -> Outputs:
        """Simulate every sample in xylosim (one sample at a time, state reset in between)."""
        from .backend import xylo_audio3

        dep = deployment
        if len(x) == 0:
            raise TargetError("xylo: no inputs to simulate")
        xs = dep.artifact
        T, D, R = xs.timesteps, xs.delay, xs.drain
        spec = {k: xs.spec[k] for k in _SPEC_KEYS}
        sim = xylo_audio3().XyloSim.from_specification(**spec, dt=xs.dt)
        w_in = np.asarray(spec["weights_in"])
        w_rec = np.asarray(spec["weights_rec"])
        w_out = np.asarray(spec["weights_out"])
        fan_in = (w_in != 0).sum(1).astype(np.float64)  # per input channel
        gen = torch.Generator().manual_seed(int(dep.options.seed))
        n = len(x)
        layers = xs.layers
        spikes = {l.neuron: np.zeros(n) for l in layers if l.neuron}
        sigma_out = np.asarray(xs.spec["sigma_output"])[xs.ids[-1]] if xs.readout else None
        saturated = 0
        synops = {l.synapse: np.zeros(n) for l in layers}
        synops.update({l.rec: np.zeros(n) for l in layers if l.rec})
        logits = np.zeros((n, len(xs.ids[-1])))
        multi = {l.neuron: 0 for l in layers[:-1]}
        active = [0, 0, 0]  # channel-steps with input events, hidden and output neuron-steps with spikes
        clipped = [0, 0]
        fan = []  # per hidden layer: (fan-out to the next layer, recurrent fan-out) per neuron
        for k, l in enumerate(layers[:-1]):
            ids, nxt = xs.ids[k], xs.ids[k + 1]
            to_next = (w_out[ids][:, nxt] if k + 1 == len(layers) - 1 else w_rec[ids][:, nxt]) != 0
            rec = (w_rec[ids][:, ids] != 0).sum(1).astype(np.float64) if l.rec else None
            fan.append((to_next.sum(1).astype(np.float64), rec))
        for i0 in tqdm(range(0, n, batch_size), desc="xylo", disable=not progress, leave=False):
            ev = self.events(dep, x[i0:i0 + batch_size], gen)
            clipped[0] += int((ev > MAX_EVENTS_IN).sum())
            clipped[1] += int(np.clip(ev - MAX_EVENTS_IN, 0, None).sum())
            ev = np.clip(ev, 0, MAX_EVENTS_IN)
            if xs.bias_channel:
                ev = np.concatenate([ev, np.ones(ev.shape[:2] + (1,), np.int64)], 2)
            ev = np.concatenate([ev, np.zeros((ev.shape[0], D + R, ev.shape[2]), np.int64)], 1)
            for b in range(ev.shape[0]):
                j = i0 + b
                sim.reset_state()
                out, _, rec = sim.evolve(ev[b], record=True)
                hid = np.asarray(rec["Spikes"]).reshape(T + D + R, -1)
                active[0] += int(np.count_nonzero(ev[b]))
                active[1] += int(np.count_nonzero(hid))
                active[2] += int(np.count_nonzero(out))
                synops[layers[0].synapse][j] = float((ev[b].sum(0) * fan_in).sum())
                for k, l in enumerate(layers[:-1]):
                    s = hid[k:k + T][:, xs.ids[k]]
                    per = s.sum(0).astype(np.float64)
                    spikes[l.neuron][j] = per.sum()
                    multi[l.neuron] += int((s > 1).sum())
                    synops[layers[k + 1].synapse][j] = float(per @ fan[k][0])
                    if l.rec:
                        synops[l.rec][j] = float(per @ fan[k][1])
                if xs.readout:
                    v = np.asarray(rec["Vmem_out"]).reshape(T + D + R, -1)[-1][xs.ids[-1]]
                    saturated += int((np.abs(v) >= 32767).any())
                    logits[j] = v / sigma_out
                else:
                    o = np.asarray(out).reshape(T + D + R, -1)[D:D + T][:, xs.ids[-1]]
                    logits[j] = o.sum(0)
                    spikes[layers[-1].neuron][j] = o.sum()
        if clipped[0]:
            dep.log(f"input: {clipped[0]} channel-steps carried more than 15 events ({clipped[1]} events clipped) on "
                    f"{n} samples")
        if saturated:
            dep.log(f"readout: the 16-bit output membrane saturated on {saturated} of {n} samples")
        if any(multi.values()):
            dep.log(f"multi-spike (measured on {n} samples): hidden neuron-steps with ≥ 2 spikes on Xylo, where the "
                    f"source fires once: " + ", ".join(f"{k} {v} of {len(i) * T * n}" for (k, v), i in
                                                      zip(multi.items(), xs.ids)))
        top = logits.max(1, keepdims=True)
        updates = {l.label: np.full(n, float(len(i) * (T + D + R))) for l, i in zip(layers, xs.ids)}
        info = {"timesteps": T, "steps_simulated": T + D + R,
                "ties": int(((logits == top).sum(1) > 1).sum()), "multi_spike_steps": multi,
                "input_events_clipped": clipped[1], "chip": dep.info.get("chip"), "readout_saturated": saturated}
        steps = n * (T + D + R)
        prob = (active[0] / (steps * ev.shape[2]), active[1] / (steps * w_rec.shape[0]),
                active[2] / (steps * w_out.shape[1]))
        cycles = cycles_per_step(spec, *prob)
        info["cycles_per_step"] = cycles
        line = (f"rockpool's cycle model (syns63300/power_cycles_model.py, Xylo IMU / Audio 3) at the measured "
                f"activity (input {prob[0]:.3f}, hidden {prob[1]:.3f}, output {prob[2]:.3f} active per step): "
                f"{cycles:.0f} master-clock cycles per step")
        if dep.info.get("dt_physical"):
            info["clock_hz_real_time"] = cycles / xs.dt
            line += f", {cycles / xs.dt / 1e6:.3g} MHz to keep up with dt = {xs.dt:g} s"
        dep.log(line)
        if dep.info.get("dt_physical"):
            info["duration_ms"] = (T + D + R) * xs.dt * 1e3  # the chip runs one step per dt
        return Outputs(logits.argmax(1), logits, spikes, synops, updates, info=info)


def cycles_per_step(spec: dict[str, Any], input_p: float, hidden_p: float, output_p: float) -> float:
    """Master-clock cycles per time step from rockpool's cycle model (rockpool/devices/xylo/syns63300/
    power_cycles_model.py ``cycles_model``, which reads only the weight matrices and the alias
    targets of its configuration argument: given here as plain namespaces, no samna object)."""
    from types import SimpleNamespace as NS

    from rockpool.devices.xylo.syns63300.power_cycles_model import cycles_model

    w_rec = np.asarray(spec["weights_rec"])
    config = NS(input=NS(weights=np.asarray(spec["weights_in"])), readout=NS(weights=np.asarray(spec["weights_out"])),
                hidden=NS(weights=w_rec, neurons=[NS(alias_target=None) for _ in range(w_rec.shape[0])]))
    return float(cycles_model(config, input_p, hidden_p, output_p))


__all__ = ["XyloTarget", "cycles_per_step"]
