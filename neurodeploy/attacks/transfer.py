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
from .estimators import LossGradientsMixin, SourceEstimator, accuracy
from .fgsm import fgsm_images, source_fgsm
from .pgd import pgd_images, pgd_settings, source_pgd
from .sections import AttackContext, register_section, target_accuracies


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


@register_section("blackbox")
def blackbox_section(ctx: AttackContext) -> dict:
    """``source.blackbox_fgsm`` / ``blackbox_pgd``: the source's accuracy on FGSM/PGD images crafted
    on the surrogate model (same architecture, seed + 1), else on the ANN twin; ``None`` without both."""
    inp, eps = ctx.inputs, ctx.cfg.epsilon
    model, name = (inp.surrogate_model, "surrogate") if inp.surrogate_model is not None else (inp.ann, "ann")
    if model is None:
        return {"source": {"blackbox_fgsm": None, "blackbox_pgd": None}}
    bb = SourceEstimator(model, ctx.n_classes, seed=ctx.seed)
    xb_f, xb_p = fgsm_images(ctx, bb), ctx.memo("blackbox_pgd", lambda: pgd_images(ctx, bb))
    return {"source": {
        "blackbox_fgsm": {"epsilon": eps, "surrogate": name, "accuracy": accuracy(ctx.est, xb_f, ctx.y, ctx.batch_size)},
        "blackbox_pgd": {**pgd_settings(ctx), "surrogate": name,
                         "accuracy": accuracy(ctx.est, xb_p, ctx.y, ctx.batch_size)},
    }}


@register_section("transfer")
def transfer_section(ctx: AttackContext) -> dict:
    """One entry per target: its clean accuracy and the source's white-box FGSM/PGD images run
    through it (``transfer_fgsm``, ``transfer_pgd``), on its ``attack.target_samples`` subset."""
    out: dict = {}
    if not ctx.targets:
        return out
    x_f, x_p = source_fgsm(ctx), source_pgd(ctx)
    for name in ctx.targets:
        i = ctx.target_index(len(ctx.x))
        head = {"epsilon": ctx.cfg.epsilon}, pgd_settings(ctx)
        out[name] = ctx.on_targets(transfer_entry, name, [ctx.x[i], x_f[i], x_p[i]], ctx.y[i], *head)
        stand_in = ctx.inputs.stand_ins.get(name)
        if stand_in:
            note = (f"transfer attacks ran on {name!r} itself; its query attack and ε sweep are "
                    f"those of {stand_in!r}, its spike-exact emulator")
            out[name] = out[name].then(lambda e, note=note: {**e, "note": note})
    return out


def transfer_entry(targets, name: str, xs: list[torch.Tensor], y: torch.Tensor, fgsm_head: dict,
                   pgd_head: dict) -> dict:
    """A target job (:meth:`AttackContext.on_targets`): target ``name``'s clean, FGSM and PGD
    accuracies on the images ``xs`` (clean, FGSM, PGD) in one target run."""
    clean, fgsm, pgd = target_accuracies(targets[name], xs, y)
    return {"samples": len(y), "clean": {"accuracy": clean, "samples": len(y)},
            "transfer_fgsm": {**fgsm_head, "accuracy": fgsm}, "transfer_pgd": {**pgd_head, "accuracy": pgd}}
