"""The ``neurodeploy`` command: a thin layer over the library API, no logic of its own.

Errors caused by input (recipes, files, unsupported layers) print one line and exit 2;
Ctrl-C exits 130. Library code logs; only this module prints and sets log levels.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import NeurodeployError

log = logging.getLogger("neurodeploy")


def _targets(s: str | None) -> list[str] | None:
    return [t.strip() for t in s.split(",") if t.strip()] if s else None


def cmd_run(a: argparse.Namespace) -> int:
    from .pipeline import run_all

    report = run_all(a.recipe, a.out, _targets(a.targets), force=a.force, progress=not a.quiet)
    print(f"wrote {Path(a.out) / 'report.json'} and {Path(a.out) / 'report.md'}")
    src = report.get("source", {})
    print(f"ANN accuracy {src.get('ann_clean_accuracy'):.4f} | SNN accuracy {src.get('clean_accuracy'):.4f}")
    for name, t in report.get("targets", {}).items():
        print(f"target {name}: accuracy {t['accuracy']:.4f}, agreement with source {t['agreement_with_source']:.4f}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from .pipeline import prepare_run_dir, train_stage

    run = prepare_run_dir(a.recipe, a.out, force=a.force)
    train_stage(run, progress=not a.quiet)
    print(f"checkpoints in {run.dir}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .pipeline import export_stage, load_run

    path = export_stage(load_run(a.run_dir))
    print(f"wrote {path}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from .pipeline import load_run, simulate_stage

    run = load_run(a.run_dir)
    if not run.nir_path.is_file():
        raise NeurodeployError(f"{run.nir_path}: not found; run `neurodeploy export {a.run_dir}` first")
    targets = _targets(a.target) or list(run.recipe.deploy.targets)
    report = simulate_stage(run, targets, progress=not a.quiet)
    for name in targets:
        t = report["targets"][name]
        print(f"target {name}: accuracy {t['accuracy']:.4f}, agreement with source {t['agreement_with_source']:.4f}")
    return 0


def cmd_attack(a: argparse.Namespace) -> int:
    from .pipeline import attack_stage, load_run

    report = attack_stage(load_run(a.run_dir), progress=not a.quiet)
    for attack, r in report.get("robustness", {}).get("source", {}).items():
        if isinstance(r, dict) and "accuracy" in r:
            print(f"source {attack}: accuracy {r['accuracy']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurodeploy", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="the whole chain: train, export, deploy, measure, attack, report")
    s.add_argument("recipe", nargs="?", default="digits", help="recipe file or name in models/ (default: digits)")
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
    s.add_argument("--target", help="comma-separated targets to attack as well")
    s.set_defaults(fn=cmd_attack)
    return p


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
    except KeyboardInterrupt:
        print("neurodeploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
