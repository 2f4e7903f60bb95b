"""The gradient-obfuscation checklist, computed: each item pass/fail with its evidence.

Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security: Circumventing
Defenses to Adversarial Examples", ICML 2018, §3.1 ("characteristic behaviors"), as tabulated for
SNNs by HIRE-SNN (Kundu et al., ICCV 2021, Table 4). A model whose gradients are masked (zero,
shattered or stochastic) looks robust to gradient attacks; these symptoms give it away:

 (i)   iterative attacks are at least as strong as single-step ones: acc_PGD ≤ acc_FGSM + tol;
 (ii)  white-box attacks are at least as strong as black-box ones: acc_white ≤ acc_black + tol, for
       the transfer attack from a surrogate model and, when given, the query attack (Square),
       compared with PGD on the query attack's own samples;
 (iii) a larger ε never weakens the attack: acc(ε) non-increasing (within tol) along the sweep;
 (iv)  an unbounded attack (ε = 1) reaches ~100% success: acc(ε_max) ≤ 1 − success (0.95);
 (v)   random sampling in the ε-ball does not beat the gradient attack: acc_PGD ≤ acc_random + tol.

In the attack stage (:func:`checklist_section`) items (ii) and (v) count samples rather than compare
averages: a sample broken by the black-box or random attack and by no white-box attack (the PGD
protocol and the ensemble's gradient members) is an escape, named in the evidence.

Each item is ``{"item", "check", "passed", "evidence", "values"}``; ``passed`` is ``None`` when
the measurement it needs was not made (e.g. no black-box surrogate).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from .estimators import LossGradientsMixin, accuracy, predict_batched
from .fgsm import FGSM
from .pgd import PGD
from .random_search import RandomSampling
from .sections import AttackContext, register_section
from .sweeps import epsilon_sweep

log = logging.getLogger(__name__)

CHECKS = {
    "i": "iterative attacks beat single-step attacks",
    "ii": "white-box attacks beat black-box attacks",
    "iii": "a larger epsilon never weakens the attack",
    "iv": "an unbounded attack reaches ~100% success",
    "v": "random sampling in the epsilon-ball does not beat the gradient attack",
}


def _item(key: str, passed: bool | None, evidence: str, **values: object) -> dict:
    return {"item": key, "check": CHECKS[key], "passed": passed, "evidence": evidence, "values": values}


def obfuscation_checklist(*, fgsm_accuracy: float, pgd_accuracy: float, blackbox_accuracy: float | None = None,
                          eps_sweep: Sequence[dict] | None = None, random_accuracy: float | None = None,
                          query_accuracy: float | None = None, query_pgd_accuracy: float | None = None,
                          tol: float = 0.01, unbounded_success: float = 0.95) -> list[dict]:
    """The five checks from measured accuracies (all at the same ε except the sweep).

    ``query_accuracy`` is a query attack's accuracy and ``query_pgd_accuracy`` PGD's on the same
    samples; both or neither.
    """
    items = [_item("i", pgd_accuracy <= fgsm_accuracy + tol,
                   f"PGD accuracy {pgd_accuracy:.3f} vs FGSM {fgsm_accuracy:.3f} (tolerance {tol:.3f})",
                   pgd=pgd_accuracy, fgsm=fgsm_accuracy)]
    parts, oks, vals = [], [], {}
    if blackbox_accuracy is not None:
        oks.append(pgd_accuracy <= blackbox_accuracy + tol)
        parts.append(f"white-box PGD accuracy {pgd_accuracy:.3f} vs black-box transfer {blackbox_accuracy:.3f}")
        vals.update(white_box=pgd_accuracy, black_box=blackbox_accuracy)
    if query_accuracy is not None and query_pgd_accuracy is not None:
        oks.append(query_pgd_accuracy <= query_accuracy + tol)
        parts.append(f"PGD {query_pgd_accuracy:.3f} vs query attack {query_accuracy:.3f} on the same samples")
        vals.update(white_box_query_samples=query_pgd_accuracy, query=query_accuracy)
    if not parts:
        items.append(_item("ii", None, "not measured: no black-box surrogate model or query attack"))
    else:
        items.append(_item("ii", all(oks), "; ".join(parts), **vals))
    if not eps_sweep:
        items.append(_item("iii", None, "not measured: no epsilon sweep"))
        items.append(_item("iv", None, "not measured: no epsilon sweep"))
    else:
        rows = sorted(eps_sweep, key=lambda r: r["epsilon"])
        rises = [(a["epsilon"], b["epsilon"], b["accuracy"] - a["accuracy"]) for a, b in zip(rows, rows[1:])
                 if b["accuracy"] > a["accuracy"] + tol]
        curve = ", ".join(f"{r['epsilon']:.4g}:{r['accuracy']:.3f}" for r in rows)
        ev = (f"accuracy rises by {rises[0][2]:.3f} from eps {rises[0][0]:.4g} to {rises[0][1]:.4g}; " if rises
              else "accuracy non-increasing; ") + f"curve eps:acc = {curve}"
        items.append(_item("iii", not rises, ev, curve=[[r["epsilon"], r["accuracy"]] for r in rows]))
        last = rows[-1]
        success = 1.0 - last["accuracy"]
        items.append(_item("iv", success >= unbounded_success,
                           f"success {success:.3f} at eps {last['epsilon']:.4g} (needs >= {unbounded_success:.2f})",
                           epsilon=last["epsilon"], success=success))
    if random_accuracy is None:
        items.append(_item("v", None, "not measured: no random sampling"))
    else:
        items.append(_item("v", pgd_accuracy <= random_accuracy + tol,
                           f"PGD accuracy {pgd_accuracy:.3f} vs random sampling {random_accuracy:.3f}",
                           pgd=pgd_accuracy, random=random_accuracy))
    return items


def checklist_passed(items: Sequence[dict]) -> bool:
    """True when no measured item failed."""
    return all(it["passed"] is not False for it in items)


def run_checklist(estimator: LossGradientsMixin, x: torch.Tensor, y: torch.Tensor, *, epsilon: float = 8 / 255,
                  step_size: float = 0.01, steps: int = 7, blackbox: LossGradientsMixin | None = None,
                  epsilons: Sequence[float] = (0.0, 8 / 255, 32 / 255, 1.0), random_samples: int = 20,
                  seed: int = 0, tol: float = 0.01, batch_size: int = 256) -> list[dict]:
    """Measure everything the checklist needs on (x, y) and return its items.

    ``blackbox`` is a surrogate model's estimator (e.g. the same architecture from another seed):
    PGD images crafted on it give the black-box accuracy of item (ii).
    """
    fgsm = accuracy(estimator, FGSM(epsilon, batch_size=batch_size).generate(estimator, x, y), y)  # type: ignore
    pgd = PGD(epsilon, step_size, steps, seed=seed, batch_size=batch_size)
    pgd_acc = accuracy(estimator, pgd.generate(estimator, x, y), y)  # type: ignore[arg-type]
    bb = accuracy(estimator, pgd.generate(blackbox, x, y), y) if blackbox is not None else None  # type: ignore
    sweep = epsilon_sweep(estimator, x, y, epsilons, step_size=step_size, steps=steps, base_epsilon=epsilon, seed=seed,
                          batch_size=batch_size)
    rnd = RandomSampling(epsilon, random_samples, seed, batch_size=batch_size)
    rnd_acc = accuracy(estimator, rnd.generate(estimator, x, y), y)  # type: ignore[arg-type]
    return obfuscation_checklist(fgsm_accuracy=fgsm, pgd_accuracy=pgd_acc, blackbox_accuracy=bb, eps_sweep=sweep,
                                 random_accuracy=rnd_acc, tol=tol)


def escapes(white_broken: torch.Tensor, other_broken: torch.Tensor) -> torch.Tensor:
    """Per sample: broken by the other (black-box, query or random) attack and by no white-box one."""
    return other_broken & ~white_broken


def per_sample_item(key: str, found: dict[str, list[int]], missed_by: Sequence[str], n: int, allowed: int,
                    averages: dict | None = None) -> dict:
    """Item (ii) or (v) counted in samples: ``found`` maps an attack (transfer, query, random) to the
    samples (test-set indices) it broke and no white-box member did; passes when at most ``allowed``
    such samples exist. The evidence names the samples and the white-box members that missed them."""
    total = sorted({i for v in found.values() for i in v})
    what = {"ii": "black-box", "v": "random sampling"}[key]
    parts = [f"{len(v)} by {k}" + (f" (samples {', '.join(map(str, v[:20]))}{' ...' if len(v) > 20 else ''})"
                                   if v else "") for k, v in found.items()]
    ev = (f"{len(total)} of {n} samples broken by {what} but by no white-box member ({'; '.join(parts)}); "
          f"missed by {', '.join(missed_by)}; allowed {allowed}")
    values = {"escaped_samples": total, "escapes": {k: v for k, v in found.items()}, "missed_by": list(missed_by),
              "samples": n, "allowed": allowed, **(averages or {})}
    return {"item": key, "check": CHECKS[key], "passed": len(total) <= allowed, "evidence": ev, "values": values}


def _wrong(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return predict_batched(ctx.est, x, ctx.batch_size).argmax(1).cpu() != y


def _white_box(ctx: AttackContext) -> tuple[torch.Tensor, list[str]]:
    """Per attacked sample: broken by the white-box attacks (the protocol PGD; and the ensemble's
    gradient members on its samples, when it ran), and the members that attacked."""
    from .pgd import source_pgd

    white = _wrong(ctx, source_pgd(ctx), ctx.y) | _wrong(ctx, ctx.x, ctx.y)
    members = ["pgd7@train" if not ctx.cfg.random_start else "pgd@train (recipe)"]
    ens = ctx.recall("ensemble")
    if ens is not None:
        ie, res, ms = ens
        grad = torch.tensor([b not in ("", "square") for b in res.broken_by], dtype=torch.bool)
        white[ie] |= grad
        members = [m.label for m in ms if m.attack != "square" and "skipped" not in res.members.get(m.label, {})]
    return white, members


def per_sample_checks(ctx: AttackContext) -> dict[str, dict[str, list[int]]]:
    """Per item (ii)/(v): attack -> test-set indices of the samples it broke that no white-box member did."""
    white, _ = _white_box(ctx)
    idx = ctx.index
    out: dict[str, dict[str, list[int]]] = {}
    bb = ctx.recall("blackbox_pgd")
    if bb is not None:
        out.setdefault("ii", {})["transfer"] = idx[escapes(white, _wrong(ctx, bb, ctx.y))].tolist()
    q = ctx.recall("query_source")
    if q is not None:
        iq, xq = q
        out.setdefault("ii", {})["query"] = idx[iq][escapes(white[iq], _wrong(ctx, xq, ctx.y[iq]))].tolist()
    r = ctx.recall("random")
    if r is not None:
        out["v"] = {"random": idx[escapes(white, _wrong(ctx, r, ctx.y))].tolist()}
    return out


@register_section("checklist", requires=("fgsm", "pgd"), after=("blackbox", "eps_sweep", "random", "query", "ensemble"))
def checklist_section(ctx: AttackContext) -> dict:
    """``checklist``: the five checks from what the sections before it measured (a check whose
    measurement was not made is ``None``); tolerance max(0.01, 1/N) for N attacked samples.

    Items (ii) and (v) count samples: a sample that the black-box transfer, the query attack or
    random sampling broke while no white-box attack did (the protocol PGD, and every gradient member
    of the ensemble when it ran) is an escape; the item fails with more than ⌊tol·N⌋ escapes and
    names them (test-set indices) and the members that missed them."""
    src, rows = ctx.report["source"], ctx.report.get("sweeps", {}).get("epsilon")
    bb, q = src.get("blackbox_pgd"), src.get("query")
    n = len(ctx.x)
    tol = max(0.01, 1.0 / max(n, 1))
    items = obfuscation_checklist(
        fgsm_accuracy=src["fgsm"]["accuracy"], pgd_accuracy=src["pgd"]["accuracy"],
        blackbox_accuracy=bb["accuracy"] if bb else None, eps_sweep=rows,
        random_accuracy=src["random"]["accuracy"] if src.get("random") else None,
        query_accuracy=q["accuracy"] if q else None, query_pgd_accuracy=q["pgd_accuracy_same_samples"] if q else None,
        tol=tol)
    _, members = _white_box(ctx)
    allowed = int(tol * n + 1e-9)
    for key, found in per_sample_checks(ctx).items():
        pos = next(k for k, it in enumerate(items) if it["item"] == key)
        items[pos] = per_sample_item(key, found, members, n, allowed, averages=items[pos]["values"])
    return {"checklist": items}
