"""Named studies: recipes, seeds, targets, claims and the budget overrides that make them fit.

``digits``: the whole digits + event-digits study of issue 19 — HIRE vs BPTT vs frozen θ/λ and
SEW max- vs avg-pool on both datasets, 5 seeds, deployed to the bit-exact Loihi emulator and to
Speck (sinabs) where the model fits, sized to finish in about 20 minutes on 2 CPU cores (the
overrides below shorten training and attack only fixed subsets; the recipes are otherwise used as
shipped). Event-digits is attacked in whole events, with the recipes' budget of 16 events
(:mod:`.events`); its ε sweep is over budgets, its K sweep over the budget attack's steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecipeError
from ..recipe import Recipe, load_recipe
from .claims import Claim, hire_claims, pooling_claims


@dataclass
class Preset:
    name: str
    recipes: list[str]
    seeds: list[int]
    targets: list[str]
    claims: list[Claim]
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted recipe key -> value, for every recipe
    per_recipe: dict[str, dict[str, Any]] = field(default_factory=dict)  # recipe -> its own overrides
    note: str = ""

    def load(self) -> list[Recipe]:
        """The preset's recipes with the overrides applied."""
        out = []
        for name in self.recipes:
            r = load_recipe(name)
            for key, value in {**self.overrides, **self.per_recipe.get(name, {})}.items():
                set_field(r, key, value)
            out.append(r)
        return out


def set_field(recipe: Recipe, dotted: str, value: Any) -> None:
    """Set ``recipe.<dotted>`` (e.g. ``train.ann.epochs``); RecipeError for an unknown key."""
    *path, last = dotted.split(".")
    obj: Any = recipe
    for p in path:
        obj = getattr(obj, p, None)
    if obj is None or not dataclasses.is_dataclass(obj) or last not in {f.name for f in dataclasses.fields(obj)}:
        raise RecipeError(f"study preset: unknown recipe key {dotted!r}")
    setattr(obj, last, value)


_DIGITS_EPS = [0.0, 0.025, 0.05, 0.1, 0.2]  # the digits recipes attack at ε = 0.1
_K = [0, 1, 2, 3, 5, 7, 10, 20, 40]  # HIRE-SNN sees the asymptote by K = 40

PRESETS: dict[str, Preset] = {
    "digits": Preset(
        "digits",
        ["digits_hire", "digits_bptt", "digits_hire_frozen", "digits_sew_avg", "digits_sew_max",
         "event_digits_hire", "event_digits_bptt", "event_digits_hire_frozen", "event_digits_sew_avg",
         "event_digits_sew_max"],
        [0, 1, 2, 3, 4],
        ["loihi-emu", "speck"],
        hire_claims("digits_hire", "digits_bptt", "digits_hire_frozen", 0.025, 0.2, 20, 40, tag="digits")
        + pooling_claims("digits_sew_avg", "digits_sew_max", tag="digits")
        + hire_claims("event_digits_hire", "event_digits_bptt", "event_digits_hire_frozen", 2, 32, 8, 16,
                      tag="event-digits", unit="events")
        + pooling_claims("event_digits_sew_avg", "event_digits_sew_max", tag="event-digits"),
        overrides={"train.ann.epochs": 15, "train.snn.epochs": 5, "attack.max_samples": 200,
                   "attack.sweep_samples": 100, "attack.sparsity_samples": 100, "attack.target_samples": 100,
                   "attack.sweep_steps": _K},
        per_recipe={**{n: {"attack.sweep_epsilons": _DIGITS_EPS} for n in ("digits_hire",)},
                    **{n: {"train.snn.epochs": 6} for n in ("digits_sew_avg", "digits_sew_max",
                                                            "event_digits_sew_avg", "event_digits_sew_max")}},
        note="budget: ANN 15 epochs, SNN 5 (SEW from scratch 6), 200 attacked test samples, 100 for the "
             "sweeps, the sparsity audit and the deployed targets; event-digits attacked with 16 events per "
             "sample (ℓ1), its sweeps over 0-32 events and 1-16 steps"),
}


def get_preset(name: str) -> Preset:
    """The preset ``name`` (RecipeError listing the presets if unknown)."""
    if name not in PRESETS:
        raise RecipeError(f"unknown study preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
