"""Benchmark: Lava (netx, fixed point) and the loihi-emu emulator on the digits net at T = 16.

    .venv/bin/python benchmarks/bench_lava.py [--nir PATH] [--copies 32 64] [--samples 359] [--mode rate] [--repeat 3]

For each width B (samples side by side): a cold run (a new worker: Python start, Lava import, netx
build, Lava compile, simulation, read back) and a warm run on the same worker and network (what
every further chunk, run or deployment of the process pays). Records samples/s end to end (warm
and cold; warm = the median of ``--repeat`` runs), the fixed cost (cold wall − warm wall), the run phase alone (Lava simulation), the
phases of the cold run, the load average before/after and ``uptime``; checks on the way that Lava
and the emulator agree spike for spike (per-sample counts and readout) and cold == warm.
Writes ``benchmarks/results/lava.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _digits_nir(path: str | None, timesteps: int) -> str:
    """A trained digits convnet as NIR (the given file, runs/demo/model.nir, or a quick one trained here)."""
    from neurodeploy.ir import DeployMeta, to_nir, write_nir

    if path:
        return path
    demo = HERE.parent / "runs" / "demo" / "model.nir"
    if demo.is_file():
        return str(demo)
    cache = HERE.parent / ".cache" / "bench" / f"digits_T{timesteps}.nir"
    cache.parent.mkdir(parents=True, exist_ok=True)
    if cache.is_file():
        return str(cache)
    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import Recipe
    from neurodeploy.snn import create_ann, create_snn
    from neurodeploy.train import convert, train_ann
    from neurodeploy.util import seed_everything

    r = Recipe()
    r.timesteps, r.train.ann.epochs, r.train.ann.lr = timesteps, 8, 3e-3
    d = load_dataset(r.data, r.seed)
    seed_everything(0)
    ann = create_ann(r, d.input_shape, d.num_classes)
    snn = create_snn(r, d.input_shape, d.num_classes)
    train_ann(ann, d, r.train.ann, 64, 0, progress=False)
    convert(ann, snn, d.x_train[:256], 99.7, 1.0)
    meta = DeployMeta(timesteps=timesteps, encoding="direct", input_shape=list(d.input_shape))
    write_nir(to_nir(snn.eval(), meta), cache)
    return str(cache)


def digits_workload(nir: str | None, timesteps: int, samples: int):
    """(NIR path, graph, metadata at ``timesteps``, ``samples`` test images, their labels as numpy):
    the digits test set repeated as often as ``samples`` needs."""
    import torch

    from neurodeploy.data import load_dataset
    from neurodeploy.ir import read_nir
    from neurodeploy.recipe import Recipe

    nir_path = _digits_nir(nir, timesteps)
    graph, meta = read_nir(nir_path)
    meta.timesteps = timesteps
    data = load_dataset(Recipe().data, 0)
    reps = -(-samples // len(data.x_test))
    x = torch.cat([data.x_test] * reps)[:samples]
    return nir_path, graph, meta, x, torch.cat([data.y_test] * reps)[:samples].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nir", default=None)
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--copies", type=int, nargs="+", default=[64], help="widths B (samples side by side)")
    ap.add_argument("--samples", type=int, default=359, help="test samples (the test set is repeated if needed)")
    ap.add_argument("--mode", default="rate", choices=["rate", "graded"])
    ap.add_argument("--netx", action="store_true",
                    help="Lava's block-diagonal netx build (option batched = false) instead of the batched one")
    ap.add_argument("--repeat", type=int, default=3,
                    help="warm runs per width; their median is reported (the machine is shared: one run is noisy)")
    ap.add_argument("--out", default=str(HERE / "results" / "lava.json"))
    args = ap.parse_args()

    import numpy as np

    from neurodeploy.targets import get_target

    nir_path, graph, meta, x, y = digits_workload(args.nir, args.timesteps, args.samples)

    src = get_target("torch")
    so = src.run(src.compile(graph, meta), x)
    emu = get_target("loihi-emu")
    opts = {"input_spikes": args.mode, "seed": 0}
    de = emu.compile(graph, meta, options=opts)
    emu.run(de, x[:64])  # warm-up
    t0 = time.time()
    eo = emu.run(de, x, batch_size=256)
    emu_s = time.time() - t0
    rows = [{"target": "loihi-emu", "copies": None, "samples": len(x), "wall_s": emu_s,
             "samples_per_s": len(x) / emu_s, "run_phase_samples_per_s": len(x) / emu_s,
             "accuracy": float((eo.predictions == y).mean()),
             "agreement_with_source": float((eo.predictions == so.predictions).mean())}]
    lava = get_target("lava")
    from neurodeploy.targets.loihi.lava import session

    for B in args.copies:
        session.shutdown()  # a cold start for each width: worker start, Lava import, netx build, compile
        load_before = os.getloadavg()
        t0 = time.time()
        dep = lava.compile(graph, meta, options={**opts, "copies": B, "timeout_s": 1800,
                                                           "batched": not args.netx})  # starts the worker
        cold = lava.run(dep, x)
        cold_wall = time.time() - t0
        walls, runs = [], []
        for _ in range(max(1, args.repeat)):
            t0 = time.time()
            lo = lava.run(dep, x)  # the same worker and network: what every further chunk / run / target pays
            walls.append(time.time() - t0)
            runs.append(lo.info["run_s"])
            for k in lo.layer_spikes:
                assert np.array_equal(lo.layer_spikes[k], cold.layer_spikes[k]), k  # every warm run = the cold one
        wall = float(np.median(walls))
        lo.info["run_s"] = float(np.median(runs))
        mism = {k: int(np.abs(lo.layer_spikes[k] - eo.layer_spikes[k]).sum()) for k in lo.layer_spikes}
        lg_lava, lg_emu = np.asarray(lo.info["integer_logits"]), np.asarray(eo.info["integer_logits"])
        mism["readout"] = int(np.abs(lg_lava - lg_emu).sum())
        mism["cold_vs_warm"] = int(np.abs(np.asarray(cold.info["integer_logits"]) - lg_lava).sum())
        phases = {k: round(float(cold.info[k]), 3) for k in
                  ("prepare_s", "import_s", "netx_s", "build_s", "run_s", "wall_s")}
        rows.append({"target": "lava", "copies": B, "batched": bool(lo.info["batched"]), "samples": len(x), "wall_s": wall,
                     "samples_per_s": len(x) / wall, "run_phase_samples_per_s": len(x) / lo.info["run_s"],
                     "warm_walls_s": [round(w, 3) for w in walls], "cold_wall_s": cold_wall, "cold_samples_per_s": len(x) / cold_wall,
                     "fixed_cost_s": cold_wall - wall,  # what the first run pays on top of a warm one
                     "steps": lo.info["steps"], "lava_steps": lo.info["lava_steps"],
                     "ms_per_step": 1000 * lo.info["run_s"] / lo.info["lava_steps"],
                     "cold_phases_s": phases, "warm_phases_s": {k: round(float(lo.info[k]), 3) for k in
                                                                ("prepare_s", "build_s", "run_s", "wall_s")},
                     "builds": [cold.info["builds"], lo.info["builds"]],
                     "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
                     "accuracy": float((lo.predictions == y).mean()),
                     "agreement_with_source": float((lo.predictions == so.predictions).mean()),
                     "count_mismatches_vs_emulator": mism})
    session.shutdown()
    rel = Path(nir_path).resolve()
    rel_txt = str(rel.relative_to(HERE.parent)) if rel.is_relative_to(HERE.parent) else str(rel)
    result = {"timesteps": args.timesteps, "input_spikes": args.mode, "nir": rel_txt,
              "source_accuracy": float((so.predictions == y).mean()), "machine": platform.node(),
              "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
              "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"digits convnet, T={args.timesteps}, {args.mode} input, {len(x)} samples, source accuracy "
          f"{result['source_accuracy']:.3f}, load average {result['load_avg'][0]:.1f}")
    print(f"{'target':10s} {'B':>4s} {'wall s':>8s} {'samples/s':>10s} {'run-phase/s':>12s} {'cold/s':>7s} "
          f"{'fixed s':>8s} {'acc':>6s} {'agree':>6s}  mismatches vs emu")
    for r in rows:
        print(f"{r['target']:10s} {str(r['copies'] or '-'):>4s} {r['wall_s']:8.2f} {r['samples_per_s']:10.1f} "
              f"{r['run_phase_samples_per_s']:12.1f} {r.get('cold_samples_per_s', r['samples_per_s']):7.1f} "
              f"{r.get('fixed_cost_s', 0.0):8.2f} {r['accuracy']:6.3f} {r['agreement_with_source']:6.3f}  "
              f"{r.get('count_mismatches_vs_emulator', '')}")
    for r in rows[1:]:
        print(f"lava B={r['copies']}: first run's phases {r['cold_phases_s']} (import overlaps compile/prepare), "
              f"{r['ms_per_step']:.1f} ms per Lava step, {r['lava_steps']} steps")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
