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
import json
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
from .measure.summary import layer_table
from .recipe import Recipe, load_profile, load_recipe, resolve_recipe_path
from .report import read_report, render_markdown, write_report
from .report.schema import SCHEMA_VERSION
from .snn import create_ann, create_snn
from .snn.network import SpikingNetwork
from .targets import Outputs, get_target
from .train import load_checkpoint, save_checkpoint
from .train.common import accuracy
from .util import atomic_path, seed_everything, write_text_atomic

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


RUN_FILES = ("import.log", "ann.safetensors", "snn.safetensors", "surrogate.safetensors", "snn_deploy.safetensors", "model.nir",
             "model_deploy.nir", "report.json", "report.md", "ann.state.safetensors", "snn.state.safetensors")


def _clear(run_dir: Path) -> None:
    """Remove a run folder's artifacts (and nothing else the user may have put there)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for sub in ("figures", "outputs", "surrogate"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)


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
        _clear(run_dir)
    elif force:
        _clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst, text)
    log.info("run folder %s (recipe %s)", run_dir, recipe.name)
    return Run(run_dir)


# ------------------------------------------------------------------ stages
def train_stage(run: Run, progress: bool = True) -> None:
    """ANN training, conversion (threshold initialisation), SNN training (BPTT or HIRE-SNN).

    Resumable: per-epoch training state lives in the run folder, so an interrupted training goes
    on from its last completed epoch; finished checkpoints are never retrained.
    """
    from .train.run import train_recipe

    if run.imported:
        return
    snn_path, ann_path = run.dir / "snn.safetensors", run.dir / "ann.safetensors"
    if snn_path.is_file():
        log.info("train: %s exists, skipping (use --force to retrain)", snn_path)
        return
    t0 = time.time()
    res = train_recipe(run.recipe, run.data, out_dir=run.dir, progress=progress)
    info = {"recipe": run.digest, "converted_accuracy": res.converted_accuracy, "thresholds": res.thresholds}
    if res.ann is not None:
        save_checkpoint(res.ann, ann_path, {"stage": "ann", "recipe": run.digest, "test_accuracy": res.ann_accuracy})
    save_checkpoint(res.snn, snn_path, {"stage": "snn", "test_accuracy": res.snn_accuracy,
                                        "seconds": time.time() - t0, **info})
    for state in ("ann.state.safetensors", "snn.state.safetensors"):
        (run.dir / state).unlink(missing_ok=True)
    run._model = run._ann = None


def surrogate_model(run: Run, progress: bool = True) -> torch.nn.Module:
    """The black-box attacker's model: the same recipe trained with seed + 1 (HIRE-SNN §5)."""
    from .train.run import train_recipe

    path = run.dir / "surrogate.safetensors"
    model = run.new_snn()
    if not path.is_file():
        res = train_recipe(run.recipe, run.data, out_dir=run.dir / "surrogate", seed=run.recipe.seed + 1,
                           progress=progress)
        save_checkpoint(res.snn, path, {"stage": "surrogate", "seed": run.recipe.seed + 1,
                                        "test_accuracy": res.snn_accuracy})
        shutil.rmtree(run.dir / "surrogate", ignore_errors=True)
    load_checkpoint(model, path)
    return model.eval()


def import_stage(run: Run, source: Path) -> Path:
    """Import the recipe's NIR file (another framework's) into the run folder as model.nir."""
    from .ir.importer import import_nir

    m, r = run.recipe.model, run.recipe
    _, _, meta, mapping = import_nir(source, m.nir_dt or None, r.timesteps, r.data.encoding,
                                     convention=m.nir_convention, reset=m.nir_reset or None,
                                     input_shape=tuple(run.data.input_shape), out=run.dir)
    write_text_atomic(run.dir / "import.log", f"imported {source}\n" + "\n".join(mapping) + "\n")
    log.info("import: %s -> %s", source, run.nir_path)
    run._model = None
    return run.nir_path


def export_stage(run: Run) -> Path:
    """Write model.nir from the trained SNN (with the deployment metadata)."""
    if run.imported:
        log.info("export: the source is the imported %s; nothing to export", run.nir_path)
        return run.nir_path
    r = run.recipe
    meta = DeployMeta(timesteps=r.timesteps, encoding=r.data.encoding, readout="sum",
                      input_shape=list(run.data.input_shape))
    from .ir import fold_batchnorm

    # BatchNorm (SEW-ResNet's) has no NIR node: folded into the conv before it (inference form, exact)
    write_nir(to_nir(fold_batchnorm(run.model), meta), run.nir_path)
    log.info("export: wrote %s", run.nir_path)
    return run.nir_path


def source_predictions(run: Run, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([run.model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()


def source_stage(run: Run) -> dict[str, Any]:
    """Evaluate the source SNN and its ANN twin on the test set; activity, operations, energy."""
    from .measure.stage import measure_report

    r = run.recipe
    x, y = run.test_data()
    seed_everything(r.seed)
    preds = source_predictions(run, x)
    counts, exact = source_counts(run, x, preds)
    section = measure_report(run.model, counts, exact=exact)
    report = run.report()
    report.update({
        "schema_version": SCHEMA_VERSION,
        "recipe": r.name,
        "seed": r.seed,
        "timesteps": r.timesteps,
        "encoding": r.data.encoding,
        "dataset": {"name": run.data.name, "n_train": len(run.data.x_train), "n_test": len(x)},
    })
    has_ann = run.has_ann
    report["source"] = {
        "clean_accuracy": float((preds == y.numpy()).mean()),
        "ann_clean_accuracy": accuracy(run.ann, x, y) if has_ann else None,
        "layers": section["layers"],
        "energy": section["by_profile"],
    }
    report["energy"] = section
    run.save_report(report)
    return report


# ------------------------------------------------------------------ targets
OUTPUTS_DIR = "outputs"


def save_outputs(run: Run, name: str, out: Outputs) -> None:
    """Persist a target's Outputs (npz, no pickle) so later stages can read them alone."""
    arrays: dict[str, np.ndarray] = {"predictions": np.asarray(out.predictions)}
    if out.logits is not None:
        arrays["logits"] = np.asarray(out.logits)
    for prefix, d in (("spikes", out.layer_spikes), ("synops", out.synops), ("updates", out.neuron_updates)):
        for k, v in d.items():
            arrays[f"{prefix}/{k}"] = np.asarray(v)
    arrays["info"] = np.array(json.dumps(_jsonable(out.info)))
    path = run.dir / OUTPUTS_DIR / f"{name}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_outputs(run: Run, name: str) -> Outputs | None:
    path = run.dir / OUTPUTS_DIR / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise NeurodeployError(f"{path}: unreadable target outputs ({e}); rerun `neurodeploy simulate`") from None
    pick = lambda p: {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(p + "/")}  # noqa: E731
    return Outputs(d["predictions"], d.get("logits"), pick("spikes"), pick("synops"), pick("updates"),
                   json.loads(str(d["info"])) if "info" in d else {})


SOURCE_OUTPUTS = "source"  # outputs/source.npz: the source SNN's counts on the test set


def source_counts(run: Run, x: torch.Tensor, preds: np.ndarray | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The source SNN's spikes per layer and exact ops per row, per test sample, streamed over the
    test set once and kept in ``outputs/source.npz`` for the energy stage."""
    from .measure.stage import source_exact_counts

    counts, exact = source_exact_counts(run.model, x)
    preds = source_predictions(run, x) if preds is None else preds
    save_outputs(run, SOURCE_OUTPUTS, Outputs(preds, None, counts, exact))
    return counts, exact


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)


def deploy_options(run: Run) -> dict[str, Any]:
    d = run.recipe.deploy
    return {"input_spikes": d.input_spikes, "timeout_s": d.timeout_s, "seed": run.recipe.seed}


def simulate_stage(run: Run, targets: list[str], progress: bool = True) -> dict[str, Any]:
    """Deploy model.nir to each target, simulate on the test set, compare with the source."""
    r = run.recipe
    resolved = {name: get_target(name) for name in targets}  # unknown names fail before any work
    graph, meta = read_nir(run.nir_path)
    if meta is None:
        raise NeurodeployError(f"{run.nir_path}: has no neurodeploy metadata; re-export it with `neurodeploy export`")
    x, y = run.samples(r.deploy.max_samples)
    src_pred = source_predictions(run, x)
    for name, target in resolved.items():
        t0 = time.time()
        dep = target.compile(graph, meta, None, deploy_options(run))
        out = target.run(dep, x, progress=progress)
        seconds = time.time() - t0
        save_outputs(run, name, out)
        report = run.report()
        report.setdefault("targets", {})[name] = {
            "accuracy": float((out.predictions == y.numpy()).mean()),
            "agreement_with_source": float((out.predictions == src_pred).mean()),
            "n_samples": len(x),
            "seconds": seconds,
            "profile": dep.profile.name if dep.profile is not None else None,
            "lowering": list(dep.lowering),
            "layers": layer_table(run.model, out.layer_spikes, out.synops or None),
            "info": _jsonable({**dep.info, **out.info}),
        }
        log.info("target %s: accuracy %.4f, agreement %.4f (%.1f s)", name, report["targets"][name]["accuracy"],
                 report["targets"][name]["agreement_with_source"], seconds)
        run.save_report(report)
    return energy_stage(run)


def energy_stage(run: Run) -> dict[str, Any]:
    """Energy of the ANN, the source SNN (eq. 7/8) and every simulated target (its profile)."""
    from .measure.stage import measure_report

    report = run.report()
    if "source" not in report:
        report = source_stage(run)
    src = load_outputs(run, SOURCE_OUTPUTS)
    counts, exact = (src.layer_spikes, src.synops) if src is not None else source_counts(run, run.test_data()[0])
    outs, profiles = {}, {}
    for name, entry in report.get("targets", {}).items():
        out = load_outputs(run, name)
        if out is None:
            continue
        outs[name] = out
        if entry.get("profile"):
            profiles[name] = load_profile(entry["profile"])
    section = measure_report(run.model, counts, outs, profiles, exact=exact)
    report["energy"] = section
    report["source"]["energy"] = section["by_profile"]
    for name, t in section["targets"].items():
        chip = t.get("chip")
        report["targets"][name]["energy"] = {
            "profile": t.get("profile"),
            "chip_joules_per_sample": chip["joules_per_sample"] if chip else None,
            "formula_joules_per_sample": {p: v["joules_per_sample"] for p, v in t["snn"].items()},
        }
    report["figures"] = sorted(set(report.get("figures", [])) | set(_energy_figures(run, section)))
    run.save_report(report)
    return report


def _energy_figures(run: Run, section: dict[str, Any]) -> list[str]:
    from .report.figures_energy import save_energy_figures

    paths = save_energy_figures(section, run.dir / "figures")
    return [str(Path(p).relative_to(run.dir)) for p in paths]


LOIHI_TARGETS = ("loihi-emu", "lava")


def finetune_stage(run: Run, targets: list[str], progress: bool = True) -> dict[str, Any]:
    """Deployment-aware fine-tuning for Loihi: a few epochs with the fixed-point neuron and 8-bit
    weights in the loop (straight-through estimator), then the Loihi targets run again. The report
    keeps the accuracy before (``accuracy``) and after (``finetuned.accuracy``)."""
    from .train.deploy_finetune import deploy_finetune

    r = run.recipe
    loihi = [t for t in targets if t in LOIHI_TARGETS]
    if r.deploy.finetune_epochs <= 0 or not loihi:
        return run.report()
    if run.imported:
        log.warning("deployment-aware fine-tuning needs a network trained here; skipped for the imported %s",
                    run.nir_path)
        return run.report()
    path = run.dir / "snn_deploy.safetensors"
    ft = run.new_snn()
    if path.is_file():
        load_checkpoint(ft, path)
        for _, m in ft.neurons():
            m.reset = "zero"
    else:
        ft = deploy_finetune(run.model, run.data.x_train, run.data.y_train, deploy_options(run),
                             epochs=r.deploy.finetune_epochs, lr=r.deploy.finetune_lr, batch_size=r.data.batch_size,
                             seed=r.seed, progress=progress)
        save_checkpoint(ft, path, {"stage": "deploy-finetune", "epochs": r.deploy.finetune_epochs, "reset": "zero"})
    ft.eval()
    meta = DeployMeta(timesteps=r.timesteps, encoding=r.data.encoding, readout="sum",
                      input_shape=list(run.data.input_shape))
    graph = to_nir(ft, meta)
    write_nir(graph, run.dir / "model_deploy.nir")
    x, y = run.samples(r.deploy.max_samples)
    src_pred = source_predictions(run, x)
    report = run.report()
    for name in loihi:
        target = get_target(name)
        dep = target.compile(graph, meta, None, deploy_options(run))
        out = target.run(dep, x, progress=progress)
        entry = report.setdefault("targets", {}).setdefault(name, {})
        entry["finetuned"] = {
            "epochs": r.deploy.finetune_epochs,
            "accuracy_before": entry.get("accuracy"),
            "accuracy": float((out.predictions == y.numpy()).mean()),
            "agreement_with_source": float((out.predictions == src_pred).mean()),
            "model": "model_deploy.nir",
        }
        log.info("target %s after deployment-aware fine-tuning: accuracy %.4f (before %.4f)", name,
                 entry["finetuned"]["accuracy"], entry.get("accuracy") or float("nan"))
    run.save_report(report)
    return report


# ------------------------------------------------------------------ attacks
# Targets too slow for thousands of queries: their query attack and ε sweep run on a spike-exact
# stand-in (tested to match spike for spike); transfer attacks still run on the target itself.
ATTACK_STAND_INS = {"lava": "loihi-emu"}


def attack_stage(run: Run, targets: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Robustness on both sides: white-box, black-box, baselines, sweeps and audits on the source;
    transfer and query-only attacks on each deployed target."""
    from .attacks.stage import robustness_report, target_query_fn
    from .report.figures_robustness import write_robustness_figures

    r, a = run.recipe, run.recipe.attack
    report = run.report()
    targets = list(report.get("targets", {})) if targets is None else targets
    x, y = run.test_data()
    seed_everything(r.seed)
    queries = {}
    notes = {}
    if targets:
        graph, meta = read_nir(run.nir_path)
        for name in targets:
            target = get_target(name)
            dep = target.compile(graph, meta, None, deploy_options(run))
            queries[name] = target_query_fn(target, dep)
            stand_in = ATTACK_STAND_INS.get(name)
            if stand_in:
                notes[name] = (f"transfer attacks ran on {name!r} itself; its query attack and ε sweep are those of "
                               f"{stand_in!r}, its spike-exact emulator")
    light = [n for n in queries if n not in ATTACK_STAND_INS]
    surrogate = None
    if a.blackbox == "seed" and not run.imported:
        surrogate = surrogate_model(run, progress)
    elif run.has_ann:
        surrogate = run.ann
    rob = robustness_report(
        run.model, x, y, a,
        ann=run.ann if run.has_ann else None,
        surrogate_model=surrogate,
        targets=queries,
        n_classes=run.data.num_classes,
        sweep_samples=a.sweep_samples,
        query_budget=a.query_budget,
        query_samples=a.query_samples,
        target_max_samples={n: a.target_samples for n in queries} if a.target_samples else None,
        query_targets=light,
        sweep_targets=light,
        seed=r.seed,
        progress=progress,
    )
    for name, note in notes.items():
        entry = rob.setdefault(name, {})
        entry["note"] = note
        stand_in = rob.get(ATTACK_STAND_INS[name], {})
        if isinstance(stand_in, dict) and stand_in.get("query"):
            entry["query"] = {**stand_in["query"], "via": ATTACK_STAND_INS[name]}
    report["robustness"] = rob
    figs = write_robustness_figures(rob, run.dir / "figures")
    report["figures"] = sorted(set(report.get("figures", [])) | {str(Path(p).relative_to(run.dir)) for p in figs})
    run.save_report(report)
    return report


def run_all(recipe: str | Path, out: str | Path, targets: list[str] | None = None, force: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """The whole chain: train, export, source, simulate (+ energy), attack, report."""
    run = prepare_run_dir(recipe, out, force)
    targets = targets if targets is not None else list(run.recipe.deploy.targets)
    for t in targets:  # fail early on a typo, before any training
        get_target(t)
    if run.imported:
        src = Path(run.recipe.model.nir)
        if not src.is_absolute():
            src = resolve_recipe_path(recipe).resolve().parent / src
        import_stage(run, src)
    train_stage(run, progress)
    export_stage(run)
    source_stage(run)
    simulate_stage(run, targets, progress)
    finetune_stage(run, targets, progress)
    attack_stage(run, targets, progress)
    return run.report()
