"""Benchmark: our attack ensemble vs an independent reference (torchattacks 3.5.1 APGD-CE / APGD-DLR).

On the SNN of a run folder (``--run``; default ``runs/demo``) and its test images, for every ε of
``--epsilons`` (default: the recipe's ``[attack] sweep_epsilons`` without 0): robust accuracy under

- the HIRE-SNN protocol (PGD-7, α = 0.01, no random start), the ensemble's first member;
- our ensemble's per-sample worst case (preset ``--preset``, default ``fast``);
- torchattacks' APGD-CE and APGD-DLR (Croce & Hein 2020; ``n_restarts=1``, ``--ta-steps`` steps,
  the model's own backward = the training surrogate), and their per-sample union.

The claim checked is the issue's: ours is at least as strong (lower or equal robust accuracy) at
every ε; ``samples_only_reference_broke`` counts the samples the reference broke and the ensemble
did not (each such sample is a miss of ours). torchattacks is a benchmark contender
(``requirements/bench.txt``, installed by ``make bench``), never imported by the package.
Writes ``benchmarks/results/apgd_reference.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_apgd_reference.py [--run runs/demo] [--samples 0]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from neurodeploy.util import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "apgd_reference.json"


def _broken(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return pred != y


def main(argv: list[str] | None = None) -> int:
    import torchattacks

    from neurodeploy.attacks.ensemble import PRESETS, Settings, parse_members, run_ensemble
    from neurodeploy.attacks.parallel import cpu_seconds, usable_cores
    from neurodeploy.run import load_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--preset", default="fast", choices=sorted(PRESETS))
    ap.add_argument("--epsilons", default="", help="comma-separated; default: the recipe's sweep without 0")
    ap.add_argument("--samples", type=int, default=0, help="first N test samples (0 = all)")
    ap.add_argument("--ta-steps", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--reference-cache", default="", help="a .pt file of torchattacks' per-sample breaks per ε: "
                    "read when it holds the ε, else computed and written (the reference does not change with ours)")
    ap.add_argument("--reference-only", action="store_true", help="compute (and cache) the reference only")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(a.run)
    model = run.model.eval()
    x, y = run.test_data()
    if a.samples:
        x, y = x[:a.samples], y[:a.samples]
    eps_list = ([float(e) for e in a.epsilons.split(",")] if a.epsilons
                else [e for e in run.recipe.attack.sweep_epsilons if e > 0])
    p = PRESETS[a.preset]
    cache_path = Path(a.reference_cache) if a.reference_cache else None
    cache = torch.load(cache_path) if cache_path and cache_path.exists() else {}
    rows = []
    for eps in eps_list:
        key = f"{eps:.6f}/{len(x)}/{a.ta_steps}"
        if key not in cache:
            ref, t0 = {}, time.process_time()
            for loss in ("ce", "dlr"):
                atk = torchattacks.APGD(model, norm="Linf", eps=eps, steps=a.ta_steps, n_restarts=1, loss=loss,
                                        seed=run.recipe.seed)
                adv = torch.cat([atk(x[i:i + 256], y[i:i + 256]) for i in range(0, len(x), 256)])
                ref[loss] = _broken(model, adv, y)
            cache[key] = {**ref, "cpu_s": time.process_time() - t0}
            if cache_path:
                torch.save(cache, cache_path)
            print(f"eps {eps:.4f}: torchattacks APGD-CE {1 - float(ref['ce'].float().mean()):.4f} "
                  f"DLR {1 - float(ref['dlr'].float().mean()):.4f}", flush=True)
        if a.reference_only:
            continue
        s = Settings(eps, protocol_step=run.recipe.attack.step_size, protocol_steps=run.recipe.attack.steps,
                     steps=p["steps"], restarts=p["restarts"], query_budget=p["query_budget"], seed=run.recipe.seed,
                     workers=usable_cores())
        t0, w0 = cpu_seconds(), time.perf_counter()
        ours = run_ensemble(model, x, y, parse_members(p["members"]), s)
        t_ours, w_ours = cpu_seconds() - t0, time.perf_counter() - w0
        ref, t_ref = cache[key], cache[key]["cpu_s"]
        union = ref["ce"] | ref["dlr"]
        ours_b = ours.broken
        row = {"epsilon": eps, "samples": len(x),
               "protocol_pgd7": ours.accuracy_after("pgd7@train"), "ensemble_worst_case": ours.robust_accuracy,
               "torchattacks_apgd_ce": 1 - float(ref["ce"].float().mean()),
               "torchattacks_apgd_dlr": 1 - float(ref["dlr"].float().mean()),
               "torchattacks_union": 1 - float(union.float().mean()),
               "samples_only_reference_broke": int((union & ~ours_b).sum()),
               "samples_only_ensemble_broke": int((ours_b & ~union).sum()),
               "ours_at_least_as_strong": int(ours_b.sum()) >= int(union.sum()),  # counts: no float rounding
               "breaks_by_member": ours.breaks(), "cpu_s_ensemble": round(t_ours, 2),
               "wall_s_ensemble": round(w_ours, 2), "workers": s.workers,
               "cpu_s_torchattacks": round(t_ref, 2)}
        rows.append(row)
        print(f"eps {eps:.4f}: PGD-7 {row['protocol_pgd7']:.4f}  ensemble {row['ensemble_worst_case']:.4f}  "
              f"torchattacks APGD-CE {row['torchattacks_apgd_ce']:.4f} DLR {row['torchattacks_apgd_dlr']:.4f} "
              f"union {row['torchattacks_union']:.4f}  only-reference {row['samples_only_reference_broke']}")
    if a.reference_only:
        return 0
    out = {"benchmark": "attack ensemble vs torchattacks APGD (same SNN, images, ε)", "run": a.run,
           "preset": a.preset, "torchattacks_steps": a.ta_steps, "rows": rows,
           "ours_at_least_as_strong_everywhere": all(r["ours_at_least_as_strong"] for r in rows),
           "torchattacks": torchattacks.__version__, "torch": torch.__version__,
           "python": platform.python_version()}
    write_json_atomic(Path(a.out), out)
    print(f"ours at least as strong at every ε: {out['ours_at_least_as_strong_everywhere']} -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
