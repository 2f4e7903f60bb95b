"""The model zoo: a registry of architectures, each usable as an SNN and as its ANN twin.

A model function returns a *spec*: an ordered list of ``(name, module)`` where ``None`` marks a
neuron slot. The SNN fills the slots with :class:`SpikingNeuron`, the ANN twin with ReLU; all
other layers (and their parameter names) are shared, so ANN weights load into the SNN by name.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

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


def create_snn(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> SpikingNetwork:
    """The recipe's model as an SNN (thresholds 1.0 until conversion sets them)."""
    cfg = recipe.model
    spec = model_spec(cfg.name, cfg, input_shape, num_classes)
    surrogate = make_surrogate(cfg.surrogate, cfg.surrogate_scale)
    layers = build_layers(spec, neuron_spec(cfg), surrogate, ann=False, dropout=cfg.dropout)
    return SpikingNetwork(layers, recipe.timesteps, recipe.data.encoding, "sum", input_shape)


def create_ann(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """The recipe's model as its ANN twin (ReLU in the neuron slots)."""
    from collections import OrderedDict

    cfg = recipe.model
    spec = model_spec(cfg.name, cfg, input_shape, num_classes)
    layers = build_layers(spec, NeuronSpec(), None, ann=True, dropout=cfg.dropout)
    if recipe.data.encoding == "events":  # the ANN sees the mean event frame (the SNN's mean input)
        layers.insert(0, ("frame_mean", FrameMean()))
    return nn.Sequential(OrderedDict(layers))


class FrameMean(nn.Module):
    """ANN twin's input layer for event data: ``[B, T, C, H, W] -> [B, C, H, W]``, the mean over T
    (the SNN receives the frames one per step, so its mean input current is this frame's)."""

    def forward(self, x):
        return x.mean(1)


# ----------------------------------------------------------------------------- paper model zoo
# HIRE-SNN (Kundu et al., ICCV 2021) and DIET-SNN (Rathi & Roy, 2021): bias-free convolutions,
# average pooling, dropout 0.2 after every spiking layer (one mask per sample reused over time,
# added by ``build_layers`` from ``model.dropout``), a per-layer threshold and leak in every neuron.
def _vgg(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, plan: list, fcs: list[int]) -> Spec:
    c, h, w = input_shape
    spec: Spec = []
    n_conv = n_sn = n_pool = 0
    for v in plan:
        if v == "P":
            n_pool += 1
            spec.append((f"pool{n_pool}", _pool(cfg)))
            h, w = h // 2, w // 2
        else:
            n_conv += 1
            n_sn += 1
            spec += [(f"conv{n_conv}", nn.Conv2d(c, v, 3, padding=1, bias=False)), (f"sn{n_sn}", None)]
            c = v
    spec.append(("flatten", nn.Flatten()))
    n_in = c * h * w
    for i, f in enumerate(fcs, 1):
        n_sn += 1
        spec += [(f"fc{i}", nn.Linear(n_in, f, bias=False)), (f"sn{n_sn}", None)]
        n_in = f
    spec.append(("fc", nn.Linear(n_in, num_classes, bias=False)))
    return spec


@register_model
def vgg5(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """VGG5 (HIRE-SNN / DIET-SNN): conv64-P-conv128-conv128-P-fc1024-fc(classes), 5 weight layers."""
    return _vgg(cfg, input_shape, num_classes, [64, "P", 128, 128, "P"], [1024])


@register_model
def vgg11(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """VGG11 (HIRE-SNN / DIET-SNN): 8 convs with 5 average pools, fc4096-fc4096-fc(classes)."""
    plan = [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"]
    return _vgg(cfg, input_shape, num_classes, plan, [4096, 4096])


def _spatial(h: int, stride: int) -> int:
    """Output size of a 3×3 conv with padding 1 (or 1×1 conv, padding 0) at ``stride``."""
    return (h - 1) // stride + 1


@register_model
def resnet12(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """ResNet12 (HIRE-SNN): conv64 stem + 5 basic blocks (64, 128/2, 128, 256/2, 256) + fc = 12 weight
    layers (1×1 shortcut convs not counted); membrane-add residuals (DIET-SNN's spiking ResNet),
    bias-free, no BatchNorm, dropout inside each block and after the stem, global average pool."""
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
