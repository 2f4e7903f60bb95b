"""The ``run`` chain, resumable stage by stage.

Each stage reads the previous stage's artifact in the run folder, so any stage can be rerun alone:

    train    -> ann.safetensors, snn.safetensors   (skipped when they exist for this recipe)
    export   -> model.nir                          (NIR + deployment metadata)
    source   -> report.json: dataset, source{clean_accuracy, layers, energy}
    simulate -> report.json: targets{name: ...}    (each target built from model.nir)
    attack   -> report.json: robustness{...}
    report   -> report.md (+ figures/)
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Dataset, load_dataset
from .errors import NeurodeployError, RecipeError
from .ir import DeployMeta, read_nir, to_nir, write_nir
from .measure.summary import energy_section, layer_table
from .measure.ops import exact_synops
from .recipe import Recipe, load_profile, load_recipe, resolve_recipe_path
from .report import read_report, render_markdown, write_report
from .report.schema import SCHEMA_VERSION
from .snn import create_ann, create_snn
from .snn.network import SpikingNetwork
from .targets import get_target
from .train import convert, load_checkpoint, save_checkpoint, train_ann
from .train.common import accuracy
from .util import seed_everything, write_text_atomic

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.toml"


def recipe_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Run:
    """A run folder and what it holds; ``neurodeploy.load_run(path)`` returns one."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        path = self.dir / RECIPE_FILE
        if not path.is_file():
            raise NeurodeployError(f"{self.dir}: not a run folder (no {RECIPE_FILE}); create one with `neurodeploy run`")
        self.recipe: Recipe = load_recipe(path)
        self.digest = recipe_digest(path.read_text(encoding="utf-8"))
        self._data: Dataset | None = None
        self._model: SpikingNetwork | None = None
        self._ann: torch.nn.Module | None = None

    # -------------------------------------------------------------- artifacts
    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.recipe.data, self.recipe.seed)
        return self._data

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y): the test images in [0, 1] and their labels."""
        return self.data.x_test, self.data.y_test

    def new_snn(self) -> SpikingNetwork:
        return create_snn(self.recipe, self.data.input_shape, self.data.num_classes)

    def new_ann(self) -> torch.nn.Module:
        return create_ann(self.recipe, self.data.input_shape, self.data.num_classes)

    @property
    def model(self) -> SpikingNetwork:
        """The trained source SNN (eval mode): images [B, C, H, W] in [0, 1] -> logits."""
        if self._model is None:
            m = self.new_snn()
            load_checkpoint(m, self.dir / "snn.safetensors")
            self._model = m.eval()
        return self._model

    @property
    def ann(self) -> torch.nn.Module:
        if self._ann is None:
            m = self.new_ann()
            load_checkpoint(m, self.dir / "ann.safetensors")
            self._ann = m.eval()
        return self._ann

    @property
    def nir_path(self) -> Path:
        return self.dir / "model.nir"

    def report(self) -> dict[str, Any]:
        return read_report(self.dir)

    def save_report(self, report: dict[str, Any]) -> None:
        write_report(self.dir, report)
        write_text_atomic(self.dir / "report.md", render_markdown(report))

    def samples(self, max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.test_data()
        return (x[:max_samples], y[:max_samples]) if max_samples else (x, y)


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``neurodeploy run``."""
    return Run(path)


def prepare_run_dir(recipe_path: str | Path, run_dir: str | Path, force: bool = False) -> Run:
    """Copy the recipe into the run folder; refuse to mix two recipes in one folder unless forced."""
    src = resolve_recipe_path(recipe_path)
    recipe = load_recipe(src)  # validates before anything is written
    run_dir = Path(run_dir)
    text = src.read_text(encoding="utf-8")
    dst = run_dir / RECIPE_FILE
    if dst.is_file() and dst.read_text(encoding="utf-8") != text:
        if not force:
            raise RecipeError(f"{run_dir} holds a run of another recipe ({dst}); use another --out, or --force to "
                              "start this folder over")
        for name in ("ann.safetensors", "snn.safetensors", "model.nir", "report.json", "report.md"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "figures", ignore_errors=True)
    elif force:
        for name in ("ann.safetensors", "snn.safetensors", "model.nir", "report.json", "report.md"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst, text)
    log.info("run folder %s (recipe %s)", run_dir, recipe.name)
    return Run(run_dir)


# ------------------------------------------------------------------ stages
def train_stage(run: Run, progress: bool = True) -> None:
    """ANN training, conversion (threshold initialisation), SNN fine-tuning; checkpoints."""
    r = run.recipe
    snn_path, ann_path = run.dir / "snn.safetensors", run.dir / "ann.safetensors"
    if snn_path.is_file() and ann_path.is_file():
        log.info("train: checkpoints exist, skipping (delete them or use --force to retrain)")
        return
    seed_everything(r.seed)
    data = run.data
    ann, snn = run.new_ann(), run.new_snn()
    t0 = time.time()
    ann_acc = train_ann(ann, data, r.train.ann, r.data.batch_size, r.seed, progress)
    save_checkpoint(ann, ann_path, {"stage": "ann", "recipe": run.digest, "test_accuracy": ann_acc})
    g = torch.Generator().manual_seed(r.seed)
    idx = torch.randperm(len(data.x_train), generator=g)[: r.data.batch_size * max(1, r.train.convert.batches) * 4]
    thresholds = convert(ann, snn, data.x_train[idx], r.train.convert.percentile, r.train.convert.scale)
    conv_acc = accuracy(snn, data.x_test, data.y_test)
    log.info("converted SNN accuracy %.4f, thresholds %s", conv_acc, thresholds)
    from .train import train_snn

    snn_acc = train_snn(snn, data, r.train.snn, r.data.batch_size, r.seed, progress)
    save_checkpoint(snn, snn_path, {"stage": "snn", "recipe": run.digest, "test_accuracy": snn_acc,
                                    "converted_accuracy": conv_acc, "thresholds": thresholds,
                                    "seconds": time.time() - t0})
    run._model = run._ann = None


def export_stage(run: Run) -> Path:
    """Write model.nir from the trained SNN (with the deployment metadata)."""
    r = run.recipe
    meta = DeployMeta(timesteps=r.timesteps, encoding=r.data.encoding, readout="sum",
                      input_shape=list(run.data.input_shape))
    write_nir(to_nir(run.model, meta), run.nir_path)
    log.info("export: wrote %s", run.nir_path)
    return run.nir_path


def _evaluate(net: SpikingNetwork, x: torch.Tensor, batch_size: int = 256):
    """Predictions, per-layer spikes and exact synops per sample of a network on x."""
    preds, spikes, synops = [], {}, {}
    net.eval()
    net.record = True
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out = net(x[i:i + batch_size])
                preds.append(out.argmax(1).numpy())
                for k, v in net.spike_counts.items():
                    spikes.setdefault(k, []).append(v.numpy())
                for k, v in exact_synops(net, net.spike_maps).items():
                    synops.setdefault(k, []).append(v.numpy())
    finally:
        net.record = False
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return np.concatenate(preds), cat(spikes), cat(synops)


def source_stage(run: Run) -> dict[str, Any]:
    """Evaluate the source SNN and its ANN twin on the test set; activity, operations, energy."""
    r = run.recipe
    x, y = run.test_data()
    seed_everything(r.seed)
    preds, spikes, synops = _evaluate(run.model, x)
    rows = layer_table(run.model, spikes, synops)
    profile = load_profile("cmos45nm")
    report = run.report()
    report.update({
        "schema_version": SCHEMA_VERSION,
        "recipe": r.name,
        "seed": r.seed,
        "timesteps": r.timesteps,
        "encoding": r.data.encoding,
        "dataset": {"name": run.data.name, "n_train": len(run.data.x_train), "n_test": len(x)},
    })
    report["source"] = {
        "clean_accuracy": float((preds == y.numpy()).mean()),
        "ann_clean_accuracy": accuracy(run.ann, x, y),
        "layers": rows,
        "energy": energy_section(rows, profile, direct_input=r.data.encoding == "direct"),
        "predictions_sha": hashlib.sha256(preds.astype(np.int64).tobytes()).hexdigest()[:16],
    }
    run.save_report(report)
    run._source_predictions = preds  # type: ignore[attr-defined]
    return report


def source_predictions(run: Run, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([run.model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()


def simulate_stage(run: Run, targets: list[str], progress: bool = True) -> dict[str, Any]:
    """Deploy model.nir to each target, simulate on the test set, compare with the source."""
    r = run.recipe
    resolved = {name: get_target(name) for name in targets}  # unknown names fail before any work
    graph, meta = read_nir(run.nir_path)
    if meta is None:
        raise NeurodeployError(f"{run.nir_path}: has no neurodeploy metadata; re-export it with `neurodeploy export`")
    x, y = run.samples(r.deploy.max_samples)
    src_pred = source_predictions(run, x)
    report = run.report()
    report.setdefault("targets", {})
    options = {"input_spikes": r.deploy.input_spikes, "timeout_s": r.deploy.timeout_s, "seed": r.seed}
    for name, target in resolved.items():
        t0 = time.time()
        dep = target.compile(graph, meta, None, options)
        out = target.run(dep, x, progress=progress)
        seconds = time.time() - t0
        net = run.model
        rows = layer_table(net, out.layer_spikes, out.synops)
        entry: dict[str, Any] = {
            "accuracy": float((out.predictions == y.numpy()).mean()),
            "agreement_with_source": float((out.predictions == src_pred).mean()),
            "n_samples": len(x),
            "seconds": seconds,
            "lowering": list(dep.lowering),
            "layers": rows,
            "info": dep.info | out.info,
        }
        report["targets"][name] = entry
        log.info("target %s: accuracy %.4f, agreement %.4f (%.1f s)", name, entry["accuracy"],
                 entry["agreement_with_source"], seconds)
        run.save_report(report)
    return report


def attack_stage(run: Run, progress: bool = True) -> dict[str, Any]:
    """White-box FGSM and PGD on the source through the surrogate gradient over all T steps."""
    from .attacks import FGSM, PGD, SourceEstimator

    r, a = run.recipe, run.recipe.attack
    x, y = run.test_data()
    if a.max_samples:
        x, y = x[: a.max_samples], y[: a.max_samples]
    seed_everything(r.seed)
    est = SourceEstimator(run.model)
    report = run.report()
    rob = report.setdefault("robustness", {})
    with torch.no_grad():
        acc = lambda xa: float((torch.cat([run.model(xa[i:i + 256]).argmax(1) for i in range(0, len(xa), 256)])  # noqa: E731
                                == y).float().mean())
    x_fgsm = FGSM(a.epsilon).generate(est, x, y)
    x_pgd = PGD(a.epsilon, a.step_size, a.steps, random_start=a.random_start, seed=r.seed).generate(est, x, y)
    rob["source"] = {
        "clean": {"accuracy": acc(x), "n_samples": len(x)},
        "fgsm": {"epsilon": a.epsilon, "accuracy": acc(x_fgsm)},
        "pgd": {"epsilon": a.epsilon, "step_size": a.step_size, "steps": a.steps, "accuracy": acc(x_pgd)},
    }
    run.save_report(report)
    return report


def run_all(recipe: str | Path, out: str | Path, targets: list[str] | None = None, force: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """The whole chain: train, export, source, simulate, attack, report."""
    run = prepare_run_dir(recipe, out, force)
    targets = targets if targets is not None else list(run.recipe.deploy.targets)
    for t in targets:  # fail early on a typo, before any training
        get_target(t)
    train_stage(run, progress)
    export_stage(run)
    source_stage(run)
    simulate_stage(run, targets, progress)
    attack_stage(run, progress)
    return run.report()
