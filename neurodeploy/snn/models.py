"""The model zoo: a registry of architectures, each usable as an SNN and as its ANN twin.

A model function returns a *spec*: an ordered list of ``(name, module)`` where ``None`` marks a
neuron slot. The SNN fills the slots with :class:`SpikingNeuron`, the ANN twin with ReLU; all
other layers (and their parameter names) are shared, so ANN weights load into the SNN by name.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import RecipeError
from ..recipe import ModelConfig, Recipe
from ..registry import Registry
from .network import SpikingNetwork, build_layers
from .neuron import NeuronSpec
from .surrogate import make_surrogate

Spec = list[tuple[str, "nn.Module | None"]]
#: Every architecture by name (a spec function ``(cfg, input_shape, num_classes) -> Spec``).
MODELS: Registry[Callable[..., Spec]] = Registry("model")


def register_model(fn: Callable[..., Spec]) -> Callable[..., Spec]:
    """Decorator: register a spec function under its own name (a taken name raises RegistryError)."""
    return MODELS.add(fn.__name__, fn)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern."""
    return MODELS.names(pattern)


def model_spec(name: str, cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """The layer spec of the registered model ``name`` (RegistryError listing the models if unknown)."""
    return MODELS.get(name)(cfg, input_shape, num_classes)


def _pool(cfg: ModelConfig, k: int = 2) -> nn.Module:
    return nn.MaxPool2d(k) if cfg.pooling == "max" else nn.AvgPool2d(k)


@register_model
def digits_convnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Small conv net for 8×8 digits: conv(16·width)-pool-conv(32·width)-pool-fc, bias-free (HIRE-SNN style)."""
    c, h, w = input_shape
    c1, c2 = 16 * cfg.width, 32 * cfg.width
    return [
        ("conv1", nn.Conv2d(c, c1, 3, padding=1, bias=False)),
        ("sn1", None),
        ("pool1", _pool(cfg)),
        ("conv2", nn.Conv2d(c1, c2, 3, padding=1, bias=False)),
        ("sn2", None),
        ("pool2", _pool(cfg)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(c2 * (h // 4) * (w // 4), num_classes, bias=False)),
    ]


@register_model
def digits_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Two-layer perceptron for small inputs (fits every target, including Speck's limits)."""
    n = 1
    for d in input_shape:
        n *= d
    return [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(n, 64, bias=False)),
        ("sn1", None),
        ("fc2", nn.Linear(64, num_classes, bias=False)),
    ]


@register_model
def digits_pooled_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """2×2 average pooling, then a two-layer perceptron: 8×8 digits become 16 inputs, which fits
    Xylo's 16 input channels (the pooling is done by the host before the input coding there)."""
    c, h, w = input_shape
    return [
        ("pool", nn.AvgPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(c * (h // 2) * (w // 2), 32 * cfg.width, bias=False)),
        ("sn1", None),
        ("fc2", nn.Linear(32 * cfg.width, num_classes, bias=False)),
    ]


def neuron_spec(cfg: ModelConfig) -> NeuronSpec:
    return NeuronSpec(
        threshold=1.0,
        leak=1.0 if cfg.neuron == "if" else cfg.leak,
        reset=cfg.reset,
        train_threshold=cfg.train_threshold,
        train_leak=cfg.train_leak and cfg.neuron == "lif",
    )


class Normalize(nn.Module):
    """Per-channel input normalisation ``(x - mean) / std`` as the model's first layer, so an attack
    perturbs pixels in [0, 1] and the model sees normalised images, as HIRE-SNN's ``validate_pgd``
    does (ksouvik52/hiresnn2021 snn_free_nonorm_for_test_purpose.py: ``in1 = invar - mean;
    in1.div_(std)`` before ``model(in1)``). Works on ``[..., C, H, W]``; buffers are not stored in
    checkpoints (the values come from the recipe's ``model.input_mean`` / ``model.input_std``)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class DropSlot(nn.Module):
    """A dropout placed by the model spec itself (the authors' placement), filled by ``build``:
    time-dropout (one mask per sample over T) in the SNN, ``nn.Dropout`` in the ANN twin. A spec
    holding DropSlots gets no automatic dropout after every neuron slot."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def build(self, neuron: NeuronSpec, surrogate, ann: bool) -> nn.Module:
        from .network import TimeDropout

        return nn.Dropout(self.p) if ann else TimeDropout(self.p)


def _layers(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int, ann: bool) -> list[tuple[str, nn.Module]]:
    """The recipe's model as named layers (SNN or ANN twin), with the input normalisation first."""
    cfg = recipe.model
    spec = model_spec(cfg.name, cfg, input_shape, num_classes)
    own_dropout = any(isinstance(m, DropSlot) for _, m in spec)
    drop = 0.0 if own_dropout else cfg.dropout
    if ann:
        layers = build_layers(spec, NeuronSpec(), None, ann=True, dropout=drop)
    else:
        surrogate = make_surrogate(cfg.surrogate, cfg.surrogate_scale)
        layers = build_layers(spec, neuron_spec(cfg), surrogate, ann=False, dropout=drop)
    if cfg.input_mean or cfg.input_std:
        c = input_shape[-3] if len(input_shape) >= 3 else 0
        if len(cfg.input_mean) != c or len(cfg.input_std) != c:
            raise RecipeError(f"{recipe.source_file or recipe.name}: model.input_mean and model.input_std need one "
                              f"value per input channel ({c}), got {len(cfg.input_mean)} and {len(cfg.input_std)}")
        layers.insert(0, ("normalize", Normalize(cfg.input_mean, cfg.input_std)))
    return layers


def create_snn(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> SpikingNetwork:
    """The recipe's model as an SNN (thresholds 1.0 until conversion sets them)."""
    layers = _layers(recipe, input_shape, num_classes, ann=False)
    return SpikingNetwork(layers, recipe.timesteps, recipe.data.encoding, "sum", input_shape)


def create_ann(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """The recipe's model as its ANN twin (ReLU in the neuron slots)."""
    from collections import OrderedDict

    layers = _layers(recipe, input_shape, num_classes, ann=True)
    if recipe.data.encoding == "events":  # the ANN sees the mean event frame (the SNN's mean input)
        layers.insert(0, ("frame_mean", FrameMean()))
    return nn.Sequential(OrderedDict(layers))


class FrameMean(nn.Module):
    """ANN twin's input layer for event data: ``[B, T, C, H, W] -> [B, C, H, W]``, the mean over T
    (the SNN receives the frames one per step, so its mean input current is this frame's)."""

    def forward(self, x):
        return x.mean(1)


# ----------------------------------------------------------------------------- paper model zoo
# HIRE-SNN (Kundu et al., ICCV 2021) and DIET-SNN (Rathi & Roy, 2021) as in the authors' code:
# bias-free convolutions and linears, pooling 2×2 (``model.pooling``; the authors' 'A' is average),
# a per-layer threshold and leak in every neuron, dropout (``model.dropout``, 0.2 in the authors'
# code; one mask per sample reused over time) where the authors put it: after every spiking layer
# except one directly followed by a pool (vgg_spiking_nodewise.py ``_make_layers``: an 'A' entry
# pops the dropout before appending AvgPool2d), and after both hidden classifier layers.
def _drop(cfg: ModelConfig, name: str) -> list[tuple[str, "nn.Module | None"]]:
    return [(f"{name}_drop", DropSlot(cfg.dropout))] if cfg.dropout > 0 else []


def _vgg(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, plan: list, fcs: list[int]) -> Spec:
    """A VGG of the authors' ``cfg`` table (ints: 3×3 conv channels, "A": 2×2 pool) with the hidden
    classifier layers ``fcs``; the classifier input is C·H·W after the last pool (8192 for CIFAR's
    32×32 in VGG5 and VGG11, the authors' ``nn.Linear(512*2*2*4, 4096)``)."""
    c, h, w = input_shape
    spec: Spec = []
    n_conv = n_sn = n_pool = 0
    for i, v in enumerate(plan):
        if v == "A":
            n_pool += 1
            spec.append((f"pool{n_pool}", _pool(cfg)))
            h, w = h // 2, w // 2
            continue
        n_conv += 1
        n_sn += 1
        spec += [(f"conv{n_conv}", nn.Conv2d(c, v, 3, padding=1, bias=False)), (f"sn{n_sn}", None)]
        if i + 1 >= len(plan) or plan[i + 1] != "A":
            spec += _drop(cfg, f"sn{n_sn}")
        c = v
    spec.append(("flatten", nn.Flatten()))
    n_in = c * h * w
    for i, f in enumerate(fcs, 1):
        n_sn += 1
        spec += [(f"fc{i}", nn.Linear(n_in, f, bias=False)), (f"sn{n_sn}", None)] + _drop(cfg, f"sn{n_sn}")
        n_in = f
    spec.append(("fc", nn.Linear(n_in, num_classes, bias=False)))
    return spec


#: The authors' configurations (hiresnn2021 vgg_spiking_nodewise.py ``cfg``, lines 14-23).
VGG_CFG: dict[str, list] = {
    "vgg5": [64, "A", 128, 128, "A"],
    "vgg11": [64, "A", 128, 256, "A", 512, 512, 512, "A", 512, 512],
}


@register_model
def vgg5(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """VGG5 (HIRE-SNN): conv64-A-conv128-conv128-A, classifier 8192→4096→4096→classes with dropout
    after both hidden layers (hiresnn2021 vgg_spiking_nodewise.py, the ``VGG5 or VGG11`` branch)."""
    return _vgg(cfg, input_shape, num_classes, VGG_CFG["vgg5"], [4096, 4096])


@register_model
def vgg11(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """VGG11 (HIRE-SNN): ``[64,A,128,256,A,512,512,512,A,512,512]`` (3 pools), classifier
    8192→4096→4096→classes (hiresnn2021 vgg_spiking_nodewise.py)."""
    return _vgg(cfg, input_shape, num_classes, VGG_CFG["vgg11"], [4096, 4096])


def _spatial(h: int, stride: int) -> int:
    """Output size of a 3×3 conv with padding 1 (or 1×1 conv, padding 0) at ``stride``."""
    return (h - 1) // stride + 1


@register_model
def resnet12(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """ResNet12 of DIET-SNN (nitin-rathi/DIET-SNN self_models/resnet_spiking.py, ``cfg['resnet12'] =
    [1,1,1,1]``): stem conv64-SN-drop-conv64-SN-drop-conv64-SN-pool2 (``pre_process``), one basic
    block per stage (64, 128/2, 256/2, 512/2; membrane-add residual ``mem += conv2(out) +
    identity(inp)``, 1×1 bias-free shortcut where the shape changes, dropout after the first
    neuron), no global pool: fc(512·2·2 → classes) for 32×32 input = 3 + 4·2 + 1 = 12 weight layers."""
    from .blocks import ResidualBlock

    c, h, w = input_shape
    spec: Spec = []
    for i in (1, 2, 3):
        spec += [(f"conv{i}", nn.Conv2d(c, 64, 3, padding=1, bias=False)), (f"sn{i}", None)]
        spec += _drop(cfg, f"sn{i}") if i < 3 else []
        c = 64
    spec.append(("pool1", _pool(cfg)))
    h, w = h // 2, w // 2
    cin = 64
    for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
        spec.append((f"block{i}", ResidualBlock(cin, cout, stride, "membrane", batchnorm=False, dropout=cfg.dropout)))
        cin, h, w = cout, _spatial(h, stride), _spatial(w, stride)
    spec += [("flatten", nn.Flatten()), ("fc", nn.Linear(cin * h * w, num_classes, bias=False))]
    return spec


# Architectures before issue 19 (not the authors'), kept so their checkpoints still load: give the
# old run's recipe ``model.name = "vgg5_v1"`` etc. Dropout after every spiking layer.
@register_model
def vgg5_v1(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Pre-issue-19 VGG5: conv64-P-conv128-conv128-P-fc1024-fc."""
    return _vgg_v1(input_shape, num_classes, [64, "A", 128, 128, "A"], [1024], cfg)


@register_model
def vgg11_v1(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Pre-issue-19 VGG11: config A with 5 pools, fc4096-fc4096-fc."""
    return _vgg_v1(input_shape, num_classes, [64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"],
                   [4096, 4096], cfg)


def _vgg_v1(input_shape: tuple[int, ...], num_classes: int, plan: list, fcs: list[int], cfg: ModelConfig) -> Spec:
    import dataclasses

    spec = _vgg(dataclasses.replace(cfg, dropout=0.0), input_shape, num_classes, plan, fcs)
    return spec


@register_model
def resnet12_v1(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Pre-issue-19 ResNet12: conv64 stem + 5 membrane blocks (64, 128/2, 128, 256/2, 256), global pool, fc."""
    from .blocks import ResidualBlock

    c, h, w = input_shape
    spec: Spec = [("conv1", nn.Conv2d(c, 64, 3, padding=1, bias=False)), ("sn1", None)]
    cin = 64
    for i, (cout, stride) in enumerate([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1)], 1):
        spec.append((f"block{i}", ResidualBlock(cin, cout, stride, "membrane", batchnorm=False, dropout=cfg.dropout)))
        cin, h, w = cout, _spatial(h, stride), _spatial(w, stride)
    spec += [("pool", nn.AvgPool2d((h, w))), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, num_classes, bias=False))]
    return spec


def _sew(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, stem: int,
         stages: list[tuple[int, int, int]]) -> Spec:
    """SEW-ResNet: conv3×3-BN-SN stem, stem pooling (``model.pooling``: max | avg, 3×3 stride 2 pad 1
    for stems ≥ 16 px, else 2×2), SEW blocks with ADD, global average pool, fc."""
    from .blocks import ResidualBlock

    c, h, w = input_shape
    big = min(h, w) >= 16
    pool = (nn.MaxPool2d(3, 2, 1) if cfg.pooling == "max" else nn.AvgPool2d(3, 2, 1)) if big else _pool(cfg)
    spec: Spec = [("conv1", nn.Conv2d(c, stem, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(stem)),
                  ("sn1", None), ("pool1", pool)]
    h, w = ((h + 1) // 2, (w + 1) // 2) if big else (h // 2, w // 2)
    cin, k = stem, 0
    for cout, stride, n in stages:
        for j in range(n):
            k += 1
            s = stride if j == 0 else 1
            spec.append((f"block{k}", ResidualBlock(cin, cout, s, "sew", batchnorm=True, dropout=cfg.dropout)))
            cin, h, w = cout, _spatial(h, s), _spatial(w, s)
    spec += [("pool", nn.AvgPool2d((h, w))), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, num_classes))]
    return spec


@register_model
def sew_resnet18(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """SEW-ResNet18 (Fang et al. 2021; Luu et al. 2025 for the max/avg stem comparison): stem conv64 +
    pooling, 4 stages × 2 SEW blocks (64, 128, 256, 512; stride 1, 2, 2, 2), IF neurons, ATan
    surrogate (set in the recipe: neuron = "if", surrogate = "atan")."""
    return _sew(cfg, input_shape, num_classes, 64, [(64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)])


@register_model
def sew_digits(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """A small SEW-ResNet for 8×8 digits / event-digits: stem conv16 + 2×2 pooling (max | avg),
    SEW blocks 16 and 32/2, global average pool, fc."""
    return _sew(cfg, input_shape, num_classes, 16, [(16, 1, 1), (32, 2, 1)])


def create_model(name: str, input_shape: tuple[int, ...], num_classes: int, cfg: ModelConfig | None = None,
                 timesteps: int = 8, encoding: str = "direct", ann: bool = False) -> nn.Module:
    """timm-style factory: the registered model ``name`` as an SNN (default) or its ANN twin."""
    import dataclasses

    r = Recipe(timesteps=timesteps)
    r.model = dataclasses.replace(cfg or ModelConfig(), name=name)
    r.data.encoding = encoding
    return create_ann(r, input_shape, num_classes) if ann else create_snn(r, input_shape, num_classes)
