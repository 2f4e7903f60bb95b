"""NIR export of the input normalisation (x − mean)/std: a 1×1 Conv2d before the first layer
(weight diag(1/std), bias −mean/std), read back as the same Normalize module."""
import dataclasses

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import DeployMeta, load_nir_network, read_nir, to_nir
from neurodeploy.ir.to_nir import write_nir
from neurodeploy.recipe import load_recipe
from neurodeploy.snn.models import Normalize, create_snn

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]  # CIFAR-10's, as hire_vgg5_cifar10.toml


def _net():
    r = load_recipe("digits")
    r = dataclasses.replace(r, model=dataclasses.replace(r.model, input_mean=MEAN, input_std=STD))
    torch.manual_seed(0)
    net = create_snn(r, (3, 8, 8), 10)
    for n, m in net.named_nodes():
        if hasattr(m, "threshold"):
            m.threshold.data.fill_(0.3)  # fire enough that spike counts say something
    return net.eval(), DeployMeta(timesteps=net.timesteps, input_shape=[3, 8, 8])


def test_normalize_exports_as_diagonal_1x1_conv_before_the_first_layer():
    net, meta = _net()
    g = to_nir(net, meta)
    node = g.nodes["normalize"]
    assert isinstance(node, nir.Conv2d) and node.groups == 1 and node.weight.shape == (3, 3, 1, 1)
    np.testing.assert_allclose(node.weight.reshape(3, 3), np.diag(1 / np.float32(STD)), rtol=1e-6)
    np.testing.assert_allclose(node.bias, -np.float32(MEAN) / np.float32(STD), rtol=1e-6)
    assert ("input", "normalize") in g.edges and ("normalize", "conv1") in g.edges
    # the node alone computes (x - mean) / std on a [C, H, W] image (what any NIR consumer runs)
    x = torch.rand(4, 3, 8, 8)
    conv = torch.nn.functional.conv2d(x, torch.tensor(node.weight), torch.tensor(node.bias))
    assert torch.allclose(conv, net.layers["normalize"](x), atol=1e-6)


def test_normalize_round_trip_through_a_file_is_exact(tmp_path):
    net, meta = _net()
    write_nir(to_nir(net, meta), tmp_path / "m.nir")
    back, _, meta2 = load_nir_network(tmp_path / "m.nir")
    m = back.layers["normalize"]
    assert isinstance(m, Normalize)
    assert torch.equal(m.mean, net.layers["normalize"].mean) and torch.equal(m.std, net.layers["normalize"].std)
    assert "normalisation" in meta2.mapping["normalize"]
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    net.record = back.record = True
    with torch.no_grad():
        a, b = net(x), back(x)
    assert torch.equal(a, b)
    assert sum(float(v.sum()) for v in net.spike_counts.values()) > 0
    for k in net.spike_counts:
        assert torch.equal(net.spike_counts[k], back.spike_counts[k])


def test_normalize_metadata_that_contradicts_the_weights_is_refused(tmp_path):
    net, meta = _net()
    g = to_nir(net, meta)
    g.nodes["normalize"].metadata["std"] = np.float32([0.5, 0.5, 0.5])
    write_nir(g, tmp_path / "bad.nir")
    with pytest.raises(UnsupportedLayerError, match="normalize.*do not match"):
        load_nir_network(tmp_path / "bad.nir")


def test_plain_1x1_conv_stays_a_conv(tmp_path):
    net, meta = _net()
    g = to_nir(net, meta)
    g.nodes["normalize"].metadata = {}
    write_nir(g, tmp_path / "plain.nir")
    back, _, _ = load_nir_network(tmp_path / "plain.nir")
    assert isinstance(back.layers["normalize"], torch.nn.Conv2d)
    x = torch.rand(8, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(back.layers["normalize"](x), net.layers["normalize"](x), atol=1e-6)
