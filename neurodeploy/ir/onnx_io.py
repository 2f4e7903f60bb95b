"""ONNX in (and, re-exported from :mod:`.onnx_export`, out); reading and writing graphs only: the conversion that trains is
:mod:`neurodeploy.train.onnx_convert`).

**In** (start the hybrid pipeline from a user's ANN): :func:`read_onnx` reads an ANN made of Conv,
Gemm / MatMul (+ Add of a constant: the bias), Relu, AveragePool, GlobalAveragePool, MaxPool,
BatchNormalization, Flatten (or Reshape to ``[batch, -1]``), Add of two activations (a residual
junction), Identity and Dropout, with the ``onnx`` package. BatchNormalization after a Conv/Gemm
is folded into it (W' = W·s, b' = (b − μ)·s + β, s = γ/√(σ² + ε)). Every Relu becomes a neuron
slot. :func:`build_ann` gives our ANN twin (the graph executor with ReLU slots and one time step)
and :func:`build_snn` the matching SNN with the same layer names (so ANN weights load by name).

**Out**: :func:`export_ann_onnx` writes the ANN twin; :func:`export_snn_onnx` the SNN unrolled over
its T steps (the time loop traced into the graph; spikes are ``Greater`` + ``Cast``), with the
logits and, optionally, every neuron layer's spikes per sample as outputs. The TorchScript-based
exporter (``dynamo=False``) is used: the dynamo exporter needs onnxscript.
"""
from __future__ import annotations

import copy
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import IRError, UnsupportedLayerError
from ..snn.graph import SpikingNetwork
from ..snn.neuron import NeuronSpec, SpikingNeuron
from ..snn.topology import module_key
from .passes import fold_bn_into

log = logging.getLogger(__name__)

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Relu", "AveragePool", "GlobalAveragePool", "MaxPool",
                 "BatchNormalization", "Flatten", "Reshape", "Add", "Identity", "Dropout", "Constant")


@dataclass
class OnnxModel:
    """An ANN read from ONNX: nodes in topological order as (name, module or None = ReLU slot, inputs)."""

    nodes: list[tuple[str, nn.Module | None, list[str]]]
    outputs: list[str]  # nodes feeding the graph output (summed if several)
    input_shape: tuple[int, ...]
    num_classes: int
    source: str = "<onnx>"
    log: list[str] = field(default_factory=list)

    @property
    def is_chain(self) -> bool:
        prev = "input"
        for name, _, ins in self.nodes:
            if ins != [prev]:
                return False
            prev = name
        return self.outputs == [prev]


# ------------------------------------------------------------------------------------------ reading
class _Reader:
    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        self.src = str(path)
        if not path.is_file():
            raise IRError(f"{path}: ONNX file not found")
        try:
            model = onnx.load(str(path))
            onnx.checker.check_model(model)
        except Exception as e:  # onnx raises DecodeError, ValidationError, ...
            raise IRError(f"{path}: not a valid ONNX model ({type(e).__name__}: {e})") from None
        self.graph = model.graph
        self.const: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.np_helper = numpy_helper
        self.producer: dict[str, str] = {}  # tensor -> our node name
        self.nodes: "OrderedDict[str, tuple[nn.Module | None, list[str]]]" = OrderedDict()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.consumers: dict[str, int] = {}
        for n in self.graph.node:
            for t in n.input:
                self.consumers[t] = self.consumers.get(t, 0) + 1
        self.counts: dict[str, int] = {}
        self.log: list[str] = []

    def _name(self, kind: str, n) -> str:
        """The torch module name when the exporter wrote one (``/fc1/Gemm`` -> ``fc1``), else kind + counter."""
        m = re.fullmatch(r"/(.+)/[A-Za-z]+(_\d+)?", n.name or "")
        if m:
            cand = module_key(m.group(1).replace("/", "."))
            if cand not in self.nodes and cand != "input" and not cand[0].isdigit():
                return cand
        while True:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            k = self.counts[kind]
            name = kind if kind == "flatten" and k == 1 else f"{kind}{k}"
            if name not in self.nodes:
                return name

    def _attrs(self, n) -> dict[str, Any]:
        import onnx

        return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}

    def _err(self, n, why: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{self.src}: ONNX node {n.name or n.output[0]!r} ({n.op_type}): {why}")

    def _src(self, n, tensor: str) -> str:
        if tensor not in self.producer:
            raise self._err(n, f"input {tensor!r} is neither the graph input nor a supported node's output")
        return self.producer[tensor]

    def _add(self, n, kind: str, module: nn.Module | None, inputs: list[str]) -> str:
        name = self._name(kind, n)
        shape = self._shape_of(n, module, inputs)
        self.nodes[name] = (module, inputs)
        self.shapes[name] = shape
        self.producer[n.output[0]] = name
        return name

    def _shape_of(self, n, module, inputs) -> tuple[int, ...]:
        in_shapes = {self.shapes[i] for i in inputs}
        if len(in_shapes) != 1:
            raise self._err(n, f"inputs of different shapes {sorted(in_shapes)}")
        shape = in_shapes.pop()
        if module is None:
            return shape
        try:
            with torch.no_grad():
                return tuple(module.eval()(torch.zeros(1, *shape)).shape[1:])
        except Exception as e:  # noqa: BLE001
            raise self._err(n, f"cannot take an input of shape {shape}: {e}") from None

    def _pads(self, n, a, k: int = 2) -> tuple[int, int]:
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise self._err(n, f"auto_pad={a['auto_pad']!r} is not supported; export with explicit pads")
        p = list(a.get("pads", [0] * 2 * k))
        if p[:k] != p[k:]:
            raise self._err(n, f"asymmetric padding {p} is not supported")
        return tuple(int(v) for v in p[:k])

    def _single_consumer_layer(self, tensor: str) -> str | None:
        """Our conv/linear node that produced ``tensor`` when nothing else reads it."""
        name = self.producer.get(tensor)
        if name is None or self.consumers.get(tensor, 0) != 1:
            return None
        mod = self.nodes[name][0]
        return name if isinstance(mod, (nn.Conv2d, nn.Linear)) else None

    def run(self) -> OnnxModel:
        inits = set(self.const)
        ins = [i for i in self.graph.input if i.name not in inits]
        if len(ins) != 1:
            raise IRError(f"{self.src}: expected one graph input, found {[i.name for i in ins]}")
        dims = ins[0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)[1:]
        if not shape or any(s is None or s <= 0 for s in shape):
            raise IRError(f"{self.src}: input {ins[0].name!r} needs a fixed shape after the batch dimension, got {shape}")
        self.producer[ins[0].name] = "input"
        self.shapes["input"] = shape
        for n in self.graph.node:
            handler = getattr(self, f"_op_{n.op_type}", None)
            if handler is None:
                raise self._err(n, f"operator {n.op_type} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
            handler(n, self._attrs(n))
        outs = [o.name for o in self.graph.output]
        if len(outs) != 1:
            raise UnsupportedLayerError(f"{self.src}: expected one graph output (the logits), found {outs}")
        last = self.producer.get(outs[0])
        if last is None:
            raise IRError(f"{self.src}: output {outs[0]!r} is not produced by a supported node")
        return self._finish(shape, last)

    def _finish(self, shape, last: str) -> OnnxModel:
        # pass-through nodes (Identity modules from Add junctions with a single input) stay; drop nodes
        # that do not lead to the output
        preds = {name: ins for name, (_, ins) in self.nodes.items()}
        keep, stack = {last}, [last]
        while stack:
            for p in preds.get(stack.pop(), []):
                if p != "input" and p not in keep:
                    keep.add(p)
                    stack.append(p)
        dropped = [n for n in self.nodes if n not in keep]
        if dropped:
            self.log.append(f"dropped nodes that do not reach the output: {dropped}")
        nodes = [(n, m, ins) for n, (m, ins) in self.nodes.items() if n in keep]
        ncls = int(np.prod(self.shapes[last]))
        return OnnxModel(nodes, [last], tuple(int(s) for s in shape), ncls, self.src, self.log)

    # ---------------------------------------------------------------- operators
    def _op_Constant(self, n, a) -> None:
        if "value" not in a:
            raise self._err(n, "only tensor constants are supported")
        self.const[n.output[0]] = self.np_helper.to_array(a["value"])

    def _op_Identity(self, n, a) -> None:
        if n.input[0] in self.const:
            self.const[n.output[0]] = self.const[n.input[0]]
        else:
            self.producer[n.output[0]] = self._src(n, n.input[0])

    _op_Dropout = _op_Identity

    def _op_Conv(self, n, a) -> None:
        w = self.const.get(n.input[1])
        if w is None or w.ndim != 4:
            raise self._err(n, "needs a constant 4-D weight (2-D convolution)")
        b = self.const.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        groups = int(a.get("group", 1))
        m = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), tuple(a.get("strides", [1, 1])),
                      self._pads(n, a), tuple(a.get("dilations", [1, 1])), groups, bias=b is not None)
        m.weight.data = torch.as_tensor(w.astype(np.float32))
        if b is not None:
            m.bias.data = torch.as_tensor(b.astype(np.float32))
        self._add(n, "conv", m, [self._src(n, n.input[0])])

    def _linear(self, n, w_in_out: np.ndarray, bias: np.ndarray | None) -> None:
        m = nn.Linear(w_in_out.shape[0], w_in_out.shape[1], bias=bias is not None)
        m.weight.data = torch.as_tensor(np.ascontiguousarray(w_in_out.T).astype(np.float32))
        if bias is not None:
            m.bias.data = torch.as_tensor(np.broadcast_to(bias, (w_in_out.shape[1],)).astype(np.float32).copy())
        self._add(n, "fc", m, [self._src(n, n.input[0])])

    def _op_Gemm(self, n, a) -> None:
        if a.get("transA", 0):
            raise self._err(n, "transA = 1 is not supported")
        b = self.const.get(n.input[1])
        if b is None or b.ndim != 2:
            raise self._err(n, "needs a constant 2-D weight B")
        w = (b.T if a.get("transB", 0) else b) * float(a.get("alpha", 1.0))
        c = self.const.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        self._linear(n, w, None if c is None else c * float(a.get("beta", 1.0)))

    def _op_MatMul(self, n, a) -> None:
        b = self.const.get(n.input[1])
        if b is None or b.ndim != 2:
            raise self._err(n, "needs a constant 2-D right-hand side (activation @ weight)")
        self._linear(n, b, None)

    def _op_Add(self, n, a) -> None:
        consts = [t for t in n.input if t in self.const]
        if len(consts) == 2:
            self.const[n.output[0]] = self.const[n.input[0]] + self.const[n.input[1]]
            return
        if len(consts) == 1:  # a bias: fold into the conv/linear that produced the other input
            other = n.input[1] if n.input[0] in self.const else n.input[0]
            layer = self._single_consumer_layer(other)
            if layer is None:
                raise self._err(n, "adding a constant is supported only as the bias of a Conv/Gemm/MatMul")
            m = self.nodes[layer][0]
            c = np.asarray(self.const[consts[0]], dtype=np.float32)
            n_out = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            try:
                c = np.broadcast_to(c.reshape(-1) if c.size == n_out else c, (n_out,)).copy()
            except ValueError:
                raise self._err(n, f"a constant of shape {c.shape} is not a per-channel bias") from None
            if m.bias is None:
                m.bias = nn.Parameter(torch.zeros(n_out))
            m.bias.data += torch.as_tensor(c)
            self.producer[n.output[0]] = layer
            return
        srcs = [self._src(n, t) for t in n.input]
        self._add(n, "add", nn.Identity(), srcs)  # a junction: NIR and the executor sum the inputs

    def _op_Relu(self, n, a) -> None:
        self._add(n, "sn", None, [self._src(n, n.input[0])])

    def _pool_args(self, n, a) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        if a.get("ceil_mode", 0):
            raise self._err(n, "ceil_mode = 1 is not supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self._err(n, "dilated pooling is not supported")
        k = tuple(int(v) for v in a["kernel_shape"])
        return k, tuple(int(v) for v in a.get("strides", k)), self._pads(n, a)

    def _op_AveragePool(self, n, a) -> None:
        k, s, p = self._pool_args(n, a)
        m = nn.AvgPool2d(k, s, p, count_include_pad=bool(a.get("count_include_pad", 0)))
        self._add(n, "pool", m, [self._src(n, n.input[0])])

    def _op_GlobalAveragePool(self, n, a) -> None:
        src = self._src(n, n.input[0])
        self._add(n, "pool", nn.AvgPool2d(self.shapes[src][1:]), [src])

    def _op_MaxPool(self, n, a) -> None:
        if len(n.output) > 1 and n.output[1]:
            raise self._err(n, "MaxPool with indices output is not supported")
        k, s, p = self._pool_args(n, a)
        self._add(n, "pool", nn.MaxPool2d(k, s, p), [self._src(n, n.input[0])])
        self.log.append(f"{n.name or n.op_type}: max pooling kept (NIR export: an OR of spikes, SumPool2d + Threshold, only when it follows a neuron)")

    def _op_BatchNormalization(self, n, a) -> None:
        scale, bias, mean, var = (self.const.get(t) for t in n.input[1:5])
        if any(v is None for v in (scale, bias, mean, var)):
            raise self._err(n, "needs constant scale, bias, mean and variance (inference mode)")
        src = self._src(n, n.input[0])
        bn: nn.Module = nn.BatchNorm2d(len(scale)) if len(self.shapes[src]) == 3 else nn.BatchNorm1d(len(scale))
        bn.eps = float(a.get("epsilon", 1e-5))
        for attr, v in (("weight", scale), ("bias", bias), ("running_mean", mean), ("running_var", var)):
            getattr(bn, attr).data = torch.tensor(np.array(v, dtype=np.float32))
        bn.eval()
        layer = self._single_consumer_layer(n.input[0])
        if layer is not None:
            self.nodes[layer] = (fold_bn_into(self.nodes[layer][0], bn), self.nodes[layer][1])
            self.producer[n.output[0]] = layer
            self.log.append(f"{n.name or 'BatchNormalization'}: folded into {layer}")
            return
        self._add(n, "bn", bn, [src])
        self.log.append(f"{n.name or 'BatchNormalization'}: kept as BatchNorm (no conv/linear before it)")

    def _op_Flatten(self, n, a) -> None:
        axis = int(a.get("axis", 1))
        if axis != 1:
            raise self._err(n, f"axis = {axis}: only flattening everything after the batch dimension is supported")
        self._add(n, "flatten", nn.Flatten(), [self._src(n, n.input[0])])

    def _op_Reshape(self, n, a) -> None:
        src = self._src(n, n.input[0])
        target = self.const.get(n.input[1])
        size = int(np.prod(self.shapes[src]))
        ok = target is not None and target.ndim == 1 and len(target) == 2 and (
            (int(target[0]) in (0, -1) and int(target[1]) in (-1, size)) or int(target[1]) == size)
        if not ok:
            raise self._err(n, f"only a reshape to [batch, -1] (a flatten) is supported, got {target}")
        self._add(n, "flatten", nn.Flatten(), [src])


def read_onnx(path: str | Path) -> OnnxModel:
    """Read an ANN from an ONNX file; IRError / UnsupportedLayerError naming the file and the node."""
    model = _Reader(Path(path)).run()
    for line in model.log:
        log.info("%s: %s", path, line)
    return model


# ------------------------------------------------------------------------------------------ building
def _edges(model: OnnxModel) -> list[tuple[str, str]]:
    return [(p, n) for n, _, ins in model.nodes for p in ins] + [(o, "output") for o in model.outputs]


def build_ann(model: OnnxModel) -> SpikingNetwork:
    """The ANN twin: the graph executor with ReLU in the neuron slots, one time step, direct input
    (no neurons, so no time): ``forward(x)`` is the ANN's output; layer names are the SNN's."""
    mods = [(n, copy.deepcopy(m) if m is not None else nn.ReLU()) for n, m, _ in model.nodes]
    return SpikingNetwork(mods, 1, "direct", "sum", model.input_shape, edges=_edges(model), source=model.source)


def build_snn(model: OnnxModel, neuron: NeuronSpec | None = None, surrogate=None, timesteps: int = 8,
              encoding: str = "direct") -> SpikingNetwork:
    """The SNN with the ANN twin's layer names: a :class:`SpikingNeuron` in every ReLU slot."""
    neuron = neuron or NeuronSpec()
    mods = [(n, copy.deepcopy(m) if m is not None else SpikingNeuron(neuron, surrogate)) for n, m, _ in model.nodes]
    return SpikingNetwork(mods, timesteps, encoding, "sum", model.input_shape, edges=_edges(model), source=model.source)


# ------------------------------------------------------------------------------------------ writing


from .onnx_export import OPSET, UnrolledSNN, export_ann_onnx, export_snn_onnx, snn_onnx_bytes  # noqa: E402,F401  (re-exported)
