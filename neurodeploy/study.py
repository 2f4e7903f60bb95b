"""Multi-seed studies: train a list of recipes × seeds, attack each SNN, aggregate mean ± std.

For every (recipe, seed): the recipe's training chain (:func:`neurodeploy.train.train_recipe`,
the dataset split and the initialisation both use the seed), then clean accuracy, FGSM and PGD
accuracy with the recipe's ``[attack]`` settings (white-box on the source SNN through the
surrogate gradient) and the input-gradient sparsity, by the attack stage's ``clean``, ``fgsm``,
``pgd`` and ``sparsity`` sections on the same seeded subset a run's report attacks. Aggregates are the mean and the sample standard deviation (ddof = 1) over
seeds; the result is written as ``study.json`` and ``study.md`` when an output folder is given,
and every finished run is stored at once, so an interrupted study resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from .data import load_dataset
from .recipe import Recipe, load_recipe
from .util import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

METRICS = ("clean", "fgsm", "pgd")


@dataclass
class RunResult:
    """One trained and attacked SNN."""

    recipe: str
    seed: int
    clean: float
    fgsm: float
    pgd: float
    ann: float | None = None
    converted: float | None = None
    train_seconds: float = 0.0
    samples: int = 0
    sparsity: dict[str, float] = field(default_factory=dict)  # layer -> fraction of exactly-zero input gradients


@dataclass
class Summary:
    """Mean and sample std over seeds of one recipe's metrics."""

    recipe: str
    seeds: list[int]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    sparsity: dict[str, float] = field(default_factory=dict)  # layer -> mean zero fraction over seeds


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s


def evaluate_robustness(snn: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe
                        ) -> tuple[dict[str, float], dict[str, float], int]:
    """Clean, FGSM(ε) and PGD(ε, α, K) accuracy of ``snn`` with the recipe's attack settings and the
    input-gradient sparsity per layer, computed by the attack stage's own sections on the same
    seeded subset of (x, y) as a run's report (``attack.max_samples``, the recipe's seed).
    Returns (accuracies, sparsity per layer, samples attacked)."""
    import dataclasses

    from .attacks.stage import AttackInputs, robustness_report

    cfg = dataclasses.replace(recipe.attack, sections=["clean", "fgsm", "pgd", "sparsity"])
    rob = robustness_report(AttackInputs(snn, x, y, seed=recipe.seed), cfg)
    s = rob["source"]
    return ({k: s[k]["accuracy"] for k in METRICS}, {r["layer"]: r["zero_fraction"] for r in rob["sparsity"]},
            s["samples"])


def run_one(recipe: Recipe, seed: int, out_dir: Path | None = None, progress: bool = False) -> RunResult:
    """Train ``recipe`` with ``seed`` (split and initialisation) and attack the SNN."""
    from .train import train_recipe

    recipe.seed = seed
    data = load_dataset(recipe.data, seed)
    t0 = time.perf_counter()
    res = train_recipe(recipe, data, out_dir, seed, progress)
    secs = time.perf_counter() - t0
    m, sparsity, n = evaluate_robustness(res.snn, data.x_test, data.y_test, recipe)
    return RunResult(recipe.name, seed, m["clean"], m["fgsm"], m["pgd"], res.ann_accuracy, res.converted_accuracy,
                     round(secs, 2), n, sparsity)


def summarize(runs: Iterable[RunResult]) -> list[Summary]:
    """Group runs by recipe and aggregate each metric as mean ± std over seeds."""
    groups: dict[str, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(r.recipe, []).append(r)
    out = []
    for name, rs in groups.items():
        s = Summary(name, [r.seed for r in rs])
        for k in METRICS:
            s.mean[k], s.std[k] = mean_std([getattr(r, k) for r in rs])
        layers = list(rs[0].sparsity)
        if layers and all(list(r.sparsity) == layers for r in rs):
            s.sparsity = {k: sum(r.sparsity[k] for r in rs) / len(rs) for k in layers}
        out.append(s)
    return out


def markdown_table(summaries: Sequence[Summary]) -> str:
    """A markdown table: recipe, seeds, clean / FGSM / PGD accuracy in % as mean ± std."""
    lines = ["| recipe | seeds | clean % | FGSM % | PGD % |", "|---|---|---|---|---|"]
    for s in summaries:
        cells = [f"{100 * s.mean[k]:.1f} ± {100 * s.std[k]:.1f}" for k in METRICS]
        lines.append(f"| {s.recipe} | {len(s.seeds)} | " + " | ".join(cells) + " |")
    layers = [k for k in summaries[0].sparsity] if summaries and summaries[0].sparsity else []
    if layers and all(list(s.sparsity) == layers for s in summaries):
        lines += ["", "Input-gradient sparsity (fraction of exactly-zero entries of ∂L/∂ layer input, mean over "
                  "seeds; Luu et al. 2025):", "",
                  "| recipe | " + " | ".join(layers) + " |", "|---|" + "---|" * len(layers)]
        for s in summaries:
            lines.append(f"| {s.recipe} | " + " | ".join(f"{s.sparsity[k]:.3f}" for k in layers) + " |")
    return "\n".join(lines) + "\n"


def run_study(recipes: Sequence[str | Path | Recipe], seeds: Sequence[int], out_dir: str | Path | None = None,
              progress: bool = False) -> tuple[list[RunResult], list[Summary]]:
    """Run every recipe with every seed; returns (runs, summaries). Resumes from ``out_dir/study.json``."""
    out = Path(out_dir) if out_dir is not None else None
    runs: list[RunResult] = []
    if out is not None and (out / "study.json").is_file():
        runs = read_study(out / "study.json")
    done = {(r.recipe, r.seed) for r in runs}
    for spec in recipes:
        base = spec if isinstance(spec, Recipe) else load_recipe(spec)
        for seed in seeds:
            if (base.name, seed) in done:
                continue
            import copy

            rec = copy.deepcopy(base)
            log.info("study: %s seed %d", rec.name, seed)
            ck = out / f"{rec.name}.seed{seed}" if out is not None else None
            runs.append(run_one(rec, seed, ck, progress))
            if out is not None:
                _write(out, runs)
    summaries = summarize(runs)
    if out is not None:
        _write(out, runs)
    return runs, summaries


def read_study(path: Path) -> list[RunResult]:
    """The runs of a study.json :func:`run_study` wrote; one :class:`NeurodeployError` naming the file
    and the entry when it is not that (not JSON, ``runs`` not a list, a run with missing, unknown or
    mistyped fields)."""
    from dataclasses import fields

    from .errors import NeurodeployError

    fix = "; delete it to start the study over"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise NeurodeployError(f"{path}: corrupt study file ({e}){fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise NeurodeployError(f"{path}: must be a JSON object with a 'runs' list{fix}")
    types = {f.name: f.type for f in fields(RunResult)}
    numbers = {"clean", "fgsm", "pgd", "train_seconds"}
    runs = []
    for i, r in enumerate(data["runs"]):
        where = f"{path}: runs[{i}]"
        if not isinstance(r, dict):
            raise NeurodeployError(f"{where} must be a JSON object{fix}")
        missing = [k for k in ("recipe", "seed", *sorted(numbers - {"train_seconds"})) if k not in r]
        unknown = sorted(set(r) - set(types))
        if missing or unknown:
            raise NeurodeployError(f"{where}: {'missing ' + ', '.join(missing) if missing else ''}"
                                   f"{'; ' if missing and unknown else ''}"
                                   f"{'unknown ' + ', '.join(unknown) if unknown else ''}{fix}")
        bad = [k for k, v in r.items()
               if (k == "recipe" and not isinstance(v, str))
               or (k in ("seed", "samples") and (isinstance(v, bool) or not isinstance(v, int)))
               or ((k in numbers or k in ("ann", "converted")) and v is not None
                   and (isinstance(v, bool) or not isinstance(v, (int, float))))
               or (k == "sparsity" and not isinstance(v, dict))]
        if bad:
            raise NeurodeployError(f"{where}: {', '.join(bad)} of the wrong type{fix}")
        runs.append(RunResult(**r))
    return runs


def _write(out: Path, runs: list[RunResult]) -> None:
    summaries = summarize(runs)
    write_json_atomic(out / "study.json", {"runs": [asdict(r) for r in runs],
                                           "summary": [asdict(s) for s in summaries]})
    write_text_atomic(out / "study.md", markdown_table(summaries))
