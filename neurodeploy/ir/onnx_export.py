"""ONNX out: :func:`export_ann_onnx` writes the ANN twin; :func:`export_snn_onnx` the SNN unrolled
over its T steps (the time loop traced into the graph; spikes are ``Greater`` + ``Cast``), with the
logits and, optionally, every neuron layer's spikes per sample as outputs. The TorchScript-based
exporter (``dynamo=False``) is used: the dynamo exporter needs onnxscript. Reading ONNX:
:mod:`.onnx_io`.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn


OPSET = 17

class UnrolledSNN(nn.Module):
    """The SNN as one feed-forward function of its input: all T steps unrolled.

    Returns the logits (the readout summed over T) and, with ``spikes``, each neuron layer's
    spikes per sample ``[B]`` in the order of ``neuron_names``. A rate-coded network takes the
    already encoded input ``[B, T, ...]`` (random sampling is not exported).
    """

    def __init__(self, snn: nn.Module, spikes: bool = True) -> None:
        super().__init__()
        self.snn = snn
        self.spikes = spikes
        self.neuron_names = [n for n, _ in snn.neurons()] if spikes else []

    def forward(self, x: torch.Tensor):
        net = self.snn
        was_enc, was_rec = net.encoding, net.record
        net.encoding = "events" if was_enc == "rate" else was_enc
        net.record = self.spikes
        try:
            logits = net(x)
            counts = [net.spike_counts[n] for n in self.neuron_names]
        finally:
            net.encoding, net.record = was_enc, was_rec
        return (logits, *counts) if self.spikes else logits


def _export(module: nn.Module, example: torch.Tensor, path: str | Path | io.BytesIO, outputs: list[str]) -> None:
    module.eval()
    dyn = {"input": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    with torch.no_grad():
        torch.onnx.export(module, (example,), path, dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=outputs, dynamic_axes=dyn)


def export_ann_onnx(ann: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> None:
    """Write the ANN twin to ONNX (input ``[batch, *input_shape]``, output ``logits``)."""
    from ..util import atomic_path

    was = ann.training
    with atomic_path(path) as tmp:
        _export(ann, torch.zeros(2, *input_shape), str(tmp), ["logits"])
    ann.train(was)


def snn_onnx_bytes(snn: nn.Module, spikes: bool = True) -> tuple[bytes, list[str]]:
    """The unrolled SNN as ONNX bytes and its output names (``logits``, then ``spikes:<neuron>``)."""
    wrapper = UnrolledSNN(snn, spikes)
    outputs = ["logits"] + [f"spikes:{n}" for n in wrapper.neuron_names]
    shape = tuple(snn.input_shape)
    seq = snn.encoding in ("rate", "events")
    example = torch.zeros(2, snn.timesteps, *shape) if seq else torch.zeros(2, *shape)
    was = snn.training
    buf = io.BytesIO()
    try:
        _export(wrapper, example, buf, outputs)
    finally:
        snn.train(was)
    return buf.getvalue(), outputs


def export_snn_onnx(snn: nn.Module, path: str | Path, spikes: bool = True) -> list[str]:
    """Write the SNN unrolled over its T steps to ONNX; returns the output names."""
    from ..util import atomic_path

    data, outputs = snn_onnx_bytes(snn, spikes)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return outputs
