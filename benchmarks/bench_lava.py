"""Benchmark: Lava (netx, fixed point) and the loihi-emu emulator on the digits net at T = 16.

    .venv/bin/python benchmarks/bench_lava.py [--nir PATH] [--copies 16 32] [--samples 1440] [--mode rate]

Measures samples/s end to end (write the netx file, start the child, import Lava, build, run, read
back) and for the run phase alone (Lava compile + simulation), the emulator's samples/s, and checks
on the way that Lava and the emulator agree spike for spike (per-sample counts and readout).
Writes ``benchmarks/results/lava.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nir", default=None)
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--copies", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--samples", type=int, default=1440, help="test samples (the test set is repeated if needed)")
    ap.add_argument("--mode", default="rate", choices=["rate", "graded"])
    ap.add_argument("--out", default=str(HERE / "results" / "lava.json"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from neurodeploy.data import load_dataset
    from neurodeploy.ir import read_nir
    from neurodeploy.recipe import Recipe
    from neurodeploy.targets import get_target

    nir_path = _digits_nir(args.nir, args.timesteps)
    graph, meta = read_nir(nir_path)
    meta.timesteps = args.timesteps
    data = load_dataset(Recipe().data, 0)
    reps = -(-args.samples // len(data.x_test))
    x = torch.cat([data.x_test] * reps)[:args.samples]
    y = torch.cat([data.y_test] * reps)[:args.samples].numpy()

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
    for B in args.copies:
        dep = lava.compile(graph, meta, options={**opts, "copies": B, "timeout_s": 1800})
        t0 = time.time()
        lo = lava.run(dep, x)
        wall = time.time() - t0
        mism = {k: int(np.abs(lo.layer_spikes[k] - eo.layer_spikes[k]).sum()) for k in lo.layer_spikes}
        lg_lava, lg_emu = np.asarray(lo.info["integer_logits"]), np.asarray(eo.info["integer_logits"])
        mism["readout"] = int(np.abs(lg_lava - lg_emu).sum())
        rows.append({"target": "lava", "copies": B, "samples": len(x), "wall_s": wall,
                     "samples_per_s": len(x) / wall, "run_phase_samples_per_s": len(x) / lo.info["run_s"],
                     "steps": lo.info["steps"], "ms_per_step": 1000 * lo.info["run_s"] / lo.info["steps"],
                     "phases_s": {k: round(float(lo.info[k]), 3) for k in
                                  ("prepare_s", "child_start_s", "import_s", "netx_s", "build_s", "run_s")},
                     "accuracy": float((lo.predictions == y).mean()),
                     "agreement_with_source": float((lo.predictions == so.predictions).mean()),
                     "count_mismatches_vs_emulator": mism})
    rel = Path(nir_path).resolve()
    rel_txt = str(rel.relative_to(HERE.parent)) if rel.is_relative_to(HERE.parent) else str(rel)
    result = {"timesteps": args.timesteps, "input_spikes": args.mode, "nir": rel_txt,
              "source_accuracy": float((so.predictions == y).mean()), "machine": platform.node(),
              "cpus": __import__("os").cpu_count(), "load_avg": __import__("os").getloadavg(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"digits convnet, T={args.timesteps}, {args.mode} input, {len(x)} samples, source accuracy "
          f"{result['source_accuracy']:.3f}, load average {result['load_avg'][0]:.1f}")
    print(f"{'target':10s} {'B':>4s} {'wall s':>8s} {'samples/s':>10s} {'run-phase/s':>12s} {'acc':>6s} "
          f"{'agree':>6s}  mismatches vs emu")
    for r in rows:
        print(f"{r['target']:10s} {str(r['copies'] or '-'):>4s} {r['wall_s']:8.2f} {r['samples_per_s']:10.1f} "
              f"{r['run_phase_samples_per_s']:12.1f} {r['accuracy']:6.3f} {r['agreement_with_source']:6.3f}  "
              f"{r.get('count_mismatches_vs_emulator', '')}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
