"""Typed recipe objects loaded from TOML, with clear errors (hardware profiles: :mod:`.profile`).

A recipe (``models/*.toml``) says which data, model, training, deployment and attacks a run uses.
Every section is a dataclass; unknown keys and wrong types are refused with the file and the key
named, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecipeError
# profiles live in .profile; re-exported here, where the package has always looked them up
from .profile import (ARITHMETIC_QUANTITIES, CHIP_QUANTITIES, OVERLAPS, PRICES, TARGETS_DIR, Constant,  # noqa: F401
                      Profile, check_pricing, load_profile, profile_targets, read_toml)
from .recipe_ranges import check_ranges


# The shipped recipes and hardware profiles are package data (``models/`` and ``targets/`` at the
# repository root are links to these folders), so a non-editable install runs the default recipe.
PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "recipes"


@dataclass
class DataConfig:
    name: str = "digits"
    encoding: str = "direct"  # direct | rate | poisson | phase | events
    test_fraction: float = 0.2
    batch_size: int = 64
    path: str = ""  # local folder for datasets that are never downloaded
    augment: bool = True  # training augmentation where the dataset defines one (CIFAR: crop + flip)
    time_bins: int = 0  # frames per event sample; 0 = the recipe's timesteps
    resolution: int = 0  # event data: sum events into resolution×resolution px; 0 = the sensor's size


@dataclass
class ModelConfig:
    name: str = "digits_convnet"
    neuron: str = "if"  # if | lif
    leak: float = 1.0  # initial leak λ (1.0 = IF)
    reset: str = "subtract"  # subtract | zero
    surrogate: str = "linear"  # linear (γ) | atan (α)
    surrogate_scale: float = 0.3
    train_threshold: bool = True
    train_leak: bool = True
    pooling: str = "avg"  # avg | max (models that pool)
    width: int = 1  # channel multiplier (models that have one)
    nir: str = ""  # deploy this NIR file (e.g. written by sinabs/snnTorch/Norse) instead of training one
    nir_dt: float = 0.0  # time step for its continuous-time parameters (0: the file's, else 1.0)
    nir_convention: str = ""  # "" (detected from the file, else nir) | nir | sinabs | snntorch | norse | rockpool | spyx
    nir_reset: str = ""  # override the file's reset for every neuron: zero | subtract
    dropout: float = 0.0
    # per-channel input normalisation inside the model (x - mean) / std, so attacks work in pixel
    # space (HIRE-SNN snn_free_nonorm_for_test_purpose.py validate_pgd); [] = none
    input_mean: list[float] = field(default_factory=list)
    input_std: list[float] = field(default_factory=list)


@dataclass
class AnnTrainConfig:
    epochs: int = 30
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    weight_decay: float = 0.0
    milestones: list[float] = field(default_factory=list)  # fractions of epochs where lr *= gamma
    gamma: float = 0.1


@dataclass
class ConvertConfig:
    enabled: bool = True  # false: no ANN stage, the SNN trains from scratch (SEW-ResNet)
    percentile: float = 99.7
    scale: float = 1.0
    batches: int = 1
    # step_max: max over t of the per-step percentile (DIET-SNN / HIRE-SNN find_threshold);
    # pooled: one percentile over all steps (the rule before issue 19)
    rule: str = "step_max"


@dataclass
class SnnTrainConfig:
    method: str = "bptt"  # bptt | hire
    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.2
    periods: int = 1  # HIRE-SNN 𝒩
    noise_step: float = 0.0  # HIRE-SNN ε_s
    noise_bound: float = 0.0  # HIRE-SNN ε_t
    noise: str = "crafted"  # crafted | gaussian


@dataclass
class TrainConfig:
    ann: AnnTrainConfig = field(default_factory=AnnTrainConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    snn: SnnTrainConfig = field(default_factory=SnnTrainConfig)


#: The default ε sweep (up to ε = 1, "unbounded") and K sweep (HIRE-SNN Fig. 5 / Table 4).
SWEEP_EPSILONS: tuple[float, ...] = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255, 1.0)
SWEEP_STEPS: tuple[int, ...] = (0, 1, 2, 3, 5, 7, 10, 20, 40)
#: The report sections the attack stage builds by default, in order (``neurodeploy.attacks.SECTIONS``).
ATTACK_SECTIONS: tuple[str, ...] = ("clean", "fgsm", "pgd", "blackbox", "gaussian", "random", "ann", "transfer",
                                    "eps_sweep", "steps_sweep", "query", "ensemble", "event_budget", "checklist", "sparsity",
                                    "theory", "pooling")


@dataclass
class AttackConfig:
    sections: list[str] = field(default_factory=lambda: list(ATTACK_SECTIONS))  # report sections, in order
    epsilon: float = 8 / 255
    step_size: float = 0.01
    steps: int = 7
    random_start: bool = False
    max_samples: int = 0  # 0 = the whole test set
    sweep_samples: int = 200  # samples for the ε and K sweeps (0 = all attacked samples)
    sweep_epsilons: list[float] = field(default_factory=lambda: list(SWEEP_EPSILONS))  # [] = no ε sweep
    sweep_steps: list[int] = field(default_factory=lambda: list(SWEEP_STEPS))  # [] = no K sweep
    query_samples: int = 100  # samples for the query-only attack on each target (0 = all attacked samples)
    query_budget: int = 200  # queries per sample for the query-only attack (0 = no query attack)
    target_samples: int = 0  # samples for transfer attacks on each target (0 = max_samples)
    random_samples: int = 20  # random points of the ε-ball per sample (the random baseline)
    sparsity_samples: int = 200  # samples for the gradient-sparsity audit (0 = all attacked samples)
    eot_samples: int = 0  # draws of a stochastic input coding per gradient (0 = 8 if stochastic, else 1)
    batch_size: int = 256
    blackbox: str = "seed"  # surrogate for black-box attacks: seed (same net, seed + 1) | ann (the ANN twin)
    # the attack ensemble (section "ensemble", neurodeploy/attacks/ensemble.py): per-sample worst case
    preset: str = "fast"  # fast (the demo's budget) | thorough (17 members, K = 100, Square 2000 queries)
    ensemble: list[str] = field(default_factory=list)  # members "attack@estimator" ([] = the preset's)
    ensemble_samples: int = 0  # samples the ensemble attacks (0 = all attacked samples)
    ensemble_steps: int = 0  # iterations of its PGD/APGD members (0 = the preset's)
    ensemble_query_budget: int = 0  # queries per sample of its Square member (0 = the preset's)
    ensemble_workers: int = 0  # processes its chunks run in (0 = the cores this process may use; same results)
    event_budget: int = 0  # event data: events inserted/deleted per sample (L1) of section event_budget (0 = off)


@dataclass
class DeployConfig:
    targets: list[str] = field(default_factory=lambda: ["torch"])
    input_spikes: str = "rate"  # how spike-only targets take the analog input: rate | graded
    timeout_s: float = 600.0
    max_samples: int = 0  # 0 = the whole test set
    finetune_epochs: int = 0  # deployment-aware fine-tuning for the finetunable (Loihi) targets (0 = off)
    finetune_lr: float = 1e-4
    # [deploy.<target>] tables: each target's own options, checked against its Options dataclass
    target_options: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"internal": True})


@dataclass
class Recipe:
    name: str = "digits"
    seed: int = 0
    timesteps: int = 8
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    source_file: str = field(default="", metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source_file", None)
        return d


def type_ok(value: Any, tp: Any) -> bool:
    """Whether a TOML value fits the annotation ``tp`` (int for float is fine, bool for int is not)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (str, bool):
        return isinstance(value, tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return isinstance(value, list) and all(type_ok(v, inner) for v in value)
    return True


def _build(cls: type, data: Any, source: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: [{where}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        loc = f"[{where}] " if where else ""
        raise RecipeError(
            f"{source}: unknown key {loc}{unknown[0]!r}; allowed keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        name = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, source, name)
        elif not type_ok(value, tp):
            tname = getattr(tp, "__name__", str(tp))
            raise RecipeError(f"{source}: key {name!r} must be {tname}, got {value!r}")
        else:
            kwargs[key] = float(value) if tp is float else value
    return cls(**kwargs)


# Allowed values per (section, key): a tuple, or a registry as "module:attr" read when a recipe is
# validated (the registries import torch and the modules that register into them).
_CHOICES: dict[tuple[str, str], "tuple[str, ...] | str"] = {
    ("data", "name"): "neurodeploy.data.datasets:DATASETS",
    ("data", "encoding"): "neurodeploy.data.encoding:ENCODINGS",
    ("model", "name"): "neurodeploy.snn.models:MODELS",
    ("model", "neuron"): ("if", "lif"),
    ("model", "reset"): ("subtract", "zero"),
    ("model", "surrogate"): "neurodeploy.snn.surrogate:SURROGATES",
    ("model", "pooling"): ("avg", "max"),
    ("model", "nir_convention"): ("", "nir", "sinabs", "snntorch", "norse", "rockpool", "spyx"),
    ("model", "nir_reset"): ("", "zero", "subtract"),
    ("train.ann", "optimizer"): ("adam", "sgd"),  # train/common.py make_optimizer
    ("train.snn", "optimizer"): ("adam", "sgd"),
    ("train.snn", "method"): ("bptt", "hire"),
    ("train.convert", "rule"): ("step_max", "pooled"),
    ("train.snn", "noise"): ("crafted", "gaussian"),
    ("deploy", "input_spikes"): ("rate", "graded"),
    ("deploy", "targets"): "neurodeploy.targets.base:TARGETS",
    ("attack", "blackbox"): ("seed", "ann"),
    ("attack", "preset"): ("fast", "thorough"),
    ("attack", "sections"): "neurodeploy.attacks.sections:SECTIONS",
}


def _allowed(spec: "tuple[str, ...] | str") -> tuple[str, ...]:
    if isinstance(spec, tuple):
        return spec
    import importlib

    if spec.startswith("neurodeploy.attacks"):
        importlib.import_module("neurodeploy.attacks")  # every attack module registers its sections
    mod, _, attr = spec.partition(":")
    return tuple(getattr(importlib.import_module(mod), attr).names())


def _validate(r: Recipe, source: str) -> None:
    for (section, key), spec in _CHOICES.items():
        obj: Any = r
        for part in section.split("."):
            obj = getattr(obj, part)
        value = getattr(obj, key)
        allowed = _allowed(spec)
        for v in value if isinstance(value, list) else [value]:
            if v not in allowed:
                raise RecipeError(f"{source}: {section}.{key} = {v!r}; choose one of {', '.join(allowed)}")
    _validate_sections(r, source)
    from .data.datasets import EVENT_DATASETS  # imported by _allowed above (the dataset registry)

    events = r.data.name in EVENT_DATASETS
    if events != (r.data.encoding == "events"):
        kind = "an event dataset: its samples are event frames" if events else \
            "an image dataset: encoding 'events' reads event frames"
        allowed = "'events'" if events else "one of " + ", ".join(e for e in _allowed(_CHOICES[("data", "encoding")])
                                                                  if e != "events")
        raise RecipeError(f"{source}: data.encoding = {r.data.encoding!r}, but data.name = {r.data.name!r} is "
                          f"{kind}; use data.encoding = {allowed}")
    check_ranges(r, source, events)
    if r.train.snn.periods > r.timesteps:
        raise RecipeError(f"{source}: train.snn.periods = {r.train.snn.periods} > timesteps = {r.timesteps}; "
                          "each HIRE-SNN period needs at least one time step")
    if r.data.encoding == "events" and r.data.time_bins not in (0, r.timesteps):
        raise RecipeError(f"{source}: data.time_bins = {r.data.time_bins} must equal timesteps = {r.timesteps} "
                          "for event input (one frame per time step)")


def _target_tables(data: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split the ``[deploy.<target>]`` tables off ``data``; each is checked against the target's
    ``Options`` dataclass (unknown target, unknown key or wrong type: RecipeError naming the key).
    A table may also override a shared ``[deploy]`` option (``input_spikes``, ``timeout_s``) for its target."""
    deploy = data.get("deploy")
    if not isinstance(deploy, dict):
        return data, {}
    tables = {k: v for k, v in deploy.items() if isinstance(v, dict)}
    if not tables:
        return data, {}
    from .targets.base import list_targets, target_class  # imported here: the targets read profiles from here

    for name, table in tables.items():
        if name not in list_targets():
            raise RecipeError(f"{source}: unknown table [deploy.{name}]; a [deploy.<target>] table names a target: "
                              f"{', '.join(list_targets())}")
        try:
            target_class(name).Options.from_mapping(table, f"[deploy.{name}]", RecipeError)
        except RecipeError as e:
            raise RecipeError(f"{source}: {e}") from None
        for key, value in table.items():  # a shared option overridden here takes the shared choices
            allowed = _CHOICES.get(("deploy", key))
            if allowed is not None and value not in allowed:
                raise RecipeError(f"{source}: deploy.{name}.{key} = {value!r}; choose one of {', '.join(allowed)}")
    return {**data, "deploy": {k: v for k, v in deploy.items() if k not in tables}}, tables


def _validate_sections(r: Recipe, source: str) -> None:
    from . import attacks  # noqa: F401  (every attack module registers its sections)
    from .attacks.sections import check_sections
    from .errors import AttackError

    try:
        check_sections(r.attack.sections)
        from .attacks.ensemble import parse_members

        parse_members(r.attack.ensemble)
    except AttackError as e:
        what = "attack.sections" if "section" in str(e) else "attack.ensemble"
        raise RecipeError(f"{source}: {what}: {e}") from None


def recipe_from_dict(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Build a :class:`Recipe` from a plain dict (as parsed from TOML), validating every key."""
    data, tables = _target_tables(data, source)
    recipe = _build(Recipe, data, source, "")
    recipe.deploy.target_options = tables
    _validate(recipe, source)
    if recipe.data.time_bins == 0:
        recipe.data.time_bins = recipe.timesteps
    recipe.source_file = source
    return recipe


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A recipe is a path to a TOML file, or the name of one in ``models/``."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    return MODELS_DIR / f"{name_or_path}.toml"


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load and validate a recipe; raises :class:`RecipeError` naming the file and the problem."""
    path = resolve_recipe_path(name_or_path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    return recipe_from_dict(read_toml(path, RecipeError, "recipe"), str(path))


# ----------------------------------------------------------------------------- shipped data
def _first_sentence(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    m = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.(\s+(?=[A-Z])|$)", text)  # not "et al. 2025"
    if m:
        text = text[:m.start() + 1]
    if len(text) > width:
        text = text[:width].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return text


def recipe_description(path: Path) -> str:
    """A recipe's one-line description: the first sentence of its leading comment block."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return _first_sentence(" ".join(lines)) if lines else ""


def shipped_recipes() -> list[tuple[str, str]]:
    """(name, one-line description) of every recipe shipped in the package (``MODELS_DIR``)."""
    return [(p.stem, recipe_description(p)) for p in sorted(MODELS_DIR.glob("*.toml"))]


def shipped_profiles() -> list[tuple[str, str]]:
    """(name, description) of every hardware profile shipped in the package (``TARGETS_DIR``)."""
    return [(p.stem, load_profile(p).description) for p in sorted(TARGETS_DIR.glob("*.toml"))]
