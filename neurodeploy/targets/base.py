"""The Target protocol, the artifacts it produces, and the registry of targets by name.

``compile(graph, meta, profile) -> Deployment`` never changes the model silently: every lowering
is a line in ``Deployment.lowering`` (and so in the report). ``run(deployment, x) -> Outputs``
returns predictions, per-layer spike counts and synaptic-operation counts.

Targets register by name. Built-in ones are imported lazily (Lava is heavy and starts processes),
so listing targets never imports a simulator.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from ..errors import TargetError
from ..ir.metadata import DeployMeta
from ..recipe import Profile, load_profile
from ..registry import Registry


@dataclass
class Deployment:
    """A network compiled for one target."""

    target: str
    graph: nir.NIRGraph
    meta: DeployMeta
    profile: Profile | None
    lowering: list[str] = field(default_factory=list)
    artifact: Any = None  # the target's compiled object (a torch module, a netx file, a sinabs network)
    info: dict[str, Any] = field(default_factory=dict)  # facts for the report (core mapping, memory, ...)

    def log(self, line: str) -> None:
        """Record one change the target made to the network."""
        self.lowering.append(line)


@dataclass
class Outputs:
    """What a simulation returns, per sample (arrays of length N)."""

    predictions: np.ndarray
    logits: np.ndarray | None = None  # the target's readout per class (potential or spike counts)
    layer_spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> spikes per sample
    synops: dict[str, np.ndarray] = field(default_factory=dict)  # synaptic node -> synaptic ops per sample
    neuron_updates: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> updates per sample
    info: dict[str, Any] = field(default_factory=dict)


class Target(ABC):
    """A deployment target: a simulator or a reference implementation of one chip."""

    name: str = ""
    profile_name: str = ""  # default profile in targets/<profile_name>.toml
    needs_spiking_input = False

    def available(self) -> tuple[bool, str]:
        """Whether the target's backend can run here, and why not."""
        return True, ""

    def load_profile(self, profile: Profile | str | None = None) -> Profile | None:
        if isinstance(profile, Profile):
            return profile
        name = profile or self.profile_name
        return load_profile(name) if name else None

    @abstractmethod
    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: dict[str, Any] | None = None) -> Deployment:
        """Lower the graph for this target, logging every change.

        ``options`` come from the recipe's [deploy] section: ``input_spikes`` ("rate" | "graded":
        how a spike-only chip takes the analog input), ``timeout_s`` (simulation time limit),
        ``seed`` (for rate coding, so the same recipe gives the same report).
        """

    @abstractmethod
    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256,
            progress: bool = False) -> Outputs:
        """Simulate the deployment on inputs ``x`` (images in [0, 1] or event frames)."""


# Built-in targets are lazy entries: listing them imports no simulator (Lava, sinabs).
TARGETS: Registry[type[Target]] = Registry("target", error=TargetError)
for _name, _where in {
    "torch": "neurodeploy.targets.torch_target:TorchTarget",
    "lava": "neurodeploy.targets.loihi.lava:LavaTarget",
    "loihi-emu": "neurodeploy.targets.loihi.emu:LoihiEmuTarget",
    "speck": "neurodeploy.targets.speck:SpeckTarget",
    "onnx": "neurodeploy.targets.onnx_target:OnnxTarget",
}.items():
    TARGETS.add_lazy(_name, _where)


def register_target(cls: type[Target]) -> type[Target]:
    """Class decorator: make a target available by its ``name`` (a taken name raises RegistryError)."""
    return TARGETS.add(cls.name, cls)


def list_targets() -> list[str]:
    return TARGETS.names()


def get_target(name: str) -> Target:
    """Instantiate a target by name; TargetError for unknown or unavailable ones."""
    target = TARGETS.get(name)()
    ok, why = target.available()
    if not ok:
        raise TargetError(f"target {name!r} is not available here: {why}")
    return target
