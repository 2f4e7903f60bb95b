"""The attack contract: ``generate(estimator, x, y) -> x_adv``, batched, with the needs checked.

Each attack is one file (torchattacks style) with the paper in its docstring. This module holds
only what every attack shares: the capability check before running, the batch loop with a
silenceable tqdm bar, and the L∞ projection. Inputs are images in [0, 1]; adversarial images are
always returned inside the ε-ball around ``x`` and inside [0, 1].
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import AttackError
from ..registry import Registry
from .estimators import check_estimator

log = logging.getLogger(__name__)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Proj onto {x' : ‖x' − x‖∞ ≤ ε} ∩ [0, 1]ⁿ (clip the perturbation, then the pixels)."""
    delta = torch.clamp(x_adv - x, -epsilon, epsilon)
    return torch.clamp(x + delta, 0.0, 1.0)


class Attack(ABC):
    """Base of the attacks: subclasses set ``needs`` and implement ``_generate_batch``.

    ``generate`` checks the estimator's capabilities (raising :class:`AttackError`), then runs
    ``_generate_batch`` on batches of ``batch_size`` samples. Randomness comes from a
    ``torch.Generator`` seeded with ``self.seed`` at the start of each ``generate`` call, so a
    call is deterministic given the seed (and the batch size).
    """

    needs: ClassVar[Sequence[type]] = ()
    name: ClassVar[str] = "attack"

    def __init__(self, epsilon: float, seed: int = 0, batch_size: int = 256, progress: bool = False) -> None:
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.seed = seed
        self.batch_size = batch_size
        self.progress = progress

    def check(self, estimator: object) -> None:
        """Raise :class:`AttackError` if ``estimator`` lacks a capability this attack needs."""
        check_estimator(type(self).__name__, estimator, self.needs)

    def generate(self, estimator: object, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int | None = None) -> torch.Tensor:
        """Adversarial images for (x, y): same shape as ``x``, in the ε-ball and in [0, 1]."""
        self.check(estimator)
        x = x.detach().float()
        y = y.detach().long()
        bs = batch_size or self.batch_size
        gen = torch.Generator().manual_seed(self.seed)
        out = []
        for i in tqdm(range(0, len(x), bs), desc=self.name, disable=not self.progress, leave=False):
            xb, yb = x[i:i + bs], y[i:i + bs]
            out.append(project_linf(self._generate_batch(estimator, xb, yb, gen), xb, self.epsilon).detach())
        return torch.cat(out) if out else x.clone()

    @abstractmethod
    def _generate_batch(self, estimator, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Adversarial images for one batch (projection to the ε-ball and [0, 1] follows in generate)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epsilon={self.epsilon:.4g})"


#: Every attack class by name (``get_attack`` and the tests that exercise each one); an attack's
#: file registers it with ``@register_attack``, and the package imports every file in it.
ATTACKS: Registry[type[Attack]] = Registry("attack", error=AttackError)


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make an attack available by its ``name`` (a taken name raises RegistryError)."""
    return ATTACKS.add(cls.name, cls)
