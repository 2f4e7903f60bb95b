"""Every registered model builds and runs as an SNN and as its ANN twin (small inputs for speed)."""
from __future__ import annotations

import pytest
import torch

from neurodeploy.recipe import ModelConfig
from neurodeploy.snn import SpikingNetwork, create_model, list_models
from neurodeploy.snn.blocks import ResidualBlock
from neurodeploy.train import copy_ann_weights, init_thresholds

# the smallest input each architecture accepts (VGG11 pools 5 times)
_SHAPES = {"vgg11": (3, 32, 32), "vgg11_v1": (3, 32, 32), "vgg5": (3, 8, 8), "resnet12": (3, 8, 8), "sew_resnet18": (2, 16, 16)}


@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_runs(name):
    shape = _SHAPES.get(name, (1, 8, 8))
    cfg = ModelConfig(dropout=0.2 if name != "sew_digits" else 0.0)
    snn = create_model(name, shape, 7, cfg, timesteps=2)
    ann = create_model(name, shape, 7, cfg, ann=True)
    assert isinstance(snn, SpikingNetwork)
    x = torch.rand(2, *shape)
    snn.eval()
    ann.eval()
    with torch.no_grad():
        assert snn(x).shape == (2, 7) and ann(x).shape == (2, 7)
    copy_ann_weights(ann, snn)  # same parameter names in both forms
    names = [n for n, _ in snn.neurons()]
    assert len(names) == len(set(names)) >= 1
    if name in ("digits_convnet", "sew_digits", "resnet12"):
        th = init_thresholds(snn, x, 99.7, 1.0)
        assert set(th) == set(names)  # nested block neurons are calibrated too


def test_sew_stem_pooling_selectable():
    for pooling, cls in (("max", torch.nn.MaxPool2d), ("avg", torch.nn.AvgPool2d)):
        for name, shape in (("sew_digits", (1, 8, 8)), ("sew_resnet18", (3, 32, 32))):
            net = create_model(name, shape, 10, ModelConfig(pooling=pooling), timesteps=1)
            assert isinstance(net.layers["pool1"], cls)


def test_paper_nets_are_bias_free_with_time_dropout():
    from neurodeploy.snn import TimeDropout

    for name, shape in (("vgg5", (3, 32, 32)), ("resnet12", (3, 32, 32))):
        net = create_model(name, shape, 10, ModelConfig(dropout=0.2), timesteps=1)
        convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert convs and all(m.bias is None for m in convs)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
        assert sum(isinstance(m, TimeDropout) for m in net.modules()) >= 3  # the authors drop none before a pool
    blocks = [m for m in create_model("resnet12", (3, 32, 32), 10, timesteps=1).modules()
              if isinstance(m, ResidualBlock)]
    assert len(blocks) == 4 and {b.connect for b in blocks} == {"membrane"}
