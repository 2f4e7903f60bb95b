"""The ``neurodeploy`` command: a thin layer over the library API, no logic of its own.

Errors caused by input (recipes, files, unsupported layers) print one line and exit 2;
Ctrl-C exits 130. Library code logs; only this module prints and sets log levels.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

from .errors import NeurodeployError

log = logging.getLogger("neurodeploy")


def _targets(s: str | None) -> list[str] | None:
    return [t.strip() for t in s.split(",") if t.strip()] if s else None


def _acc(v: float | None) -> str:
    """An accuracy for the console: 4 decimals, or "n/a" (no ANN twin: an imported NIR network, a SEW
    recipe trained from scratch)."""
    return "n/a" if v is None else f"{v:.4f}"


def cmd_run(a: argparse.Namespace) -> int:
    from .stages import run_all

    report = run_all(a.recipe, a.out, _targets(a.targets), force=a.force, progress=not a.quiet)
    print(f"wrote {Path(a.out) / 'report.json'} and {Path(a.out) / 'report.md'}")
    src = report.get("source", {})
    print(f"ANN accuracy {_acc(src.get('ann_clean_accuracy'))} | SNN accuracy {_acc(src.get('clean_accuracy'))}")
    for name, t in report.get("targets", {}).items():
        print(f"target {name}: accuracy {t['accuracy']:.4f}, agreement with source {t['agreement_with_source']:.4f}")
    return 0


@contextlib.contextmanager
def _new_folder(out: str | Path) -> Iterator[None]:
    """A folder a command creates is removed again when the command fails on bad input (and the
    folder holds nothing but what :func:`neurodeploy.run.discard_new_run_dir` removes)."""
    from .run import discard_new_run_dir

    out = Path(out)
    created = not out.exists()
    try:
        yield
    except NeurodeployError:
        if created and out.is_dir():
            discard_new_run_dir(out)
        raise


def cmd_train(a: argparse.Namespace) -> int:
    from .run import prepare_run_dir
    from .stages import train_stage

    with _new_folder(a.out):
        run = prepare_run_dir(a.recipe, a.out, force=a.force)
        train_stage(run, progress=not a.quiet)
    print(f"checkpoints in {run.dir}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .run import load_run
    from .stages import export_stage

    path = export_stage(load_run(a.run_dir))
    print(f"wrote {path}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from .run import load_run
    from .stages import energy_stage, simulate_stage, source_done, source_stage

    run = load_run(a.run_dir)
    if not run.nir_path.is_file():
        raise NeurodeployError(f"{run.nir_path}: not found; run `neurodeploy export {a.run_dir}` first")
    targets = _targets(a.target) or list(run.recipe.deploy.targets)
    if not source_done(run):
        source_stage(run)
    simulate_stage(run, targets, progress=not a.quiet)
    report = energy_stage(run)
    for name in targets:
        t = report["targets"][name]
        print(f"target {name}: accuracy {t['accuracy']:.4f}, agreement with source {t['agreement_with_source']:.4f}")
    return 0


def cmd_attack(a: argparse.Namespace) -> int:
    from .run import load_run
    from .stages import attack_stage

    run = load_run(a.run_dir)
    if a.preset:  # the attack ensemble's preset for this call only (the run's recipe.toml is unchanged)
        run.recipe.attack.preset = a.preset
    report = attack_stage(run, _targets(a.target), progress=not a.quiet)
    rob = report.get("robustness", {})
    ens = (rob.get("ensemble") or {}).get("source")
    if isinstance(ens, dict):
        print(f"ensemble ({rob['ensemble']['preset']}): worst case {ens['worst_case_accuracy']:.4f} vs protocol "
              f"PGD {ens['protocol_accuracy']:.4f}")
    for side, entries in rob.items():
        if side in ("sweeps", "ensemble", "event_budget", "checklist", "sparsity", "theory", "pooling", "seconds") \
                or not isinstance(entries, dict):
            continue
        for attack, r in entries.items():
            if isinstance(r, dict) and "accuracy" in r:
                print(f"{side} {attack}: accuracy {r['accuracy']:.4f}")
    return 0


def cmd_study(a: argparse.Namespace) -> int:
    from .study import get_preset, markdown_table, run_study

    seeds = [int(v) for v in a.seeds.split(",") if v.strip()] if a.seeds else [0, 1, 2]
    targets = [t for t in (a.targets or "").split(",") if t.strip()]
    recipes, claims, title = list(a.recipes), [], ""
    if a.preset:
        p = get_preset(a.preset)
        recipes, claims, title = p.load() + recipes, p.claims, f"Study preset {p.name!r} ({p.note})"
        seeds = seeds if a.seeds else p.seeds
        targets = targets or p.targets
    if not recipes:
        raise NeurodeployError("study: give recipes or --preset")
    if a.time_epoch:  # expected epoch time from one synthetic batch per stage; no study is run
        import json

        from .recipe import load_recipe
        from .study.timing import epoch_time

        for spec in recipes:
            print(json.dumps(epoch_time(spec if not isinstance(spec, (str, Path)) else load_recipe(spec))))
        return 0
    if not a.out:
        raise NeurodeployError("study: give --out (the study folder)")
    _, summaries = run_study(recipes, seeds, a.out, progress=not a.quiet, claims=claims, targets=targets, title=title,
                             jobs=a.jobs or (2 if a.preset else 1))
    print(markdown_table(summaries), end="")
    print(f"wrote {Path(a.out) / 'study.json'} and {Path(a.out) / 'study.md'}")
    return 0


def cmd_energy(a: argparse.Namespace) -> int:
    from .measure.stage import energy_table
    from .run import load_run
    from .stages import energy_stage, source_done, source_stage

    run = load_run(a.run_dir)
    report = run.report()
    if "energy" not in report or a.recompute:
        if not source_done(run):
            source_stage(run)
        report = energy_stage(run)
    print(energy_table(report))
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from .ir.importer import import_nir
    from .run import guard_run_dir

    try:
        shape = tuple(int(v) for v in a.input_shape.split(",")) if a.input_shape else None
    except ValueError:
        raise NeurodeployError(f"--input-shape {a.input_shape!r}: give positive integers, e.g. 1,8,8") from None
    guard_run_dir(a.out, a.force, "import", own=("model.nir",))
    with _new_folder(a.out):
        _, _, _, lines = import_nir(a.model, a.dt, a.timesteps, a.encoding, convention=a.convention,
                                    reset=a.reset, input_shape=shape, out=a.out)
    print("\n".join(lines))
    print(f"wrote {Path(a.out) / 'model.nir'}")
    return 0


def cmd_convert(a: argparse.Namespace) -> int:
    from .train.onnx_convert import convert_onnx_to_folder
    from .recipe import load_recipe
    from .run import guard_run_dir

    recipe = load_recipe(a.recipe)
    guard_run_dir(a.out, a.force, "convert")
    with _new_folder(a.out):
        s = convert_onnx_to_folder(a.model, recipe, a.out, finetune=not a.no_finetune, progress=not a.quiet)
    ann = "n/a" if s["ann_accuracy"] is None else f"{s['ann_accuracy']:.4f}"
    print(f"ANN twin accuracy {ann} | SNN accuracy {s['snn_accuracy']:.4f}")
    if "nir_refused" in s:
        print(f"no model.nir: {s['nir_refused']}")
    print(f"wrote {', '.join(str(Path(a.out) / f) for f in s['files'])}")
    return 0


def cmd_export_onnx(a: argparse.Namespace) -> int:
    from .ir.onnx_io import export_ann_onnx, export_snn_onnx
    from .run import load_run

    run = load_run(a.run_dir)
    snn, ann = run.model, run.ann  # both loaded (and checked) before either file is written
    export_snn_onnx(snn, run.dir / "snn.onnx")
    export_ann_onnx(ann, tuple(snn.input_shape), run.dir / "ann.onnx")
    print(f"wrote {run.dir / 'snn.onnx'} and {run.dir / 'ann.onnx'}")
    return 0


def _print_listing(rows: list[tuple[str, str]], footer: str) -> int:
    width = max((len(n) for n, _ in rows), default=0)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    print(footer)
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from .recipe import MODELS_DIR, shipped_recipes

    rows = shipped_recipes()
    return _print_listing(rows, f"({len(rows)} recipes in {MODELS_DIR}; `neurodeploy run NAME`, or give a path "
                                "to your own .toml)")


def cmd_profiles(a: argparse.Namespace) -> int:
    from .recipe import TARGETS_DIR, shipped_profiles

    rows = shipped_profiles()
    return _print_listing(rows, f"({len(rows)} hardware profiles in {TARGETS_DIR}; a path to your own .toml works too)")


def cmd_targets(a: argparse.Namespace) -> int:
    from .targets import list_targets, target_class

    rows = []
    for name in list_targets():
        ok, why = target_class(name)().available()
        rows.append((name, "available" if ok else f"unavailable: {why}"))
    return _print_listing(rows, f"({sum(r[1] == 'available' for r in rows)} of {len(rows)} targets available here)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurodeploy", description="How much accuracy, energy and robustness of a "
                                "spiking network survive deployment to neuromorphic targets.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="the whole chain: train, export, deploy, measure, attack, report")
    s.add_argument("recipe", nargs="?", default="digits", help="recipe file or shipped name (`neurodeploy recipes`; default: digits)")
    s.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    s.add_argument("--targets", help="comma-separated targets (default: the recipe's deploy.targets)")
    s.add_argument("--force", action="store_true", help="start the run folder over")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("train", help="train the recipe's ANN and SNN into a run folder")
    s.add_argument("recipe")
    s.add_argument("--out", required=True)
    s.add_argument("--force", action="store_true")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("export", help="write RUN_DIR/model.nir from the trained SNN")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("simulate", help="deploy RUN_DIR/model.nir to targets and simulate")
    s.add_argument("run_dir")
    s.add_argument("--target", help="comma-separated targets (default: the recipe's)")
    s.set_defaults(fn=cmd_simulate)

    s = sub.add_parser("attack", help="attack the source (and targets) of a run")
    s.add_argument("run_dir")
    s.add_argument("--target", help="comma-separated targets to attack (default: every simulated target)")
    s.add_argument("--preset", choices=("fast", "thorough"),
                   help="the attack ensemble's preset (default: the recipe's attack.preset)")
    s.set_defaults(fn=cmd_attack)

    s = sub.add_parser("study", help="train and attack recipes over several seeds: clean/FGSM/PGD mean ± std")
    s.add_argument("recipes", nargs="*", help="recipe files or names in models/ (e.g. digits_hire digits_bptt)")
    s.add_argument("--preset", help="a named study with its claims and verdicts (digits: digits + event-digits)")
    s.add_argument("--seeds", default="", help="comma-separated seeds (default 0,1,2; a preset's own)")
    s.add_argument("--targets", default="", help="comma-separated targets to deploy to (default: none; a preset's own)")
    s.add_argument("--time-epoch", action="store_true",
                   help="print each recipe's expected seconds per epoch, timed on one synthetic batch (no study)")
    s.add_argument("--jobs", type=int, default=0, help="processes (recipes sharing an ANN stay in one; default 1, "
                   "2 with --preset)")
    s.add_argument("--out", default="", help="study folder (resumes from its study.json)")
    s.set_defaults(fn=cmd_study)

    s = sub.add_parser("energy", help="print the energy table of a run (ANN, SNN eq. 7/8, each chip)")
    s.add_argument("run_dir")
    s.add_argument("--recompute", action="store_true", help="recount from the run's artifacts first")
    s.set_defaults(fn=cmd_energy)

    s = sub.add_parser("import", help="import a NIR graph from another framework into RUN_DIR/model.nir")
    s.add_argument("model", help="a .nir file (sinabs, snnTorch, Norse, hand-made)")
    s.add_argument("--out", required=True, help="run folder to write model.nir into")
    s.add_argument("--dt", type=float, help="time step for the continuous-time parameters (default: the file's, the producer's, else 1.0)")
    s.add_argument("--timesteps", type=int, help="time steps per sample (default 8)")
    s.add_argument("--encoding", choices=("direct", "rate", "events"), help="input coding (default direct)")
    s.add_argument("--convention", choices=("nir", "sinabs", "snntorch", "norse", "rockpool", "spyx"), default=None,
                   help="how the producer runs its neurons (default: detected from the file, else nir = forward "
                        "Euler, one spike per step, reset to 0); sinabs: exp decay, multi-spike, floor -v_th, "
                        "reset by subtraction (see neurodeploy/ir/conventions.py)")
    s.add_argument("--reset", choices=("zero", "subtract"), help="override every spiking node's reset")
    s.add_argument("--input-shape", help="override the input shape, e.g. 1,8,8")
    s.add_argument("--force", action="store_true", help="overwrite a run folder that holds a trained or imported run")
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("convert", help="ONNX ANN -> our ANN twin -> converted (and fine-tuned) SNN")
    s.add_argument("model", help="an ONNX file")
    s.add_argument("--recipe", required=True, help="recipe file or name (data, neuron, T, conversion, fine-tuning)")
    s.add_argument("--out", required=True, help="folder for the checkpoints, snn.onnx and model.nir")
    s.add_argument("--no-finetune", action="store_true", help="stop after threshold initialisation")
    s.add_argument("--force", action="store_true", help="overwrite a folder that holds a run or an earlier conversion")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("recipes", help="list the shipped recipes with their one-line description")
    s.set_defaults(fn=cmd_recipes)

    s = sub.add_parser("profiles", help="list the shipped hardware profiles with their description")
    s.set_defaults(fn=cmd_profiles)

    s = sub.add_parser("targets", help="list the deployment targets and whether each can run here (and why not)")
    s.set_defaults(fn=cmd_targets)

    s = sub.add_parser("export-onnx", help="write RUN_DIR/ann.onnx and RUN_DIR/snn.onnx (SNN unrolled over T)")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_export_onnx)
    return p


def os_error_line(e: OSError) -> str:
    """One line for an OS error: the path(s) it names and the system's reason (``strerror``)."""
    reason = e.strerror or str(e) or type(e).__name__
    if isinstance(e, FileExistsError):
        reason += " (a file where a folder is needed?)"
    if e.filename is None:
        return reason
    path = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
    return f"{path}: {reason}"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLCONFIGDIR", str(Path.cwd() / ".cache" / "matplotlib"))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except NeurodeployError as e:
        print(f"neurodeploy: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable file, --out is a file, read-only folder, disk full, EIO, ...
        print(f"neurodeploy: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurodeploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
