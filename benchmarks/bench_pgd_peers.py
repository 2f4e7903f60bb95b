"""Benchmark: PGD-7 with neurodeploy vs torchattacks 3.5.1 on the same SNN and images.

Both run L∞ PGD with ε = 8/255, α = 0.01, K = 7 and **no random start** (torchattacks' PGD has
``random_start=True`` by default; it is switched off here) over the digits test set in batches of
``--batch``, on the model that ``bench_pgd.py`` builds (its ``_model``: the digits convnet, ANN
trained ``--ann-epochs`` epochs + conversion, or ``--run RUN_DIR``). The two differ only in the
loss reduction (ours sums the cross-entropy over the batch, torchattacks takes the mean): the
gradient's sign is the same, so the adversarial images should be identical; the JSON says whether
they are (and how many pixels differ if not).

Timing alternates the two attacks ``--repeats`` times; medians of wall time and of this process's
CPU time; ``ratio_ours_over_torchattacks`` from the same run (goal ≤ 1.1). ``--threads`` torch
threads (default 1). Writes ``benchmarks/results/pgd_peers.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_pgd_peers.py [--repeats 7] [--run RUN_DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from neurodeploy.util import write_json_atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pgd_peers.json"


def _bench_pgd():
    spec = importlib.util.spec_from_file_location("bench_pgd", HERE / "bench_pgd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--ann-epochs", type=int, default=8)
    ap.add_argument("--run", default="")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    import torchattacks

    from neurodeploy.attacks import PGD, SourceEstimator, accuracy
    from neurodeploy.recipe import AttackConfig

    model, x, y, what = _bench_pgd()._model(a)
    model.eval()
    cfg = AttackConfig()
    eps, alpha, steps = cfg.epsilon, cfg.step_size, cfg.steps
    est = SourceEstimator(model)
    ours = PGD(eps, alpha, steps, random_start=False, seed=0, batch_size=a.batch)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)

    def run_ours():
        return ours.generate(est, x, y)

    def run_theirs():
        return torch.cat([theirs(x[i:i + a.batch], y[i:i + a.batch]) for i in range(0, len(x), a.batch)])

    run_ours(), run_theirs()  # warm-up
    wall = {"ours": [], "torchattacks": []}
    cpu = {"ours": [], "torchattacks": []}
    adv = {}
    fns = {"ours": run_ours, "torchattacks": run_theirs}
    for r in range(a.repeats):
        for k in (["ours", "torchattacks"] if r % 2 == 0 else ["torchattacks", "ours"]):
            t0, c0 = time.perf_counter(), time.process_time()
            adv[k] = fns[k]()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    med = statistics.median
    diff = (adv["ours"] - adv["torchattacks"]).abs()
    result = {
        "benchmark": "PGD-7, neurodeploy vs torchattacks (same model, images, ε, α, K; no random start)",
        "model": what, "samples": len(x), "batch_size": a.batch, "threads": a.threads, "repeats": a.repeats,
        "attack": {"epsilon": eps, "step_size": alpha, "steps": steps, "random_start": False},
        "ours_wall_s": med(wall["ours"]), "torchattacks_wall_s": med(wall["torchattacks"]),
        "ours_cpu_s": med(cpu["ours"]), "torchattacks_cpu_s": med(cpu["torchattacks"]),
        "ratio_ours_over_torchattacks": med(wall["ours"]) / med(wall["torchattacks"]),
        "ratio_ours_over_torchattacks_cpu": med(cpu["ours"]) / med(cpu["torchattacks"]),
        "goal_ratio_max": 1.1,
        "adversarial_identical": bool(torch.equal(adv["ours"], adv["torchattacks"])),
        "pixels_differing": int((diff > 0).sum()), "max_abs_diff": float(diff.max()),
        "accuracy": {"clean": accuracy(est, x, y), "pgd_ours": accuracy(est, adv["ours"], y),
                     "pgd_torchattacks": accuracy(est, adv["torchattacks"], y)},
        "wall_s_all": wall, "cpu_s_all": cpu,
        "torchattacks": torchattacks.__version__, "torch": torch.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
    }
    result["headline"] = {k: result[k] for k in ("ratio_ours_over_torchattacks", "ratio_ours_over_torchattacks_cpu",
                                                 "adversarial_identical", "ours_wall_s", "torchattacks_wall_s", "threads")}
    out = Path(a.out)
    write_json_atomic(out, result)
    print(f"PGD-7 over {len(x)} digits test images, {a.threads} thread(s), median of {a.repeats}:")
    print(f"{'':<14}{'wall s':>9}{'cpu s':>9}")
    print(f"{'ours':<14}{result['ours_wall_s']:>9.3f}{result['ours_cpu_s']:>9.3f}")
    print(f"{'torchattacks':<14}{result['torchattacks_wall_s']:>9.3f}{result['torchattacks_cpu_s']:>9.3f}")
    print(f"ratio ours/torchattacks: wall {result['ratio_ours_over_torchattacks']:.3f}, "
          f"cpu {result['ratio_ours_over_torchattacks_cpu']:.3f} (goal ≤ 1.1); adversarial images identical: "
          f"{result['adversarial_identical']} ({result['pixels_differing']} pixels differ, max |Δ| "
          f"{result['max_abs_diff']:.3g}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
