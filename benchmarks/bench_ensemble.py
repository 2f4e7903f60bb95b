"""Benchmark: cost of the attack ensemble per sample, per preset and per member, on the digits SNN.

Runs :func:`neurodeploy.attacks.ensemble.run_ensemble` with a preset's members (``fast``: the demo's
default; ``thorough``: 17 members, K = 100, Square 2000 queries) on the SNN of a run folder
(``--run``) or, without one, the digits convnet converted from a briefly trained ANN. Reports the
wall-clock and this process's CPU time (one torch thread; on a shared machine the wall clock mostly
measures the load), seconds per attacked sample, and per member the samples it attacked (the
early exit skips those already broken), its breaks and its seconds; plus the protocol PGD-7 and
worst-case robust accuracies. ``--workers`` processes run the ensemble's chunks (default: the cores
this process may use; the results do not depend on it); the CPU time then includes the children's.
Writes ``benchmarks/results/ensemble_<preset>.json``.

    .venv/bin/python benchmarks/bench_ensemble.py [--preset fast] [--run RUN_DIR] [--samples 0] [--workers 0]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def _model(run_dir: str | None):
    if run_dir:
        from neurodeploy.run import load_run

        run = load_run(run_dir)
        x, y = run.test_data()
        return run.model, x, y, f"run {run_dir}"
    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import Recipe
    from neurodeploy.snn import create_ann, create_snn
    from neurodeploy.train import convert, train_ann
    from neurodeploy.util import seed_everything

    r = Recipe()
    r.train.ann.epochs = 8
    seed_everything(0)
    d = load_dataset(r.data, 0)
    ann, snn = create_ann(r, d.input_shape, d.num_classes), create_snn(r, d.input_shape, d.num_classes)
    train_ann(ann, d, r.train.ann, 64, 0, progress=False)
    convert(ann, snn, d.x_train[:256], 99.7, 1.0)
    return snn.eval(), d.x_test, d.y_test, "digits convnet converted from an 8-epoch ANN"


def main() -> None:
    from neurodeploy.attacks.ensemble import PRESETS, Settings, parse_members, run_ensemble

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fast", choices=sorted(PRESETS))
    ap.add_argument("--run", help="a run folder (its SNN and test set)")
    ap.add_argument("--samples", type=int, default=0, help="first N test samples (0 = all)")
    ap.add_argument("--epsilon", type=float, default=8 / 255)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="processes for the chunks (0 = the usable cores)")
    args = ap.parse_args()
    from neurodeploy.attacks.parallel import cpu_seconds, usable_cores

    workers = args.workers or usable_cores()
    torch.set_num_threads(args.threads)
    model, x, y, what = _model(args.run)
    test_set = len(x)
    if args.samples:
        x, y = x[:args.samples], y[:args.samples]
    p = PRESETS[args.preset]
    s = Settings(args.epsilon, protocol_step=0.01, protocol_steps=7, steps=p["steps"], restarts=p["restarts"],
                 query_budget=p["query_budget"], workers=workers)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), cpu_seconds()
    res = run_ensemble(model, x, y, parse_members(p["members"]), s)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    out = {"benchmark": "ensemble", "preset": args.preset, "model": what, "samples": len(x), "test_set_samples": test_set,
           "epsilon": args.epsilon, "workers": workers, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "load_1min_before": load0, "load_1min_after": os.getloadavg()[0],
           "cpu_s_per_sample": round(cpu / max(len(x), 1), 4),
           "protocol_pgd7_accuracy": res.accuracy_after("pgd7@train"), "worst_case_accuracy": res.robust_accuracy,
           "members": res.members, "torch_threads": args.threads, "python": platform.python_version(),
           "torch": torch.__version__}
    path = Path(__file__).parent / "results" / f"ensemble_{args.preset}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "members"}, indent=2))


if __name__ == "__main__":
    main()
