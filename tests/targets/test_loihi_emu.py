"""The Loihi lowering and the bit-exact torch emulator (target ``loihi-emu``); no Lava needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import read_nir
from neurodeploy.ir.from_nir import SumPool2d
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.emu import LoihiEmuTarget, cuba, emulate
from neurodeploy.targets.loihi.lowering import LoihiLayer, _fold_group, lower_network


def _lava_cuba_reference(a: np.ndarray, vth: int, i_decay: int, v_decay: int, bias: np.ndarray | None) -> np.ndarray:
    """Lava 0.10 PyLifModelBitAcc.subthr_dynamics + spiking_activation + reset, transcribed in numpy."""
    u = np.zeros(a.shape[1:], np.int32)
    v = np.zeros(a.shape[1:], np.int32)
    eff_bias = np.zeros_like(u) if bias is None else (bias.astype(np.int32) << 6)
    out = []
    for t in range(a.shape[0]):
        dc = np.int64(u) * (4096 - i_decay)
        dc = np.int32(np.sign(dc) * np.right_shift(np.abs(dc), 12)) + np.left_shift(a[t].astype(np.int32), 6)
        wc = np.where(dc > 2 ** 23, dc - 2 ** 24, dc)
        wc = np.where(wc <= -2 ** 23, dc + 2 ** 24, wc)
        u[:] = wc
        dvv = np.int64(v) * (4096 - v_decay)
        dvv = np.int32(np.sign(dvv) * np.right_shift(np.abs(dvv), 12))
        v[:] = np.clip(dvv + u + eff_bias, -2 ** 23 + 1, 2 ** 23 - 1)
        s = v > (vth << 6)
        v[s] = 0
        out.append(s)
    return np.stack(out)


@pytest.mark.parametrize("i_decay,v_decay,bias,big", [(4096, 0, False, False), (4096, 300, True, False),
                                                      (1024, 128, False, True), (0, 4096, True, True)])
def test_cuba_is_bit_exact_with_lava_formulas(i_decay, v_decay, bias, big):
    g = torch.Generator().manual_seed(1)
    hi = 140_000 if big else 3000  # big: exercises the 24-bit wrap of u and the saturation of v
    a = torch.randint(-hi // 3, hi, (20, 4, 50), generator=g)
    b = np.random.default_rng(0).integers(-200, 200, 50) if bias else None
    layer = LoihiLayer("n", "s", [], "dense", np.zeros((50, 1), np.int64), (1,), (50,), vth=2000, i_decay=i_decay,
                       v_decay=v_decay, bias=b)
    got = cuba(a, layer).numpy()
    ref = _lava_cuba_reference(a.numpy(), 2000, i_decay, v_decay, b)
    assert got.sum() > 0
    assert (got == ref).all()


def _fold_check(group, in_shape):
    lines: list[str] = []
    sname, folded, kind, w, conv, out_shape, bias = _fold_group(group, in_shape, lines.append)
    x = (torch.rand(5, *in_shape, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    with torch.no_grad():
        ref = nn.Sequential(*[m for _, m in group]).double()(x).reshape(5, -1)
    wt = torch.as_tensor(w)
    if kind == "conv":
        got = F.conv2d(x, wt, None, conv["stride"], conv["padding"]).reshape(5, -1)
    else:
        got = x.reshape(5, -1) @ wt.T
    assert tuple(got.shape[1:]) == (int(np.prod(out_shape)),)
    assert torch.allclose(got, ref, atol=1e-10), float((got - ref).abs().max())
    return kind, lines


def test_pool_folding_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    kind, lines = _fold_check([("pool1", nn.AvgPool2d(2)), ("conv2", conv)], (16, 8, 8))
    assert kind == "conv" and "pool1" in lines[0] and "folded exactly into conv2" in lines[0]
    kind, lines = _fold_check([("pool1", SumPool2d((2, 2))), ("conv2", conv)], (16, 8, 8))
    assert kind == "conv"
    # pooling into a dense layer through flatten
    fc = nn.Linear(32 * 2 * 2, 10, bias=False)
    kind, lines = _fold_check([("pool2", nn.AvgPool2d(2)), ("flatten", nn.Flatten()), ("fc", fc)], (32, 4, 4))
    assert kind == "dense" and any("pool2" in ln and "fc" in ln for ln in lines)
    # stride != size: a strided depthwise conv composed with the next conv, still exact
    conv3 = nn.Conv2d(16, 8, 3, padding=1, bias=False)
    kind, lines = _fold_check([("pool1", nn.AvgPool2d(3, stride=2)), ("conv2", conv3)], (16, 9, 9))
    assert kind == "dense" and "strided depthwise conv" in lines[0]
    # odd size (pooling drops the last row): still exact through the dense composition
    kind, _ = _fold_check([("pool1", nn.AvgPool2d(2)), ("conv2", conv)], (16, 7, 7))
    assert kind == "dense"


def test_maxpool_is_refused_with_the_layer_name():
    n = lambda: SpikingNeuron(NeuronSpec())  # noqa: E731
    net = SpikingNetwork([("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("sn1", n()),
                          ("pool1", nn.MaxPool2d(2)), ("conv2", nn.Conv2d(4, 4, 3, padding=1, bias=False)),
                          ("sn2", n()), ("flatten", nn.Flatten()), ("fc", nn.Linear(64, 10, bias=False))],
                         4, "direct", "sum", (1, 8, 8))
    with pytest.raises(UnsupportedLayerError, match="pool1"):
        lower_network(net, 4, {}, lambda s: None)


def test_lowering_log_names_every_change(digits_nir):
    graph, meta = read_nir(digits_nir)
    target = get_target("loihi-emu")
    assert isinstance(target, LoihiEmuTarget)
    dep = target.compile(graph, meta, options={"input_spikes": "graded", "seed": 3})
    text = "\n".join(dep.lowering)
    for needle in ["graded spikes", "pool1", "folded exactly into conv2", "pool2", "fc", "flatten",
                   "iDecay=4096", "vDecay=0", "vThMant=", "8-bit even grid", "reset to zero",
                   "readout fc: non-firing", "sum over T", "reset_interval"]:
        assert needle in text, needle
    dep = target.compile(graph, meta, options={"input_spikes": "rate", "seed": 3})
    assert any("rate-coded" in ln and "seed 3" in ln for ln in dep.lowering)
    w = [layer.weight for layer in dep.artifact.layers]
    assert all(x.min() >= -256 and x.max() <= 254 and (x % 2 == 0).all() for x in w)


@pytest.fixture(scope="module")
def source_predictions(digits_nir, digits_data):
    graph, meta = read_nir(digits_nir)
    src = get_target("torch")
    return src.run(src.compile(graph, meta), digits_data.x_test).predictions


@pytest.mark.parametrize("mode,floor", [("graded", 0.9), ("rate", 0.85)])
def test_emulator_agrees_with_float_source(digits_nir, digits_data, source_predictions, mode, floor):
    graph, meta = read_nir(digits_nir)
    x = digits_data.x_test
    emu = get_target("loihi-emu")
    dep = emu.compile(graph, meta, options={"input_spikes": mode, "seed": 0})
    out = emu.run(dep, x, batch_size=128)
    agree = float((out.predictions == source_predictions).mean())
    assert agree >= floor, agree
    assert set(out.layer_spikes) == {"sn1", "sn2"}
    assert set(out.synops) == {"conv1", "conv2", "fc"}
    assert set(out.neuron_updates) == {"sn1", "sn2", "fc"}
    assert out.logits.shape == (len(x), 10)
    # synops of conv2 = Σ spikes of sn1 × real fan-out, never more than the spikes × max fan-out
    assert (out.synops["conv2"] <= out.layer_spikes["sn1"] * 32 * 9 + 1e-6).all()
    # same samples, same spikes: the emulator is deterministic, batch size does not matter
    again = emu.run(dep, x[:40], batch_size=7)
    assert again.info["integer_logits"] == out.info["integer_logits"][:40]


@pytest.mark.slow
def test_deploy_finetune_keeps_or_improves_deployed_accuracy(digits_nir, digits_data):
    import copy

    from neurodeploy.ir import from_nir, to_nir
    from neurodeploy.train.deploy_finetune import deploy_finetune

    graph, meta = read_nir(digits_nir)
    opts = {"input_spikes": "graded", "seed": 0}
    emu = get_target("loihi-emu")
    x, y = digits_data.x_test, digits_data.y_test.numpy()
    before = float((emu.run(emu.compile(graph, meta, options=opts), x).predictions == y).mean())
    net = from_nir(graph, meta)
    ft = deploy_finetune(net, digits_data.x_train, digits_data.y_train, opts, epochs=2, lr=3e-4)
    assert all(m.reset == "zero" for _, m in ft.neurons())
    meta2 = copy.deepcopy(meta)
    dep = emu.compile(to_nir(ft, meta2), meta2, options=opts)
    assert not any("reset by subtraction" in ln for ln in dep.lowering)
    after = float((emu.run(dep, x).predictions == y).mean())
    assert after >= before - 0.02, (before, after)


def test_bias_becomes_a_per_neuron_bias_mantissa():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=True)
    net = SpikingNetwork([("conv1", conv), ("sn1", SpikingNeuron(NeuronSpec(threshold=0.5))),
                          ("pool1", nn.AvgPool2d(2)), ("flatten", nn.Flatten()),
                          ("fc", nn.Linear(16, 3, bias=False))], 4, "direct", "sum", (1, 4, 4))
    lines: list[str] = []
    prog = lower_network(net, 4, {"input_spikes": "graded"}, lines.append)
    first = prog.layers[0]
    assert first.bias is not None and first.bias.shape == (4 * 4 * 4,)
    assert np.abs(first.bias).max() <= 4095
    expect = np.repeat(conv.bias.detach().double().numpy(), 16) * first.scale
    assert np.abs(first.bias - expect).max() <= 0.5 + 1e-9
    assert any("bias mantissa" in ln for ln in lines)
    assert prog.layers[-1].readout and prog.readout == "potential"


def test_multi_spike_neuron_is_lowered_to_single_spike_with_a_log_line():
    """Loihi CUBA emits at most one spike per step: a multi-spike source neuron (and its floor) is a
    logged lowering, never accepted silently."""
    multi = SpikingNeuron(NeuronSpec(threshold=0.5, spike="multi", min_v=-0.5, reset_at="now"))
    net = SpikingNetwork([("fc1", nn.Linear(6, 5, bias=False)), ("sn1", multi),
                          ("fc2", nn.Linear(5, 3, bias=False))], 4, "direct", "sum", (6,))
    lines: list[str] = []
    lower_network(net, 4, {}, lines.append)
    text = "\n".join(lines)
    assert "sn1: multi-spike neuron in the source" in text and "one spike per step on Loihi" in text
    assert "sn1: membrane floor -0.5 of the source dropped" in text


# ------------------------------------------------------------------------------------------ event input
def _event_net() -> SpikingNetwork:
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    fc = nn.Linear(3 * 4 * 4, 4, bias=False)
    return SpikingNetwork([("conv1", conv), ("sn1", SpikingNeuron(NeuronSpec(threshold=0.6, leak=0.9))),
                           ("flatten", nn.Flatten()), ("fc", fc)], 12, "events", "sum", (2, 4, 4))


def _event_frames(n: int, rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((n, 12, 2, 4, 4), rate), generator=g)


@pytest.mark.parametrize("mode,bits", [("graded", 2), ("graded", 4), ("binary", 4)])
def test_event_input_emulator_equals_numpy_cuba(mode, bits):
    """Event counts -> payload min(round(max(c, 0)), cap) -> W_q·payload -> Lava's fixed-point CUBA, in numpy."""
    lines: list[str] = []
    prog = lower_network(_event_net(), 12, {"event_spikes": mode, "event_bits": bits}, lines.append)
    x = _event_frames(6, 1.5, seed=bits)
    x[0, 3, 1, 2, 2] = 2.6  # not an integer: rounded to 3
    x[1, 4, 0, 1, 1] = -0.7  # negative: 0 (and counted)
    x[2, 0, 0, 0, 0] = 18.0  # above every cap here
    cap = (1 << bits) - 1 if mode == "graded" else 1
    c = np.clip(np.round(x.numpy().astype(np.float64)), 0, None).reshape(6, 12, -1)
    payload = np.minimum(c, cap).astype(np.int64).transpose(1, 0, 2)  # [T, B, n_in]
    first, last = prog.layers
    a = np.einsum("oi,tbi->tbo", first.matrix(), payload)
    ref = _lava_cuba_reference(a, first.vth, first.i_decay, first.v_decay, None)
    logits = np.einsum("oi,tbi->bo", last.matrix(), ref.astype(np.int64))
    from neurodeploy.targets.loihi.event_input import EventStats
    stats = EventStats()
    s_in = prog.encode(x, stats=stats)
    assert (s_in.numpy() == payload).all()
    res = emulate(prog, s_in, raster=True)
    assert ref.sum() > 0 and (res["raster"]["sn1"].numpy() == ref).all()
    assert (res["logits"].numpy() == logits).all()
    assert stats.events == int(c.sum()) and stats.clipped == int(np.maximum(c - cap, 0).sum()) > 0
    assert stats.rounded == 2 and stats.negative == 1 and stats.samples == 6
    assert prog.input_message_bits == (bits if mode == "graded" else 0)
    text = "\n".join(lines)
    assert (f"{bits}-bit graded spikes, payload = the count ≤ {cap}" in text) if mode == "graded" else \
        ("binary spikes" in text and "counts > 1 clipped to 1" in text)


@pytest.fixture(scope="module")
def cnn_sinabs(tmp_path_factory):
    """The NIR paper's N-MNIST CNN (trained in sinabs), imported the way the CLI does (T = 8, event frames)."""
    from pathlib import Path

    from neurodeploy.ir.importer import import_nir

    path = Path(__file__).parent.parent / "data" / "external" / "cnn_sinabs.nir"
    _, graph, meta, _ = import_nir(path, timesteps=8, encoding="events", convention="sinabs")
    return graph, meta


def _digit_frames(n: int, T: int) -> torch.Tensor:
    """The project's event-digits recordings (raw counts, 2x12x12), scaled x2 and centred in 34x34."""
    from neurodeploy.data.datasets import digits_arrays
    from neurodeploy.data.events import event_digits_frames

    x, _ = digits_arrays()
    f = torch.from_numpy(event_digits_frames(x[:n, 0], T)).repeat_interleave(2, -1).repeat_interleave(2, -2)
    out = torch.zeros(n, T, 2, 34, 34)
    out[..., 5:29, 5:29] = f
    return out


def test_cnn_sinabs_event_input_on_loihi_emu(cnn_sinabs, capsys):
    graph, meta = cnn_sinabs
    emu = get_target("loihi-emu")
    dep = emu.compile(graph, meta, options={})
    text = "\n".join(dep.lowering)
    assert "event input: frames [T=8, 2, 34, 34] of event counts sent as 4-bit graded spikes, payload = the count " \
           "≤ 15" in text
    multi = [ln for ln in dep.lowering if "multi-spike neuron in the source (sinabs MultiSpike" in ln]
    assert sorted(ln.split(":")[0] for ln in multi) == ["1", "10", "12", "3", "6"]
    assert dep.artifact.readout == "count"
    x = torch.poisson(torch.full((24, 8, 2, 34, 34), 0.05), generator=torch.Generator().manual_seed(0))
    x[::3, 2, 0, 10, 10] = 20.0  # 8 pixel-steps above the 15 payload cap: 8 x 5 events clipped
    x[1::3, 5, 1, 20, 7] = 16.0  # 8 more: 8 x 1
    n_events = int(x.sum())
    out = emu.run(dep, x)
    line = dep.lowering[-2] if dep.lowering[-1].startswith("multi-spike") else dep.lowering[-1]
    assert f"event input (measured on 24 samples): 48 of {n_events} events clipped" in line
    assert "16 pixel-steps had a count > 15, the largest 20" in line
    ev = out.info["event_input"]
    assert (ev["clipped"], ev["events"], ev["clipped_pixels"], ev["payload_max"]) == (48, n_events, 16, 15)
    assert set(out.info["multi_spike_steps"]) == {"1", "3", "6", "10", "12"}
    # binary: every count above 1 loses count - 1 events
    dep_b = emu.compile(graph, meta, options={"event_spikes": "binary"})
    out_b = emu.run(dep_b, x)
    assert out_b.info["event_input"]["clipped"] == int(np.maximum(x.numpy() - 1, 0).sum())
    # agreement with two float torch readings of the same file: as sinabs runs it (multi-spike, floor,
    # subtraction: what the torch target does) and with Loihi's own neuron (one spike per step, reset to
    # zero, no floor). The second isolates what the fixed-point lowering changes; the gap between the
    # two is the chip's neuron, which the lowering log and `multi_spike_steps` report.
    from neurodeploy.ir.importer import import_nir

    _, g_loihi, m_loihi, _ = import_nir(Path(__file__).parent.parent / "data" / "external" / "cnn_sinabs.nir",
                                        timesteps=8, encoding="events", convention="nir", reset="zero")
    src = get_target("torch")
    digits = _digit_frames(48, 8)
    eo = emu.run(dep, digits)
    so = src.run(src.compile(graph, meta), digits)
    lo = src.run(src.compile(g_loihi, m_loihi), digits)
    agree_sinabs = float((so.predictions == eo.predictions).mean())
    agree_neuron = float((lo.predictions == eo.predictions).mean())
    with capsys.disabled():
        print(f"\ncnn_sinabs event-digits, 48 samples: loihi-emu vs torch as sinabs runs it {agree_sinabs:.3f}; "
              f"vs torch with Loihi's neuron (single spike, reset to zero) {agree_neuron:.3f}")
    assert agree_neuron >= 0.7, agree_neuron  # measured 0.78 on 96 samples; chance is 0.1
    assert agree_neuron > agree_sinabs  # the chip's neuron, not the quantisation, is most of the gap
