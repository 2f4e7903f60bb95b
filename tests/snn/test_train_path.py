"""The default training path (fused neuron recurrence, dense GEMMs through numpy's BLAS, fused Adam)
against the reference: the eager step-by-step ``neuron_step`` path with torch's own GEMM.

Exactness: the fused recurrence repeats neuron_step's forward arithmetic in the same order, so with
torch's GEMM the spikes and logits are bit-identical; its backward is written by hand in another
order (the ATan derivative as 1/(1/k + w²), addcmul), so gradients agree to float rounding
(rtol 1e-4). numpy's BLAS sums each dot product in another order than MKL, so with it the logits
agree to rtol 1e-5 (a few ulps of float32 over a 256-term dot product) and gradients to rtol 1e-4;
spikes stay equal on these seeded nets (no potential lands within rounding of the threshold).
Reused buffers (snn/buffers.py) and the average pool's own backward (snn/pool.py) change no number.
"""
import copy

import pytest
import torch
from torch import nn

from neurodeploy.snn import NeuronSpec, SpikingNeuron
from neurodeploy.snn import blas
from neurodeploy.snn.graph import SpikingNetwork
from neurodeploy.snn.neuron import _spike_floor
from neurodeploy.snn.surrogate import SURROGATES, make_surrogate
from neurodeploy.train.common import make_optimizer


def _net(leak: float, reset: str, surrogate: str, T: int = 4) -> SpikingNetwork:
    torch.manual_seed(0)
    ns = NeuronSpec(threshold=0.9, leak=leak, reset=reset)
    sg = make_surrogate(surrogate)
    layers = [("conv1", nn.Conv2d(2, 8, 3, padding=1, bias=False)), ("sn1", SpikingNeuron(ns, sg)),
              ("pool1", nn.AvgPool2d(2)), ("flatten", nn.Flatten()),
              ("fc1", nn.Linear(8 * 8 * 8, 256, bias=False)), ("sn2", SpikingNeuron(ns, sg)),
              ("fc", nn.Linear(256, 5, bias=True))]
    net = SpikingNetwork(layers, T, "direct", "sum", (2, 16, 16))
    with torch.no_grad():  # scale so that both layers fire at a moderate rate
        net.layers["conv1"].weight.mul_(3.0)
        net.layers["fc1"].weight.mul_(6.0)
    return net


def _run(net: SpikingNetwork, x: torch.Tensor, y: torch.Tensor):
    net.record = True
    out = net(x)
    net.record = False
    nn.CrossEntropyLoss()(out, y).backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    return {k: v.clone() for k, v in net.spike_maps.items()}, out.detach(), grads


def _reference(net: SpikingNetwork) -> SpikingNetwork:
    ref = copy.deepcopy(net)
    for _, n in ref.neurons():
        n.fused = False
    return ref


@pytest.fixture
def backend(monkeypatch):
    def use(name: str) -> None:
        monkeypatch.setattr(blas, "backend", lambda: name)
    return use


@pytest.mark.parametrize("surrogate", SURROGATES.names())
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("leak", [1.0, 0.85], ids=["IF", "LIF"])
def test_default_path_matches_step_by_step(surrogate, reset, leak, backend):
    net = _net(leak, reset, surrogate)
    ref = _reference(net)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 2, 16, 16, generator=g), torch.randint(0, 5, (8,), generator=g)
    backend("torch")
    s_ref, o_ref, g_ref = _run(ref, x, y)
    s_t, o_t, g_t = _run(copy.deepcopy(net), x, y)
    backend("numpy")
    assert blas.usable(net.layers["fc1"], torch.zeros(32, 512))  # the BLAS path is really taken
    s_n, o_n, g_n = _run(net, x, y)
    for name, m in s_ref.items():
        assert 0 < m.sum() < m.numel() * 4, name  # a real mix of spikes and silence over T = 4
        assert torch.equal(s_t[name], m), name
        assert torch.equal(s_n[name], m), name
    assert torch.equal(o_t, o_ref)  # same operations in the same order: bit for bit
    assert torch.allclose(o_n, o_ref, rtol=1e-5, atol=1e-5)
    assert set(g_t) == set(g_ref) == set(g_n) and {"layers.sn1.threshold", "layers.sn1.leak", "layers.fc1.weight"} <= set(g_ref)
    for k in g_ref:
        scale = float(g_ref[k].abs().max())
        assert scale > 0, k
        for got in (g_t[k], g_n[k]):
            assert torch.allclose(got, g_ref[k], rtol=1e-4, atol=1e-5 * scale), k


def test_blas_linear_forward_backward(backend):
    backend("numpy")
    torch.manual_seed(3)
    lin = nn.Linear(300, 200, bias=True)
    ref = copy.deepcopy(lin)
    x = torch.randn(40, 300, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    assert blas.usable(lin, x)
    y = blas.linear(lin, x)
    yr = ref(xr)
    assert torch.allclose(y, yr, rtol=1e-5, atol=1e-5)
    y.sum().backward()  # a stride-0 upstream gradient
    yr.sum().backward()
    assert torch.allclose(x.grad, xr.grad, rtol=1e-5, atol=1e-5)
    assert torch.allclose(lin.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(lin.bias.grad, ref.bias.grad)
    with torch.no_grad():
        assert torch.allclose(blas.linear(lin, x), yr, rtol=1e-5, atol=1e-5)


def test_blas_linear_not_used_when_observed_or_small(backend):
    backend("numpy")
    lin = nn.Linear(300, 200, bias=False)
    x = torch.randn(40, 300)
    assert blas.usable(lin, x)
    assert not blas.usable(lin, x[:1])  # 1·300·200 MACs: too small to matter
    assert not blas.usable(lin, x.double())
    h = lin.register_forward_hook(lambda *a: None)  # counting/recording hooks see the real call
    assert not blas.usable(lin, x)
    h.remove()
    backend("torch")
    assert not blas.usable(lin, x)


@pytest.mark.parametrize("th", [1.0, 0.37, 1.7, 1e-3, 3.3e4])
def test_spike_floor_is_the_division_test(th):
    t = torch.tensor(th)
    floor = _spike_floor(t)
    assert floor is not None
    near = t * (1 + torch.arange(-64, 65, dtype=torch.float32) * 2 ** -23)
    u = torch.cat([near, torch.nextafter(near, torch.tensor(1e9)), torch.randn(10000) * th * 2])
    assert torch.equal(u >= floor, (u / t - 1.0) > 0)
    assert _spike_floor(torch.ones(3)) is None  # per-neuron thresholds keep the division


def test_fused_adam_is_adam():
    torch.manual_seed(4)
    a = nn.Linear(50, 20)
    b = copy.deepcopy(a)
    oa = make_optimizer(a.parameters(), "adam", 1e-2, 1e-4)
    ob = torch.optim.Adam(b.parameters(), lr=1e-2, weight_decay=1e-4, foreach=True)
    assert oa.defaults["fused"] is True
    for _ in range(5):
        x = torch.randn(16, 50)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad(set_to_none=True)
            m(x).square().mean().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7)


def test_avg_pool2x2_is_avg_pool2d():
    from neurodeploy.snn import pool

    torch.manual_seed(5)
    x = torch.randn(6, 5, 8, 12, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    layer = nn.AvgPool2d(2)
    assert pool.usable(layer, x)
    y, yr = pool.avg_pool2x2(x), nn.functional.avg_pool2d(xr, 2)
    assert torch.equal(y, yr)  # the kernel's sums in its order
    g = torch.randn_like(y)
    y.backward(g)
    yr.backward(g)
    assert torch.equal(x.grad, xr.grad)
    assert not pool.usable(layer, x[..., :7, :])  # odd height
    assert not pool.usable(nn.AvgPool2d(2, ceil_mode=True), x)
    assert not pool.usable(nn.AvgPool2d(3), x)
    assert not pool.usable(nn.MaxPool2d(2), x)


def test_avg_pool2x2_backward_on_large_maps_is_the_kernels(monkeypatch):
    from neurodeploy.snn import pool

    monkeypatch.setattr(pool, "MAX_NUMEL", 100)  # the branch with the kernel's own forward
    torch.manual_seed(6)
    x = torch.randn(3, 4, 6, 10, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    assert pool.usable(nn.AvgPool2d(2), x)
    y, yr = pool.avg_pool2x2(x), nn.functional.avg_pool2d(xr, 2)
    assert torch.equal(y, yr)
    g = torch.randn_like(y)
    g[0, 0, 0, 0], g[0, 0, 0, 1] = -0.0, 1e-40  # a signed zero and a subnormal: g/4 exactly
    y.backward(g)
    yr.backward(g)
    assert torch.equal(x.grad, xr.grad)


def test_buffers_reuse_only_what_nobody_holds(monkeypatch):
    from neurodeploy.snn import buffers

    monkeypatch.setattr(buffers, "MIN_BYTES", 1)
    buffers.clear()
    a = buffers.empty((4, 8))
    a.fill_(1.0)
    b = buffers.empty((32,))  # same size, but a still holds the first storage
    assert a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
    kept = a[1:].t()  # a view keeps the storage alive after a goes
    ptr = a.untyped_storage().data_ptr()
    del a
    c = buffers.empty((2, 16))
    assert c.untyped_storage().data_ptr() != ptr
    assert torch.equal(kept, torch.ones(3, 8).t())  # untouched
    del kept, c
    d = buffers.empty((8, 4), torch.float32)
    assert d.untyped_storage().data_ptr() in (ptr, b.untyped_storage().data_ptr()) and d.is_contiguous()
    assert buffers.held_bytes() == 3 * 128
    monkeypatch.setattr(buffers, "MAX_BYTES", 3 * 128)  # full, all in use: a plain tensor, not pooled
    e = buffers.empty((4, 8))
    assert buffers.held_bytes() == 3 * 128 and e.shape == (4, 8)
    del b, d, e
    f = buffers.empty((64,))  # another size: free storages are dropped to make room
    assert buffers.held_bytes() <= 3 * 128 and f.shape == (64,)
    buffers.clear()
    assert buffers.held_bytes() == 0


def test_training_steps_with_reused_buffers_are_the_same(monkeypatch, backend):
    """Three optimiser steps with every buffer pooled (saved tensors, spikes, gradients reused across
    steps) end on the same weights, bit for bit, as with fresh tensors."""
    from neurodeploy.snn import buffers

    backend("numpy")
    net = _net(0.85, "subtract", "atan")
    g = torch.Generator().manual_seed(2)
    data = [(torch.rand(8, 2, 16, 16, generator=g), torch.randint(0, 5, (8,), generator=g)) for _ in range(3)]
    out = {}
    for name, min_bytes in (("fresh", 1 << 62), ("pooled", 1)):
        monkeypatch.setattr(buffers, "MIN_BYTES", min_bytes)
        buffers.clear()
        m = copy.deepcopy(net)
        opt = make_optimizer(m.parameters(), "adam", 1e-2, 0.0)
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            nn.CrossEntropyLoss()(m(x), y).backward()
            opt.step()
        out[name] = [p.detach().clone() for p in m.parameters()]
        if name == "pooled":
            assert buffers.held_bytes() > 0  # the pool was really used
    buffers.clear()
    assert all(torch.equal(a, b) for a, b in zip(out["fresh"], out["pooled"]))
