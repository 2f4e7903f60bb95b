"""loihi-emu spike for spike: its fast path against its reference loop (default suite) and against
Lava (``lava`` marker) over neuron kinds (IF, LIF with a membrane leak, CubaLIF with a synaptic
decay and a recurrent weight), biases and input codings (rate, graded, event frames)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.ir import DeployMeta, to_nir
from neurodeploy.ir.metadata import read_meta
from neurodeploy.snn.network import SpikingNetwork
from neurodeploy.snn.neuron import NeuronSpec, SpikingNeuron
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.cuba import fast_cuba
from neurodeploy.targets.loihi.emu import cuba, emulate
from neurodeploy.targets.loihi.lowering import LoihiLayer

T, N = 8, 8
# (neuron kind, bias, input coding): every kind with and without bias, every coding at least twice
CASES = [("if", False, "rate"), ("if", True, "graded"), ("lif", False, "graded"), ("lif", True, "rate"),
         ("if", True, "events-graded"), ("lif", True, "events-binary"), ("lif", False, "events-graded")]


def _net(kind: str, bias: bool, coding: str) -> SpikingNetwork:
    """conv(3x3) -> neurons -> flatten -> fc -> neurons -> fc readout, on 6x6 images or 2x6x6 event frames."""
    torch.manual_seed(7)
    events = coding.startswith("events")
    c_in = 2 if events else 1
    leak = 1.0 if kind == "if" else 0.85
    sn = lambda: SpikingNeuron(NeuronSpec(threshold=0.5, leak=leak, reset="zero"))  # noqa: E731
    conv, fc1 = nn.Conv2d(c_in, 4, 3, padding=1, bias=bias), nn.Linear(4 * 36, 12, bias=bias)
    with torch.no_grad():
        conv.weight.mul_(2.0 if events else 3.0)
        fc1.weight.mul_(3.0)
        if bias:  # one sign each way, so bias both helps and holds back spikes
            conv.bias.copy_(torch.tensor([0.2, -0.15, 0.05, -0.3]))
            fc1.bias.uniform_(-0.2, 0.2)
    return SpikingNetwork([("conv1", conv), ("sn1", sn()), ("flatten", nn.Flatten()), ("fc1", fc1), ("sn2", sn()),
                           ("fc2", nn.Linear(12, 4, bias=False))], T, "events" if events else "direct", "sum",
                          (c_in, 6, 6)).eval()


def _case(kind: str, bias: bool, coding: str):  # noqa: ANN202
    """(NIR graph, meta, options, input) of one case of the matrix."""
    net = _net(kind, bias, coding)
    events = coding.startswith("events")
    g = to_nir(net, DeployMeta(timesteps=T, encoding="events" if events else "direct",
                               input_shape=list(net.input_shape)))
    gen = torch.Generator().manual_seed(11)
    if events:
        x = torch.poisson(torch.full((N, T, 2, 6, 6), 0.6), generator=gen)
        opts = {"event_spikes": coding.split("-")[1], "event_bits": 2}
    else:
        x = torch.rand(N, 1, 6, 6, generator=gen)
        opts = {"input_spikes": coding, "seed": 3}
    return g, read_meta(g), opts, x


@pytest.fixture(params=["c", "torch"])
def kernels(request, monkeypatch):
    """Both fast kernels: the fused C one (.cuba_c; skipped where no C compiler builds it) and the torch ones."""
    import neurodeploy.targets.loihi.cuba as cuba_mod
    from neurodeploy.targets.loihi.cuba_c import available

    if request.param == "c" and not available():
        pytest.skip("no C compiler: the fused kernel is not built here")
    monkeypatch.setattr(cuba_mod, "USE_C", request.param == "c")
    return request.param


def _assert_same(ref: dict, got: dict) -> None:
    for key in ("raster", "spikes", "maps", "active", "over_2theta"):
        assert set(ref[key]) == set(got[key]), key
        for name in ref[key]:
            assert torch.equal(ref[key][name], got[key][name]), (key, name)
    assert torch.equal(ref["logits"], got["logits"])


@pytest.mark.parametrize("kind,bias,coding", CASES)
def test_fast_path_equals_reference_loop(kind, bias, coding, monkeypatch, kernels):
    g, meta, opts, x = _case(kind, bias, coding)
    dep = get_target("loihi-emu").compile(g, meta, options=opts)
    prog = dep.artifact
    first = prog.layers[0]
    assert (first.v_decay != 0) == (kind == "lif") and (first.bias is not None) == bias
    s = prog.encode(x)
    ref = emulate(prog, s, raster=True, reference=True)

    def no_reference(*args, **kw):  # noqa: ANN002, ANN003
        raise AssertionError("the fast path fell back to the reference CUBA")

    with monkeypatch.context() as m:  # the fast kernels, not the reference, ran every layer
        m.setattr("neurodeploy.targets.loihi.emu.cuba", no_reference)
        got = emulate(prog, s, raster=True)
    _assert_same(ref, got)
    assert all(int(v.sum()) > 0 for v in ref["spikes"].values()), {k: int(v.sum()) for k, v in ref["spikes"].items()}
    # the sub-batches of the fast path and its batch size do not change a thing
    out = get_target("loihi-emu").run(dep, x, batch_size=3)
    assert out.info["integer_logits"] == ref["logits"].tolist()


@pytest.mark.parametrize("i_decay,v_decay,bias,big,multi", [
    (4096, 0, False, False, True), (4096, 0, True, True, False), (4096, 4096, True, False, True),
    (4096, 300, True, False, True), (1024, 128, False, True, False), (0, 4096, True, True, False),
    (2048, 0, True, False, True), (4096, 300, False, "tiny", False), (1500, 700, True, "tiny", False)])
def test_fast_kernel_equals_reference_cuba(i_decay, v_decay, bias, big, multi, kernels):
    """Random integer inputs, including the 24-bit wrap of u and the saturation of v (``big``); ``tiny``:
    θ = 1 and |a| ≤ 2, so v hovers around the threshold and a decay rounded the wrong way flips spikes."""
    g = torch.Generator().manual_seed(i_decay + v_decay)
    hi = {True: 120_000, False: 3000, "tiny": 3}[big]
    a = torch.randint(-hi // 2, hi, (20, 6, 50), generator=g)
    b = np.random.default_rng(1).integers(-300 if hi > 3 else -1, 300 if hi > 3 else 2, 50) if bias else None
    layer = LoihiLayer("n", "s", [], "dense", np.zeros((50, 1), np.int64), (1,), (50,), vth=1 if hi == 3 else 2000,
                       i_decay=i_decay, v_decay=v_decay, bias=b, multi_spike=multi)
    act_r, over_r = torch.zeros(6, dtype=torch.int64), torch.zeros(6, dtype=torch.int64)
    ref = cuba(a, layer, act_r, over_r if multi else None)
    out = fast_cuba(a.to(torch.float32), layer)
    assert out is not None
    s, act, over = out
    assert ref.sum() > 0 and torch.equal(s > 0, ref)
    assert torch.equal(act, act_r)
    assert (over is None) == (not multi) and (over is None or torch.equal(over, over_r))
    if big is True and i_decay == 4096 and v_decay == 0:  # the clamp at -(2^23 - 1) acts in this case: it must be tested
        assert bool((a.cumsum(0) * 64 <= -(1 << 23)).any())


def test_fast_kernel_hands_an_unwrapped_range_to_the_reference(kernels):
    """|a| ≥ 2^17: u = a << 6 could wrap; the fast kernel declines and emulate runs the reference."""
    layer = LoihiLayer("n", "s", [], "dense", np.zeros((3, 1), np.int64), (1,), (3,), vth=100)
    a = torch.tensor([[[1 << 17, 5, -7]]] * 4, dtype=torch.float32)
    assert fast_cuba(a, layer) is None


def test_emulate_falls_back_to_the_reference_outside_the_fast_range(kernels):
    """A hand-made program whose input reaches |a| ≥ 2^17 (beyond the lowering's bound): the layer runs the
    reference CUBA (24-bit wrap of u included) and the result is the reference's."""
    from neurodeploy.targets.loihi.program import LoihiProgram

    w = np.full((3, 4), 254, np.int64)
    w[1] = -254
    hidden = LoihiLayer("h", "fc0", [], "dense", w, (4,), (3,), vth=5000, v_decay=200)
    out = LoihiLayer("fc1", "fc1", [], "dense", np.eye(3, dtype=np.int64) * 2, (3,), (3,), readout=True,
                     input_neuron="h")
    prog = LoihiProgram([hidden, out], (4,), 6, "graded", 8, 0, "potential")
    s = torch.full((6, 2, 4), 200, dtype=torch.int64)  # a = ±203200 > 2^17
    s[:, 1, 2:] = 0
    ref = emulate(prog, s, raster=True, reference=True)
    _assert_same(ref, emulate(prog, s, raster=True))
    assert int(ref["spikes"]["h"].sum()) > 0


def test_recurrent_cubalif_fast_equals_reference(kernels):
    """A CubaLIF chain with a recurrent weight (iDecay ≠ 4096: the general kernel with W_rec·s[t−1])."""
    from pathlib import Path

    from neurodeploy.ir.importer import import_nir

    path = Path(__file__).parent.parent / "data" / "external" / "braille_noDelay_bias_zero.nir"
    _, graph, meta, _ = import_nir(path, dt=1e-4, timesteps=30, encoding="events", reset="zero", convention="snntorch")
    prog = get_target("loihi-emu").compile(graph, meta).artifact
    assert any(layer.recurrent is not None and layer.i_decay != 4096 for layer in prog.layers)
    x = (torch.rand(5, 30, 12, generator=torch.Generator().manual_seed(2)) < 0.1).float()
    s = prog.encode(x)
    ref = emulate(prog, s, raster=True, reference=True)
    _assert_same(ref, emulate(prog, s, raster=True))
    assert all(int(v.sum()) > 0 for v in ref["spikes"].values())


@pytest.mark.lava
@pytest.mark.slow  # one Lava run per case: ~20-40 s each (child start, Lava import, netx build)
@pytest.mark.parametrize("kind,bias,coding", CASES)
def test_lava_equals_emulator_spike_for_spike(kind, bias, coding, capsys):
    from neurodeploy.targets.loihi.lava.child import group_members

    g, meta, opts, x = _case(kind, bias, coding)
    target = get_target("lava")
    dep = target.compile(g, meta, options={**opts, "copies": N, "record_raster": N, "timeout_s": 600})
    out = target.run(dep, x)
    prog = dep.artifact
    ref = emulate(prog, prog.encode(x), raster=True)
    assert set(out.info["raster"]) == {"sn1", "sn2"}
    for name, lava_raster in out.info["raster"].items():
        e = ref["raster"][name].numpy()
        assert lava_raster.shape == e.shape == (T, N, lava_raster.shape[2]), name
        assert int((lava_raster != e).sum()) == 0, name  # every neuron, every step, every sample
        assert lava_raster.sum() > 0, name
        assert np.array_equal(out.layer_spikes[name], ref["spikes"][name].numpy()), name
    assert np.array_equal(np.asarray(out.info["integer_logits"]), ref["logits"].numpy())
    eo = get_target("loihi-emu").run(get_target("loihi-emu").compile(g, meta, options=opts), x)
    for k in eo.synops:
        assert np.array_equal(eo.synops[k], out.synops[k]), k
    with capsys.disabled():
        print(f"\nlava == loihi-emu, {kind} bias={bias} {coding}: "
              + ", ".join(f"{k} {int(v.sum())} spikes" for k, v in ref["spikes"].items()))
    from neurodeploy.targets.loihi.lava import session

    # the worker stays up for the process's next run (session.py); shut down, it leaves nothing
    assert session.shutdown() == [] and group_members(target.last_pgid) == []
