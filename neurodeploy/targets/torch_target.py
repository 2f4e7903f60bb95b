"""The reference target: the network rebuilt from the NIR file and simulated in float32 torch.

It changes nothing (its lowering log says so) and is the yardstick the hardware targets are
compared with. It is built from the graph, never from the training object.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ..ir.from_nir import from_nir
from ..ir.metadata import DeployMeta
from ..measure.ops import exact_synops
from ..recipe import Profile
from .base import Deployment, Outputs, Target, TargetOptions, register_target


@register_target
class TorchTarget(Target):
    name = "torch"
    profile_name = ""

    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: TargetOptions | Mapping[str, Any] | None = None) -> Deployment:
        prof = self.load_profile(profile)
        opts = self.resolve_options(options, prof)  # checked; the float reference uses none of them
        net = from_nir(graph, meta)
        net.eval()
        dep = Deployment(self.name, graph, meta, prof, artifact=net, options=opts)
        dep.log("none: float32 simulation of the NIR graph as written (reference)")
        return dep

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256, progress: bool = False) -> Outputs:
        net = deployment.artifact
        net.record = True
        preds, logits = [], []
        spikes: dict[str, list[np.ndarray]] = {}
        synops: dict[str, list[np.ndarray]] = {}
        try:
            with torch.no_grad():
                for i in tqdm(range(0, len(x), batch_size), desc="torch", disable=not progress, leave=False):
                    out = net(x[i:i + batch_size])
                    logits.append(out.numpy())
                    preds.append(out.argmax(1).numpy())
                    for k, v in net.spike_counts.items():
                        spikes.setdefault(k, []).append(v.numpy())
                    for k, v in exact_synops(net, net.spike_maps).items():
                        synops.setdefault(k, []).append(v.numpy())
        finally:
            net.record = False
        cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
        return Outputs(np.concatenate(preds), np.concatenate(logits), cat(spikes), cat(synops))
