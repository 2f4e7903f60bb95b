"""The Target protocol, the artifacts it produces, and the registry of targets by name.

``compile(graph, meta, profile) -> Deployment`` never changes the model silently: every lowering
is a line in ``Deployment.lowering`` (and so in the report). ``run(deployment, x) -> Outputs``
returns predictions, per-layer spike counts and synaptic-operation counts.

A target declares its typed options (``Options``, a :class:`TargetOptions` dataclass) and its
traits as class attributes (``fixed_point``, ``finetunable``, ``slow``, ``attack_stand_in``), so
the stages ask the target instead of keeping lists of names.

Targets register by name. Built-in ones are imported lazily (Lava is heavy and starts processes),
so listing targets never imports a simulator.
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import nir
import numpy as np
import torch

from ..errors import NeurodeployError, ProfileError, TargetError
from ..ir.metadata import DeployMeta
from ..profile import TARGETS_DIR, Profile, load_profile, profile_targets, tomllib
from ..recipe import type_ok
from ..registry import Registry

log = logging.getLogger(__name__)

O = TypeVar("O", bound="TargetOptions")


@dataclass
class TargetOptions:
    """Options every target takes. A target declares its own ``Options`` dataclass deriving from
    this one; the recipe sets the shared fields in ``[deploy]`` and the target's own in
    ``[deploy.<target>]``, and a profile's ``[options]`` table gives defaults for fields it names."""

    input_spikes: str = "rate"
    """How a spike-only chip takes the analog input: "rate" (Bernoulli per step) | "graded"."""
    timeout_s: float = 600.0
    """Simulation time limit (targets that run a simulator in a child process)."""
    seed: int = 0
    """Seed of the target's own randomness (rate coding), so one recipe gives one report."""
    given: frozenset[str] = field(default=frozenset(), repr=False, compare=False, metadata={"internal": True})
    """The fields set explicitly (by a profile or the caller), in the order given: what the report records."""

    @classmethod
    def fields(cls) -> dict[str, Any]:
        """The settable fields and their types."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if not f.metadata.get("internal")}

    @classmethod
    def from_mapping(cls: type[O], data: Mapping[str, Any], where: str = "options",
                     error: type[NeurodeployError] = TargetError) -> O:
        """Build the options from a plain mapping; ``error`` naming ``where`` and the key for an
        unknown key or a value of the wrong type."""
        known = cls.fields()
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise error(f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(known))}")
            tp = known[key]
            if not type_ok(value, tp):
                raise error(f"{where}: key {key!r} must be {getattr(tp, '__name__', str(tp))}, got {value!r}")
            kwargs[key] = float(value) if tp is float else value
        return cls(**kwargs, given=frozenset(data))

    def explicit(self) -> dict[str, Any]:
        """The explicitly set fields and their values (for the report: what this run chose); for
        options built directly (no mapping), the fields that differ from their defaults."""
        if self.given:
            return {k: getattr(self, k) for k in self.fields() if k in self.given}
        default = type(self)()
        return {k: getattr(self, k) for k in self.fields() if getattr(self, k) != getattr(default, k)}


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
    options: TargetOptions | None = None  # the typed options it was compiled with (the target's Options)

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
    #: The target's typed options (a :class:`TargetOptions` subclass; light: no simulator import).
    Options: ClassVar[type[TargetOptions]] = TargetOptions
    #: Integer (fixed-point) arithmetic, as on the chip.
    fixed_point: ClassVar[bool] = False
    #: Deployment-aware fine-tuning (the fixed-point neuron in the training loop) applies to it.
    finetunable: ClassVar[bool] = False
    #: Too slow for thousands of queries: takes minutes where a torch target takes seconds.
    slow: ClassVar[bool] = False
    #: The spike-exact target whose query attack and ε sweep stand in for this (slow) one's.
    attack_stand_in: ClassVar[str | None] = None

    def available(self) -> tuple[bool, str]:
        """Whether the target's backend can run here, and why not."""
        return True, ""

    def load_profile(self, profile: Profile | str | None = None) -> Profile | None:
        if isinstance(profile, Profile):
            return profile
        name = profile or self.profile_name
        return load_profile(name) if name else None

    def resolve_options(self, options: TargetOptions | Mapping[str, Any] | None = None,
                        profile: Profile | None = None) -> TargetOptions:
        """The typed options: an ``Options`` instance as it is; a mapping over the profile's
        ``[options]`` (the keys that are fields of ``Options``) over the defaults. TargetError for an
        unknown key or a wrong type."""
        if isinstance(options, self.Options):
            return options
        if isinstance(options, TargetOptions):
            options = options.explicit()
        known = self.Options.fields()
        base = {k: v for k, v in (profile.options if profile else {}).items() if k in known}
        return self.Options.from_mapping({**base, **(options or {})}, f"target {self.name!r} options")

    @abstractmethod
    def compile(self, graph: nir.NIRGraph, meta: DeployMeta, profile: Profile | None = None,
                options: TargetOptions | Mapping[str, Any] | None = None) -> Deployment:
        """Lower the graph for this target, logging every change.

        ``options``: the target's ``Options`` or a mapping of its fields (see
        :meth:`resolve_options`); the recipe's [deploy] section gives the shared ones
        (:class:`TargetOptions`) and ``[deploy.<target>]`` the target's own.
        """

    @abstractmethod
    def run(self, deployment: Deployment, x: torch.Tensor, batch_size: int = 256,
            progress: bool = False) -> Outputs:
        """Simulate the deployment on inputs ``x`` (images in [0, 1] or event frames)."""


# Built-in targets are lazy entries: listing them imports no simulator (Lava, sinabs).
TARGETS: Registry[type[Target]] = Registry("target", error=TargetError)
# Targets without a hardware profile; a chip target is declared by its profile's [targets] table.
for _name, _where in {
    "torch": "neurodeploy.targets.torch_target:TorchTarget",
    "onnx": "neurodeploy.targets.onnx_target:OnnxTarget",
}.items():
    TARGETS.add_lazy(_name, _where)


def declare_profile_targets(folder: Path = TARGETS_DIR) -> list[str]:
    """Register the targets that the profiles in ``folder`` declare (``[targets] name =
    "module:Class"``), lazily: nothing is imported until a target is asked for. A profile that
    cannot be read is skipped with a warning here (loading it later gives its own error)."""
    added = []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            table = profile_targets(path, tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ProfileError) as e:
            log.warning("%s: its [targets] are not registered (%s)", path, e)
            continue
        for name, where in table.items():
            if name not in TARGETS:
                TARGETS.add_lazy(name, where)
                added.append(name)
    return added


declare_profile_targets()


def register_target(cls: type[Target]) -> type[Target]:
    """Class decorator: make a target available by its ``name`` (a taken name raises RegistryError)."""
    return TARGETS.add(cls.name, cls)


def list_targets() -> list[str]:
    return TARGETS.names()


def target_class(name: str) -> type[Target]:
    """The class registered as ``name``, its module imported (a target module never imports its
    simulator at import time) but not instantiated, so no availability check: for the recipe
    reader, which validates ``[deploy.<target>]`` tables against ``target_class(name).Options``."""
    return TARGETS.get(name)


def get_target(name: str) -> Target:
    """Instantiate a target by name; TargetError for unknown or unavailable ones."""
    target = TARGETS.get(name)()
    ok, why = target.available()
    if not ok:
        raise TargetError(f"target {name!r} is not available here: {why}")
    return target
