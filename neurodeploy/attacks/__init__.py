"""Attacks on both sides of deployment: white-box on the source, transfer and query-only on targets.

An attack takes an estimator (:mod:`.estimators`): a :class:`SourceEstimator` gives gradients, a
:class:`TargetEstimator` answers queries only, and a gradient attack refuses the latter with an
:class:`~neurodeploy.errors.AttackError`. One file per attack or audit:

- :mod:`.fgsm`, :mod:`.pgd` — white-box gradient attacks (Goodfellow 2015; Madry 2018);
- :mod:`.transfer` — black-box transfer from a surrogate model (Papernot 2016; HIRE-SNN §5);
- :mod:`.gaussian`, :mod:`.random_search` — non-adversarial baselines of the same L∞ size;
- :mod:`.square` — Square Attack, query-only, for deployed targets (Andriushchenko 2020);
- :mod:`.sweeps` — accuracy against ε and against the PGD iterations K;
- :mod:`.checklist` — the gradient-obfuscation checklist (Athalye 2018; HIRE-SNN Table 4);
- :mod:`.sparsity` — input-gradient sparsity per layer (Luu et al. 2025);
- :mod:`.sections` — the report sections by name (``SECTIONS``), the inputs and context they read;
- :mod:`.stage` — ``robustness_report``: the report's ``robustness`` section, the recipe's sections in order.
"""
import importlib
import pkgutil

from .base import ATTACKS, Attack, project_linf, register_attack
from .checklist import checklist_passed, obfuscation_checklist, run_checklist
from .estimators import (ClassifierMixin, LossGradientsMixin, SourceEstimator, TargetEstimator, accuracy,
                         check_estimator, predict_batched)
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .pgd import PGD
from .random_search import RandomSampling, margin
from .sections import SECTIONS, AttackContext, AttackInputs, Section, register_section, subset, subset_index
from .sparsity import gradient_sparsity, pooling_table
from .square import QueryResult, SquareAttack
from .stage import robustness_report, target_query_fn
from .sweeps import epsilon_sweep, steps_sweep
from .transfer import TransferAttack

# Every file of the package is imported, so an attack (``@register_attack``) or a report section
# (``@register_section``) in a new file is registered without editing this one.
for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")


def get_attack(name: str, **kwargs) -> Attack:
    """An attack by name (``ATTACKS``: apgd, fgsm, gaussian, pgd, random, square) with its settings."""
    return ATTACKS.get(name)(**kwargs)


__all__ = [
    "ATTACKS", "SECTIONS", "get_attack", "register_attack", "register_section",
    "FGSM", "PGD", "Attack", "AttackContext", "AttackInputs", "ClassifierMixin", "GaussianNoise",
    "LossGradientsMixin", "QueryResult", "RandomSampling", "Section", "SourceEstimator", "SquareAttack",
    "TargetEstimator", "TransferAttack", "accuracy", "check_estimator", "checklist_passed", "epsilon_sweep",
    "gradient_sparsity", "margin", "obfuscation_checklist", "pooling_table", "predict_batched", "project_linf",
    "robustness_report", "run_checklist", "steps_sweep", "subset", "subset_index", "target_query_fn",
]
