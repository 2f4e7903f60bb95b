"""The attack contract: ``generate(estimator, x, y) -> x_adv``, batched, with the needs checked.

Each attack is one file (torchattacks style) with the paper in its docstring. This module holds
only what every attack shares: the capability check before running, the batch loop with a
silenceable tqdm bar, and the L∞ projection onto the ε-ball intersected with the input domain
(:class:`InputDomain`: [0, 1] for images, by default; integer counts for event frames, rounded
to whole events when returned).
"""
from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import AttackError
from ..registry import Registry
from .estimators import check_estimator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputDomain:
    """The valid inputs of the attacked model, in the data's own units: values in [lo, hi],
    integers when ``integer`` (event counts). ε of every attack is given in ``unit``.

    Images: [0, 1] reals. Event frames: [0, max_count] integer counts per pixel, polarity and
    bin (``max_count`` = 255 for the uint8 frames of N-MNIST/DVS Gesture/CIFAR10-DVS, 1 for the
    binary frames of event-digits); an attacked event input is rounded to whole events, so an L∞
    ball of ε events per pixel admits only integer changes (ε < 1 changes nothing)."""

    lo: float = 0.0
    hi: float = 1.0
    integer: bool = False
    unit: str = "pixel intensity in [0, 1]"

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.lo, self.hi)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """A point the model can be fed: whole events in an integer domain (round half to even)."""
        return torch.round(x) if self.integer else x

    @classmethod
    def of(cls, data: object) -> "InputDomain":
        """The domain a dataset declares (``input_range``, ``integer_input``); images: [0, 1]."""
        lo, hi = getattr(data, "input_range", (0.0, 1.0))
        integer = bool(getattr(data, "integer_input", False))
        unit = f"events per pixel and bin (integer counts in [{lo:g}, {hi:g}])" if integer else \
            ("pixel intensity in [0, 1]" if (lo, hi) == (0.0, 1.0) else f"input units in [{lo:g}, {hi:g}]")
        return cls(float(lo), float(hi), integer, unit)


IMAGE = InputDomain()


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float, domain: InputDomain = IMAGE) -> torch.Tensor:
    """Proj onto {x' : ‖x' − x‖∞ ≤ ε} ∩ [lo, hi]ⁿ (clip the perturbation, then the values; [0, 1]
    for images)."""
    delta = torch.clamp(x_adv - x, -epsilon, epsilon)
    return domain.clamp(x + delta)


class Attack(ABC):
    """Base of the attacks: subclasses set ``needs`` and implement ``_generate_batch``.

    ``generate`` checks the estimator's capabilities (raising :class:`AttackError`), then runs
    ``_generate_batch`` on batches of ``batch_size`` samples. Randomness comes from a
    ``torch.Generator`` seeded with ``self.seed`` at the start of each ``generate`` call, so a
    call is deterministic given the seed (and the batch size).
    """

    needs: ClassVar[Sequence[type]] = ()
    name: ClassVar[str] = "attack"
    domain: InputDomain = IMAGE  # set on an instance to attack another input domain (event counts)

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
        """Adversarial inputs for (x, y): same shape as ``x``, in the ε-ball and in the domain (rounded
        to whole events in an integer domain; the projection of a rounded point stays in the ball
        when x is integer)."""
        self.check(estimator)
        x = x.detach().float()
        y = y.detach().long()
        bs = batch_size or self.batch_size
        gen = torch.Generator().manual_seed(self.seed)
        out = []
        for i in tqdm(range(0, len(x), bs), desc=self.name, disable=not self.progress, leave=False):
            xb, yb = x[i:i + bs], y[i:i + bs]
            out.append(self.finish(self._generate_batch(estimator, xb, yb, gen), xb).detach())
        return torch.cat(out) if out else x.clone()

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float | None = None) -> torch.Tensor:
        """Proj onto the ε-ball around ``x`` in this attack's domain (continuous: no rounding)."""
        return project_linf(x_adv, x, self.epsilon if epsilon is None else epsilon, self.domain)

    def finish(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The returned point: projected, then rounded to whole events in an integer domain (the
        ball's bounds x ± ⌊ε⌋ are integers there, so rounding after projecting onto the ball of
        radius ⌊ε⌋ keeps the point inside)."""
        eps = math.floor(self.epsilon + 1e-9) if self.domain.integer else self.epsilon
        return self.domain.finish(project_linf(x_adv, x, eps, self.domain))

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
