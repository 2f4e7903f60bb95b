"""``neurodeploy convert model.onnx``: a user's ONNX ANN -> our ANN twin -> a converted (and
optionally fine-tuned) SNN, written as checkpoints, ONNX and NIR.

Reading the ONNX graph is :mod:`neurodeploy.ir.onnx_io`; this module is the training glue:
threshold initialisation from the training data (``train.convert``: percentile, scale, batches;
DIET-SNN / HIRE-SNN §4), fine-tuning with ``train.snn.method`` and the checkpoints.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..ir.onnx_io import build_ann, build_snn, export_snn_onnx, read_onnx
from ..snn.graph import SpikingNetwork

log = logging.getLogger(__name__)


def onnx_networks(path: str | Path, recipe) -> tuple[SpikingNetwork, SpikingNetwork]:
    """The ONNX model's ANN twin (with its weights) and the matching SNN for ``recipe`` (weights copied
    from the ANN, thresholds still 1.0). Rebuild the architecture with this before loading an SNN
    checkpoint of a converted ONNX model."""
    from ..snn.models import neuron_spec
    from ..snn.surrogate import make_surrogate
    from .convert import copy_ann_weights

    model = read_onnx(path)
    ann = build_ann(model).eval()
    snn = build_snn(model, neuron_spec(recipe.model), make_surrogate(recipe.model.surrogate, recipe.model.surrogate_scale),
                    recipe.timesteps, recipe.data.encoding)
    copy_ann_weights(ann, snn)
    return ann, snn


def convert_onnx(path: str | Path, recipe, data=None, finetune: bool = True,
                 progress: bool = False) -> tuple[SpikingNetwork, SpikingNetwork]:
    """``neurodeploy convert model.onnx --recipe R``: ONNX ANN -> our ANN twin -> converted SNN.

    The SNN takes the recipe's neuron (leak, reset, surrogate), time steps and coding; thresholds are
    initialised from the training data (``train.convert``: percentile, scale, batches; DIET-SNN /
    HIRE-SNN §4); with ``finetune`` and ``train.snn.epochs > 0`` it is then trained with
    ``train.snn.method`` (BPTT or HIRE-SNN). ``data`` defaults to the recipe's dataset.
    """
    from ..data import load_dataset
    from .convert import convert
    from .run import train_snn

    ann, snn = onnx_networks(path, recipe)
    data = data if data is not None else load_dataset(recipe.data, recipe.seed)
    if tuple(data.input_shape) != tuple(snn.input_shape):
        raise IRError(f"{path}: the model takes inputs of shape {tuple(snn.input_shape)}, the dataset "
                      f"{recipe.data.name!r} has {tuple(data.input_shape)}")
    with torch.no_grad():
        n_out = ann(torch.zeros(1, *data.input_shape)).shape[1]
    if n_out != data.num_classes:
        raise IRError(f"{path}: the model has {n_out} outputs, the dataset {data.num_classes} classes")
    c = recipe.train.convert
    n = max(1, c.batches) * recipe.data.batch_size
    thresholds = convert(ann, snn, data.x_train[:n].float(), c.percentile, c.scale, c.rule)
    log.info("%s: thresholds initialised %s", path, {k: round(v, 4) for k, v in thresholds.items()})
    if finetune and recipe.train.snn.epochs > 0:
        acc = train_snn(snn, data, recipe.train.snn, recipe.data.batch_size, recipe.seed, progress)
        log.info("%s: fine-tuned SNN test accuracy %.4f", path, acc)
    snn.eval()
    return ann, snn


def convert_onnx_to_folder(path: str | Path, recipe, out: str | Path, finetune: bool = True,
                           progress: bool = False, data=None) -> dict[str, Any]:
    """:func:`convert_onnx`, then write ``ann.safetensors``, ``snn.safetensors``, ``snn.onnx`` (unrolled
    over T) and, when the network has a NIR form (no max pooling), ``model.nir`` into ``out``.

    Returns a summary: test accuracies of the ANN twin and the SNN, the files written and, when
    NIR export was refused, why. The checkpoints' info names the ONNX source, so the architecture
    is rebuilt with :func:`onnx_networks` before loading them.
    """
    from ..data import load_dataset
    from ..ir.metadata import DeployMeta
    from ..ir.to_nir import to_nir, write_nir
    from .checkpoint import save_checkpoint
    from .common import accuracy

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else load_dataset(recipe.data, recipe.seed)
    ann, snn = convert_onnx(path, recipe, data, finetune, progress)
    info = {"source_onnx": str(Path(path).resolve()), "recipe": recipe.name}
    summary: dict[str, Any] = {"source": str(path), "files": []}
    summary["ann_accuracy"] = accuracy(ann, data.x_test, data.y_test) if recipe.data.encoding != "events" else None
    summary["snn_accuracy"] = accuracy(snn, data.x_test, data.y_test)
    save_checkpoint(ann, out / "ann.safetensors", {**info, "stage": "ann"})
    save_checkpoint(snn, out / "snn.safetensors", {**info, "stage": "snn", "test_accuracy": summary["snn_accuracy"]})
    export_snn_onnx(snn, out / "snn.onnx")
    summary["files"] += ["ann.safetensors", "snn.safetensors", "snn.onnx"]
    meta = DeployMeta(timesteps=snn.timesteps, encoding=snn.encoding, input_shape=list(snn.input_shape))
    try:
        write_nir(to_nir(snn, meta), out / "model.nir")
        summary["files"].append("model.nir")
    except UnsupportedLayerError as e:
        summary["nir_refused"] = str(e)
        log.warning("%s: no model.nir: %s", path, e)
    return summary
