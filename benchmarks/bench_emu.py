"""Benchmark: loihi-emu samples/s on the digits net at T = 16, its fast path against its reference loop
(alternated in one process), optionally against Lava, checking on the way that all agree exactly.

    .venv/bin/python benchmarks/bench_emu.py [--nir PATH] [--samples 1440] [--batch 256] [--mode rate]
                                             [--threads 1] [--repeats 5] [--lava] [--copies 16]

End to end = ``LoihiEmuTarget.run`` (input coding, emulation, synops, counts), as a run folder does.
Writes ``benchmarks/results/emu.json`` (samples/s, batch size, T, load from ``uptime``) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nir", default=None, help="a digits NIR file (default: as bench_lava.py finds one)")
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--samples", type=int, default=1440, help="test samples (the test set is repeated if needed)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--mode", default="rate", choices=["rate", "graded"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lava", action="store_true", help="time Lava too (end to end and its run phase)")
    ap.add_argument("--copies", type=int, default=16, help="Lava: samples side by side")
    ap.add_argument("--out", default=str(HERE / "results" / "emu.json"))
    args = ap.parse_args()

    import numpy as np
    import torch

    import neurodeploy.targets.loihi.emu as emu_mod
    from bench_lava import digits_workload
    from neurodeploy.targets import get_target

    torch.set_num_threads(args.threads)
    nir_path, graph, meta, x, _ = digits_workload(args.nir, args.timesteps, args.samples)
    emu = get_target("loihi-emu")
    opts = {"input_spikes": args.mode, "seed": 0}
    dep = emu.compile(graph, meta, options=opts)
    fast_emulate = emu_mod.emulate

    def run(reference: bool):  # noqa: ANN202
        emu_mod.emulate = (lambda p, s, raster=False: fast_emulate(p, s, raster, reference=True)) if reference \
            else fast_emulate
        try:
            return emu.run(dep, x, batch_size=args.batch)
        finally:
            emu_mod.emulate = fast_emulate

    fast_out, ref_out = run(False), run(True)  # warm-up, and the exactness check
    assert fast_out.info["integer_logits"] == ref_out.info["integer_logits"]
    for k in ref_out.layer_spikes:
        assert np.array_equal(fast_out.layer_spikes[k], ref_out.layer_spikes[k]), k
    for k in ref_out.synops:
        assert np.array_equal(fast_out.synops[k], ref_out.synops[k]), k
    times: dict[str, list[float]] = {"fast": [], "reference": []}
    loads = []
    for r in range(args.repeats):  # alternated, so load from other processes hits both alike
        for name in (("fast", "reference") if r % 2 == 0 else ("reference", "fast")):
            t0 = time.perf_counter()
            run(name == "reference")
            times[name].append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    rows = []
    for name, ts in times.items():
        rows.append({"target": "loihi-emu" if name == "fast" else "loihi-emu (reference loop)",
                     "samples": len(x), "batch_size": args.batch, "wall_s_median": statistics.median(ts),
                     "wall_s_best": min(ts), "samples_per_s": len(x) / statistics.median(ts),
                     "samples_per_s_best": len(x) / min(ts)})
    speedup = statistics.median(a / b for a, b in zip(times["reference"], times["fast"]))
    lava_row = None
    if args.lava:
        lava = get_target("lava")
        ld = lava.compile(graph, meta, options={**opts, "copies": args.copies, "timeout_s": 1800})
        t0 = time.perf_counter()
        lo = lava.run(ld, x)
        wall = time.perf_counter() - t0
        same = (lo.info["integer_logits"] == fast_out.info["integer_logits"]
                and all(np.array_equal(lo.layer_spikes[k], fast_out.layer_spikes[k]) for k in lo.layer_spikes))
        lava_row = {"target": "lava", "copies": args.copies, "samples": len(x), "wall_s": wall,
                    "samples_per_s": len(x) / wall, "run_phase_samples_per_s": len(x) / lo.info["run_s"],
                    "identical_spikes_and_readout": bool(same), "load_after": os.getloadavg()[0]}
        rows.append(lava_row)
    result = {"benchmark": "loihi-emu samples/s, digits convnet", "timesteps": args.timesteps,
              "input_spikes": args.mode, "batch_size": args.batch, "samples": len(x), "torch_threads": args.threads,
              "nir": str(nir_path), "repeats": args.repeats, "fast_over_reference": speedup,
              "machine": platform.node(), "cpus": os.cpu_count(), "uptime": _uptime(), "load_avg_per_repeat": loads,
              "python": platform.python_version(), "torch": torch.__version__, "rows": rows}
    if lava_row:
        fast = rows[0]["samples_per_s"]
        result["emu_over_lava_end_to_end"] = fast / lava_row["samples_per_s"]
        result["emu_over_lava_run_phase"] = fast / lava_row["run_phase_samples_per_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"digits convnet, T={args.timesteps}, {args.mode} input, {len(x)} samples, batch {args.batch}, "
          f"{args.threads} thread(s); {result['uptime']}")
    for r in rows:
        extra = (f"  run phase {r['run_phase_samples_per_s']:.1f}/s, identical {r['identical_spikes_and_readout']}"
                 if r["target"] == "lava" else f"  (best {r['samples_per_s_best']:.0f}/s)")
        print(f"{r['target']:28s} {r['samples_per_s']:10.1f} samples/s{extra}")
    print(f"fast path / reference loop: {speedup:.2f}x (median of paired repeats)")
    if lava_row:
        print(f"loihi-emu / lava: {result['emu_over_lava_end_to_end']:.1f}x end to end, "
              f"{result['emu_over_lava_run_phase']:.1f}x Lava's run phase")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
