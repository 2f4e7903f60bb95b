"""Multi-seed studies: train a list of recipes × seeds, attack and deploy each SNN, aggregate mean ±
std over seeds and test the papers' claims (:mod:`.claims`) with paired statistics (:mod:`.stats`).

Phase 1 trains every (recipe, seed) (resumable per epoch; see :mod:`.runs`); phase 2 attacks each
run with the black-box surrogate "same recipe, the study's next seed" (the last seed takes the
first's), measures it and deploys it to the study's targets. Every finished run is stored in
``study.json`` at once, so an interrupted study resumes where it stopped; ``study.md`` (the
claim tables, the per-recipe table) and ``study.png`` (the figure) are rewritten after every run.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..recipe import Recipe, load_recipe
from ..util import write_json_atomic, write_text_atomic
from .claims import Claim, evaluate_claims
from .runs import METRICS, RunResult, Trained, evaluate_run, read_study, train_run
from .stats import mean_std

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """Mean and sample std over seeds of one recipe's metrics."""

    recipe: str
    seeds: list[int]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    sparsity: dict[str, float] = field(default_factory=dict)  # layer -> mean zero fraction over seeds


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
        for k in ("blackbox_fgsm", "blackbox_pgd", "tasa", "grad_zero"):
            vals = [r.metrics[k] for r in rs if k in r.metrics]
            if len(vals) == len(rs):
                s.mean[k], s.std[k] = mean_std(vals)
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


def _needs_sweeps(claims: Sequence[Claim]) -> set[str]:
    return {c.a for c in claims for k in c.comparisons if k.metric.startswith(("eps=", "k="))}


def _needs_blackbox(claims: Sequence[Claim], bases: Sequence[Recipe]) -> set[str]:
    """The recipes whose black-box attacks are measured: every one without claims, else those a
    claim compares on a ``blackbox_*`` metric (the others' surrogate attacks would go unread)."""
    if not claims:
        return {b.name for b in bases}
    return {n for c in claims for k in c.comparisons if k.metric.startswith("blackbox") for n in (c.a, c.b)}


def run_study(recipes: Sequence[str | Path | Recipe], seeds: Sequence[int], out_dir: str | Path | None = None,
              progress: bool = False, claims: Sequence[Claim] = (), targets: Sequence[str] = (),
              title: str = "", jobs: int = 1) -> tuple[list[RunResult], list[Summary]]:
    """Run every recipe with every seed; returns (runs, summaries). Resumes from ``out_dir/study.json``.

    ``claims`` are evaluated into ``study.json``/``study.md``; recipes a claim sweeps get the ε and K
    sweeps; ``targets`` (e.g. ``["loihi-emu", "speck"]``) are deployed to and measured. ``jobs`` > 1
    runs groups of recipes (recipes sharing an ANN stage stay in one group) in that many processes,
    each storing its finished runs in ``out_dir/parts/<first recipe>.json`` as it goes."""
    out = Path(out_dir) if out_dir is not None else None
    runs = _load(out)
    done = {(r.recipe, r.seed) for r in runs}
    bases = [spec if isinstance(spec, Recipe) else load_recipe(spec) for spec in recipes]
    sweep = _needs_sweeps(claims)
    blackbox = _needs_blackbox(claims, bases)
    if jobs > 1 and out is not None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        groups = [g for g in _groups(bases, seeds) if any((b.name, s) not in done for b in g for s in seeds)]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run_group, g, list(seeds), out, done, list(targets), sweep, blackbox)
                       for g in groups]
            for f in futures:
                runs += f.result()
                write_study(out, runs, claims, title, figure=False)
    else:
        def stored(r: RunResult) -> None:
            runs.append(r)
            if out is not None:
                write_study(out, runs, claims, title, figure=False)

        _study(bases, seeds, out, progress, done, targets, sweep, stored, blackbox)
    summaries = summarize(runs)
    if out is not None:
        write_study(out, runs, claims, title)
    return runs, summaries


def _load(out: Path | None) -> list[RunResult]:
    """The finished runs of a study folder: study.json, then any parts not yet merged."""
    if out is None:
        return []
    runs: list[RunResult] = []
    if (out / "study.json").is_file():
        runs = read_study(out / "study.json")
    seen = {(r.recipe, r.seed) for r in runs}
    for part in sorted((out / "parts").glob("*.json")) if (out / "parts").is_dir() else []:
        for r in read_study(part):
            if (r.recipe, r.seed) not in seen:
                runs.append(r)
                seen.add((r.recipe, r.seed))
    return runs


def _groups(bases: Sequence[Recipe], seeds: Sequence[int]) -> list[list[Recipe]]:
    """Recipes grouped so that the ones sharing an ANN stage run in one process, largest first."""
    from .runs import ann_key

    groups: dict[str, list[Recipe]] = {}
    for b in bases:
        key = ann_key(b, seeds[0]) if b.train.convert.enabled else f"own:{b.name}"
        groups.setdefault(key, []).append(b)
    return sorted(groups.values(), key=lambda g: -sum(r.timesteps * (r.train.snn.epochs + r.train.ann.epochs) for r in g))


def _run_group(bases: list[Recipe], seeds: list[int], out: Path, done: set, targets: list[str], sweep: set,
               blackbox: set) -> list[RunResult]:
    """One process of a parallel study: its recipes' runs, stored in ``out/parts`` as they finish."""
    import torch

    torch.set_num_threads(1)
    part = out / "parts" / f"{bases[0].name}.json"
    part.parent.mkdir(parents=True, exist_ok=True)
    got: list[RunResult] = []

    def stored(r: RunResult) -> None:
        got.append(r)
        write_json_atomic(part, [asdict(x) for x in got])

    _study(bases, seeds, out, False, done, targets, sweep, stored, blackbox)
    return got


def _study(bases: Sequence[Recipe], seeds: Sequence[int], out: Path | None, progress: bool, done: set,
           targets: Sequence[str], sweep: set, stored, blackbox: set | None = None) -> None:
    """Train (phase 1) and attack (phase 2) every (recipe, seed) not in ``done``; ``stored(run)`` each.
    Only the recipes in ``blackbox`` (None: all) get the surrogate seed's black-box attacks."""
    ann_cache: dict[str, Path] = {}
    data_cache: dict[str, object] = {}
    for base in bases:
        todo = [s for s in seeds if (base.name, s) not in done]
        if not todo:
            continue
        bb = base.attack.blackbox == "seed" and len(seeds) > 1 and (blackbox is None or base.name in blackbox)
        need = sorted(set(todo) | ({_next(s, seeds) for s in todo} if bb else set()), key=list(seeds).index)
        trained: dict[int, Trained] = {}
        for s in need:
            log.info("study: training %s seed %d", base.name, s)
            trained[s] = train_run(copy.deepcopy(base), s, out, progress, ann_cache, data_cache)
        for s in todo:
            log.info("study: attacking %s seed %d", base.name, s)
            stored(evaluate_run(trained[s], trained[_next(s, seeds)].snn if bb else None, targets, base.name in sweep,
                                blackbox is None or base.name in blackbox))


def _next(seed: int, seeds: Sequence[int]) -> int:
    """The surrogate's seed for ``seed``: the next one of the study (the last takes the first)."""
    seeds = list(seeds)
    return seeds[(seeds.index(seed) + 1) % len(seeds)]


def write_study(out: Path, runs: list[RunResult], claims: Sequence[Claim] = (), title: str = "",
                figure: bool = True) -> None:
    """study.json (runs, summaries, claims with their statistics), study.md and (``figure``) study.png."""
    from .report import claims_markdown, plot_claims

    summaries = summarize(runs)
    evaluated = evaluate_claims(claims, runs)
    write_json_atomic(out / "study.json", {"runs": [asdict(r) for r in runs],
                                           "summary": [asdict(s) for s in summaries], "claims": evaluated})
    fig = plot_claims(evaluated, runs, out / "study.png") if evaluated and figure else None
    if evaluated and not figure and (out / "study.png").is_file():
        fig = out / "study.png"  # the last one drawn; redrawn when the study ends
    md = claims_markdown(evaluated, runs, title, fig.name if fig else "") + "\n## Per recipe\n\n" \
        + markdown_table(summaries) if evaluated else markdown_table(summaries)
    write_text_atomic(out / "study.md", md)
