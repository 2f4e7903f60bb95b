"""Square Attack (L∞): a score-based, query-only attack by random square-shaped updates.

Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search", ECCV 2020 (Algorithm 1 with the L∞ sampling of Algorithm 2):

- loss: the margin L(x) = f_y(x) − max_{k≠y} f_k(x); an input is fooled when L < 0;
- start: vertical stripes, x̂⁰ = clip_[0,1](x + δ), δ[:, :, :, j] = ±ε per column and channel;
- step i: a square of side s = round(√(p_i · n / c)) (1 ≤ s ≤ h − 1) at a random position gets,
  per channel, a new constant value ±ε (resampled until it changes the image);
  x_new = clip_[0,1](x + δ_new), accepted if L(x_new) < L(x̂ⁱ);
- p_i follows the paper's piecewise-constant schedule (p_init halved at 10, 50, 200, 500, 1000,
  2000, 4000, 6000, 8000 of 10 000 iterations, rescaled to the budget).

Only inputs that are not yet fooled are queried. The budget ``max_queries`` counts every query of
one input, the initial one included. Needs queries only (:class:`ClassifierMixin`), so it runs
against a :class:`TargetEstimator` (a deployed network's simulation).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import AttackError
from .base import Attack, register_attack
from .estimators import ClassifierMixin, TargetEstimator, accuracy
from .sections import AttackContext, register_section, subset_index
from .random_search import margin

log = logging.getLogger(__name__)


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The paper's schedule for p, the fraction of pixels changed at iteration ``it``."""
    it = int(it / max(n_iters, 1) * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
                       (6000, 128), (8000, 256), (10000, 512)):
        if it <= bound:
            return p_init / div
    return p_init / 512


@dataclass
class QueryResult:
    """Result of a query-only attack: images, queries per input (initial one included), success."""

    x_adv: torch.Tensor
    queries: torch.Tensor  # [N] int64
    success: torch.Tensor  # [N] bool: misclassified at the end

    def summary(self) -> dict[str, float]:
        n = len(self.queries)
        succ = self.success
        return {
            "samples": n,
            "success_rate": int(succ.sum()) / n if n else float("nan"),
            "queries_mean": int(self.queries.sum()) / n if n else float("nan"),
            "queries_total": int(self.queries.sum()),
            "queries_median_success": float(self.queries[succ].float().median()) if succ.any() else float("nan"),
        }


@register_attack
class SquareAttack(Attack):
    """``SquareAttack(epsilon, max_queries=1000, p_init=0.3, seed=0).run(est, x, y) -> QueryResult``.

    ``p_init`` = 0.3 rather than the paper's ImageNet value 0.05 because the images here are tiny
    (8×8: p = 0.05 would give 2×2 squares from the start); the paper also uses larger p for MNIST.
    """

    needs = (ClassifierMixin,)
    name = "square"

    def __init__(self, epsilon: float = 8 / 255, max_queries: int = 1000, p_init: float = 0.3, seed: int = 0, *,
                 batch_size: int = 256, progress: bool = False) -> None:
        super().__init__(epsilon, seed=seed, batch_size=batch_size, progress=progress)
        if max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        if not 0.0 < p_init <= 1.0:
            raise ValueError(f"p_init must be in (0, 1], got {p_init}")
        self.max_queries = int(max_queries)
        self.p_init = float(p_init)

    def run(self, estimator: ClassifierMixin, x: torch.Tensor, y: torch.Tensor,
            batch_size: int | None = None) -> QueryResult:
        """Attack (x, y) in batches; returns the images, the queries used per input and the success."""
        self.check(estimator)
        x, y = x.detach().float(), y.detach().long()
        bs = batch_size or self.batch_size
        gen = torch.Generator().manual_seed(self.seed)
        xs, qs, ss = [], [], []
        for i in range(0, len(x), bs):
            xa, q, s = self._attack_batch(estimator, x[i:i + bs], y[i:i + bs], gen)
            xs.append(self.finish(xa, x[i:i + bs]))
            qs.append(q)
            ss.append(s)
        if not xs:
            return QueryResult(x.clone(), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))
        res = QueryResult(torch.cat(xs), torch.cat(qs), torch.cat(ss))
        s = res.summary()
        log.info("square: success %.3f, mean queries %.1f", s["success_rate"], s["queries_mean"])
        return res

    def _generate_batch(self, estimator: ClassifierMixin, x: torch.Tensor, y: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """``generate`` (the Attack contract): the images of :meth:`run`, without its query counts."""
        return self._attack_batch(estimator, x, y, gen)[0]

    def _attack_batch(self, est: ClassifierMixin, x: torch.Tensor, y: torch.Tensor,
                      gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # squares lie in the last two dimensions; every dimension between the batch and them (channels,
        # and the time bins of event frames [N, T, C, H, W]) is one channel axis of its own
        shape = x.shape
        if x.dim() < 3:
            raise AttackError(f"square: inputs must be at least [N, H, W], got shape {tuple(shape)}")
        n, h, w = shape[0], shape[-2], shape[-1]
        c = math.prod(shape[1:-2])
        x = x.reshape(n, c, h, w)
        est = _Reshaped(est, tuple(shape[1:]))
        eps = float(math.floor(self.epsilon + 1e-9)) if self.domain.integer else self.epsilon  # whole events
        sign = lambda *shape: (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(x)  # noqa: E731
        x_best = self.domain.clamp(x + eps * sign(n, c, 1, w))
        m_best = margin(est.predict(x_best), y).cpu()
        queries = torch.ones(n, dtype=torch.long)
        n_iters = self.max_queries - 1
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        bar = tqdm(range(n_iters), desc=self.name, disable=not self.progress, leave=False)
        for it in bar:
            active = (m_best >= 0).nonzero().squeeze(1)
            if len(active) == 0 or eps == 0.0:
                break
            p = p_selection(self.p_init, it, n_iters)
            s = min(max(int(round(math.sqrt(p * h * w))), 1), max(h - 1, 1))
            k = len(active)
            top = torch.randint(0, h - s + 1, (k,), generator=gen).view(k, 1, 1)
            left = torch.randint(0, w - s + 1, (k,), generator=gen).view(k, 1, 1)
            win = ((rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)).unsqueeze(1)  # [k,1,h,w]
            xa, xb = x[active], x_best[active]
            delta = xb - xa
            todo = torch.ones(k, dtype=torch.bool)
            for _ in range(20):  # resample the window's value until it changes the image (paper, Alg. 2)
                new = torch.where(win & todo.view(k, 1, 1, 1), eps * sign(k, c, 1, 1), delta)
                delta = new
                cand = self.domain.clamp(xa + delta)
                todo = ((cand - xb).abs() < 1e-7).flatten(1).all(1)
                if not todo.any():
                    break
            m = margin(est.predict(cand), y[active]).cpu()
            queries[active] += 1
            better = m < m_best[active]
            idx = active[better]
            x_best[idx] = cand[better]
            m_best[idx] = m[better]
        bar.close()
        return x_best.reshape(shape), queries, m_best < 0


class _Reshaped:
    """An estimator seen through the [N, C, H, W] view the attack works in."""

    def __init__(self, est: ClassifierMixin, sample_shape: tuple[int, ...]) -> None:
        self.est, self.sample_shape = est, sample_shape

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.est.predict(x.reshape(len(x), *self.sample_shape))


@register_section("query")
def query_section(ctx: AttackContext) -> dict:
    """``query`` on the source (for reference) and on each target without a stand-in: the Square
    attack with ``attack.query_budget`` queries per sample on ``attack.query_samples`` samples
    (``source.query`` is ``None`` with a zero budget). A target with a stand-in gets its
    stand-in's entry, marked ``via``.

    An entry holds ``accuracy`` (the final images queried once more, so a target with a random
    input coding draws again), ``success_rate`` (as seen during the search), ``queries_mean``/
    ``queries_total``/``queries_median_success`` (queries per input, the first included), and the
    clean and PGD (transfer) accuracies on the same samples for comparison.
    """
    from .pgd import source_pgd

    c, bs = ctx.cfg, ctx.batch_size
    if c.query_budget <= 0:
        return {"source": {"query": None}}
    iq = subset_index(len(ctx.x), c.query_samples, ctx.seed)
    xq, yq, x_pgd = ctx.x[iq], ctx.y[iq], source_pgd(ctx)[iq]
    square = ctx.attack(SquareAttack(c.epsilon, max_queries=c.query_budget, seed=ctx.seed, batch_size=bs))

    head = {"attack": "square", "epsilon": c.epsilon, "max_queries": c.query_budget, "p_init": square.p_init}
    src = _query_entry(square, head, ctx.est, lambda xa: accuracy(ctx.est, xa, yq, bs), xq, yq, x_pgd)
    x_adv = src.pop("x_adv")
    ctx.memo("query_source", lambda: (iq, x_adv))  # the checklist's per-sample item (ii) reads them
    out: dict = {"source": {"query": src}}
    for name in ctx.queried_targets():
        out[name] = {"query": ctx.on_targets(target_query_entry, name, square, head, ctx.n_classes, xq, yq, x_pgd)}
    for name, stand_in in ctx.inputs.stand_ins.items():
        if name in ctx.targets and stand_in in out:
            out[name] = {"query": out[stand_in]["query"].then(lambda q, s=stand_in: {**q, "via": s})}
    return out


def _query_entry(square: SquareAttack, head: dict, estimator: ClassifierMixin, acc: Callable[[torch.Tensor], float],
                 xq: torch.Tensor, yq: torch.Tensor, x_pgd: torch.Tensor) -> dict:
    """The ``query`` entry of one model (:func:`query_section`), plus the final images (``x_adv``)."""
    res = square.run(estimator, xq, yq)
    return {**head, "accuracy": acc(res.x_adv), **res.summary(), "clean_accuracy_same_samples": acc(xq),
            "pgd_accuracy_same_samples": acc(x_pgd), "x_adv": res.x_adv}


def target_query_entry(targets, name: str, square: SquareAttack, head: dict, n_classes: int, xq: torch.Tensor,
                       yq: torch.Tensor, x_pgd: torch.Tensor) -> dict:
    """A target job (:meth:`AttackContext.on_targets`): the Square attack on target ``name``'s
    simulation and its ``query`` entry."""
    from .sections import target_accuracy

    fn = targets[name]
    acc = lambda xa: target_accuracy(fn, xa, yq)  # noqa: E731
    e = _query_entry(square, head, TargetEstimator(fn, n_classes), acc, xq, yq, x_pgd)
    e.pop("x_adv")
    return e
