"""A run folder and its lifecycle: the recipe copy, the cached artifacts, the persisted outputs.

A run folder holds one recipe (``recipe.toml``) and what the stages (:mod:`neurodeploy.stages`)
wrote from it: checkpoints, ``model.nir``, ``outputs/<target>.npz``, ``report.json``/``.md``,
``figures/``. :class:`Run` reads them lazily and caches the loaded models; a stage that replaces
an artifact calls :meth:`Run.invalidate` so the next read loads the new one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Dataset, load_dataset
from .errors import NeurodeployError, RecipeError
from .recipe import Recipe, load_recipe, resolve_recipe_path
from .report import read_report, render_markdown, write_report
from .snn import create_ann, create_snn
from .snn.network import SpikingNetwork
from .targets import Outputs
from .train import load_checkpoint
from .util import atomic_path, jsonable, write_text_atomic

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.toml"
OUTPUTS_DIR = "outputs"
SOURCE_OUTPUTS = "source"  # outputs/source.npz: the source SNN's counts on the test set
RUN_FILES = ("import.log", "ann.safetensors", "snn.safetensors", "surrogate.safetensors", "snn_deploy.safetensors",
             "model.nir", "model_deploy.nir", "report.json", "report.md", "ann.state.safetensors",
             "snn.state.safetensors")
RUN_SUBDIRS = ("figures", "outputs", "surrogate")


def recipe_digest(text: str) -> str:
    """The first 16 hex digits of the recipe text's SHA-256 (stored in the checkpoints)."""
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

    def samples(self, max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``max_samples`` test samples (all of them for 0)."""
        x, y = self.test_data()
        return (x[:max_samples], y[:max_samples]) if max_samples else (x, y)

    def new_snn(self) -> SpikingNetwork:
        return create_snn(self.recipe, self.data.input_shape, self.data.num_classes)

    def new_ann(self) -> torch.nn.Module:
        return create_ann(self.recipe, self.data.input_shape, self.data.num_classes)

    @property
    def imported(self) -> bool:
        """True when the source network is a NIR file the recipe names (no training here)."""
        return bool(self.recipe.model.nir)

    @property
    def model(self) -> SpikingNetwork:
        """The trained source SNN (eval mode): images [B, C, H, W] in [0, 1] -> logits."""
        if self._model is None:
            if self.imported:
                from .ir import load_nir_network

                m = load_nir_network(self.nir_path)[0]
            else:
                m = self.new_snn()
                load_checkpoint(m, self.dir / "snn.safetensors")
            self._model = m.eval()
        return self._model

    @property
    def has_ann(self) -> bool:
        return (self.dir / "ann.safetensors").is_file()

    @property
    def ann(self) -> torch.nn.Module:
        """The trained ANN twin (when the run trained one)."""
        if not self.has_ann:
            raise NeurodeployError(f"{self.dir}: this run has no ANN twin (ann.safetensors)")
        if self._ann is None:
            m = self.new_ann()
            load_checkpoint(m, self.dir / "ann.safetensors")
            self._ann = m.eval()
        return self._ann

    def invalidate(self) -> None:
        """Forget the cached source SNN and ANN: a stage wrote new checkpoints or a new model.nir."""
        self._model = self._ann = None

    @property
    def nir_path(self) -> Path:
        return self.dir / "model.nir"

    # -------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        return read_report(self.dir)

    def save_report(self, report: dict[str, Any]) -> None:
        write_report(self.dir, report)
        write_text_atomic(self.dir / "report.md", render_markdown(report))

    # -------------------------------------------------------------- outputs
    def outputs_path(self, name: str) -> Path:
        return self.dir / OUTPUTS_DIR / f"{name}.npz"

    def save_outputs(self, name: str, out: Outputs) -> None:
        """Persist a target's Outputs (npz, no pickle) so later stages can read them alone."""
        arrays: dict[str, np.ndarray] = {"predictions": np.asarray(out.predictions)}
        if out.logits is not None:
            arrays["logits"] = np.asarray(out.logits)
        for prefix, d in (("spikes", out.layer_spikes), ("synops", out.synops), ("updates", out.neuron_updates)):
            for k, v in d.items():
                arrays[f"{prefix}/{k}"] = np.asarray(v)
        arrays["info"] = np.array(json.dumps(jsonable(out.info, finite=False)))
        with atomic_path(self.outputs_path(name)) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

    def load_outputs(self, name: str) -> Outputs | None:
        """The Outputs :meth:`save_outputs` wrote for ``name``, or None when there are none."""
        path = self.outputs_path(name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise NeurodeployError(f"{path}: unreadable target outputs ({e}); rerun `neurodeploy simulate`") from None

        def pick(prefix: str) -> dict[str, np.ndarray]:
            return {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(prefix + "/")}

        return Outputs(d["predictions"], d.get("logits"), pick("spikes"), pick("synops"), pick("updates"),
                       json.loads(str(d["info"])) if "info" in d else {})


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``neurodeploy run``."""
    return Run(path)


def clear_run_dir(run_dir: Path) -> None:
    """Remove a run folder's artifacts (and nothing else the user may have put there)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for sub in RUN_SUBDIRS:
        shutil.rmtree(run_dir / sub, ignore_errors=True)


def guard_run_dir(run_dir: str | Path, force: bool, command: str, own: tuple[str, ...] = ()) -> None:
    """Refuse to write ``command``'s files into a folder holding a run (its recipe, checkpoints,
    model.nir, report) unless ``force``; forced, the run's files are removed first so no stale
    report.json describes the new files. ``own``: files a previous ``command`` into the same folder
    wrote alone, which it may overwrite (``import`` rewrites its own model.nir)."""
    run_dir = Path(run_dir)
    held = [n for n in (RECIPE_FILE, *RUN_FILES, "snn.onnx", "ann.onnx") if n not in own and (run_dir / n).exists()]
    if not held:
        return
    if not force:
        raise NeurodeployError(f"{run_dir} holds a run ({', '.join(held)}); `neurodeploy {command}` would overwrite it "
                               "and leave its report stale: use another --out, or --force to start this folder over")
    log.warning("%s: --force: removing the run's files (%s) before `%s`", run_dir, ", ".join(held), command)
    clear_run_dir(run_dir)
    for name in (RECIPE_FILE, "snn.onnx", "ann.onnx"):
        (run_dir / name).unlink(missing_ok=True)


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
        clear_run_dir(run_dir)
    elif force:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst, text)
    log.info("run folder %s (recipe %s)", run_dir, recipe.name)
    return Run(run_dir)


__all__ = ["OUTPUTS_DIR", "RECIPE_FILE", "RUN_FILES", "SOURCE_OUTPUTS", "Run", "clear_run_dir", "load_run",
           "prepare_run_dir", "recipe_digest"]
