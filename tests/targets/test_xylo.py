"""Target ``xylo``: Xylo™Audio 3 through rockpool 3.1.0 + xylosim 0.1.3 (neurodeploy/targets/xylo/).

The Braille RSNN (tests/data/external/README.md; read as snnTorch runs it, dt = 1e-4, as
tests/targets/test_loihi_recurrent.py) and a small CubaLIF network trained here on the embedded
digits (4×4 average-pooled images as graded event counts, 16 input channels) run on xylo and are
compared with the float reference (the torch reading). Skipped where rockpool/xylosim do not import.
"""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import TargetError, UnsupportedLayerError
from neurodeploy.ir.importer import import_nir
from neurodeploy.targets import get_target, list_targets
from neurodeploy.targets.xylo import backend

OK, WHY = backend.xylo_status()
needs_xylo = pytest.mark.skipif(not OK, reason=f"xylo unavailable: {WHY}")
DATA = Path(__file__).resolve().parents[1] / "data" / "external"
DT = 1e-4
FILES = [("braille_noDelay_bias_zero.nir", "zero"), ("braille_noDelay_noBias_subtract.nir", "subtract")]


def _spikes(n: int, T: int, seed: int, c: int = 12, p: float = 0.1) -> torch.Tensor:
    return (torch.rand(n, T, c, generator=torch.Generator().manual_seed(seed)) < p).float()


def _cuba_graph(weights: list[np.ndarray], rec: dict[int, np.ndarray], dt: float, alpha: float = 0.75,
                beta: float = 0.875) -> nir.NIRGraph:
    """input → (Affine → CubaLIF [⇄ Affine]) × L → output, CubaLIF in snnTorch's reading
    (α = 1 − dt/τ_syn, β = 1 − dt/τ_mem, w_in·dt/τ_syn = 1, r = τ_mem/dt)."""
    ts, tm = dt / (1 - alpha), dt / (1 - beta)
    nodes = {"input": nir.Input(np.array([weights[0].shape[1]]))}
    edges, prev = [], "input"
    for k, w in enumerate(weights):
        n = w.shape[0]
        nodes[f"fc{k}"] = nir.Affine(w.astype(np.float32), np.zeros(n, np.float32))
        nodes[f"lif{k}"] = nir.CubaLIF(tau_syn=np.full(n, ts), tau_mem=np.full(n, tm), r=np.full(n, tm / dt),
                                       v_leak=np.zeros(n), v_threshold=np.ones(n), w_in=np.full(n, ts / dt))
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"lif{k}")]
        if k in rec:
            nodes[f"rec{k}"] = nir.Affine(rec[k].astype(np.float32), np.zeros(n, np.float32))
            edges += [(f"lif{k}", f"rec{k}"), (f"rec{k}", f"lif{k}")]
        prev = f"lif{k}"
    nodes["output"] = nir.Output(np.array([weights[-1].shape[0]]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _import(graph: nir.NIRGraph, tmp_path: Path, T: int, dt: float):
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    return import_nir(path, dt=dt, timesteps=T, encoding="events", reset="subtract", convention="snntorch")


def _load(fname: str, reset: str, T: int):
    return import_nir(DATA / fname, dt=DT, timesteps=T, encoding="events", reset=reset, convention="snntorch")


@needs_xylo
def test_xylosim_neuron_and_timing():
    """The facts the lowering relies on (lower.py docstring), measured on xylosim: the current decays
    after the step's input is added, v ≥ θ fires ⌊v/θ⌋ (≤ 31) spikes with subtractive reset, a hidden
    spike reaches the output neurons one step later."""
    from neurodeploy.targets._samna_shim import real_samna_available, uses_placeholders

    sim_cls = backend.xylo_audio3().XyloSim
    assert real_samna_available()[0] or uses_placeholders()  # the PyPI samna stub is never imported
    inp = np.zeros((6, 1), int)
    inp[1, 0] = 1
    sim = sim_cls.from_specification(weights_in=np.array([[100]]), weights_out=np.array([[120]]),
                                     dash_syn=np.array([2]), dash_mem=np.array([1]), threshold=np.array([80]),
                                     dash_syn_out=np.array([15]), dash_mem_out=np.array([15]),
                                     threshold_out=np.array([50]), dt=1e-3)
    out, _, rec = sim.evolve(inp, record=True)
    assert rec["Isyn"].ravel()[:3].tolist() == [0, 75, 57]  # (0 + 100) − (100 >> 2), 75 − (75 >> 2)
    assert rec["Spikes"].ravel()[:3].tolist() == [0, 0, 1]  # v[1] = 75 < 80; v[2] = 75 − 37 + 57 = 95 ≥ 80
    assert rec["Vmem"].ravel()[2] == 95 - 80  # subtractive reset
    assert out.ravel()[:4].tolist() == [0, 0, 0, 1]  # the output neuron sees the spike of step 2 at step 3
    inp[:, 0] = 15
    sim = sim_cls.from_specification(weights_in=np.array([[127]]), weights_out=np.array([[1]]),
                                     dash_syn=np.array([15]), dash_mem=np.array([15]), threshold=np.array([10]),
                                     threshold_out=np.array([1000]), dt=1e-3)
    _, _, rec = sim.evolve(inp, record=True)
    assert rec["Spikes"].ravel()[0] == 31  # ⌊1904 / 10⌋ capped at 31


@needs_xylo
@pytest.mark.parametrize("fname,reset,floor,floor_rules", [(FILES[0][0], "zero", 0.50, 0.55),
                                                          (FILES[1][0], "subtract", 0.57, 0.62)])
def test_braille_on_xylo_agreement_is_measured(fname, reset, floor, floor_rules, capsys):
    """Measured (N = 300, T = 50, Bernoulli 0.1 inputs): agreement with the torch reading 0.577 (reset to
    zero: Xylo subtracts) / 0.653 (subtraction); with a float network that follows Xylo's rules
    (multi-spike ⌊v/θ⌋, subtraction) 0.753 / 0.740. The gap is Xylo's multi-spike neurons (the hidden
    layer fires ~4x more) and the bit-shift decays. Floors ≈ 3 binomial σ (0.028) below."""
    T, N = 50, 300
    net, graph, meta, _ = _load(fname, reset, T)
    x = _spikes(N, T, 0)
    target = get_target("xylo")
    dep = target.compile(graph, meta)
    text = "\n".join(dep.lowering)
    assert "dash_syn=" in text and "dash_mem=" in text and "channel_quantize (8-bit" in text
    assert "38 hidden neurons" in text or "40 hidden neurons" in text
    n = 38 if reset == "zero" else 40
    inputs = 13 if reset == "zero" else 12  # bias_zero has biases: one extra always-on input channel
    assert (f"resources (Xylo Audio 3): {inputs} of 16 input channels, {n} of 992 hidden neurons, 7 of 16 outputs, "
            f"input expansion {n} of 128, output expansion {n} of 128") in text
    assert ("Xylo resets by subtraction only" in text) == (reset == "zero")
    out = target.run(dep, x)
    net.record = True
    with torch.no_grad():
        ref = net(x).numpy()
    agree = float((out.predictions == ref.argmax(1)).mean())
    rules = _xylo_rules_float(dep.artifact.layers, x)
    agree_rules = float((out.predictions == rules.argmax(1)).mean())
    with capsys.disabled():
        print(f"\n{fname} xylo vs torch N={N} T={T}: agreement {agree:.3f}, vs float with Xylo's rules "
              f"{agree_rules:.3f}; spikes/sample xylo {out.layer_spikes['lif1.lif'].mean():.1f} + "
              f"{out.layer_spikes['lif2'].mean():.1f}, torch {float(net.spike_counts['lif1.lif'].sum()) / N:.1f} + "
              f"{float(net.spike_counts['lif2'].sum()) / N:.1f}")
    assert agree >= floor and agree_rules >= floor_rules
    assert out.logits.sum() > N and set(out.synops) == {"fc1", "lif1.w_rec", "fc2"}
    assert out.synops["lif1.w_rec"].sum() > 0 and out.info["steps_simulated"] == T + 1
    np.testing.assert_array_equal(out.logits.sum(1), out.layer_spikes["lif2"])
    from neurodeploy.measure.energy import chip_energy

    assert out.info["duration_ms"] == pytest.approx((T + 1) * DT * 1e3)  # T + 1 steps of dt = 0.1 ms
    energy = chip_energy(out, dep.profile, [], T)
    assert energy["joules_per_sample"] == pytest.approx(0.291e-6 * (T + 1) * DT * 1e3)  # 291 µW x 5.1 ms
    assert out.info["cycles_per_step"] > 0 and out.info["clock_hz_real_time"] == pytest.approx(
        out.info["cycles_per_step"] / DT)
    assert any(line.startswith("rockpool's cycle model") for line in dep.lowering)


def _xylo_rules_float(layers, x: torch.Tensor) -> np.ndarray:
    """The source's float network with Xylo's spike rule (⌊v/θ⌋ ≤ 31 spikes, subtraction)."""
    h = x.numpy().transpose(1, 0, 2)
    for layer in layers:
        n = layer.w.shape[0]
        i, v, s = np.zeros((x.shape[0], n)), np.zeros((x.shape[0], n)), np.zeros((x.shape[0], n))
        out = []
        for t in range(h.shape[0]):
            i = layer.alpha * i + h[t] @ layer.w.T + layer.b + (s @ layer.wr.T if layer.wr is not None else 0)
            v = layer.lam * v + i
            s = np.clip(np.floor(v / layer.theta), 0, 31)
            v = v - s * layer.theta
            out.append(s)
        h = np.stack(out)
    return np.minimum(h, 1).sum(0)  # output neurons fire at most once per step


@needs_xylo
@pytest.mark.slow  # ~30 s: training 50 full-batch epochs of a recurrent network through time
def test_trained_digits_network_on_xylo(tmp_path, capsys):
    """A 16 → 32 (recurrent) → 10 CubaLIF network trained here with surrogate gradients on the embedded
    digits (4×4 average-pooled, Bernoulli(x) events per step, T = 16) runs on xylo. Measured on the 397
    held-out digits: torch accuracy 0.441 (chance 0.1; a tiny, briefly trained net), xylo accuracy
    0.239, xylo agreement with torch 0.562 -> floors 0.35 and 0.46 (≈ 4 binomial σ = 0.025 below)."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    img = torch.tensor(d.images, dtype=torch.float32) / 16.0
    x4 = torch.nn.functional.avg_pool2d(img.unsqueeze(1), 2).reshape(-1, 16)
    T, dt = 16, DT
    ev = (torch.rand(len(x4), T, 16, generator=torch.Generator().manual_seed(0)) < x4.unsqueeze(1)).float()
    y = torch.tensor(d.target)
    rng = np.random.default_rng(0)
    w0, w1 = rng.normal(0, 0.3, (32, 16)), rng.normal(0, 0.3, (10, 32))
    graph = _cuba_graph([w0, w1], {0: rng.normal(0, 0.05, (32, 32))}, dt)
    net, _, _, _ = _import(graph, tmp_path, T, dt)
    opt = torch.optim.Adam([net.layers[n].weight for n in ("fc0", "fc1", "rec0")], lr=0.02)  # weights only
    tr, te = slice(0, 1400), slice(1400, None)
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(ev[tr]) * 0.3, y[tr])
        loss.backward()
        opt.step()
    with torch.no_grad():
        ref = net(ev[te]).numpy()
    acc = float((ref.argmax(1) == y[te].numpy()).mean())
    for name in ("fc0", "fc1", "rec0"):
        m = net.layers[name]
        graph.nodes[name].weight = m.weight.detach().numpy().copy()
        if m.bias is not None:
            graph.nodes[name].bias = m.bias.detach().numpy().copy()
    net2, graph2, meta2, _ = _import(graph, tmp_path, T, dt)
    with torch.no_grad():
        ref2 = net2(ev[te]).numpy()
    assert float((ref2 == ref).all(1).mean()) >= 0.95  # the trained weights went into the graph (float32 round trip)
    target = get_target("xylo")
    out = target.run(target.compile(graph2, meta2), ev[te])
    agree = float((out.predictions == ref.argmax(1)).mean())
    xacc = float((out.predictions == y[te].numpy()).mean())
    with capsys.disabled():
        print(f"\ntrained digits CubaLIF 16-32r-10: torch accuracy {acc:.3f}, xylo accuracy {xacc:.3f}, "
              f"agreement {agree:.3f} on {len(ref)} test samples")
    assert acc >= 0.35 and agree >= 0.46


@needs_xylo
@pytest.mark.parametrize("shape,match", [
    ((20, 8, 4), "layer 'fc0': 20 input channels > 16, Xylo's input channels"),
    ((12, 1000, 4), "1000 hidden neurons > 992, Xylo's hidden neurons"),
    ((12, 200, 4), "layer 'lif0': 200 neurons receive the input > 128, Xylo's input expansion neurons"),
    ((12, 8, 20), "layer 'lif1': 20 output neurons > 16, Xylo's output channels"),
])
def test_too_large_network_names_the_limit(shape, match, tmp_path):
    n_in, n_h, n_out = shape
    rng = np.random.default_rng(1)
    graph = _cuba_graph([rng.normal(size=(n_h, n_in)), rng.normal(size=(n_out, n_h))], {}, 1e-3)
    _, g, meta, _ = _import(graph, tmp_path, 8, 1e-3)
    with pytest.raises(TargetError, match=match):
        get_target("xylo").compile(g, meta)


@needs_xylo
def test_weight_memory_limit_names_the_layers(tmp_path):
    rng = np.random.default_rng(2)
    n = 180  # 380 hidden neurons (fits 992), but 100·180 + 180·100 + 180² hidden-to-hidden weights
    graph = _cuba_graph([rng.normal(size=(100, 12)), rng.normal(size=(n, 100)), rng.normal(size=(100, n)),
                         rng.normal(size=(4, 100))], {1: rng.normal(size=(n, n))}, 1e-3)
    _, g, meta, _ = _import(graph, tmp_path, 8, 1e-3)
    with pytest.raises(TargetError, match=r"weight memory: fc1 18000, fc2 18000, rec1 32400 = 68400 hidden-to-hidden "
                                          r"weights > 31744, Xylo's hidden weight memory"):
        get_target("xylo").compile(g, meta)


@needs_xylo
def test_conv_network_is_refused(digits_nir):
    from neurodeploy.ir import read_nir

    graph, meta = read_nir(digits_nir)
    with pytest.raises(UnsupportedLayerError, match="Xylo has no convolution"):
        get_target("xylo").compile(graph, meta)


def test_unavailable_simulator_is_one_line(monkeypatch):
    """xylosim missing (its import fails): the target is listed, and asking for it says why in one line."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xylosim" else real(name, *a))
    backend._import.cache_clear()
    try:
        assert "xylo" in list_targets()
        with pytest.raises(TargetError, match=r"^target 'xylo' is not available here: xylosim is not installed "
                                              r"\(pip install --no-deps xylosim==0.1.3") as e:
            get_target("xylo")
        assert "\n" not in str(e.value)
    finally:
        monkeypatch.undo()
        backend._import.cache_clear()


def test_profile_prices_once_and_declares_the_target():
    from neurodeploy.recipe import load_profile

    p = load_profile("xylo-audio3")
    assert p.targets == {"xylo": "neurodeploy.targets.xylo:XyloTarget"}
    assert [k for k, c in p.energy.items() if c.prices != "nothing"] == ["dynamic_per_ms"]
    assert all(c.source.strip() for c in p.energy.values()) and "estimate" in p.energy_caveat
    assert p.limits["inputs"] == 16 and p.limits["hidden_neurons"] == 992


@needs_xylo
@pytest.mark.slow  # a whole `neurodeploy run` (train, deploy, measure, attack): minutes on 2 busy cores
def test_run_with_xylo_target_reports_it(tmp_path):
    """`neurodeploy run digits_xylo.toml --targets torch,xylo`: the trained 16-32-10 IF network (pooled digits)
    on Xylo. Measured with the shipped recipe: torch accuracy 0.850, xylo 0.833, agreement 0.936 (359
    test digits); here with fewer epochs, floors 0.6 / 0.75."""
    import json

    from neurodeploy.cli import main
    from neurodeploy.recipe import MODELS_DIR

    text = (MODELS_DIR / "digits_xylo.toml").read_text(encoding="utf-8")
    text = text.replace("epochs = 30", "epochs = 10").replace("epochs = 4", "epochs = 1")
    text = text.replace("query_budget = 50", "query_budget = 0").replace("sweep_samples = 100", "sweep_samples = 20")
    recipe = tmp_path / "digits_xylo.toml"
    recipe.write_text(text, encoding="utf-8")
    assert main(["-q", "run", str(recipe), "--out", str(tmp_path / "run"), "--targets", "torch,xylo"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    x = report["targets"]["xylo"]
    assert x["profile"] == "xylo-audio3" and x["accuracy"] >= 0.6 and x["agreement_with_source"] >= 0.75
    assert any("readout (non-spiking Linear)" in line for line in x["lowering"])
    assert any("done by the host before the input coding" in line for line in x["lowering"])
    assert "target xylo" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
