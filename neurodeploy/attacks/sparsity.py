"""Input-gradient sparsity per layer, measured with backward hooks.

Luu et al. 2025, "Gradient Sparsity Trail" (on SNN robustness): the gradient of the loss with
respect to a spiking layer's input is exactly zero wherever the surrogate vanishes for every time
step (for HIRE-SNN's linear surrogate, ∂O/∂z = γ·max(0, 1 − |z|) is 0 for |u/v_th − 1| ≥ 1), and
that sparsity travels back to the image, where it starves gradient attacks. For each layer ℓ with
input a_ℓ we report, over the samples (x, y):

    zero_fraction_ℓ = #{ entries of ∂L/∂a_ℓ that are exactly 0 } / #entries
    l2_norm_ℓ       = mean over samples of ‖∂L/∂a_ℓ‖₂   (all T steps of one sample together)

with L the cross-entropy summed over the batch (so each sample's gradient is its own). Gradients
are taken in eval mode (dropout off; the surrogate stays on) and parameter gradients are not
touched (``torch.autograd.grad``). :func:`pooling_table` puts max- and avg-pool variants side by
side (clean accuracy, PGD accuracy, sparsity per layer), the comparison the paper draws.
"""
from __future__ import annotations

import logging
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .estimators import SourceEstimator, eval_mode, accuracy
from .pgd import PGD
from .sections import AttackContext, register_section

log = logging.getLogger(__name__)


def _named_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every node of the network (``model.named_nodes()`` of the graph executor, else ``layers`` or the
    children) and, inside a composite node (a SEW/membrane residual block), every operation in it
    as ``node.op`` (``block1.conv1``, ``block1.sn1``, ...), so the sparsity is seen inside the blocks."""
    if hasattr(model, "named_nodes"):
        top = list(model.named_nodes())
    else:
        layers = getattr(model, "layers", None)
        top = list(layers.items()) if isinstance(layers, nn.ModuleDict) else list(model.named_children())
    out = []
    for name, m in top:
        out.append((name, m))
        out += [(f"{name}.{sub}", mm) for sub, mm in m.named_modules() if sub and not list(mm.children())]
    return out


def _per_sample(g: torch.Tensor, batch: int, timesteps: int) -> torch.Tensor:
    """Reshape a gradient laid out as [B, ...], [T, B, ...] or [T·B, ...] to [B, -1]."""
    if timesteps > 1 and g.shape[0] == timesteps * batch and g.shape[0] != batch:
        return g.reshape(timesteps, batch, -1).transpose(0, 1).reshape(batch, -1)
    if timesteps > 1 and g.dim() > 1 and g.shape[0] == timesteps and g.shape[1] == batch and g.shape[0] != batch:
        return g.transpose(0, 1).reshape(batch, -1)
    return g.reshape(batch, -1)


def gradient_sparsity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256) -> list[dict]:
    """Per layer and per operation inside a composite block (``block.sn1``; ``depth`` 1):
    ``{layer, kind, depth, zero_fraction, l2_norm, entries_per_sample}`` of ∂L/∂(its input)."""
    layers = _named_layers(model)
    timesteps = int(getattr(model, "timesteps", 1))
    stats = {name: {"zeros": 0, "total": 0, "l2": 0.0, "entries": 0} for name, _ in layers}
    batch = {"n": 0}

    def make_hook(name: str):
        def hook(module: nn.Module, grad_input, grad_output) -> None:
            g = grad_input[0] if grad_input and grad_input[0] is not None else None
            if g is None:
                return
            g = _per_sample(g.detach(), batch["n"], timesteps)
            s = stats[name]
            s["zeros"] += int((g == 0).sum())
            s["total"] += g.numel()
            s["l2"] += float(g.norm(dim=1).sum())
            s["entries"] = g.shape[1]
        return hook

    handles = [m.register_full_backward_hook(make_hook(name)) for name, m in layers]
    n = 0
    try:
        with eval_mode(model), torch.enable_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].detach().float().clone().requires_grad_(True)
                batch["n"] = len(xb)
                loss = F.cross_entropy(model(xb), y[i:i + batch_size].long(), reduction="sum")
                torch.autograd.grad(loss, xb)
                n += len(xb)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, m in layers:
        s = stats[name]
        if s["total"] == 0:
            continue
        rows.append({"layer": name, "kind": type(m).__name__, "depth": name.count("."),
                     "zero_fraction": s["zeros"] / s["total"],
                     "l2_norm": s["l2"] / max(n, 1), "entries_per_sample": s["entries"]})
    return rows


def pooling_table(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, epsilon: float = 8 / 255,
                  step_size: float = 0.01, steps: int = 7, seed: int = 0, batch_size: int = 256) -> list[dict]:
    """One row per model variant (e.g. ``{"avg": net_avg, "max": net_max}``):
    ``{model, clean_accuracy, pgd_accuracy, sparsity: [per layer]}``."""
    rows = []
    for name, model in models.items():
        est = SourceEstimator(model, seed=seed)
        x_adv = PGD(epsilon, step_size, steps, seed=seed, batch_size=batch_size).generate(est, x, y)
        rows.append({"model": name, "clean_accuracy": accuracy(est, x, y, batch_size),
                     "pgd_accuracy": accuracy(est, x_adv, y, batch_size),
                     "sparsity": gradient_sparsity(model, x, y, batch_size=batch_size)})
    return rows


@register_section("sparsity")
def sparsity_section(ctx: AttackContext) -> dict:
    """``sparsity``: input-gradient sparsity per layer of the source on ``attack.sparsity_samples`` samples."""
    xsp, ysp = ctx.subset(ctx.cfg.sparsity_samples)
    return {"sparsity": gradient_sparsity(ctx.inputs.model, xsp, ysp, batch_size=ctx.batch_size)}


@register_section("pooling")
def pooling_section(ctx: AttackContext) -> dict:
    """``pooling``: the max- vs avg-pool table over the inputs' ``pool_variants`` (absent without
    them), on the sparsity audit's samples."""
    if not ctx.inputs.pool_variants:
        return {}
    c = ctx.cfg
    xsp, ysp = ctx.subset(c.sparsity_samples)
    return {"pooling": pooling_table(ctx.inputs.pool_variants, xsp, ysp, epsilon=c.epsilon, step_size=c.step_size,
                                     steps=c.steps, seed=ctx.seed, batch_size=ctx.batch_size)}
