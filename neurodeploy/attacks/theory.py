"""Paper 2's theory measured: adversarial vs random vulnerability against input-gradient sparsity,
and the density of the weight gradients per layer.

Liu, Bu, Ding, Hao, Huang, Yu, "Enhancing Adversarial Robustness in SNNs with Sparse Gradients",
ICML 2024, §4 (Theorem 4.1): the gap between an SNN's vulnerability to adversarial and to random
perturbations of the same size is bounded by the sparsity ‖∇ₓ f_y(x)‖₀ of the gradient of the
true-class probability f_y. Per sample x (label y) and ε we measure

    ρ_adv(x) = f_y(x) − f_y(x_adv),   x_adv = APGD-CE in B∞(x, ε) (maximises −log f_y; :mod:`.apgd`)
    ρ_rand(x) = f_y(x) − mean_j f_y(x + δ_j),   δ_j ~ U{−ε, +ε}ⁿ   (clipped to the input domain)
    ‖∇ₓ f_y(x)‖₀ = number of non-zero entries of the gradient (through the training surrogate)

and report ρ_adv/ρ_rand per sample (where ρ_rand > 1e-6) next to ‖∇ₓ f_y‖₀ / n, with the Spearman
rank correlation between the two; ρ_adv is a lower bound of the true worst-case drop (an attack).
Weight-gradient density (Luu et al. 2025, arXiv 2509.23762, "Gradient Sparsity Trail"; its
Theorems 4.3/4.4 relate it to the input-gradient sparsity): per layer with a ``weight``, the mean
over samples of the fraction of entries of ∂L/∂W (L the cross-entropy of one sample) that are
non-zero.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from .apgd import APGD
from .base import IMAGE, InputDomain
from .estimators import SourceEstimator, eval_mode
from .sections import AttackContext, register_section

log = logging.getLogger(__name__)


def _true_prob(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den > 0 else float("nan")


def vulnerability(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, steps: int = 20,
                  draws: int = 20, seed: int = 0, domain: InputDomain = IMAGE, batch_size: int = 256) -> dict:
    """ρ_adv, ρ_rand, their ratio and ‖∇ₓ f_y‖₀ per sample (see the module), with a summary."""
    est = SourceEstimator(model, seed=seed)
    p0 = _true_prob(est.predict(x), y)
    apgd = APGD(epsilon, steps=steps, seed=seed, batch_size=batch_size)
    apgd.domain = domain
    p_adv = _true_prob(est.predict(apgd.generate(est, x, y)), y)
    gen = torch.Generator().manual_seed(seed + 1)
    p_rand = torch.zeros_like(p0)
    for _ in range(draws):
        sign = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
        p_rand += _true_prob(est.predict(domain.finish(domain.clamp(x + epsilon * sign))), y)
    p_rand /= draws
    grad = est.loss_and_gradient(x, y, lambda z, t: -_true_prob(z, t))[2]
    l0 = (grad != 0).flatten(1).sum(1)
    rho_adv, rho_rand = p0 - p_adv, p0 - p_rand
    ok = rho_rand > 1e-6
    ratio = torch.where(ok, rho_adv / rho_rand.clamp(min=1e-6), torch.full_like(rho_adv, float("nan")))
    density = l0.double() / x[0].numel()
    summary = {"samples": len(x), "epsilon": float(epsilon), "draws": draws, "apgd_steps": steps,
               "ratio_median": float(ratio[ok].median()) if ok.any() else float("nan"),
               "ratio_samples": int(ok.sum()),
               "gradient_density_mean": float(density.mean()) if len(x) else float("nan"),
               "spearman_ratio_vs_density": _spearman(ratio[ok], density[ok]) if ok.any() else float("nan"),
               "rho_adv_mean": float(rho_adv.mean()), "rho_rand_mean": float(rho_rand.mean())}
    return {**summary, "per_sample": {"rho_adv": rho_adv.tolist(), "rho_rand": rho_rand.tolist(),
                                      "ratio": ratio.tolist(), "gradient_l0": l0.tolist()}}


def weight_gradient_density(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """Per parameter named ``*.weight``: mean over samples of the non-zero fraction of ∂L/∂W."""
    params = [(n, p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    sums = {n: 0.0 for n, _ in params}
    with eval_mode(model), torch.enable_grad():
        for i in range(len(x)):
            loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
            grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
            for (n, _), g in zip(params, grads):
                sums[n] += int((g != 0).sum()) / g.numel() if g is not None else 0.0
    return [{"parameter": n, "entries": p.numel(), "nonzero_fraction": sums[n] / max(len(x), 1)} for n, p in params]


@register_section("theory")
def theory_section(ctx: AttackContext) -> dict:
    """``theory``: ρ_adv/ρ_rand against ‖∇ₓ f_y‖₀ (``vulnerability``) and the weight-gradient density per
    layer, on the correctly classified of the first min(``attack.sparsity_samples``, 100) samples."""
    c = ctx.cfg
    xs, ys = ctx.subset(min(c.sparsity_samples or len(ctx.x), 100))
    ok = ctx.est.predict(xs).argmax(1).cpu() == ys
    xs, ys = xs[ok], ys[ok]
    if len(xs) == 0:  # ρ_adv/ρ_rand are defined on correctly classified samples only
        return {"theory": {"samples": 0, "note": f"not measured: none of the {len(ok)} samples is classified "
                                                 "correctly"}}
    vul = vulnerability(ctx.inputs.model, xs, ys, c.epsilon, steps=c.ensemble_steps or 20,
                        draws=max(c.random_samples, 1), seed=ctx.seed, domain=ctx.domain, batch_size=ctx.batch_size)
    wg = weight_gradient_density(ctx.inputs.model, xs, ys)
    return {"theory": {"vulnerability": vul, "weight_gradient_density": wg}}
