"""NeuroBench's metrics (Yik et al., Nat. Commun. 16, 1545, 2025; ``neurobench`` 2.3.0) computed by our counters.

The definitions, read from neurobench 2.3.0's source (site-packages/neurobench/):

- **Effective MACs / ACs** (``metrics/workload/synaptic_operations.py:54-73``,
  ``metrics/utils/layers/macs.py:170-198``, ``input.py:36-60``, ``binary_copy.py``): at every call of a
  connection layer (Linear, Conv1d/2d/3d) its input is binarised (non-zero -> 1) and its weights too
  (non-zero -> 1, bias dropped); the sum of that binary layer's output is the number of
  (non-zero input, non-zero weight) pairs. The call counts as ACs when every input value is 0, 1 or
  −1 ("spiking"), else as MACs. Per sample: divided by the batch size. **Dense**: the same with every
  input and weight set to 1 (the valid taps, padding excluded).
- **Activation sparsity** (``metrics/workload/activation_sparsity.py:20-55``): 1 − (non-zero
  activation outputs) / (all activation outputs), over every activation layer, time step and sample.
- **Footprint** (``metrics/static/footprint.py``): bytes of the parameters plus the buffers.
- **Connection sparsity** (``metrics/static/connection_sparsity.py``): zero weights / all weights of
  the connection layers (neurobench rounds it to 4 decimals).
- **Parameter count** (``metrics/static/parameter_count.py``).

How they differ from our convention (HIRE-SNN Table 6/eq. 7-8, :mod:`.ops`) on a network run by
:class:`~neurodeploy.snn.network.SpikingNetwork`:

1. a direct-coded first layer: ours counts every synapse of every pixel once (a dense MAC array does
   not skip a zero pixel); NeuroBench only the non-zero pixels' synapses with non-zero weights;
2. a layer after sum/avg pooling: ours counts one AC per spike per synapse reached; NeuroBench sees
   the pooled map (values k⁻²·n, not 0/1), counts its synapses as **MACs**, and counts a pooled
   position once per step however many spikes it collected;
3. zero weights: ours counts them (the synapse is read on a chip), NeuroBench skips them.
Where none of these applies (binary inputs straight from a neuron layer, no zero weights) the two
agree exactly; activation sparsity is 1 − Σ spikes / Σ (neurons · T) in both.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..snn.neuron import SpikingNeuron

PREFIX = "neurobench:"  # keys of the per-sample counts (in the exact-count dict of source_exact_counts)
CONNECTION = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _name(qualified: str) -> str:
    return qualified[len("layers."):] if qualified.startswith("layers.") else qualified


def _binary_apply(layer: nn.Module, x: torch.Tensor, all_ones: bool) -> torch.Tensor:
    """neurobench binary_copy.make_binary_copy + macs.stateless_layer_macs: the layer with weights
    (w != 0) (all 1 with ``all_ones``) and no bias, applied to ``x`` (functionally, so no hook reruns)."""
    w = layer.weight.detach()
    wb = torch.ones_like(w) if all_ones else (w != 0).to(w.dtype)
    if isinstance(layer, nn.Linear):
        return nn.functional.linear(x, wb)
    return layer._conv_forward(x, wb, None)


class NeuroBenchCounter:
    """Per-sample NeuroBench counts of one network, gathered with hooks while it runs.

    Use as a context manager around forward passes of batches of ``batch`` samples, then read
    :meth:`per_sample`: ``{f"{PREFIX}{layer}:mac" | ":ac" | ":dense": [B], f"{PREFIX}{neuron}:nonzero": [B]}``.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.counts: dict[str, torch.Tensor] = {}
        self.batch = 0
        self._hooks: list[Any] = []

    def _add(self, key: str, v: torch.Tensor) -> None:
        self.counts[key] = self.counts.get(key, 0.0) + v.detach().to(torch.float64)

    def _per_sample(self, y: torch.Tensor) -> torch.Tensor:
        """Sum an output per sample: a call of B samples, or of T·B (time-major, as apply_layer batches)."""
        y = y.detach().reshape(y.shape[0], -1).sum(1)
        return y if y.shape[0] == self.batch else y.reshape(-1, self.batch).sum(0)

    def _conn_hook(self, name: str):
        def hook(mod: nn.Module, inp: tuple) -> None:
            x = inp[0]
            with torch.no_grad():
                spiking = bool(((x == 0) | (x == 1) | (x == -1)).all())  # neurobench input.py:52
                xb = (x != 0).to(x.dtype)
                kind = "ac" if spiking else "mac"
                self._add(f"{PREFIX}{name}:{kind}", self._per_sample(_binary_apply(mod, xb, False)))
                self._add(f"{PREFIX}{name}:{'mac' if spiking else 'ac'}", torch.zeros(self.batch))
                self._add(f"{PREFIX}{name}:dense", self._per_sample(_binary_apply(mod, torch.ones_like(x), True)))
        return hook

    def _act_hook(self, name: str):
        def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            nz = (out.detach() != 0).to(torch.float64)  # a neuron layer's output sequence [T, B, ...]
            self._add(f"{PREFIX}{name}:nonzero", nz.reshape(nz.shape[0], self.batch, -1).sum((0, 2)))
        return hook

    def start(self, batch: int) -> None:
        """Register the hooks for the next forward pass of ``batch`` samples."""
        self.batch = batch
        self.counts = {}
        for qn, m in self.net.named_modules():
            if isinstance(m, CONNECTION):
                self._hooks.append(m.register_forward_pre_hook(self._conn_hook(_name(qn))))
            elif isinstance(m, SpikingNeuron):
                self._hooks.append(m.register_forward_hook(self._act_hook(_name(qn))))

    def stop(self) -> dict[str, np.ndarray]:
        """Remove the hooks; the per-sample counts of the pass."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        return {k: v.numpy() for k, v in self.counts.items()}


def static_metrics(net: nn.Module) -> dict[str, Any]:
    """Footprint (bytes of parameters + buffers), parameter count and connection sparsity (unrounded)."""
    params = list(net.parameters())
    footprint = sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size()
                                                                        for b in net.buffers())
    zeros = total = 0
    for m in net.modules():
        if isinstance(m, CONNECTION):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
    return {"footprint_bytes": int(footprint), "parameter_count": int(sum(p.numel() for p in params)),
            "connection_sparsity": zeros / total if total else 0.0, "zero_weights": zeros, "weights": total}


def neurobench_metrics(net: nn.Module, counts: dict[str, Any], neurons: dict[str, int], timesteps: int,
                       rows: list[dict[str, Any]]) -> dict[str, Any]:
    """NeuroBench's metrics beside ours, per sample, from the per-sample counts of :class:`NeuroBenchCounter`.

    ``counts``: ``PREFIX`` keys -> per-sample arrays (extra keys ignored); ``neurons``: neuron layer ->
    size; ``rows``: the source's :func:`~.summary.layer_table` rows (our exact counts). Returns
    ``{"neurobench": {...}, "ours": {...}, "layers": [...], "static": {...}}``; ``neurobench`` is None
    when the counts were not gathered (an older run folder).
    """
    nb = {k[len(PREFIX):]: float(np.mean(np.asarray(v, dtype=np.float64))) for k, v in counts.items()
          if k.startswith(PREFIX)}
    static = static_metrics(net)
    spikes = sum(r["spikes_per_sample"] for r in rows if r.get("neuron_layer"))
    size = sum(r["neurons"] for r in rows if r.get("neuron_layer")) * timesteps
    syn = [r for r in rows if r["kind"] in ("conv", "linear")]
    ours = {"effective_macs": sum(r.get("synops_exact") or 0.0 for r in syn if r["op"] == "mac"),
            "effective_acs": sum(r.get("synops_exact") or 0.0 for r in syn if r["op"] == "ac"),
            "pool_add_ops": sum(r.get("synops_exact") or 0.0 for r in rows if r["kind"] in ("pool", "add")),
            "activation_sparsity": 1.0 - spikes / size if size else None,
            "convention": "HIRE-SNN Table 6 / eq. 7-8: exact count = spikes x real fan-out (zero weights included); "
                          "direct-coded first layer dense MACs, counted once; pooled spikes routed one by one (ACs)"}
    layers = [{"name": r["name"], "op": r["op"], "ours": r.get("synops_exact"),
               "neurobench_macs": nb.get(f"{r['name']}:mac"), "neurobench_acs": nb.get(f"{r['name']}:ac"),
               "neurobench_dense": nb.get(f"{r['name']}:dense")} for r in syn]
    if not nb:
        return {"neurobench": None, "ours": ours, "layers": layers, "static": static,
                "note": "NeuroBench counts not gathered for this run (outputs/source.npz predates them); "
                        "rerun the source stage"}
    nonzero = sum(v for k, v in nb.items() if k.endswith(":nonzero"))
    act_size = sum(neurons.get(k[:-len(":nonzero")], 0) for k in nb if k.endswith(":nonzero")) * timesteps
    out = {"effective_macs": sum(v for k, v in nb.items() if k.endswith(":mac")),
           "effective_acs": sum(v for k, v in nb.items() if k.endswith(":ac")),
           "dense": sum(v for k, v in nb.items() if k.endswith(":dense")),
           "activation_sparsity": 1.0 - nonzero / act_size if act_size else None,
           "footprint_bytes": static["footprint_bytes"], "connection_sparsity": round(static["connection_sparsity"], 4),
           "parameter_count": static["parameter_count"],
           "definition": "Yik et al., Nat. Commun. 2025; neurobench 2.3.0 SynapticOperations (binarised inputs x "
                         "non-zero weights per layer call; AC when the call's inputs are all in {0, 1, -1}, else MAC), "
                         "ActivationSparsity, Footprint, ConnectionSparsity"}
    return {"neurobench": out, "ours": ours, "layers": layers, "static": static}
