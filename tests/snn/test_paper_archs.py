"""The paper architectures against the authors' definitions (parameter shape per layer, layer order,
output shape): hiresnn2021 vgg_spiking_nodewise.py (VGG5, VGG11) and DIET-SNN
self_models/resnet_spiking.py (ResNet12), for CIFAR's 3×32×32 input."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.recipe import ModelConfig, Recipe, load_recipe
from neurodeploy.snn import TimeDropout, create_model
from neurodeploy.snn.blocks import ResidualBlock
from neurodeploy.snn.models import Normalize, create_ann, create_snn
from neurodeploy.snn.neuron import SpikingNeuron

# (our parameter name, the authors' shape), in forward order
AUTHORS = {
    "vgg5": [("conv1.weight", (64, 3, 3, 3)), ("conv2.weight", (128, 64, 3, 3)), ("conv3.weight", (128, 128, 3, 3)),
             ("fc1.weight", (4096, 8192)), ("fc2.weight", (4096, 4096)), ("fc.weight", (10, 4096))],
    "vgg11": [("conv1.weight", (64, 3, 3, 3)), ("conv2.weight", (128, 64, 3, 3)), ("conv3.weight", (256, 128, 3, 3)),
              ("conv4.weight", (512, 256, 3, 3))] + [(f"conv{i}.weight", (512, 512, 3, 3)) for i in range(5, 9)]
             + [("fc1.weight", (4096, 8192)), ("fc2.weight", (4096, 4096)), ("fc.weight", (10, 4096))],
    "resnet12": [("conv1.weight", (64, 3, 3, 3)), ("conv2.weight", (64, 64, 3, 3)), ("conv3.weight", (64, 64, 3, 3)),
                 ("block1.conv1.weight", (64, 64, 3, 3)), ("block1.conv2.weight", (64, 64, 3, 3)),
                 ("block2.conv1.weight", (128, 64, 3, 3)), ("block2.conv2.weight", (128, 128, 3, 3)),
                 ("block2.down_conv.weight", (128, 64, 1, 1)),
                 ("block3.conv1.weight", (256, 128, 3, 3)), ("block3.conv2.weight", (256, 256, 3, 3)),
                 ("block3.down_conv.weight", (256, 128, 1, 1)),
                 ("block4.conv1.weight", (512, 256, 3, 3)), ("block4.conv2.weight", (512, 512, 3, 3)),
                 ("block4.down_conv.weight", (512, 256, 1, 1)), ("fc.weight", (10, 2048))],
}
C, P, S, D, F, L = nn.Conv2d, nn.AvgPool2d, SpikingNeuron, TimeDropout, nn.Flatten, nn.Linear
# the authors' layer order: 'A' pops the dropout before the pool; both hidden fcs keep theirs
ORDER = {
    "vgg5": [C, S, P, C, S, D, C, S, P, F, L, S, D, L, S, D, L],
    "vgg11": [C, S, P, C, S, D, C, S, P, C, S, D, C, S, D, C, S, P, C, S, D, C, S, D, F, L, S, D, L, S, D, L],
    "resnet12": [C, S, D, C, S, D, C, S, P, ResidualBlock, ResidualBlock, ResidualBlock, ResidualBlock, F, L],
}


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_parameter_shapes_and_order_match_the_authors(name):
    net = create_model(name, (3, 32, 32), 10, ModelConfig(neuron="lif", dropout=0.2), timesteps=1)
    weights = [(k, tuple(v.shape)) for k, v in net.layers.state_dict().items() if k.endswith("weight")]
    assert weights == AUTHORS[name]
    assert [type(m) for _, m in net.layers.named_children()] == ORDER[name]
    assert all(m.bias is None for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_resnet12_blocks_are_diet_snn_basic_blocks():
    net = create_model("resnet12", (3, 32, 32), 100, ModelConfig(dropout=0.2), timesteps=1)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert [b.has_down for b in blocks] == [False, True, True, True]
    assert {b.connect for b in blocks} == {"membrane"} and all(isinstance(b.drop1, TimeDropout) for b in blocks)
    assert net.layers["fc"].weight.shape == (100, 2048)


def test_no_dropout_when_disabled_and_ann_twin_uses_nn_dropout():
    assert not any(isinstance(m, TimeDropout) for m in create_model("vgg5", (3, 32, 32), 10, timesteps=1).modules())
    ann = create_model("vgg5", (3, 32, 32), 10, ModelConfig(dropout=0.2), ann=True)
    assert [n for n, m in ann.named_children() if isinstance(m, nn.Dropout)] == ["sn2_drop", "sn4_drop", "sn5_drop"]


def test_input_normalisation_is_the_first_layer_and_matches_the_authors():
    r = load_recipe("hire_vgg5_cifar10")
    assert r.model.input_mean == [0.4914, 0.4822, 0.4465] and r.model.input_std == [0.2023, 0.1994, 0.2010]
    snn, ann = create_snn(r, (3, 32, 32), 10), create_ann(r, (3, 32, 32), 10)
    for layers in (dict(snn.layers.named_children()), dict(ann.named_children())):
        first = next(iter(layers.values()))
        assert isinstance(first, Normalize)
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).reshape(1, 3, 1, 1)
    assert torch.allclose(snn.layers["normalize"](x), (x - mean) / std)
    assert "normalize.mean" not in snn.state_dict()  # checkpoint keys unchanged


def test_normalisation_needs_one_value_per_channel():
    from neurodeploy.errors import RecipeError

    r = Recipe(timesteps=1)
    r.model = ModelConfig(name="vgg5", input_mean=[0.5], input_std=[0.2])
    with pytest.raises(RecipeError, match="one value per input channel"):
        create_snn(r, (3, 32, 32), 10)


def test_paper_recipes_use_the_authors_protocol():
    for name in ("hire_vgg5_cifar10", "bptt_vgg5_cifar10", "hire_vgg5_cifar10_frozen", "hire_vgg11_cifar100",
                 "bptt_vgg11_cifar100", "hire_vgg11_cifar100_gaussian", "hire_resnet12_cifar10",
                 "hire_resnet12_cifar100"):
        r = load_recipe(name)
        assert r.attack.random_start and r.train.convert.rule == "step_max", name
        assert len(r.model.input_mean) == 3, name
    g = load_recipe("hire_vgg11_cifar100_gaussian")  # Fig. 9: VGG11 / CIFAR-100
    assert (g.model.name, g.data.name, g.train.snn.noise) == ("vgg11", "cifar100", "gaussian")
    for name in ("sew_resnet18_cifar10_max", "sew_resnet18_cifar10_avg"):
        r = load_recipe(name)
        assert r.timesteps == 10 and abs(r.attack.epsilon - 6 / 255) < 1e-12
    for name in ("sew_resnet18_cifar10dvs_max", "sew_resnet18_cifar10dvs_avg"):  # counts 0..255: 6 events
        r = load_recipe(name)
        assert r.timesteps == 10 and r.attack.epsilon == 6.0, name


def test_legacy_architectures_still_build_for_old_checkpoints():
    old = create_model("vgg5_v1", (3, 32, 32), 10, timesteps=1)
    assert old.layers["fc1"].weight.shape == (1024, 8192)
    assert sum(isinstance(m, ResidualBlock) for m in create_model("resnet12_v1", (3, 8, 8), 10, timesteps=1).modules()) == 5
