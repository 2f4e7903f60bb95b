"""The model zoo: a registry of architectures, each usable as an SNN and as its ANN twin.

A model function returns a *spec*: an ordered list of ``(name, module)`` where ``None`` marks a
neuron slot. The SNN fills the slots with :class:`SpikingNeuron`, the ANN twin with ReLU; all
other layers (and their parameter names) are shared, so ANN weights load into the SNN by name.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

from torch import nn

from ..recipe import ModelConfig, Recipe
from .network import SpikingNetwork, build_layers
from .neuron import NeuronSpec
from .surrogate import make_surrogate

Spec = list[tuple[str, "nn.Module | None"]]
_REGISTRY: dict[str, Callable[..., Spec]] = {}


def register_model(fn: Callable[..., Spec]) -> Callable[..., Spec]:
    """Decorator: register a spec function under its own name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_spec(name: str, cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](cfg, input_shape, num_classes)


def _pool(cfg: ModelConfig, k: int = 2) -> nn.Module:
    return nn.MaxPool2d(k) if cfg.pooling == "max" else nn.AvgPool2d(k)


@register_model
def digits_convnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Spec:
    """Small conv net for 8×8 digits: conv16-pool-conv32-pool-fc, bias-free (HIRE-SNN style)."""
    c, h, w = input_shape
    return [
        ("conv1", nn.Conv2d(c, 16, 3, padding=1, bias=False)),
        ("sn1", None),
        ("pool1", _pool(cfg)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1, bias=False)),
        ("sn2", None),
        ("pool2", _pool(cfg)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(32 * (h // 4) * (w // 4), num_classes, bias=False)),
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
    return nn.Sequential(OrderedDict(layers))
