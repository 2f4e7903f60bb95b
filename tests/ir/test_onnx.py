"""ONNX in (ANN -> our ANN twin + SNN, conversion) and out (ANN twin, SNN unrolled over T, run by
onnxruntime); unsupported operators named in the error; the ``onnx`` target."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import IRError, UnsupportedLayerError
from neurodeploy.ir import DeployMeta, to_nir
from neurodeploy.ir.onnx_io import build_ann, build_snn, export_ann_onnx, export_snn_onnx, read_onnx
from neurodeploy.train.onnx_convert import convert_onnx
from neurodeploy.snn.network import SpikingNetwork

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ort(path, x: torch.Tensor) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})


def test_ann_twin_roundtrip(trained_pair, digits_data, tmp_path):
    ann, _ = trained_pair
    export_ann_onnx(ann, digits_data.input_shape, tmp_path / "ann.onnx")
    model = read_onnx(tmp_path / "ann.onnx")
    assert model.is_chain and model.input_shape == (1, 8, 8) and model.num_classes == 10
    twin = build_ann(model)
    assert list(twin.layers.keys()) == [n for n, _ in ann.named_children()]  # same layer names
    x = digits_data.x_test[:64]
    with torch.no_grad():
        ref = ann.eval()(x)
        assert torch.allclose(twin(x), ref, atol=1e-5)
    assert np.allclose(_ort(tmp_path / "ann.onnx", x)[0], ref.numpy(), atol=1e-4)


def test_unrolled_snn_onnxruntime_agrees(trained_snn, digits_data, tmp_path):
    """The converted digits SNN unrolled over T = 8 in onnxruntime: same prediction on ≥ 99 % of the
    test set, and the same spike counts per layer."""
    outs = export_snn_onnx(trained_snn, tmp_path / "snn.onnx")
    assert outs == ["logits", "spikes:sn1", "spikes:sn2"]
    x, y = digits_data.x_test, digits_data.y_test
    res = _ort(tmp_path / "snn.onnx", x)
    trained_snn.record = True
    with torch.no_grad():
        ref = trained_snn(x)
    counts = {k: v.numpy() for k, v in trained_snn.spike_counts.items()}
    trained_snn.record = False
    agree = float((res[0].argmax(1) == ref.argmax(1).numpy()).mean())
    assert agree >= 0.99, agree
    assert float((res[0].argmax(1) == y.numpy()).mean()) > 0.8
    for i, k in enumerate(("sn1", "sn2"), 1):
        assert np.mean(res[i] == counts[k]) >= 0.99


def _residual_ann() -> nn.Module:
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.c3, self.fc = nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4 * 16, 10)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            y = torch.relu(self.c3(torch.relu(self.c2(h))) + h)
            return self.fc(torch.flatten(nn.functional.avg_pool2d(y, 2), 1))

    torch.manual_seed(0)
    return Res().eval()


def test_residual_onnx_graph_in_and_out(tmp_path):
    res = _residual_ann()
    torch.onnx.export(res, (torch.zeros(1, 1, 8, 8),), str(tmp_path / "res.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "b"}})
    model = read_onnx(tmp_path / "res.onnx")
    assert not model.is_chain
    ann = build_ann(model)
    assert isinstance(ann, SpikingNetwork) and ann.timesteps == 1 and not ann.neurons()  # the executor, no time
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ann(x), res(x), atol=1e-5)
    snn = build_snn(model, timesteps=6)
    assert not snn.is_chain
    assert set(snn.layers.state_dict()) >= {k for k in ann.layers.state_dict()}  # weights load by name
    export_snn_onnx(snn, tmp_path / "res_snn.onnx")
    with torch.no_grad():
        ref = snn(x)
    assert np.allclose(_ort(tmp_path / "res_snn.onnx", x)[0], ref.numpy(), atol=1e-4)
    from neurodeploy.train import convert

    th = convert(ann, snn, torch.rand(32, 1, 8, 8), 99.7, 1.0)  # threshold init works on the graph SNN
    assert set(th) == {"sn1", "sn2", "sn3"} and all(v > 0 for v in th.values())
    # and through NIR: the Add junction is two edges into one node
    g = to_nir(snn, DeployMeta(timesteps=6, input_shape=[1, 8, 8]))
    assert ("c3", "sn3") in g.edges and ("sn1", "sn3") in g.edges  # torch module names kept


def _handmade_onnx(path, op: str = "Relu") -> dict[str, np.ndarray]:
    """x[4] -> MatMul + Add(bias) -> BatchNormalization -> op -> Gemm(transB, alpha) -> y[3]."""
    rng = np.random.default_rng(0)
    p = {"W": rng.normal(size=(4, 5)).astype(np.float32), "b": rng.normal(size=5).astype(np.float32),
         "g": rng.uniform(0.5, 2, 5).astype(np.float32), "beta": rng.normal(size=5).astype(np.float32),
         "mu": rng.normal(size=5).astype(np.float32), "var": rng.uniform(0.5, 2, 5).astype(np.float32),
         "W2": rng.normal(size=(3, 5)).astype(np.float32), "c": rng.normal(size=3).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h0"], name="mm"),
             helper.make_node("Add", ["h0", "b"], ["h1"], name="bias"),
             helper.make_node("BatchNormalization", ["h1", "g", "beta", "mu", "var"], ["h2"], name="bn", epsilon=1e-3),
             helper.make_node(op, ["h2"], ["h3"], name="act"),
             helper.make_node("Gemm", ["h3", "W2", "c"], ["y"], name="gemm", transB=1, alpha=0.5, beta=2.0)]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(v, k) for k, v in p.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return p


def test_handmade_ops_matmul_bias_bn_gemm(tmp_path):
    p = _handmade_onnx(tmp_path / "h.onnx")
    model = read_onnx(tmp_path / "h.onnx")
    assert [n for n, _, _ in model.nodes] == ["fc1", "sn1", "fc2"]  # bias and BN folded into fc1
    ann = build_ann(model)
    x = torch.randn(6, 4)
    h = (x.numpy() @ p["W"] + p["b"] - p["mu"]) / np.sqrt(p["var"] + 1e-3) * p["g"] + p["beta"]
    y = 0.5 * np.maximum(h, 0) @ p["W2"].T + 2.0 * p["c"]
    with torch.no_grad():
        assert np.allclose(ann(x).numpy(), y, atol=1e-4)
    assert np.allclose(_ort(tmp_path / "h.onnx", x)[0], y, atol=1e-4)


def test_unsupported_operator_named(tmp_path):
    _handmade_onnx(tmp_path / "s.onnx", op="Sigmoid")
    with pytest.raises(UnsupportedLayerError, match=r"s\.onnx: ONNX node 'act' \(Sigmoid\): operator Sigmoid"):
        read_onnx(tmp_path / "s.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(IRError, match="bad.onnx: not a valid ONNX model"):
        read_onnx(tmp_path / "bad.onnx")


def test_convert_onnx_to_working_snn(trained_pair, digits_recipe, digits_data, tmp_path):
    """An ONNX ANN exported from torch -> convert (threshold init, no fine-tuning) -> a working SNN."""
    ann, _ = trained_pair
    export_ann_onnx(ann, digits_data.input_shape, tmp_path / "user.onnx")
    ann2, snn = convert_onnx(tmp_path / "user.onnx", digits_recipe, digits_data, finetune=False)
    assert isinstance(snn, SpikingNetwork) and snn.timesteps == digits_recipe.timesteps
    from neurodeploy.train.common import accuracy

    acc_ann = accuracy(ann2, digits_data.x_test, digits_data.y_test)
    acc_snn = accuracy(snn, digits_data.x_test, digits_data.y_test)
    assert acc_ann > 0.85 and acc_snn > acc_ann - 0.1, (acc_ann, acc_snn)
    with pytest.raises(IRError, match="shape"):
        bad = copy.deepcopy(digits_data)
        bad.input_shape = (1, 4, 4)
        convert_onnx(tmp_path / "user.onnx", digits_recipe, bad, finetune=False)


@pytest.mark.slow
def test_convert_onnx_with_finetuning(trained_pair, digits_recipe, digits_data, tmp_path):
    ann, _ = trained_pair
    export_ann_onnx(ann, digits_data.input_shape, tmp_path / "user.onnx")
    r = copy.deepcopy(digits_recipe)
    r.train.snn.epochs = 1
    _, snn = convert_onnx(tmp_path / "user.onnx", r, digits_data, finetune=True)
    from neurodeploy.train.common import accuracy

    assert accuracy(snn, digits_data.x_test, digits_data.y_test) > 0.8


def test_onnx_target(digits_nir, digits_data):
    from neurodeploy.ir import read_nir
    from neurodeploy.targets import get_target

    graph, meta = read_nir(digits_nir)
    ref_t, onnx_t = get_target("torch"), get_target("onnx")
    x = digits_data.x_test[:128]
    a = ref_t.run(ref_t.compile(graph, copy.deepcopy(meta)), x)
    dep = onnx_t.compile(graph, copy.deepcopy(meta))
    assert any("onnxruntime" in line for line in dep.lowering)
    b = onnx_t.run(dep, x, batch_size=50)
    assert np.mean(a.predictions == b.predictions) >= 0.99
    assert set(b.layer_spikes) == set(a.layer_spikes)
    for k in a.layer_spikes:
        assert np.mean(a.layer_spikes[k] == b.layer_spikes[k]) >= 0.99


def test_rate_coded_snn_exports_with_encoded_input(tmp_path):
    """Random sampling is not exported: a rate-coded SNN's ONNX graph takes the spike input [B, T, ...]."""
    from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron

    torch.manual_seed(0)
    snn = SpikingNetwork([("flatten", nn.Flatten()), ("fc1", nn.Linear(16, 12)),
                          ("sn1", SpikingNeuron(NeuronSpec(threshold=0.3))), ("fc2", nn.Linear(12, 3))],
                         5, "rate", "sum", (1, 4, 4)).eval()
    export_snn_onnx(snn, tmp_path / "rate.onnx")
    spikes = (torch.rand(9, 5, 1, 4, 4) < 0.5).float()
    snn.encoding = "events"  # the same spikes through torch
    with torch.no_grad():
        ref = snn(spikes)
    assert np.allclose(_ort(tmp_path / "rate.onnx", spikes)[0], ref.numpy(), atol=1e-5)
