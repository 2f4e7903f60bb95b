"""The attack stage: the ``robustness`` section of report.json, source side and target side.

What it measures (HIRE-SNN, Kundu et al. ICCV 2021, §5 and Table 4; DESIGN.md "attacks"):

- ``source``: clean accuracy; white-box FGSM and PGD through the surrogate gradient over all T
  steps (EOT over the coding when the input is rate-coded); black-box FGSM/PGD crafted on a
  surrogate model (the same architecture from another seed, else the ANN twin); Gaussian noise of
  the same L∞ size; random sampling in the ε-ball; the Square attack (query-only) for comparison
  with the targets; the ANN twin attacked white-box the same way (``ann``).
- one entry per deployed target, keyed by its name (a query function images -> logits): its
  clean accuracy, the source's FGSM/PGD images run through it (``transfer_fgsm``,
  ``transfer_pgd``) and the Square attack against its simulation with a query budget (``query``).
- ``sweeps``: accuracy against ε (up to ε = 1, "unbounded"; targets evaluated on the source's
  images) and against the PGD iterations K (up to 40).
- ``checklist``: the five gradient-obfuscation checks (:mod:`.checklist`).
- ``sparsity``: the input-gradient sparsity per layer (:mod:`.sparsity`).

Cost is set by the arguments: ``cfg.max_samples`` (0 = all) for the main attacks,
``sweep_samples`` for the sweeps, ``query_samples`` × ``query_budget`` for the query attacks.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import NeurodeployError
from ..recipe import AttackConfig
from .checklist import obfuscation_checklist
from .estimators import SourceEstimator, TargetEstimator, accuracy
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .pgd import PGD
from .random_search import RandomSampling
from .sparsity import gradient_sparsity, pooling_table
from .square import SquareAttack
from .sweeps import DEFAULT_EPSILONS, DEFAULT_STEPS, epsilon_sweep, steps_sweep

log = logging.getLogger(__name__)

RESERVED = frozenset({"source", "sweeps", "checklist", "sparsity", "pooling", "seconds"})
QueryFn = Callable[[torch.Tensor], "np.ndarray | torch.Tensor"]


def subset_index(total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded random subset of n of ``total`` samples, in dataset order (all when n is
    0/None/≥ total). Nested: the subset of size m < n is the first m of the same permutation, sorted."""
    if not n or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of n samples, kept in dataset order (all when n is 0/None/≥ N)."""
    idx = subset_index(len(x), n, seed)
    return x[idx], y[idx]


def target_query_fn(target: object, deployment: object, batch_size: int = 256) -> QueryFn:
    """A query function ``images -> logits`` over a deployed target's ``run`` (no gradients).

    Uses ``Outputs.logits`` (the target's readout per class); a target that reports only
    predictions gives one-hot scores, which a query attack can still use (hard-label).
    """

    def query(x: torch.Tensor) -> np.ndarray:
        out = target.run(deployment, x, batch_size=batch_size, progress=False)  # type: ignore[attr-defined]
        if out.logits is not None:
            return np.asarray(out.logits, dtype=np.float32)
        n = int(getattr(getattr(deployment, "meta", None), "num_classes", 0) or (int(out.predictions.max()) + 1))
        onehot = np.zeros((len(out.predictions), n), dtype=np.float32)
        onehot[np.arange(len(out.predictions)), out.predictions] = 1.0
        return onehot

    return query


def _target_accuracy(fn: QueryFn, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    preds = []
    for i in range(0, len(x), batch_size):
        out = fn(x[i:i + batch_size])
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        preds.append(out.argmax(1))
    return int((np.concatenate(preds) == y.numpy()).sum()) / len(y) if preds else float("nan")


def _white_box(est: SourceEstimator, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, seed: int,
               batch_size: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    x_fgsm = FGSM(cfg.epsilon, batch_size=batch_size).generate(est, x, y)
    pgd = PGD(cfg.epsilon, cfg.step_size, cfg.steps, cfg.random_start, seed, batch_size=batch_size)
    x_pgd = pgd.generate(est, x, y)
    out = {
        "clean": {"accuracy": accuracy(est, x, y, batch_size), "samples": len(x)},
        "fgsm": {"epsilon": cfg.epsilon, "accuracy": accuracy(est, x_fgsm, y, batch_size)},
        "pgd": {"epsilon": cfg.epsilon, "step_size": cfg.step_size, "steps": cfg.steps,
                "random_start": cfg.random_start, "accuracy": accuracy(est, x_pgd, y, batch_size)},
    }
    return out, x_fgsm, x_pgd


def robustness_report(
    source_model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    *,
    ann: nn.Module | None = None,
    surrogate_model: nn.Module | None = None,
    targets: Mapping[str, QueryFn] | None = None,
    n_classes: int | None = None,
    sweep_epsilons: Sequence[float] = DEFAULT_EPSILONS,
    sweep_steps: Sequence[int] = DEFAULT_STEPS,
    sweep_samples: int | None = 200,
    query_budget: int = 200,
    query_samples: int = 100,
    random_samples: int = 20,
    sparsity_samples: int = 200,
    target_max_samples: Mapping[str, int] | None = None,
    query_targets: Sequence[str] | None = None,
    sweep_targets: Sequence[str] | None = None,
    pool_variants: Mapping[str, nn.Module] | None = None,
    eot_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> dict:
    """Attack the source model (and each target) and return the report's ``robustness`` section.

    ``x``, ``y``: test images in [0, 1] and labels. ``targets`` maps a target name to a query
    function ``images -> logits`` (its simulation); targets are only queried, and each gets its
    own top-level entry in the returned section (names must not be ``source``, ``sweeps``, ...).
    ``surrogate_model`` (same architecture, another seed) crafts the black-box images; without it
    the ANN twin does, and without both the black-box entries are ``None``. Set ``sweep_epsilons``/``sweep_steps``
    empty to skip a sweep, ``query_budget=0`` to skip the query attacks.

    A ``query`` entry (Square attack, on the source and on each target) holds ``accuracy`` (the
    final images queried once more, so a target with a random input coding draws again),
    ``success_rate`` (as seen during the search), ``queries_mean``/``queries_total``/
    ``queries_median_success`` (queries per input, the first included), and the clean and PGD
    (transfer) accuracies on the same samples for comparison.

    ``target_max_samples`` caps, per target, the samples it simulates for the clean/transfer
    accuracies and the ε sweep (a seeded subset of the attacked samples; e.g. confirm a subset on
    Lava itself while its bit-exact emulator takes the full set); each entry records its
    ``samples``. ``sweep_targets`` names the targets evaluated along the ε sweep (default: all).
    ``query_targets`` names the targets the query attack runs on (default: all; leave a
    slow simulator out and attack its bit-exact emulator instead). ``pool_variants`` (e.g. ``{"avg": net, "max": net_max}``) adds the max- vs
    avg-pool table (:func:`.sparsity.pooling_table`) as ``pooling``.
    """
    t0 = time.perf_counter()
    targets = dict(targets or {})
    clash = sorted(set(targets) & RESERVED)
    if clash:
        raise ValueError(f"target name {clash[0]!r} clashes with a key of the robustness section; rename it")
    x, y = subset(x.detach().float(), y.detach().long(), cfg.max_samples, seed)
    est = SourceEstimator(source_model, n_classes, eot_samples=eot_samples, seed=seed)
    n_classes = n_classes or int(est.predict(x[:1]).shape[1])
    stages = ["white-box", "black-box", "baselines", "ann", "targets", "eps sweep", "K sweep", "query", "sparsity"]
    bar = tqdm(total=len(stages), desc="attacks", disable=not progress, leave=False)

    def advance(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    # --- source, white-box
    source, x_fgsm, x_pgd = _white_box(est, x, y, cfg, seed, batch_size)
    source["samples"] = len(x)
    source["eot_samples"] = est.eot_samples
    advance("white-box")

    # --- source, black-box transfer from a surrogate
    bb_model, bb_name = (surrogate_model, "surrogate") if surrogate_model is not None else (ann, "ann")
    source["blackbox_fgsm"] = source["blackbox_pgd"] = None
    if bb_model is not None:
        bb = SourceEstimator(bb_model, n_classes, seed=seed)
        xb_f = FGSM(cfg.epsilon, batch_size=batch_size).generate(bb, x, y)
        pgd = PGD(cfg.epsilon, cfg.step_size, cfg.steps, cfg.random_start, seed, batch_size=batch_size)
        xb_p = pgd.generate(bb, x, y)
        source["blackbox_fgsm"] = {"epsilon": cfg.epsilon, "surrogate": bb_name,
                                   "accuracy": accuracy(est, xb_f, y, batch_size)}
        source["blackbox_pgd"] = {"epsilon": cfg.epsilon, "step_size": cfg.step_size, "steps": cfg.steps,
                                  "surrogate": bb_name, "accuracy": accuracy(est, xb_p, y, batch_size)}
    advance("black-box")

    # --- non-adversarial baselines of the same size
    x_g = GaussianNoise(cfg.epsilon, seed=seed, batch_size=batch_size).generate(est, x, y)
    source["gaussian"] = {"epsilon": cfg.epsilon, "sigma": cfg.epsilon, "accuracy": accuracy(est, x_g, y, batch_size)}
    x_r = RandomSampling(cfg.epsilon, random_samples, seed, batch_size=batch_size).generate(est, x, y)
    source["random"] = {"epsilon": cfg.epsilon, "samples_per_input": random_samples,
                        "accuracy": accuracy(est, x_r, y, batch_size)}
    advance("baselines")

    # --- the ANN twin, white-box the same way
    source["ann"] = None
    if ann is not None:
        source["ann"] = _white_box(SourceEstimator(ann, n_classes, seed=seed), x, y, cfg, seed, batch_size)[0]
    advance("ann")

    # --- targets: clean and transfer of the source's images
    caps = dict(target_max_samples or {})
    tgt_report: dict[str, dict] = {}
    for name, fn in targets.items():
        i = subset_index(len(x), caps.get(name), seed)
        tgt_report[name] = {
            "samples": len(i),
            "clean": {"accuracy": _target_accuracy(fn, x[i], y[i], batch_size), "samples": len(i)},
            "transfer_fgsm": {"epsilon": cfg.epsilon, "accuracy": _target_accuracy(fn, x_fgsm[i], y[i], batch_size)},
            "transfer_pgd": {"epsilon": cfg.epsilon, "step_size": cfg.step_size, "steps": cfg.steps,
                             "accuracy": _target_accuracy(fn, x_pgd[i], y[i], batch_size)},
        }
    advance("targets")

    # --- sweeps
    xs, ys = subset(x, y, sweep_samples, seed)

    def other(fn: QueryFn, cap: int | None) -> Callable[[torch.Tensor], float]:
        i = subset_index(len(xs), cap, seed)
        return lambda xa: _target_accuracy(fn, xa[i], ys[i], batch_size)

    others = {name: other(fn, caps.get(name)) for name, fn in targets.items()
              if sweep_targets is None or name in sweep_targets}
    eps_rows = epsilon_sweep(est, xs, ys, sweep_epsilons, step_size=cfg.step_size, steps=cfg.steps,
                             base_epsilon=cfg.epsilon, random_start=cfg.random_start, seed=seed, batch_size=batch_size,
                             others=others) if sweep_epsilons else []
    advance("eps sweep")
    k_rows = steps_sweep(est, xs, ys, cfg.epsilon, cfg.step_size, sweep_steps, random_start=cfg.random_start,
                         seed=seed, batch_size=batch_size) if sweep_steps else []
    advance("K sweep")

    # --- query-only attack (Square), on the source for reference and on each target
    source["query"] = None
    if query_budget > 0:
        iq = subset_index(len(x), query_samples, seed)
        xq, yq = x[iq], y[iq]
        square = SquareAttack(cfg.epsilon, max_queries=query_budget, seed=seed, batch_size=batch_size)

        def query_entry(estimator, fn: QueryFn | None) -> dict:
            res = square.run(estimator, xq, yq)
            s = res.summary()
            acc = (accuracy(estimator, res.x_adv, yq, batch_size) if fn is None
                   else _target_accuracy(fn, res.x_adv, yq, batch_size))  # re-queried: a stochastic target redraws
            same = {f"{k}_accuracy_same_samples": (accuracy(est, xi, yq, batch_size) if fn is None
                                                   else _target_accuracy(fn, xi, yq, batch_size))
                    for k, xi in (("clean", xq), ("pgd", x_pgd[iq]))}
            return {"attack": "square", "epsilon": cfg.epsilon, "max_queries": query_budget, "p_init": square.p_init,
                    "accuracy": acc, **s, **same}

        source["query"] = query_entry(est, None)
        for name, fn in targets.items():
            if query_targets is None or name in query_targets:
                tgt_report[name]["query"] = query_entry(TargetEstimator(fn, n_classes), fn)
    advance("query")

    # --- audits
    tol = max(0.01, 1.0 / max(len(x), 1))
    checklist = obfuscation_checklist(
        fgsm_accuracy=source["fgsm"]["accuracy"], pgd_accuracy=source["pgd"]["accuracy"],
        blackbox_accuracy=source["blackbox_pgd"]["accuracy"] if source["blackbox_pgd"] else None,
        eps_sweep=eps_rows, random_accuracy=source["random"]["accuracy"],
        query_accuracy=source["query"]["accuracy"] if source["query"] else None,
        query_pgd_accuracy=source["query"]["pgd_accuracy_same_samples"] if source["query"] else None, tol=tol)
    xsp, ysp = subset(x, y, sparsity_samples, seed)
    sparsity = gradient_sparsity(source_model, xsp, ysp, batch_size=batch_size)
    pooling = pooling_table(pool_variants, xsp, ysp, epsilon=cfg.epsilon, step_size=cfg.step_size, steps=cfg.steps,
                            seed=seed, batch_size=batch_size) if pool_variants else None
    advance("sparsity")
    bar.close()

    seconds = time.perf_counter() - t0
    log.info("robustness: clean %.3f, FGSM %.3f, PGD %.3f (%d samples, %.1f s)", source["clean"]["accuracy"],
             source["fgsm"]["accuracy"], source["pgd"]["accuracy"], len(x), seconds)
    return {
        "source": source,
        **tgt_report,
        "sweeps": {"epsilon": eps_rows, "steps": k_rows, "samples": len(xs)},
        "checklist": checklist,
        "sparsity": sparsity,
        **({"pooling": pooling} if pooling is not None else {}),
        "seconds": round(seconds, 2),
    }


def deployed_query_fns(nir_path: str | Path, targets: Sequence[str], options: Mapping[str, Any] | None = None,
                       batch_size: int = 256) -> dict[str, QueryFn]:
    """Compile ``model.nir`` on each named target and return its query function (images -> logits).

    ``options`` are the recipe's [deploy] options (``input_spikes``, ``timeout_s``, ``seed``).
    Unknown or unavailable targets raise :class:`~neurodeploy.errors.TargetError` before any work.
    """
    from ..errors import IRError
    from ..ir import read_nir
    from ..targets import get_target

    resolved = {name: get_target(name) for name in targets}
    if not resolved:
        return {}
    graph, meta = read_nir(nir_path)
    if meta is None:
        raise IRError(f"{nir_path}: has no neurodeploy metadata; re-export it with `neurodeploy export`")
    fns = {}
    for name, target in resolved.items():
        dep = target.compile(graph, meta, None, dict(options or {}))
        fns[name] = target_query_fn(target, dep, batch_size)
    return fns


def robustness_for_run(run: Any, targets: Sequence[str] = (), *, progress: bool = False, **kwargs: Any) -> dict:
    """:func:`robustness_report` for a run folder (``neurodeploy.load_run(path)``): the source SNN,
    its ANN twin (the black-box surrogate unless ``surrogate_model`` is passed), the recipe's
    attack settings, and each named target compiled from the run's ``model.nir`` with the recipe's
    deploy options. ``kwargs`` go to :func:`robustness_report` (sweep sizes, query budget, ...)."""
    r = run.recipe
    x, y = run.test_data()
    options = {"input_spikes": r.deploy.input_spikes, "timeout_s": r.deploy.timeout_s, "seed": r.seed}
    fns = deployed_query_fns(run.nir_path, targets, options)
    ann = kwargs.pop("ann", None)
    if ann is None:
        try:
            ann = run.ann
        except NeurodeployError as e:  # a run without an ANN checkpoint (an SNN trained from scratch)
            log.info("no ANN twin in the run (%s); black-box transfer needs a surrogate_model", e)
    kwargs.setdefault("seed", r.seed)
    return robustness_report(run.model, x, y, r.attack, ann=ann, targets=fns, progress=progress, **kwargs)
