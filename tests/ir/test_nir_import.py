"""NIR graphs from other frameworks: sinabs-made and hand-made graphs (with a skip) imported and
simulated against sinabs' own layers on the same input; unsupported nodes named in the error."""
import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import IRError, UnsupportedLayerError
from neurodeploy.ir import from_nir, load_nir_network, read_nir
from neurodeploy.ir.importer import import_nir
from neurodeploy.snn.network import SpikingNetwork

sinabs = pytest.importorskip("sinabs")
sl = pytest.importorskip("sinabs.layers")
from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike, SingleSpike  # noqa: E402

B, T = 6, 12


def _sinabs_convnet(reset, th2: float = 1.5, spike_fn=SingleSpike, floor: bool = False) -> nn.Sequential:
    """A small sinabs convnet; ``floor`` gives every IAF min_v_mem = −threshold (what sinabs.from_nir builds)."""
    torch.manual_seed(1)

    def iaf(th: float = 1.0):
        return sl.IAFSqueeze(batch_size=B, spike_fn=spike_fn, reset_fn=reset, spike_threshold=torch.tensor(th),
                             min_v_mem=-th if floor else None)

    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        iaf(),
        sl.SumPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, bias=False),
        iaf(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10, bias=False),
        iaf(th2),
    )
    with torch.no_grad():
        net[0].weight.normal_(0.15, 0.25)
        net[3].weight.normal_(0.02, 0.12)
        net[6].weight.normal_(0.05, 0.15)
    return net


def _sinabs_run(net: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Output spike counts [B, 10] and per-IAF-layer spikes per sample, by sinabs itself."""
    sinabs.reset_states(net)
    xs = x.unsqueeze(1).expand(B, T, *x.shape[1:]).reshape(B * T, *x.shape[1:])
    counts: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: counts.__setitem__(k, o.reshape(B, -1).sum(1)))
             for k, m in enumerate(net) if isinstance(m, sl.IAFSqueeze)]
    with torch.no_grad():
        out = net(xs).reshape(B, T, -1).sum(1)
    for h in hooks:
        h.remove()
    return out, counts


def _write_sinabs_nir(net: nn.Sequential, path, x: torch.Tensor) -> None:
    xs = x.unsqueeze(1).expand(B, T, *x.shape[1:]).reshape(B * T, *x.shape[1:])
    g = sinabs.to_nir(net, xs)
    g.infer_types()  # sinabs leaves conv/pool types open; nir.write needs them
    nir.write(str(path), g)


@pytest.mark.parametrize("reset,spike_fn,convention", [(MembraneSubtract(), MultiSpike, None),
                                                       (MembraneReset(), SingleSpike, "nir")])
def test_sinabs_convnet_spike_for_spike(tmp_path, reset, spike_fn, convention):
    """sinabs IAF as sinabs.from_nir builds it (MultiSpike, MembraneSubtract, min_v_mem = −v_th) =
    the sinabs convention, detected from the file; SingleSpike with MembraneReset = NIR's own IF
    (reset to 0), asked for explicitly (a logged contradiction of the detected producer). Same
    spikes in every layer."""
    net = _sinabs_convnet(reset, spike_fn=spike_fn, floor=spike_fn is MultiSpike)
    x = torch.rand(B, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _write_sinabs_nir(net, tmp_path / "s.nir", x)
    ref, ref_layers = _sinabs_run(net, x)
    ours, graph, meta, log = import_nir(tmp_path / "s.nir", timesteps=T, convention=convention, out=tmp_path / "run")
    assert isinstance(ours, SpikingNetwork) and meta.readout == "count"
    ours.record = True
    with torch.no_grad():
        out = ours(x)
    assert torch.equal(out, ref)
    assert ref.sum() > 0 and ref.min() < ref.max()  # neither silent nor saturated
    if spike_fn is SingleSpike:
        assert ref.sum() < ref.numel() * T
    for k, spikes in ref_layers.items():
        assert torch.equal(ours.spike_counts[str(k)], spikes), f"layer {k}"
    # the run-folder file: our metadata, same network again
    again, g2, m2 = load_nir_network(tmp_path / "run" / "model.nir")
    assert m2.timesteps == T and m2.reset["1"] == ("subtract" if convention is None else "zero")
    if convention is None:  # what NIR's IF cannot say travels in our metadata
        assert m2.neurons["1"] == {"spike": "multi", "min_v": -1.0, "reset_at": "now"}
        assert m2.neurons["7"]["min_v"] == -1.5 and m2.read_as.startswith("sinabs: detected")
        assert ref.max() > T  # several spikes per step somewhere: the multi-spike path is exercised
    else:
        assert "1" not in m2.neurons and m2.read_as.startswith("nir: WARNING")
    assert "1" in m2.mapping and "dt = 1.0" in m2.mapping["1"]
    with torch.no_grad():
        assert torch.equal(again(x), ref)
    assert any("IF" in line for line in log)


def test_sinabs_file_detected_else_nir_reset_zero(tmp_path):
    """A file sinabs.to_nir wrote says so (index node names, IF with r = 1 per neuron): read as
    sinabs runs it even without a convention. The same layers under other node names say nothing:
    NIR's own definition holds (one spike, reset to v_reset = 0)."""
    net = _sinabs_convnet(MembraneSubtract())
    x = torch.rand(B, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _write_sinabs_nir(net, tmp_path / "s.nir", x)
    ours, graph, meta = load_nir_network(tmp_path / "s.nir")
    assert meta.convention == "sinabs" and meta.read_as.startswith("sinabs: detected")
    n1 = ours.layers["1"]
    assert n1.reset == "subtract" and n1.dynamics.spike == "multi" and n1.dynamics.min_v == -1.0
    renamed = nir.NIRGraph({("n" + k if k.isdigit() else k): v for k, v in graph.nodes.items()},
                           [tuple("n" + e if e.isdigit() else e for e in edge) for edge in graph.edges],
                           type_check=False)
    nir.write(str(tmp_path / "r.nir"), renamed)
    plain, _, m2 = load_nir_network(tmp_path / "r.nir")
    assert m2.convention == "nir" and m2.read_as.startswith("nir: default")
    assert plain.layers["n1"].reset == "zero" and plain.layers["n1"].dynamics.is_default


def test_sinabs_lif_exp_decay(tmp_path):
    """sinabs LIF as sinabs.from_nir builds it (α = exp(−1/τ), norm_input=False, MultiSpike,
    MembraneSubtract: v_th subtracted right after the spike, before the next decay) read with the
    sinabs convention: the same spikes, bit for bit."""
    torch.manual_seed(2)
    tau = torch.full((16,), 4.0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16, bias=False),
                        sl.LIFSqueeze(tau_mem=tau, batch_size=B, norm_input=False, spike_threshold=torch.ones(16)),
                        nn.Linear(16, 10, bias=False),
                        sl.IAFSqueeze(batch_size=B, min_v_mem=-1.0))
    with torch.no_grad():
        net[1].weight.normal_(0.03, 0.1)
        net[3].weight.normal_(0.1, 0.4)
    x = torch.rand(B, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    _write_sinabs_nir(net, tmp_path / "l.nir", x)
    ref, _ = _sinabs_run(net, x)
    ours, _, meta, lines = import_nir(tmp_path / "l.nir", timesteps=T, convention="sinabs")
    assert abs(float(ours.layers["2"].leak.detach()) - float(np.exp(-1 / 4.0))) < 1e-6
    assert ours.layers["2"].dynamics.reset_at == "now" and ours.layers["2"].dynamics.min_v is None
    with torch.no_grad():
        assert torch.equal(ours(x), ref)
    assert ref.sum() > 0 and any("read as sinabs: given by the user" in line for line in lines)


# ------------------------------------------------------------------------------------ hand-made DAG
def _skip_graph() -> nir.NIRGraph:
    """input -> c1 -> n1 -> c2 -> n2 -> c3 ; skip n1 -> c3 (NIR sums both edges) -> pool -> flat -> fc -> out."""
    rng = np.random.default_rng(0)
    f = np.float32
    w1 = rng.normal(0.2, 0.3, (4, 2, 3, 3)).astype(f)
    w2 = rng.normal(0.05, 0.2, (4, 4, 3, 3)).astype(f)
    w3 = rng.normal(0.1, 0.3, (6, 4, 1, 1)).astype(f)
    wf = rng.normal(0.0, 0.3, (5, 6 * 3 * 3)).astype(f)
    shp = (4, 6, 6)
    nodes = {
        "input": nir.Input(np.array([2, 6, 6])),
        "c1": nir.Conv2d((6, 6), w1, 1, 1, 1, 1, np.zeros(4, f)),
        "n1": nir.IF(r=np.ones(shp, f), v_threshold=np.full(shp, 1.0, f)),
        "c2": nir.Conv2d((6, 6), w2, 1, 1, 1, 1, np.full(4, 0.1, f)),
        "n2": nir.IF(r=np.ones(shp, f), v_threshold=np.full(shp, 0.8, f)),
        "c3": nir.Conv2d((6, 6), w3, 1, 0, 1, 1, np.zeros(6, f)),
        "n3": nir.LIF(tau=np.full((6, 6, 6), 4.0, f), r=np.full((6, 6, 6), 4.0, f), v_leak=np.zeros((6, 6, 6), f),
                      v_threshold=np.full((6, 6, 6), 1.2, f)),
        "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "flat": nir.Flatten({"input": np.array([6, 3, 3])}, 0, -1),
        "fc": nir.Affine(wf, np.zeros(5, f)),
        "output": nir.Output(np.array([5])),
    }
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n2", "c3"), ("n1", "c3"),
             ("c3", "n3"), ("n3", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "output")]
    return nir.NIRGraph(nodes, edges)


class _SinabsSkipNet(nn.Module):
    """The hand-made graph written with sinabs layers (sinabs' own IAF/LIF dynamics) as reference."""

    def __init__(self, g: nir.NIRGraph) -> None:
        super().__init__()
        n = g.nodes
        conv = lambda c: nn.Conv2d(c.weight.shape[1], c.weight.shape[0], c.weight.shape[2:], 1,  # noqa: E731
                                   tuple(c.padding), bias=True)
        self.c1, self.c2, self.c3 = conv(n["c1"]), conv(n["c2"]), conv(n["c3"])
        for name in ("c1", "c2", "c3"):
            getattr(self, name).weight.data = torch.tensor(n[name].weight)
            getattr(self, name).bias.data = torch.tensor(n[name].bias)
        self.n1 = sl.IAF(spike_threshold=torch.tensor(1.0), spike_fn=SingleSpike, reset_fn=MembraneReset())
        self.n2 = sl.IAF(spike_threshold=torch.tensor(0.8), spike_fn=SingleSpike, reset_fn=MembraneReset())
        # NIR LIF with Euler: v <- (1 - 1/τ) v + (r/τ) I  ==  sinabs LIF with α = 0.75, input scaled by r/τ = 1
        self.n3 = sl.LIF(tau_mem=torch.tensor(-1 / np.log(0.75)), spike_threshold=torch.tensor(1.2),
                         spike_fn=SingleSpike, reset_fn=MembraneReset(), norm_input=False)
        self.pool = sl.SumPool2d(2)
        self.fc = nn.Linear(54, 5)
        self.fc.weight.data = torch.tensor(n["fc"].weight)
        self.fc.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, C, H, W], direct input over T steps
        per_t = lambda m, h: m(h.flatten(0, 1)).unflatten(0, h.shape[:2])  # noqa: E731
        xs = x.unsqueeze(1).expand(x.shape[0], T, *x.shape[1:])
        s1 = self.n1(per_t(self.c1, xs))
        s2 = self.n2(per_t(self.c2, s1))
        s3 = self.n3(per_t(self.c3, s1 + s2))
        self.counts = {k: s.flatten(1).sum(1) for k, s in (("n1", s1), ("n2", s2), ("n3", s3))}
        y = per_t(self.fc, per_t(self.pool, s3).flatten(2))
        return y.sum(1)


def test_handmade_skip_graph_matches_sinabs(tmp_path):
    g = _skip_graph()
    nir.write(str(tmp_path / "skip.nir"), g)
    net, graph, meta, log = import_nir(tmp_path / "skip.nir", timesteps=T, out=tmp_path / "run")
    assert not net.is_chain and meta.readout == "sum"
    assert abs(float(net.module("n3").leak.detach()) - 0.75) < 1e-6
    ref_net = _SinabsSkipNet(g)
    x = torch.rand(B, 2, 6, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = ref_net(x)
        net.record = True
        out = net(x)
    assert torch.allclose(out, ref, atol=1e-4)
    for k in ("n1", "n2", "n3"):
        assert torch.equal(net.spike_counts[k], ref_net.counts[k]), k
        assert ref_net.counts[k].sum() > 0, k
    assert [n for n, _ in net.neurons()] == ["n1", "n2", "n3"]
    # run folder file keeps the skip and runs the same
    again, g2, m2 = load_nir_network(tmp_path / "run" / "model.nir")
    assert ("n1", "c3") in [tuple(e) for e in g2.edges] and not again.is_chain
    with torch.no_grad():
        assert torch.allclose(again(x), ref, atol=1e-4)


def test_graph_network_training_interface():
    """Surrogate gradients flow through the graph network; rate coding and events work."""
    net = from_nir(_skip_graph(), dt=1.0)
    net.timesteps = 4
    x = torch.rand(3, 2, 6, 6, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and net.module("c1").weight.grad is not None
    net.encoding = "rate"
    net.generator = torch.Generator().manual_seed(0)
    assert net(x.detach()).shape == (3, 5)
    net.encoding = "events"
    assert net((torch.rand(3, 4, 2, 6, 6) < 0.3).float()).shape == (3, 5)


def test_dt_mapping_recorded():
    g = _skip_graph()
    net = from_nir(g, dt=0.5)  # LIF τ = 4: λ = 1 − 0.5/4, gain r·dt/τ = 0.5 -> threshold 1.2 / 0.5
    assert abs(float(net.module("n3").leak.detach()) - 0.875) < 1e-6
    assert abs(float(net.module("n3").threshold.detach()) - 2.4) < 1e-5
    assert abs(float(net.module("n1").threshold.detach()) - 2.0) < 1e-6  # IF: gain r·dt = 0.5
    with pytest.raises(UnsupportedLayerError, match=r"'n3' \(LIF\).*smaller than dt"):
        from_nir(g, dt=8.0)


# ------------------------------------------------------------------------------------ other node types
def test_li_cubalif_scale_threshold_nodes(tmp_path):
    """CubaLIF, LI readout, Scale and Threshold nodes import, run, and survive the canonical re-export."""
    f = np.float32
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(0.2, 0.3, (8, 4)).astype(f), rng.normal(0, 0.5, (3, 8)).astype(f)
    nodes = {
        "input": nir.Input(np.array([4])),
        "scale": nir.Scale(np.array([1.0, 2.0, 0.5, 1.0], f)),
        "fc1": nir.Linear(w1),
        "cuba": nir.CubaLIF(tau_syn=np.full(8, 2.0, f), tau_mem=np.full(8, 4.0, f), r=np.full(8, 4.0, f),
                            v_leak=np.zeros(8, f), v_threshold=np.full(8, 0.5, f)),
        "thr": nir.Threshold(np.full(8, 0.5, f)),
        "fc2": nir.Linear(w2),
        "li": nir.LI(tau=np.full(3, 2.0, f), r=np.full(3, 2.0, f), v_leak=np.zeros(3, f)),
        "output": nir.Output(np.array([3])),
    }
    edges = [("input", "scale"), ("scale", "fc1"), ("fc1", "cuba"), ("cuba", "thr"), ("thr", "fc2"),
             ("fc2", "li"), ("li", "output")]
    nir.write(str(tmp_path / "c.nir"), nir.NIRGraph(nodes, edges))
    net, graph, meta, _ = import_nir(tmp_path / "c.nir", timesteps=6)
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(0))
    # reference: explicit Euler loops
    i = v = torch.zeros(5, 8)
    li = torch.zeros(5, 3)
    ref = torch.zeros(5, 3)
    xin = x * torch.tensor([1.0, 2.0, 0.5, 1.0])
    for _ in range(6):
        i = 0.5 * i + 0.5 * (xin @ torch.tensor(w1).T)
        v = 0.75 * v + 1.0 * i
        s = (v > 0.5).float()
        v = v * (1 - s)
        li = 0.5 * li + 1.0 * ((s > 0.5).float() @ torch.tensor(w2).T)
        ref += li
    with torch.no_grad():
        assert torch.allclose(net(x), ref, atol=1e-5)
    assert {type(n).__name__ for n in graph.nodes.values()} >= {"CubaLIF", "LI", "Scale", "Threshold"}


def test_unsupported_nodes_named(tmp_path):
    f = np.float32
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([4])),
               "d": nir.Delay(np.ones(4, f)),
               "output": nir.Output(np.array([4]))},
        edges=[("input", "d"), ("d", "output")])
    nir.write(str(tmp_path / "d.nir"), g)
    with pytest.raises(UnsupportedLayerError, match=r"d\.nir: node 'd' of type Delay cannot be run: delays"):
        import_nir(tmp_path / "d.nir")
    bad = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([4])),
               "lif": nir.LIF(tau=np.full(4, 2.0, f), r=np.ones(4, f), v_leak=np.ones(4, f), v_threshold=np.ones(4, f)),
               "output": nir.Output(np.array([4]))},
        edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(UnsupportedLayerError, match=r"node 'lif' \(LIF\): v_leak != 0"):
        from_nir(bad)
    taus = np.array([1.0, 2.0, 3.0, 4.0], f)
    bad.nodes["lif"] = nir.LIF(tau=taus, r=np.ones(4, f), v_leak=np.zeros(4, f), v_threshold=np.ones(4, f))
    with pytest.raises(UnsupportedLayerError, match=r"'lif' \(LIF\): τ differs between neurons"):
        from_nir(bad)


def test_cycles_and_two_outputs_refused():
    f = np.float32
    nodes = {"input": nir.Input(np.array([2])), "a": nir.Linear(np.eye(2, dtype=f)),
             "b": nir.Linear(np.eye(2, dtype=f)), "output": nir.Output(np.array([2]))}
    g = nir.NIRGraph(nodes, [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")], type_check=False)
    with pytest.raises(IRError, match="cycle"):
        from_nir(g)
    nodes2 = dict(nodes, out2=nir.Output(np.array([2])))
    g2 = nir.NIRGraph(nodes2, [("input", "a"), ("a", "output"), ("input", "b"), ("b", "out2")], type_check=False)
    with pytest.raises(UnsupportedLayerError, match="one Output"):
        from_nir(g2)


def test_shape_mismatch_names_node():
    f = np.float32
    g = nir.NIRGraph({"input": nir.Input(np.array([4])), "fc": nir.Linear(np.ones((2, 5), f)),
                      "output": nir.Output(np.array([2]))}, [("input", "fc"), ("fc", "output")], type_check=False)
    with pytest.raises(IRError, match=r"node 'fc' \(Linear\) cannot take its input of shape \(4,\)"):
        from_nir(g)


def test_read_nir_still_reports_missing(tmp_path):
    with pytest.raises(IRError, match="not found"):
        read_nir(tmp_path / "none.nir")


def test_trained_digits_model_via_sinabs(trained_snn, digits_data, tmp_path):
    """The converted digits SNN rebuilt with sinabs layers (IAF, MembraneSubtract, MultiSpike; avg pool
    as SumPool2d with the next weights / 4), exported by sinabs.to_nir, imported with the sinabs
    convention: identical logits and spike counts as sinabs' own simulation on the test set."""
    L = trained_snn.layers
    Tn, n = trained_snn.timesteps, len(digits_data.x_test)

    def iaf(name):  # as sinabs.from_nir builds an IF (sinabs/nir.py:87-92): MultiSpike, floor −v_th
        th = L[name].threshold.detach().clone()
        return sl.IAFSqueeze(batch_size=n, reset_fn=MembraneSubtract(), spike_threshold=th, min_v_mem=-th)

    conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    conv2.weight.data = L["conv2"].weight.detach() / 4
    fc = nn.Linear(L["fc"].in_features, 10, bias=False)
    fc.weight.data = L["fc"].weight.detach() / 4
    snet = nn.Sequential(L["conv1"], iaf("sn1"), sl.SumPool2d(2), conv2, iaf("sn2"), sl.SumPool2d(2),
                         nn.Flatten(), fc)
    x = digits_data.x_test
    xs = x.unsqueeze(1).expand(n, Tn, *x.shape[1:]).reshape(n * Tn, *x.shape[1:])
    g = sinabs.to_nir(snet, xs)
    g.infer_types()
    nir.write(str(tmp_path / "digits_sinabs.nir"), g)
    sinabs.reset_states(snet)
    counts = {}
    hooks = [snet[k].register_forward_hook(lambda m, i, o, k=k: counts.__setitem__(str(k), o.reshape(n, -1).sum(1)))
             for k in (1, 4)]
    with torch.no_grad():
        ref = snet(xs).reshape(n, Tn, -1).sum(1)
    for h in hooks:
        h.remove()
    ours, _, meta, _ = import_nir(tmp_path / "digits_sinabs.nir", timesteps=Tn, convention="sinabs")
    ours.record = True
    with torch.no_grad():
        out = ours(x)
    assert meta.readout == "sum"
    assert torch.allclose(out, ref, atol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    for k in ("1", "4"):
        assert torch.equal(ours.spike_counts[k], counts[k]), k
