"""A run folder and its lifecycle: the recipe copy, the cached artifacts, the persisted outputs.

A run folder holds one recipe (``recipe.toml``) and what the stages (:mod:`neurodeploy.stages`)
wrote from it: checkpoints, ``model.nir``, ``outputs/<target>.npz``, ``report.json``/``.md``,
``figures/``. :class:`Run` reads them lazily and caches the loaded models; a stage that replaces
an artifact calls :meth:`Run.invalidate` so the next read loads the new one.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

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
LEDGER_FILE = "stages.json"  # what each finished stage was computed from (neurodeploy.stages.resume)
RUN_FILES = ("import.log", "ann.safetensors", "snn.safetensors", "surrogate.safetensors", "snn_deploy.safetensors",
             "model.nir", "model_deploy.nir", "report.json", "report.md", "ann.state.safetensors",
             "snn.state.safetensors", LEDGER_FILE)
RUN_SUBDIRS = ("figures", "outputs", "surrogate")
#: report.json's top-level sections that must be tables (objects) when present, and the lists
REPORT_TABLES = ("dataset", "source", "energy", "targets", "robustness")
REPORT_LISTS = ("figures",)

_held: dict[tuple[str, int, int], list[int]] = {}  # (folder, pid, thread) -> [fd, depth]: the locks held here
_held_guard = threading.Lock()


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """An exclusive ``flock(2)`` on the run folder itself (no lock file is written), re-entrant in
    one thread. Every read-modify-write of a shared run-folder file (report.json, stages.json)
    happens under it, so two commands on one run folder (``simulate --target a`` and ``simulate
    --target b``, or ``simulate`` and ``attack``) both keep their results: the second waits for the
    first's update, then reads the report with it and adds its own. Readers need no lock (every
    file is replaced by one atomic rename). Keyed by process and thread: a forked child or another
    thread opens its own descriptor and waits like another command would."""
    key = (str(Path(run_dir).resolve()), os.getpid(), threading.get_ident())
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        fd = os.open(key[0], os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        with _held_guard:
            entry = _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])


def check_report(report: Any, path: Path) -> dict[str, Any]:
    """``report`` (parsed report.json) if it has the shape the stages rely on; else one
    :class:`NeurodeployError` naming the file and the key (a list, ``targets: 5``, a target that is
    not a table, ...)."""
    fix = "; delete it to rebuild it from the run's artifacts"
    if not isinstance(report, dict):
        raise NeurodeployError(f"{path}: must hold a JSON object, not {type(report).__name__}{fix}")
    for key in REPORT_TABLES + REPORT_LISTS:
        want = list if key in REPORT_LISTS else dict
        if key in report and not isinstance(report[key], want):
            raise NeurodeployError(f"{path}: {key!r} must be a JSON {'array' if want is list else 'object'}, not "
                                   f"{type(report[key]).__name__}{fix}")
    for name, entry in report.get("targets", {}).items():
        if not isinstance(entry, dict):
            raise NeurodeployError(f"{path}: targets.{name} must be a JSON object, not {type(entry).__name__}{fix}")
        n = entry.get("n_samples")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise NeurodeployError(f"{path}: targets.{name}.n_samples = {n!r}; must be a count{fix}")
        for k in ("accuracy", "agreement_with_source"):
            v = entry.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
                raise NeurodeployError(f"{path}: targets.{name}.{k} = {v!r}; must be a fraction in [0, 1]{fix}")
    if not all(isinstance(f, str) for f in report.get("figures", [])):
        raise NeurodeployError(f"{path}: 'figures' must list file names{fix}")
    return report


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
        """report.json (empty before the first stage), checked for the shape the stages rely on."""
        try:
            report = read_report(self.dir)
        except UnicodeDecodeError as e:
            raise NeurodeployError(f"{self.dir / 'report.json'}: not UTF-8 text ({e.reason} at byte {e.start}); "
                                   "delete it to rebuild it from the run's artifacts") from None
        return check_report(report, self.dir / "report.json")

    def check(self) -> None:
        """Read every run-folder file a command may use (report.json, stages.json, outputs/*.npz) and
        refuse a damaged one before any work (one line naming the file and what is wrong)."""
        from .stages.resume import read_ledger

        report = self.report()
        read_ledger(self)
        folder = self.dir / OUTPUTS_DIR
        for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            name = path.stem
            n = (report.get("dataset", {}).get("n_test") if name == SOURCE_OUTPUTS else
                 report.get("targets", {}).get(name, {}).get("n_samples"))
            self.load_outputs(name, n if isinstance(n, int) and not isinstance(n, bool) else None)

    def save_report(self, report: dict[str, Any]) -> None:
        """Replace report.json and report.md (callers that read first hold :meth:`locked`)."""
        with self.locked():
            write_report(self.dir, report)
            write_text_atomic(self.dir / "report.md", render_markdown(report))

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The run folder's exclusive lock (:func:`run_lock`)."""
        return run_lock(self.dir)

    def update_report(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read report.json, apply ``change`` to it in place, write it back, all under the run
        folder's lock: results another command wrote meanwhile are kept. Returns the new report."""
        with self.locked():
            report = self.report()
            change(report)
            self.save_report(report)
            return report

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

    def load_outputs(self, name: str, n: int | None = None) -> Outputs | None:
        """The Outputs :meth:`save_outputs` wrote for ``name``, or None when there are none; checked
        for the shape :meth:`save_outputs` writes (one entry per sample, ``n`` samples when given)."""
        path = self.outputs_path(name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise NeurodeployError(f"{path}: unreadable target outputs ({e or type(e).__name__}); rerun "
                                   "`neurodeploy simulate`") from None
        info = _check_outputs(d, path, n)

        def pick(prefix: str) -> dict[str, np.ndarray]:
            return {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(prefix + "/")}

        return Outputs(d["predictions"], d.get("logits"), pick("spikes"), pick("synops"), pick("updates"), info)


def _check_outputs(d: dict[str, np.ndarray], path: Path, n: int | None) -> dict[str, Any]:
    """The ``info`` of an outputs npz if its arrays have the shape :meth:`Run.save_outputs` writes
    (``predictions`` [N] integers, ``logits`` [N, classes], every count [N] finite and ≥ 0)."""
    def bad(what: str) -> NeurodeployError:
        return NeurodeployError(f"{path}: {what}; rerun `neurodeploy simulate` (or delete the file)")

    p = d.get("predictions")
    if p is None or p.ndim != 1 or not np.issubdtype(p.dtype, np.integer):
        raise bad("'predictions' must be a 1-D integer array")
    if n is not None and len(p) != n:
        raise bad(f"{len(p)} predictions, the report says {n} samples")
    for k, v in d.items():
        if k in ("predictions", "info"):
            continue
        if k != "logits" and not k.startswith(("spikes/", "synops/", "updates/")):
            raise bad(f"unknown array {k!r}")
        if not np.issubdtype(v.dtype, np.number) or v.ndim != (2 if k == "logits" else 1) or len(v) != len(p):
            raise bad(f"{k!r} has shape {v.shape} ({v.dtype}); expected one {'row' if k == 'logits' else 'number'} "
                      f"per sample ({len(p)})")
        if k != "logits" and not (np.isfinite(v).all() and (v >= 0).all()):
            raise bad(f"{k!r} holds negative or non-finite counts")
    if "info" not in d:
        return {}
    try:
        info = json.loads(str(d["info"]))
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise bad("'info' must be a JSON object")
    return info


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``neurodeploy run``; its files are checked first (:meth:`Run.check`)."""
    run = Run(path)
    run.check()
    return run


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
    """Copy the recipe into the run folder; refuse to mix two recipes in one folder unless forced.

    The same recipe (same ``name``) edited since the folder was written replaces the copy: the
    stages whose inputs the edit changed are redone, the others resumed (:mod:`.stages.resume`)."""
    src = resolve_recipe_path(recipe_path)
    recipe = load_recipe(src)  # validates before anything is written
    run_dir = Path(run_dir)
    text = src.read_text(encoding="utf-8")
    dst = run_dir / RECIPE_FILE
    if dst.is_file() and dst.read_text(encoding="utf-8") != text and not force:
        try:
            old = load_recipe(dst).name
        except RecipeError:
            old = None
        if old != recipe.name:
            raise RecipeError(f"{run_dir} holds a run of another recipe ({dst}: name {old!r}, not "
                              f"{recipe.name!r}); use another --out, or --force to start this folder over")
        log.warning("%s: the recipe %s was edited since this run; the stages that read the edited fields "
                    "are redone", dst, recipe.name)
    elif force:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst, text)
    log.info("run folder %s (recipe %s)", run_dir, recipe.name)
    return Run(run_dir)


def discard_new_run_dir(run_dir: Path) -> None:
    """Undo :func:`prepare_run_dir` on a folder it created, when the run failed before it finished any
    artifact (a recipe refused while training starts): no ``recipe.toml`` is left to look like a run."""
    finished = [n for n in RUN_FILES if ".state." not in n and n != LEDGER_FILE and (run_dir / n).exists()]
    if finished:
        return
    clear_run_dir(run_dir)
    for name in (RECIPE_FILE, LEDGER_FILE):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when nothing of the user's is in it


__all__ = ["LEDGER_FILE", "OUTPUTS_DIR", "RECIPE_FILE", "RUN_FILES", "check_report", "discard_new_run_dir", "run_lock", "SOURCE_OUTPUTS", "Run", "clear_run_dir", "load_run",
           "prepare_run_dir", "recipe_digest"]
