"""The ``onnx`` target: the NIR graph's network unrolled over T steps, run by onnxruntime.

It is a portability check rather than a chip: the same float32 network as the ``torch`` target,
exported as one feed-forward ONNX graph (the time loop unrolled, spikes as Greater + Cast) and
executed by onnxruntime's CPU provider. Its lowering log says exactly that; layer spikes come back
as extra ONNX outputs (``spikes:<neuron node>``).
"""
from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.encoding import rate_code
from ..errors import TargetError
from ..ir.from_nir import from_nir
from ..ir.metadata import DeployMeta
from ..ir.onnx_io import OPSET, snn_onnx_bytes
from ..recipe import Profile
from .base import Deployment, Outputs, Target, TargetOptions, register_target

log = logging.getLogger(__name__)


@register_target
class OnnxTarget(Target):
    name = "onnx"
    profile_name = ""

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("onnxruntime") is None:
            return False, "onnxruntime is not installed (pip install onnxruntime, or the 'onnx' extra)"
        return True, ""

    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: TargetOptions | Mapping[str, Any] | None = None) -> Deployment:
        import onnxruntime as ort

        prof = self.load_profile(profile)
        options = self.resolve_options(options, prof)

        net = from_nir(graph, meta)
        net.eval()
        try:
            data, outputs = snn_onnx_bytes(net, spikes=True)
        except Exception as e:  # noqa: BLE001 - the exporter raises many types
            raise TargetError(f"onnx: the network could not be exported to ONNX ({type(e).__name__}: {e})") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        dep = Deployment(self.name, graph, meta, prof, artifact=sess, options=options)
        dep.log(f"none to the model: float32 network unrolled over T = {meta.timesteps} steps, exported to ONNX "
                f"opset {OPSET} ({len(data) / 1e6:.2f} MB), run by onnxruntime {ort.__version__} on CPU")
        if meta.encoding == "rate":
            dep.log("input: rate coding is sampled in numpy before onnxruntime (random sampling is not in the graph)")
        dep.info.update(onnx_bytes=len(data), outputs=outputs, encoding=meta.encoding, timesteps=meta.timesteps,
                        seed=options.seed)
        return dep

    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256, progress: bool = False) -> Outputs:
        sess = deployment.artifact
        names: list[str] = deployment.info["outputs"]
        T, enc = deployment.info["timesteps"], deployment.info["encoding"]
        gen = torch.Generator().manual_seed(deployment.info.get("seed", 0))
        logits, spikes = [], {n.split(":", 1)[1]: [] for n in names[1:]}
        for i in tqdm(range(0, len(x), batch_size), desc="onnx", disable=not progress, leave=False):
            xb = x[i:i + batch_size].float()
            if enc == "rate":
                xb = rate_code(xb, T, gen, time_dim=1)
            res = sess.run(None, {"input": np.ascontiguousarray(xb.numpy())})
            logits.append(res[0])
            for n, v in zip(names[1:], res[1:]):
                spikes[n.split(":", 1)[1]].append(v)
        lg = np.concatenate(logits)
        return Outputs(lg.argmax(1), lg, {k: np.concatenate(v) for k, v in spikes.items()})
