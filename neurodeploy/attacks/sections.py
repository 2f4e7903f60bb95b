"""The attack stage's parts: what it attacks (:class:`AttackInputs`), one run of it
(:class:`AttackContext`) and the registry of report sections (:data:`SECTIONS`).

The recipe's ``[attack] sections`` lists, in order, the sections the stage builds; each name is a
:class:`Section` registered in the file of its attack (``fgsm.py`` registers ``fgsm``, ...). A
section is a function ``build(ctx) -> fragment``: the fragment is a piece of the report's
``robustness`` dict (``{"source": {"fgsm": {...}}}``, ``{"lava": {"query": {...}}}``) merged into
what the sections before it wrote. Adding an attack to the report is one registration:

    @register_section("noise_floor")
    def noise_floor(ctx: AttackContext) -> dict:
        return {"source": {"noise_floor": {"accuracy": accuracy(ctx.est, ctx.x, ctx.y)}}}

and its name in the recipe's list. Adversarial images several sections share (the source's FGSM
and PGD images: white-box accuracy, transfer to each target, the query attack's comparison) are
crafted once per run (:meth:`AttackContext.memo`).

Work that only queries the deployed targets (transfer accuracies, the Square attack on a
simulation, the targets' points of the ε sweep...) goes through :meth:`AttackContext.on_targets`:
a job ``job(targets, *args)`` whose result is a :class:`Pending` leaf of the fragment. With a
target helper (a child process that deployed the same targets, :mod:`neurodeploy.stages.background`)
the job runs there while this process goes on with the source's attacks; without one it runs at
once. The stage resolves every leaf when the last section is built (:func:`resolve`), so a section
reads only the source side of what the sections before it wrote (no section reads a target's
entry), and the report is the same either way.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import AttackError
from ..recipe import AttackConfig
from ..registry import Registry
from .base import IMAGE, Attack, InputDomain
from .estimators import SourceEstimator

log = logging.getLogger(__name__)

QueryFn = Callable[[torch.Tensor], "np.ndarray | torch.Tensor"]


class Pending:
    """A value of the report that target work gives: :meth:`result` waits for it (once)."""

    __slots__ = ("_get", "_value", "_done")

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get, self._value, self._done = get, None, False

    @classmethod
    def of(cls, value: Any) -> "Pending":
        """An already known value."""
        p = cls(lambda: value)
        p._value, p._done = value, True
        return p

    def result(self) -> Any:
        if not self._done:
            self._value, self._done = self._get(), True
            self._get = None  # type: ignore[assignment]
        return self._value

    def then(self, fn: Callable[[Any], Any]) -> "Pending":
        """``fn(result)``, pending until this value is."""
        return Pending(lambda: fn(self.result()))


def resolve(tree: Any) -> Any:
    """``tree`` (dicts, lists) with every :class:`Pending` leaf replaced by its result, in place."""
    if isinstance(tree, Pending):
        return resolve(tree.result())
    if isinstance(tree, dict):
        for k, v in tree.items():
            tree[k] = resolve(v)
    elif isinstance(tree, list):
        tree[:] = [resolve(v) for v in tree]
    return tree


class TargetHelper(ABC):
    """Where :meth:`AttackContext.on_targets` sends target jobs (a process with the same targets
    deployed; :class:`neurodeploy.stages.background.TargetHelperProcess`)."""

    @abstractmethod
    def submit(self, job: Callable[..., Any], args: tuple, fallback: Callable[[], Any]) -> Pending:
        """A :class:`Pending` of ``job(targets, *args)`` computed there (``fallback()`` computes it
        here when the helper is gone)."""


def subset_index(total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded random subset of n of ``total`` samples, in dataset order (all when n is
    0/None/≥ total). Nested: the subset of size m < n is the first m of the same permutation, sorted."""
    if not n or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of n samples, kept in dataset order (all when n is 0/None/≥ N).

    The attacked samples of a run are ``subset(x_test, y_test, attack.max_samples, seed)``, both in
    the attack stage and in :mod:`neurodeploy.study`."""
    idx = subset_index(len(x), n, seed)
    return x[idx], y[idx]


def target_predictions(fn: QueryFn, x: torch.Tensor) -> np.ndarray:
    """A query function's top-1 predictions on x, in ONE call: a deployed target batches inside its
    own ``run`` (``target_query_fn``), and every call of a worker-backed target (Lava) pays the
    worker's fixed cost again, so the caller never splits the images."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    out = fn(x)
    out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    return out.argmax(1)


def target_accuracy(fn: QueryFn, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of a query function (images -> logits, numpy or torch) on (x, y)."""
    return float((target_predictions(fn, x) == y.numpy()).sum()) / len(y) if len(y) else float("nan")


def target_accuracies(fn: QueryFn, xs: list[torch.Tensor], y: torch.Tensor) -> list[float]:
    """Accuracies on several image sets of the same samples (clean, FGSM, PGD...) in one query."""
    if not len(y):
        return [float("nan")] * len(xs)
    preds = target_predictions(fn, torch.cat(xs)).reshape(len(xs), len(y))
    return [float((p == y.numpy()).sum()) / len(y) for p in preds]


@dataclass
class AttackInputs:
    """What the attack stage attacks.

    ``x``, ``y``: the test set (the stage attacks its seeded subset of ``attack.max_samples``).
    ``targets`` maps a deployed target's name to its query function (images -> logits); targets
    are only queried. ``stand_ins`` maps a slow target to a spike-exact one whose query attack and
    ε sweep stand for it (transfer attacks still run on the target itself). ``surrogate_model``
    crafts the black-box images (else the ANN twin ``ann``). ``pool_variants`` (e.g.
    ``{"avg": net, "max": net_max}``) feed the ``pooling`` section. ``domain``: the valid inputs
    (:class:`~.base.InputDomain`; ε is in its units, every attack projects onto it).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    n_classes: int | None = None
    seed: int = 0
    ann: nn.Module | None = None
    surrogate_model: nn.Module | None = None
    targets: Mapping[str, QueryFn] = field(default_factory=dict)
    stand_ins: Mapping[str, str] = field(default_factory=dict)
    pool_variants: Mapping[str, nn.Module] = field(default_factory=dict)
    domain: InputDomain = IMAGE  # valid inputs in the data's units (event counts: InputDomain.of(dataset))


class AttackContext:
    """One run of the attack stage: the inputs, the recipe's settings, the attacked subset
    (``x``, ``y``), the source estimator ``est``, the report built so far and shared images."""

    def __init__(self, inputs: AttackInputs, cfg: AttackConfig, helper: TargetHelper | None = None) -> None:
        self.inputs, self.cfg, self.helper = inputs, cfg, helper
        self.seed, self.batch_size = inputs.seed, cfg.batch_size
        self.domain = inputs.domain
        self.index = subset_index(len(inputs.x), cfg.max_samples, inputs.seed)  # test-set index of each sample
        self.x, self.y = inputs.x.detach().float()[self.index], inputs.y.detach().long()[self.index]
        self.est = SourceEstimator(inputs.model, inputs.n_classes, eot_samples=cfg.eot_samples or None,
                                   seed=inputs.seed)
        self.n_classes = inputs.n_classes or int(self.est.predict(self.x[:1]).shape[1])
        self.report: dict[str, Any] = {}
        self._memo: dict[str, Any] = {}

    @property
    def targets(self) -> Mapping[str, QueryFn]:
        return self.inputs.targets

    def queried_targets(self) -> dict[str, QueryFn]:
        """The targets attacked by queries and swept over ε: all but those with a stand-in."""
        return {n: fn for n, fn in self.targets.items() if n not in self.inputs.stand_ins}

    def target_index(self, total: int) -> torch.Tensor:
        """The seeded subset of ``total`` samples a target simulates (``attack.target_samples``)."""
        return subset_index(total, self.cfg.target_samples or None, self.seed)

    def target_accuracy(self, fn: QueryFn, x: torch.Tensor, y: torch.Tensor) -> float:
        return target_accuracy(fn, x, y)

    def on_targets(self, job: Callable[..., Any], *args: Any) -> Pending:
        """``job(targets, *args)`` (``targets``: name -> query function; ``job`` a module-level
        function, ``args`` picklable): in the target helper when there is one, else now."""
        if self.helper is None:
            return Pending.of(job(self.targets, *args))
        return self.helper.submit(job, args, lambda: job(self.targets, *args))

    def subset(self, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The seeded subset of n of the attacked samples (the sweeps', the sparsity audit's)."""
        return subset(self.x, self.y, n, self.seed)

    def attack(self, attack: "Attack") -> "Attack":
        """``attack`` set to this run's input domain (returned for chaining)."""
        attack.domain = self.domain
        return attack

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per run (e.g. the source's PGD images, shared by several sections)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def recall(self, key: str) -> Any:
        """What :meth:`memo` holds under ``key``, or None if no section made it in this run."""
        return self._memo.get(key)

    def merge(self, fragment: Mapping[str, Any]) -> None:
        """Merge a section's fragment into the report (nested dicts merged, other values set)."""
        _merge(self.report, fragment)


def _merge(into: dict, fragment: Mapping[str, Any]) -> None:
    for k, v in fragment.items():
        cur = into.get(k)
        if isinstance(cur, Pending) or (isinstance(v, Pending) and isinstance(cur, dict)):
            into[k] = Pending(lambda cur=cur, v=v: _merged(resolve(cur), resolve(v)))  # the same merge, later
        elif isinstance(v, Mapping) and isinstance(cur, dict):
            _merge(cur, v)
        else:
            into[k] = dict(v) if isinstance(v, Mapping) else v


def _merged(cur: Any, v: Any) -> Any:
    """What merging ``v`` into a key holding ``cur`` leaves there (:func:`_merge`)."""
    if isinstance(v, Mapping) and isinstance(cur, dict):
        _merge(cur, v)
        return cur
    return dict(v) if isinstance(v, Mapping) else v


@dataclass(frozen=True)
class Section:
    """A report section: ``build(ctx) -> fragment``. ``requires``: sections that must be listed
    before it; ``after``: sections it reads when they run, so they must come first if listed."""

    build: Callable[[AttackContext], Mapping[str, Any]]
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


#: Every report section by name (the names the recipe's ``[attack] sections`` may list).
SECTIONS: Registry[Section] = Registry("attack section", error=AttackError)


def register_section(name: str, requires: Sequence[str] = (), after: Sequence[str] = ()
                     ) -> Callable[[Callable[[AttackContext], Mapping[str, Any]]], Callable]:
    """Decorator: register ``build(ctx) -> fragment`` as the report section ``name``."""

    def deco(build: Callable[[AttackContext], Mapping[str, Any]]) -> Callable:
        SECTIONS.add(name, Section(build, tuple(requires), tuple(after)))
        return build

    return deco


def check_sections(names: Sequence[str]) -> None:
    """AttackError unless every name is a registered section, listed once, after what it reads."""
    seen: list[str] = []
    for name in names:
        section = SECTIONS.get(name)
        if name in seen:
            raise AttackError(f"attack section {name!r} is listed twice")
        missing = [r for r in section.requires if r not in seen]
        late = [a for a in section.after if a in names and a not in seen]
        if missing or late:
            raise AttackError(f"attack section {name!r} reads {', '.join(missing + late)}: list "
                              f"{'it' if len(missing + late) == 1 else 'them'} before {name!r}")
        seen.append(name)
