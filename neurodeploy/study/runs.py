"""One (recipe, seed) of a study: train (resumable), attack, deploy, measure.

Training is the recipe's chain (:func:`neurodeploy.train.train_recipe`; the data split and the
initialisation both use the seed) with its training-state files in ``<out>/<recipe>.seed<k>/``, so a
finished run reloads in seconds. Runs whose ANN stage is identical (same data, ANN-relevant model
fields, ``train.ann`` and seed — e.g. HIRE, BPTT and frozen-θ/λ recipes of one model) share it:
the finished ANN training state of the first is copied to the others before they train, which
gives the same weights as training it again (the state holds the RNG states too).

Measured per run, by the attack stage's own sections (:func:`~neurodeploy.attacks.stage.robustness_report`)
on the seeded subset a run's report attacks: clean, white-box FGSM/PGD, black-box FGSM/PGD crafted
on the surrogate (``attack.blackbox = "seed"``: the same recipe trained with the study's next seed,
HIRE-SNN's protocol; ``"ann"``: the ANN twin), the ε and K sweeps (when a claim needs them), the
input-gradient sparsity, TASA (HIRE-SNN Definition 1: spikes / (neurons · T), over all spiking
layers, on the clean attacked samples), and per deployed target its clean accuracy and the
source's FGSM/PGD images run through it (``transfer``) and the ε-sweep images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..recipe import Recipe

log = logging.getLogger(__name__)

METRICS = ("clean", "fgsm", "pgd")


@dataclass
class RunResult:
    """One trained and attacked SNN. ``metrics``: every scalar measured on the source (clean, fgsm,
    pgd, blackbox_fgsm, blackbox_pgd, tasa, grad_zero, ``eps=<ε>`` and ``k=<K>`` sweep points);
    ``deployed``: the same per target (clean, fgsm, pgd = the source's images on the target,
    ``eps=<ε>``), or ``{"error": reason}`` when the model does not fit the target."""

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
    metrics: dict[str, float] = field(default_factory=dict)
    deployed: dict[str, dict[str, Any]] = field(default_factory=dict)
    attack_seconds: float = 0.0
    train_cpu_seconds: float = 0.0  # CPU time of this process (on a shared machine the honest cost figure)
    attack_cpu_seconds: float = 0.0


@dataclass
class Trained:
    """A trained run kept in memory for the attack phase."""

    recipe: Recipe
    seed: int
    snn: torch.nn.Module
    ann: torch.nn.Module | None
    data: Any
    ann_accuracy: float | None
    converted_accuracy: float | None
    train_seconds: float
    train_cpu_seconds: float = 0.0


def eps_key(eps: float) -> str:
    """The metric name of an ε-sweep point."""
    return f"eps={eps:.4g}"


def ann_key(recipe: Recipe, seed: int) -> str:
    """A digest of everything the ANN stage of ``recipe`` with ``seed`` depends on."""
    m = dataclasses.asdict(recipe.model)
    for k in ("neuron", "leak", "reset", "surrogate", "surrogate_scale", "train_threshold", "train_leak"):
        m.pop(k, None)  # the ANN twin has ReLU in the neuron slots: these do not touch it
    data = dataclasses.asdict(recipe.data)
    if data["encoding"] != "events":  # the twin sees the image itself whatever the SNN's coding (snn/models.py)
        data["encoding"] = "image"
    key = {"data": data, "model": m, "ann": dataclasses.asdict(recipe.train.ann), "seed": seed}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def train_run(recipe: Recipe, seed: int, out: Path | None, progress: bool = False,
              ann_cache: dict[str, Path] | None = None, data_cache: dict[str, Any] | None = None) -> Trained:
    """Train ``recipe`` with ``seed`` (or reload it from ``out``'s training states). ``data_cache``
    keeps each (data config, seed)'s dataset for the next recipe that reads it (the split depends on
    nothing else; generating event-digits takes ~1 s)."""
    from ..data import load_dataset
    from ..train import train_recipe

    recipe = dataclasses.replace(recipe, seed=seed)
    dkey = json.dumps([dataclasses.asdict(recipe.data), seed], sort_keys=True)
    data = data_cache.get(dkey) if data_cache is not None else None
    if data is None:
        data = load_dataset(recipe.data, seed)
        if data_cache is not None:
            data_cache[dkey] = data
    ck = out / f"{recipe.name}.seed{seed}" if out is not None else None
    key = ann_key(recipe, seed)
    if ck is not None and ann_cache is not None and recipe.train.convert.enabled:
        src = ann_cache.get(key)
        dst = ck / "ann.state.safetensors"
        if src is not None and src.is_file() and not dst.exists():
            ck.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            log.info("study: %s seed %d reuses the ANN stage of %s", recipe.name, seed, src.parent.name)
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_recipe(recipe, data, ck, seed, progress)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if ck is not None and ann_cache is not None and (ck / "ann.state.safetensors").is_file():
        ann_cache.setdefault(key, ck / "ann.state.safetensors")
    return Trained(recipe, seed, res.snn, res.ann, data, res.ann_accuracy, res.converted_accuracy, round(secs, 2),
                   round(cpu, 2))


def network_tasa(snn: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> float:
    """TASA of the whole network (HIRE-SNN Definition 1): total spikes of every spiking layer over
    T steps / (its neurons · T), pooled over layers and averaged over the samples of ``x``."""
    spikes = neurons = 0.0
    was = snn.training
    snn.eval()
    snn.record = True
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                snn(x[i:i + batch_size])
                for name, m in snn.spike_maps.items():
                    spikes += float(m.sum())
                    if i == 0:
                        neurons += m[0].numel()
    finally:
        snn.record = False
        snn.train(was)
    return spikes / (neurons * snn.timesteps * len(x)) if neurons and len(x) else float("nan")


def deploy_targets(snn: torch.nn.Module, recipe: Recipe, input_shape: Sequence[int], targets: Sequence[str]
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """Each target compiled from the source's NIR graph: ``(query functions, errors)``; a target that
    is unavailable or that the model does not fit lands in ``errors`` with its one-line reason."""
    from ..attacks.stage import target_query_fn
    from ..errors import NeurodeployError
    from ..ir import DeployMeta, fold_batchnorm, to_nir
    from ..targets import get_target

    meta = DeployMeta(timesteps=recipe.timesteps, encoding=recipe.data.encoding, readout="sum",
                      input_shape=list(input_shape))
    fns: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        graph = to_nir(fold_batchnorm(snn), meta)
    except NeurodeployError as e:
        return {}, {t: f"export: {e}" for t in targets}
    d = recipe.deploy
    for name in targets:
        try:
            target = get_target(name)
            ok, why = target.available()
            if not ok:
                errors[name] = f"unavailable: {why}"
                continue
            opts = {"input_spikes": d.input_spikes, "timeout_s": d.timeout_s, "seed": recipe.seed,
                    **d.target_options.get(name, {})}
            dep = target.compile(graph, meta, None, opts)
            fns[name] = target_query_fn(target, dep)
        except (NeurodeployError, ValueError, RuntimeError) as e:
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.info("study: %s seed %d does not deploy to %s: %s", recipe.name, recipe.seed, name, errors[name])
    return fns, errors


def evaluate_run(run: Trained, surrogate: torch.nn.Module | None, targets: Sequence[str] = (),
                 sweeps: bool = False, blackbox: bool = True) -> RunResult:
    """Attack and measure one trained run (see the module docstring). Event data with an
    ``attack.event_budget`` is attacked in whole events (:mod:`.events`); images by the attack
    stage's own sections, in the data's input domain. ``blackbox`` False: no black-box attacks."""
    from ..attacks.base import InputDomain
    from ..attacks.sections import AttackInputs, subset
    from ..attacks.stage import robustness_report

    r, t0, c0 = run.recipe, time.perf_counter(), time.process_time()
    domain = InputDomain.of(run.data)
    events = domain.integer and r.attack.event_budget > 0
    fns, errors = deploy_targets(run.snn, r, run.data.input_shape, targets) if targets else ({}, {})
    sections = ["clean"] + ([] if events else ["fgsm", "pgd"] + (["blackbox"] if blackbox else [])
                            + (["transfer"] if fns else [])
                            + (["eps_sweep", "steps_sweep"] if sweeps else [])) + ["sparsity"]
    cfg = dataclasses.replace(r.attack, sections=sections)
    sur = surrogate if r.attack.blackbox == "seed" else None
    inputs = AttackInputs(run.snn, run.data.x_test, run.data.y_test, seed=r.seed, ann=run.ann, surrogate_model=sur,
                          targets={} if events else fns, domain=domain)
    rob = robustness_report(inputs, cfg)
    s = rob["source"]
    deployed: dict[str, dict[str, Any]] = {n: {"error": e} for n, e in errors.items()}
    if events:
        from .events import event_metrics

        bb_model = (sur if sur is not None else run.ann) if blackbox else None
        metrics, dep = event_metrics(run.snn, bb_model, run.data.x_test, run.data.y_test, r.attack, domain, r.seed,
                                     fns, sweeps)
        deployed.update(dep)
    else:
        metrics = {k: s[k]["accuracy"] for k in METRICS}
        for k in ("blackbox_fgsm", "blackbox_pgd"):
            if isinstance(s.get(k), dict):
                metrics[k] = s[k]["accuracy"]
        for name in fns:
            t = rob.get(name, {})
            deployed[name] = {"clean": t["clean"]["accuracy"], "fgsm": t["transfer_fgsm"]["accuracy"],
                              "pgd": t["transfer_pgd"]["accuracy"], "samples": t["samples"]}
        sw = rob.get("sweeps", {})
        for row in sw.get("epsilon", []):
            metrics[eps_key(row["epsilon"])] = row["accuracy"]
            for name, acc in (row.get("others") or {}).items():
                deployed.setdefault(name, {})[eps_key(row["epsilon"])] = acc
        for row in sw.get("steps", []):
            metrics[f"k={int(row['steps'])}"] = row["accuracy"]
    xa, _ = subset(run.data.x_test.float(), run.data.y_test.long(), r.attack.max_samples, r.seed)
    metrics["tasa"] = network_tasa(run.snn, xa, r.attack.batch_size)
    rows = rob.get("sparsity") or []
    if rows:
        metrics["grad_zero"] = rows[0]["zero_fraction"]  # ∂L/∂(first layer's input) = ∂L/∂image
    return RunResult(r.name, r.seed, metrics["clean"], metrics["fgsm"], metrics["pgd"], run.ann_accuracy,
                     run.converted_accuracy, run.train_seconds, s["samples"],
                     {row["layer"]: row["zero_fraction"] for row in rows}, metrics, deployed,
                     round(time.perf_counter() - t0, 2), run.train_cpu_seconds, round(time.process_time() - c0, 2))


def result_from_dict(d: Any, where: str = "study.json") -> RunResult:
    """A RunResult from one entry of study.json (older files without the newer fields load with their
    defaults); one :class:`NeurodeployError` naming ``where`` when the entry is not one (not an
    object; missing, unknown or mistyped fields)."""
    from ..errors import NeurodeployError

    fix = "; delete it to start the study over"
    if not isinstance(d, dict):
        raise NeurodeployError(f"{where} must be a JSON object{fix}")
    names = {f.name for f in dataclasses.fields(RunResult)}
    numbers = {"clean", "fgsm", "pgd"}
    missing = [k for k in ("recipe", "seed", *sorted(numbers)) if k not in d]
    unknown = sorted(set(d) - names)
    if missing or unknown:
        raise NeurodeployError(f"{where}: {'missing ' + ', '.join(missing) if missing else ''}"
                               f"{'; ' if missing and unknown else ''}"
                               f"{'unknown ' + ', '.join(unknown) if unknown else ''}{fix}")

    def number(v: Any, optional: bool = False) -> bool:
        return (optional and v is None) or (not isinstance(v, bool) and isinstance(v, (int, float)))

    bad = [k for k, v in d.items()
           if (k == "recipe" and not isinstance(v, str))
           or (k in ("seed", "samples") and (isinstance(v, bool) or not isinstance(v, int)))
           or (k in numbers | {"train_seconds", "attack_seconds", "train_cpu_seconds", "attack_cpu_seconds"}
               and not number(v))
           or (k in ("ann", "converted") and not number(v, optional=True))
           or (k in ("sparsity", "metrics", "deployed") and not isinstance(v, dict))]
    if bad:
        raise NeurodeployError(f"{where}: {', '.join(bad)} of the wrong type{fix}")
    return RunResult(**d)


def read_study(path: Path) -> list[RunResult]:
    """The runs of a study.json (an object with a ``runs`` list) or of a ``parts/*.json`` file (a list);
    one :class:`NeurodeployError` naming the file and the entry when it is not that."""
    from ..errors import NeurodeployError

    fix = "; delete it to start the study over"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise NeurodeployError(f"{path}: corrupt study file ({e}){fix}") from None
    entries = data.get("runs") if isinstance(data, dict) else data if path.parent.name == "parts" else None
    if not isinstance(entries, list):
        raise NeurodeployError(f"{path}: must be a JSON object with a 'runs' list{fix}")
    return [result_from_dict(r, f"{path}: runs[{i}]") for i, r in enumerate(entries)]
