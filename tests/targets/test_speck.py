"""The Speck target (sinabs): lowering log, limits, discretised simulation, synops, samna shim."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.errors import TargetError, UnsupportedLayerError
from neurodeploy.ir import DeployMeta, read_nir, to_nir
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.targets import get_target, list_targets

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.speck


def _neuron(th: float, leak: float = 1.0) -> SpikingNeuron:
    return SpikingNeuron(NeuronSpec(threshold=th, leak=leak))


def _graph(layers, shape, T=4, encoding="direct"):
    net = SpikingNetwork(layers, T, encoding, "sum", shape).eval()
    meta = DeployMeta(timesteps=T, encoding=encoding, input_shape=list(shape))
    return to_nir(net, meta), meta, net


@pytest.fixture(scope="module")
def speck():
    return get_target("speck")


@pytest.fixture(scope="module")
def digits(digits_nir, digits_data):
    """(graph, meta, source Outputs) for the trained digits model on the test set."""
    graph, meta = read_nir(digits_nir)
    torch_t = get_target("torch")
    src = torch_t.run(torch_t.compile(graph, meta), digits_data.x_test)
    return graph, meta, src


def test_registered():
    assert "speck" in list_targets()
    assert get_target("speck").name == "speck"


@pytest.mark.parametrize("coding,min_agree", [("graded", 0.95), ("rate", 0.85)])
def test_digits_compile_run_agreement(speck, digits, digits_data, coding, min_agree):
    graph, meta, src = digits
    dep = speck.compile(graph, meta, options={"input_spikes": coding, "seed": 0})
    out = speck.run(dep, digits_data.x_test, batch_size=128)
    y = digits_data.y_test.numpy()
    agree = float((out.predictions == src.predictions).mean())
    acc, acc_src = float((out.predictions == y).mean()), float((src.predictions == y).mean())
    assert agree >= min_agree, (coding, agree)
    assert acc >= acc_src - 0.06, (acc, acc_src)
    assert set(out.layer_spikes) == {"sn1", "sn2"}
    assert set(out.synops) == {"conv1", "conv2", "fc"}
    assert out.logits.shape == (len(y), 10) and np.all(out.logits >= 0)
    assert np.all(out.logits == np.round(out.logits))  # spike counts
    for k in ("sn1", "sn2"):  # the deployed network is as active as the source (±15%)
        assert abs(out.layer_spikes[k].mean() / src.layer_spikes[k].mean() - 1) < 0.15
    # per-sample synops agree with sinabs' own (batch-averaged) hook totals
    assert out.info["synops_per_sample_total"] == pytest.approx(out.info["synops_sinabs_hooks_total"], rel=1e-5)
    mapping = dep.info["core_mapping"]
    assert set(mapping) == {"conv1+sn1", "conv2+sn2", "fc+readout"}
    assert len(set(mapping.values())) == 3 and all(0 <= c < 9 for c in mapping.values())
    assert set(dep.info["memory"]["conv2+sn2"]) == {"kernel", "neuron", "bias"}


def test_lowering_log(speck, digits):
    graph, meta, _ = digits
    dep = speck.compile(graph, meta, options={"input_spikes": "rate", "seed": 3})
    text = "\n".join(dep.lowering)
    assert "pool1: average pooling -> sum pooling" in text and "conv2 weights x 0.25" in text
    assert "pool2: average pooling -> sum pooling" in text and "fc weights x 0.25" in text
    assert "readout: the source's last layer 'fc' is non-spiking" in text
    assert "rate-coded" in text and "seed 3" in text
    assert "sn1: IAF neurons, reset by subtraction (return_to_zero = false)" in text
    for core in ("conv1+sn1", "conv2+sn2", "fc+readout"):
        line = next(x for x in dep.lowering if x.startswith(f"{core}: discretised"))
        assert "int8" in line and "(16-bit)" in line and "threshold_low -32767" in line
    assert any(x.startswith("core mapping (sinabs Speck2FConfigBuilder") for x in dep.lowering)
    # the discretised network really is integer-valued within the chip's precisions
    for core in dep.artifact.cores:
        w = core.conv_layer.weight
        assert torch.equal(w, w.round()) and w.abs().max() <= 128
        assert float(core.spk_layer.spike_threshold) == round(float(core.spk_layer.spike_threshold)) < 2 ** 15


def test_avg_to_sum_pooling_is_exact_in_float(speck):
    """avg pooling -> sum pooling with the next weights / k²: identical currents and spikes (float)."""
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Conv2d(4, 6, 3, padding=1, bias=False)
    layers = [("conv1", conv1), ("sn1", _neuron(0.5)), ("pool1", nn.AvgPool2d(2)), ("conv2", conv2),
              ("sn2", _neuron(0.4)), ("flatten", nn.Flatten()), ("fc", nn.Linear(6 * 4 * 4, 3, bias=False))]
    graph, meta, net = _graph(layers, (1, 8, 8))
    dep = speck.compile(graph, meta, options={"discretize": False, "input_spikes": "graded"})
    cores = dep.artifact.cores
    s = (torch.rand(5, 4, 8, 8) < 0.3).float()  # spikes of sn1
    ref = conv2(F.avg_pool2d(s, 2))
    lowered = cores[1].conv_layer(F.lp_pool2d(s, 1, 2))  # sinabs' sum pooling, the rescaled weights
    assert torch.allclose(lowered, ref, atol=1e-6)
    assert any("conv2 weights x 0.25" in x for x in dep.lowering)


def test_max_pool_refused_naming_the_layer(speck):
    @dataclass(eq=False)
    class MaxPool2d(nir.NIRNode):  # how another tool might write a max pool
        kernel_size: np.ndarray = field(default_factory=lambda: np.array([2, 2]))
        input_type: dict = field(default_factory=dict)
        output_type: dict = field(default_factory=dict)
        metadata: dict = field(default_factory=dict)

    layers = [("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", _neuron(1.0)),
              ("pool1", nn.AvgPool2d(2)), ("flatten", nn.Flatten()), ("fc", nn.Linear(64, 3, bias=False))]
    graph, meta, _ = _graph(layers, (1, 8, 8))
    graph.nodes["pool1"] = MaxPool2d()
    with pytest.raises(UnsupportedLayerError, match=r"node 'pool1' \(MaxPool2d\): max pooling"):
        speck.compile(graph, meta)


def test_too_large_for_the_chip(speck):
    """A 64-channel 3×3 conv on 64×64 needs 256Ki neuron entries; the biggest core has 64Ki."""
    layers = [("conv1", nn.Conv2d(2, 64, 3, padding=1, bias=False)), ("sn1", _neuron(1.0)),
              ("pool1", nn.AvgPool2d(4)), ("flatten", nn.Flatten()), ("fc", nn.Linear(64 * 16 * 16, 10, bias=False))]
    graph, meta, _ = _graph(layers, (2, 64, 64))
    with pytest.raises(TargetError) as e:
        speck.compile(graph, meta)
    msg = str(e.value)
    assert "layer 'conv1+sn1' needs" in msg and "256Ki neuron-memory" in msg and "64Ki" in msg, msg
    # a kernel larger than 16×16 is refused before any memory is computed
    graph2, meta2, _ = _graph([("conv1", nn.Conv2d(1, 2, 17, bias=False)), ("sn1", _neuron(1.0)),
                               ("flatten", nn.Flatten()), ("fc", nn.Linear(2 * 4 * 4, 3, bias=False))], (1, 20, 20))
    with pytest.raises(TargetError, match=r"layer 'conv1\+sn1': kernel 17×17 > 16×16"):
        speck.compile(graph2, meta2)
    # ten cores' worth of layers on a nine-core chip
    deep = [item for i in range(9) for item in ((f"conv{i}", nn.Conv2d(1, 1, 1, bias=False)), (f"sn{i}", _neuron(1.0)))]
    graph3, meta3, _ = _graph(deep + [("flatten", nn.Flatten()), ("fc", nn.Linear(16, 3, bias=False))], (1, 4, 4))
    with pytest.raises(TargetError, match=r"the network needs 10 cores .*Speck has 9"):
        speck.compile(graph3, meta3)


@pytest.mark.parametrize("coding", ["graded", "events"])
def test_synops_match_brute_force(speck, coding):
    """Known input events (graded coding, or an event dataset): conv1's synops are Σ events ×
    fan-out counted by hand; fc (a Linear after sn1) costs exactly 3 synops per sn1 spike."""
    torch.manual_seed(1)
    T, L = 3, 4
    conv = nn.Conv2d(1, 2, 3, padding=1, stride=1, bias=False)
    layers = [("conv1", conv), ("sn1", _neuron(0.3)), ("flatten", nn.Flatten()),
              ("fc", nn.Linear(2 * 5 * 5, 3, bias=False))]
    graph, meta, _ = _graph(layers, (1, 5, 5), T=T, encoding="direct" if coding == "graded" else "events")
    dep = speck.compile(graph, meta, options={"input_spikes": "graded", "input_levels": L})
    x = torch.rand(6, 1, 5, 5)
    if coding == "events":
        assert any("event dataset's frames" in line for line in dep.lowering)
        x = torch.round(x * L).unsqueeze(1).expand(-1, T, -1, -1, -1).contiguous()
    out = speck.run(dep, x, batch_size=4)
    x = x[:, 0] / L if coding == "events" else x
    fan = np.zeros((5, 5))
    for y in range(5):  # brute force: output positions (and channels) each input pixel reaches
        for xx in range(5):
            for oy in range(5):
                for ox in range(5):
                    if abs(oy - y) <= 1 and abs(ox - xx) <= 1:
                        fan[y, xx] += 2
    events = np.round(x.numpy()[:, 0] * L) * T
    expected = (events * fan).reshape(6, -1).sum(1)
    np.testing.assert_allclose(out.synops["conv1"], expected)
    np.testing.assert_allclose(out.synops["fc"], out.layer_spikes["sn1"] * 3)
    assert out.info["input_events_mean"] == pytest.approx(events.reshape(6, -1).sum(1).mean())


def test_leak_dropped_or_biased_and_logged(speck):
    layers = [("conv1", nn.Conv2d(1, 2, 3, padding=1, bias=False)), ("sn1", _neuron(1.0, leak=0.9)),
              ("flatten", nn.Flatten()), ("fc", nn.Linear(2 * 4 * 4, 3, bias=False))]
    graph, meta, _ = _graph(layers, (1, 4, 4))
    dep = speck.compile(graph, meta)
    assert any(x.startswith("sn1: leak λ = 0.9 per step cannot be represented") and "dropped (λ 0.9 -> 1" in x
               for x in dep.lowering), dep.lowering
    dep = speck.compile(graph, meta, options={"leak": "bias"})
    assert any("approximated by a constant bias -0.05 per step" in x for x in dep.lowering), dep.lowering


def test_reset_to_zero_maps_to_return_to_zero(speck):
    net_layers = [("conv1", nn.Conv2d(1, 2, 3, padding=1, bias=False)), ("sn1", _neuron(1.0)),
                  ("flatten", nn.Flatten()), ("fc", nn.Linear(2 * 4 * 4, 3, bias=False))]
    net_layers[1][1].reset = "zero"
    graph, meta, _ = _graph(net_layers, (1, 4, 4))
    dep = speck.compile(graph, meta)
    assert any(x.startswith("sn1: IAF neurons, reset to zero (return_to_zero = true)") for x in dep.lowering)
    core = dep.artifact.cores[0]
    assert type(core.spk_layer.reset_fn).__name__ == "MembraneReset"


def test_make_config_needs_real_samna(speck, digits, tmp_path):
    from neurodeploy.targets._samna_shim import SamnaUnavailableError, real_samna_available

    real, why = real_samna_available()
    graph, meta, _ = digits
    dep = speck.compile(graph, meta)
    if not real:
        with pytest.raises(SamnaUnavailableError, match="make_config needs SynSense's samna"):
            speck.make_config(dep)
        pytest.skip(f"make_config needs SynSense's real samna runtime, not installed here ({why})")
    path = tmp_path / "speck2f_config.bin"
    speck.make_config(dep, path)
    assert path.stat().st_size > 0


_SHIM_SCRIPT = textwrap.dedent("""
    import importlib, sys
    fake_real, stub = sys.argv[1], sys.argv[2]
    from neurodeploy.targets import _samna_shim as s
    sys.path.insert(0, fake_real)
    print("fake real:", *s.real_samna_available.__wrapped__())
    sys.path.remove(fake_real)
    sys.path.insert(0, stub)
    importlib.invalidate_caches()
    real, why = s.real_samna_available()
    print("stub:", real, why)
    assert not real
    s.ensure_dynapcnn_importable()
    import sinabs.backend.dynapcnn  # imports samna at module level
    assert s.uses_placeholders(), sys.modules["samna"]
    print("IMPORTED-WITH-PLACEHOLDERS")
""")


def _fake_samna(root: Path, marker: Path, real: bool) -> Path:
    pkg = root / "samna"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('pip install samna')\n"
                                     "raise SystemExit('the samna stub ran')\n")
    if real:  # the real samna ships a compiled extension
        (pkg / "samna.cpython-310-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    return root


def test_samna_shim_never_imports_the_stub(tmp_path):
    """The stub (pure Python, runs pip when imported) is recognised and never executed; a package
    with a compiled extension is taken for the real samna (and is not imported either)."""
    marker = tmp_path / "stub_was_imported"
    fake_real = _fake_samna(tmp_path / "real", marker, True)
    stub = _fake_samna(tmp_path / "stub", marker, False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _SHIM_SCRIPT, str(fake_real), str(stub)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert not marker.exists()
    assert "fake real: True real samna at" in r.stdout
    assert "stub: False" in r.stdout and "PyPI stub" in r.stdout
    assert "IMPORTED-WITH-PLACEHOLDERS" in r.stdout


def test_placeholders_refuse_to_act():
    from neurodeploy.targets._samna_shim import SamnaUnavailableError, real_samna_available, uses_placeholders

    get_target("speck")
    if real_samna_available()[0]:
        pytest.skip("the real samna is installed")
    import samna

    assert uses_placeholders()
    with pytest.raises(SamnaUnavailableError, match="needs SynSense's samna runtime"):
        samna.speck2f.configuration.SpeckConfiguration()


def test_potential_readout_reads_the_summed_logits(speck):
    """readout = 'potential': the output layer's integrated input (spikes·threshold + v_mem) / scale
    equals the source's logits up to the 8-bit weights and the graded input's rounding."""
    torch.manual_seed(2)
    fc = nn.Linear(16, 4, bias=False)
    with torch.no_grad():  # positive logits: nothing reaches threshold_low (-1 threshold here), spikes do occur
        fc.weight.abs_()
    graph, meta, net = _graph([("flatten", nn.Flatten()), ("fc", fc)], (1, 4, 4), T=5)
    x = torch.rand(40, 1, 4, 4)
    dep = speck.compile(graph, meta, options={"input_spikes": "graded", "input_levels": 64, "readout": "potential"})
    assert any("read as its potential at the end" in line for line in dep.lowering)
    out = speck.run(dep, x)
    with torch.no_grad():
        ref = net(torch.round(x * 64) / 64).numpy()  # the source on the same (rounded) input
    assert out.info["readout_spikes_mean"] > 0
    np.testing.assert_allclose(out.logits, ref, atol=0.01 * np.abs(ref).max())


def test_neuron_strategies_reach_the_lowering(speck):
    """A multi-spike neuron with a membrane floor (sinabs' reading) keeps both on Speck (sinabs IAF is
    MultiSpike; the floor becomes threshold_low); a single-spike neuron is logged as a difference."""
    torch.manual_seed(0)
    multi = SpikingNeuron(NeuronSpec(threshold=0.5, spike="multi", min_v=-0.5, reset_at="now"))
    layers = [("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", multi), ("flatten", nn.Flatten()),
              ("fc", nn.Linear(64, 10, bias=False)), ("sn2", _neuron(0.7))]
    graph, meta, _ = _graph(layers, (1, 4, 4))
    dep = speck.compile(graph, meta, options={"input_spikes": "graded", "seed": 0})
    text = "\n".join(dep.lowering)
    assert "sn1: multi-spike neuron" in text and "sn1: membrane floor -0.5 kept" in text
    assert "sn2: the source emits at most one spike per step" in text
    d = dep.info["discretisation"]["conv1+sn1"]
    assert d["threshold_low_int"] == -d["threshold_int"]  # floor −θ, on the integer grid
    d2 = dep.info["discretisation"]["fc+sn2"]  # no floor in the source: as deep as 16 bits allow
    assert d2["threshold_low_int"] < -10 * d2["threshold_int"]
