"""Black-box transfer attack: adversarial images crafted on a surrogate model, run on the victim.

Papernot, McDaniel, Goodfellow, "Transferability in Machine Learning", arXiv:1605.07277 (2016);
HIRE-SNN (Kundu et al., ICCV 2021, §5.2) evaluates black-box robustness this way, with the
surrogate being the same architecture trained from another seed:

    x̂ = A(f_surrogate, x, y)       (A = FGSM or PGD on the surrogate's gradients)
    accuracy of the victim f on x̂

The victim is only ever queried, so the same images serve the white-box source's targets too
(the deployed network attacked with the source's adversarial images is a transfer attack).
"""
from __future__ import annotations

import torch

from .base import Attack
from .estimators import LossGradientsMixin


class TransferAttack(Attack):
    """``TransferAttack(PGD(...), surrogate_estimator).generate(victim, x, y)``.

    The victim estimator needs no capability (it is not used to craft); the surrogate must give
    gradients if the inner attack needs them.
    """

    needs = ()
    name = "transfer"

    def __init__(self, attack: Attack, surrogate: object) -> None:
        super().__init__(attack.epsilon, seed=attack.seed, batch_size=attack.batch_size, progress=attack.progress)
        attack.check(surrogate)
        self.attack = attack
        self.surrogate = surrogate

    def generate(self, estimator: object, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int | None = None) -> torch.Tensor:
        """Adversarial images crafted on the surrogate; ``estimator`` (the victim) is not queried."""
        return self.attack.generate(self.surrogate, x, y, batch_size=batch_size)

    @property
    def _generate_batch(self, estimator: object, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """One batch crafted on the surrogate (``estimator``, the victim, is never queried)."""
        return self.attack._generate_batch(self.surrogate, x, y, gen)

    def surrogate_has_gradients(self) -> bool:
        return isinstance(self.surrogate, LossGradientsMixin)

    def __repr__(self) -> str:
        return f"TransferAttack({self.attack!r})"
