"""The range of every numeric recipe field, checked when a recipe is loaded.

:mod:`neurodeploy.recipe` checks each field's TOML type; this table says which values of that type
make sense (a batch of 0 samples, a NaN learning rate, a dropout of 2 or an ε of 5 on images in
[0, 1] are refused before any work, with the file, the field and the allowed range named).
A list field (``milestones``, ``sweep_epsilons``, ``sweep_steps``) has each element checked.
NaN and ±inf are refused in every float field.
"""
from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Any

from .errors import RecipeError


@dataclass(frozen=True)
class Range:
    """``lo``/``hi`` bounds (None: unbounded), each closed unless ``lo_open``/``hi_open``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def text(self, integer: bool) -> str:
        kind = "an integer" if integer else "a finite number"
        if self.lo is not None and self.hi is not None:
            return (f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, "
                    f"{self.hi:g}{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        return kind


POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1, lo_open=True)  # (0, 1]

#: field (dotted path in the recipe) -> allowed range
RANGES: dict[str, Range] = {
    "seed": NON_NEGATIVE,  # numpy's default_rng refuses negative seeds
    "timesteps": Range(1, 100_000),  # the cap our NIR metadata allows (ir/metadata.py MAX_TIMESTEPS)
    "data.test_fraction": Range(0, 1, lo_open=True, hi_open=True),
    "data.batch_size": AT_LEAST_1,
    "data.time_bins": NON_NEGATIVE,
    "data.resolution": NON_NEGATIVE,
    "model.leak": FRACTION,
    "model.surrogate_scale": POSITIVE,
    "model.width": AT_LEAST_1,
    "model.nir_dt": NON_NEGATIVE,
    "model.dropout": Range(0, 1, hi_open=True),
    "model.input_std": POSITIVE,
    "train.ann.epochs": NON_NEGATIVE,
    "train.ann.lr": POSITIVE,
    "train.ann.weight_decay": NON_NEGATIVE,
    "train.ann.milestones": FRACTION,
    "train.ann.gamma": POSITIVE,
    "train.convert.percentile": Range(0, 100, lo_open=True),
    "train.convert.scale": POSITIVE,
    "train.convert.batches": AT_LEAST_1,
    "train.snn.epochs": NON_NEGATIVE,
    "train.snn.lr": POSITIVE,
    "train.snn.weight_decay": NON_NEGATIVE,
    "train.snn.milestones": FRACTION,
    "train.snn.gamma": POSITIVE,
    "train.snn.periods": AT_LEAST_1,
    "train.snn.noise_step": NON_NEGATIVE,
    "train.snn.noise_bound": NON_NEGATIVE,
    "attack.epsilon": NON_NEGATIVE,  # and <= 1 on image data (pixels in [0, 1]): see check_ranges
    "attack.step_size": NON_NEGATIVE,
    "attack.steps": NON_NEGATIVE,
    "attack.max_samples": NON_NEGATIVE,
    "attack.sweep_samples": NON_NEGATIVE,
    "attack.sweep_epsilons": NON_NEGATIVE,  # each, and <= 1 on image data
    "attack.sweep_steps": NON_NEGATIVE,
    "attack.query_samples": NON_NEGATIVE,
    "attack.query_budget": NON_NEGATIVE,
    "attack.target_samples": NON_NEGATIVE,
    "attack.random_samples": NON_NEGATIVE,
    "attack.sparsity_samples": NON_NEGATIVE,
    "attack.eot_samples": NON_NEGATIVE,
    "attack.batch_size": AT_LEAST_1,
    "attack.ensemble_samples": NON_NEGATIVE,
    "attack.ensemble_steps": NON_NEGATIVE,
    "attack.ensemble_query_budget": NON_NEGATIVE,
    "attack.ensemble_workers": NON_NEGATIVE,
    "attack.event_budget": NON_NEGATIVE,
    "deploy.timeout_s": POSITIVE,
    "deploy.max_samples": NON_NEGATIVE,
    "deploy.finetune_epochs": NON_NEGATIVE,
    "deploy.finetune_lr": POSITIVE,
}

#: the ε of attacks on images: pixels lie in [0, 1], so an L∞ ball wider than 1 means nothing
IMAGE_EPSILON = Range(0, 1)

#: a recipe name becomes a folder name (``study`` writes ``OUT/<name>.seed<k>``): a plain name only
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _get(obj: Any, dotted: str) -> tuple[Any, bool]:
    """The field's value, and whether the field is declared int (or list[int])."""
    *owners, last = dotted.split(".")
    for part in owners:
        obj = getattr(obj, part)
    hint = typing.get_type_hints(type(obj))[last]
    return getattr(obj, last), hint is int or hint == list[int]


def check_ranges(recipe: Any, source: str, events: bool) -> None:
    """Refuse (RecipeError naming ``source``, the field and the allowed range) any field outside
    :data:`RANGES`; ``events``: the dataset is an event dataset (ε is then not capped at 1)."""
    if not NAME.fullmatch(recipe.name) or ".." in recipe.name:
        raise RecipeError(f"{source}: name = {recipe.name!r}; a recipe name is a plain name (letters, digits, "
                          "'_', '-', '.'; no path separators, no '..', at most 100 characters)")
    for key, rng in RANGES.items():
        value, integer = _get(recipe, key)
        if key in ("attack.epsilon", "attack.sweep_epsilons") and not events:
            rng = IMAGE_EPSILON
        for v in value if isinstance(value, list) else [value]:
            if not rng.ok(v):
                what = "each element " if isinstance(value, list) else ""
                extra = " (image pixels lie in [0, 1])" if rng is IMAGE_EPSILON else ""
                raise RecipeError(f"{source}: {key} = {v!r}; {what}must be {rng.text(integer)}{extra}")
