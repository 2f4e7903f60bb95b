"""Benchmark: the query-only Square attack (Andriushchenko et al. 2020) on a deployed target.

Deploys the run's model to ``--target`` (default ``loihi-emu``, the bit-exact Loihi emulator) as
the attack stage does, then runs :class:`neurodeploy.attacks.square.SquareAttack` against the
target's own simulation (a :class:`~neurodeploy.attacks.estimators.TargetEstimator`: logits only,
no gradients) on the first ``--samples`` test images with ``--budget`` queries per sample.
Robust accuracy is the final images queried once more on the target; queries per sample count
every query of one input (the first included; a sample stops when broken). Also: clean accuracy
on the target, the source's Square figure on the same images for comparison, wall and CPU time,
the machine's load. Writes ``benchmarks/results/square_<target>.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_square_target.py --run runs/demo [--budget 2000]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from neurodeploy.util import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    from neurodeploy.attacks.estimators import SourceEstimator, TargetEstimator, accuracy
    from neurodeploy.attacks.square import SquareAttack
    from neurodeploy.attacks.stage import target_query_fn
    from neurodeploy.ir import read_nir
    from neurodeploy.run import load_run
    from neurodeploy.stages.deploy import deploy
    from neurodeploy.targets import get_target

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--target", default="loihi-emu")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--epsilon", type=float, default=0.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(a.run)
    eps = a.epsilon or run.recipe.attack.epsilon
    x, y = run.test_data()
    x, y = x[:a.samples].float(), y[:a.samples].long()
    graph, meta = read_nir(run.nir_path)
    target = get_target(a.target)
    fn = target_query_fn(target, deploy(run, target, graph, meta))
    tgt = TargetEstimator(fn, run.data.num_classes)
    out: dict = {"benchmark": "square on a deployed target", "run": a.run, "target": a.target, "epsilon": eps,
                 "samples": len(x), "max_queries": a.budget, "load_before": os.getloadavg()}
    for name, est in (("target", tgt), ("source", SourceEstimator(run.model.eval()))):
        t0, c0 = time.perf_counter(), time.process_time()
        res = SquareAttack(eps, a.budget, seed=run.recipe.seed, batch_size=len(x)).run(est, x, y)
        out[name] = {"clean_accuracy": accuracy(est, x, y), "robust_accuracy": accuracy(est, res.x_adv, y),
                     **res.summary(), "wall_s": round(time.perf_counter() - t0, 1),
                     "cpu_s": round(time.process_time() - c0, 1)}
        print(name, out[name], flush=True)
    out["load_after"] = os.getloadavg()
    out["python"], out["torch"] = platform.python_version(), torch.__version__
    path = Path(a.out) if a.out else Path(__file__).resolve().parent / "results" / f"square_{a.target}.json"
    write_json_atomic(path, out)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
