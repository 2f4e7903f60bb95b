"""Benchmark: does evaluation over a test set stream in batches (memory flat in the number of samples)?

Measures, for N test samples (the digits test set tiled to N = 359 · k), in a fresh process per
(function, N) so that the peak resident set (``ru_maxrss``) belongs to that call alone:

- ``torch_target``: ``TorchTarget.run`` (the torch reference target: predictions, per-sample spike
  and synop counts), batches of 256;
- ``source_predictions``-style evaluation: the SNN's argmax in batches of 256 (what
  ``stages.source.source_predictions`` does);
- ``source_spike_maps``: ``measure.stage.source_spike_maps`` — runs in batches but concatenates
  every neuron layer's spike map ``[N, *shape]`` of the whole test set.

Reported per call: peak RSS growth over the process's baseline (model and data allocated), and the
bytes of what the call returns; each twice, with glibc's default allocator settings and with
``MALLOC_MMAP_THRESHOLD_=65536`` (big blocks go back to the OS when freed, so heap fragmentation
does not masquerade as retained data). The model is the demo's digits convnet (``width = 2``, T = 8)
with untrained weights and thresholds lowered so that neurons spike (memory does not depend on the
weights). ``vgg5_cifar_spike_map_bytes_per_sample`` extrapolates ``source_spike_maps`` to VGG5 on
3×32×32 (bytes per sample of its maps, from one recorded batch).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_memory.py [--tiles 1,4,16]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "memory.json"
FUNCS = ("torch_target", "source_predictions", "source_spike_maps", "source_exact_counts")


def _model():
    import torch

    from neurodeploy.recipe import ModelConfig
    from neurodeploy.snn import create_model

    torch.manual_seed(0)
    net = create_model("digits_convnet", (1, 8, 8), 10, ModelConfig(width=2), timesteps=8).eval()
    for _, n in net.neurons():
        n.threshold.data.fill_(0.3)
    return net


def worker(func: str, tiles: int) -> dict:
    import numpy as np
    import torch

    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import Recipe

    torch.set_num_threads(1)
    net = _model()
    d = load_dataset(Recipe().data, 0)
    x = d.x_test.repeat(tiles, *([1] * (d.x_test.dim() - 1))).contiguous()
    if func == "torch_target":
        from neurodeploy.targets.base import Deployment
        from neurodeploy.targets.torch_target import TorchTarget

        target = TorchTarget()
        dep = Deployment("torch", None, None, None, artifact=net)  # run() only uses the artifact
    import gc

    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if func == "torch_target":
        out = target.run(dep, x)
        nbytes = sum(a.nbytes for a in (out.predictions, out.logits)) + \
            sum(v.nbytes for v in out.layer_spikes.values()) + sum(v.nbytes for v in out.synops.values())
    elif func == "source_predictions":
        with torch.no_grad():
            p = torch.cat([net(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
        nbytes = p.nbytes
    elif func == "source_exact_counts":  # what the source stage uses: maps reduced batch by batch
        from neurodeploy.measure.stage import source_exact_counts

        counts, exact = source_exact_counts(net, x)
        nbytes = sum(np.asarray(v).nbytes for v in counts.values()) + sum(v.nbytes for v in exact.values())
    else:
        from neurodeploy.measure.stage import source_spike_maps

        counts, maps = source_spike_maps(net, x)
        nbytes = sum(np.asarray(v).nbytes for v in counts.values()) + \
            sum(v.numel() * v.element_size() for v in maps.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"func": func, "samples": len(x), "peak_rss_growth_mb": (peak - base) / 1024,
            "returned_mb": nbytes / 2**20, "input_mb": x.numel() * x.element_size() / 2**20}


def vgg5_bytes_per_sample() -> float:
    import torch

    from neurodeploy.snn import create_model

    net = create_model("vgg5", (3, 32, 32), 10, timesteps=2).eval()
    net.record = True
    with torch.no_grad():
        net(torch.rand(2, 3, 32, 32))
    return sum(v[0].numel() * v.element_size() for v in net.spike_maps.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default="1,4,16", help="test-set multiples to measure")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]))))
        return 0
    rows = []
    # glibc's default (dynamic) mmap threshold lets freed batch tensors fragment the heap, which shows
    # up as RSS growth without any data being kept; a fixed 64 KB threshold returns big blocks to the
    # OS on free, so what still grows there is data the function retains.
    for malloc, extra in (("default", {}), ("mmap_threshold_64k", {"MALLOC_MMAP_THRESHOLD_": "65536"})):
        env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
        for func in FUNCS:
            for k in (int(t) for t in a.tiles.split(",")):
                p = subprocess.run([sys.executable, __file__, "--worker", func, str(k)], capture_output=True,
                                   text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
                if p.returncode:
                    rows.append({"func": func, "malloc": malloc, "tiles": k, "error": p.stderr.strip().splitlines()[-1:]})
                    continue
                rows.append({**json.loads(p.stdout.strip().splitlines()[-1]), "malloc": malloc, "tiles": k})
    by = {}
    for r in rows:
        if "error" not in r:
            key = r["func"] if r["malloc"] == "default" else f"{r['func']}[{r['malloc']}]"
            by.setdefault(key, []).append(r)
    growth = {}
    for f, rs in by.items():
        rs = sorted(rs, key=lambda r: r["samples"])
        if len(rs) >= 2:
            dn = rs[-1]["samples"] - rs[0]["samples"]
            growth[f] = {"peak_rss_kb_per_sample": 1024 * (rs[-1]["peak_rss_growth_mb"] - rs[0]["peak_rss_growth_mb"]) / dn,
                         "returned_kb_per_sample": 1024 * (rs[-1]["returned_mb"] - rs[0]["returned_mb"]) / dn}
    vgg = vgg5_bytes_per_sample()
    result = {"benchmark": "memory of test-set evaluation vs number of samples", "rows": rows, "growth": growth,
              "vgg5_cifar_spike_map_bytes_per_sample": vgg,
              "vgg5_cifar10_test_10000_spike_maps_gb": vgg * 10000 / 2**30}
    for f, g in growth.items():
        result[f"{f.replace('[mmap_threshold_64k]', '_mmap64k')}_kb_per_sample"] = g["peak_rss_kb_per_sample"]
    result["headline"] = {k: v for k, v in result.items() if k.endswith("_kb_per_sample")}
    result["headline"]["vgg5_cifar10_test_10000_spike_maps_gb"] = result["vgg5_cifar10_test_10000_spike_maps_gb"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'function':<20}{'malloc':<20}{'N':>7}{'peak RSS +MB':>14}{'returned MB':>13}")
    for r in rows:
        if "error" in r:
            print(f"{r['func']:<20}{r['malloc']:<20}{'x' + str(r['tiles']):>7}  error: {r['error']}")
        else:
            print(f"{r['func']:<20}{r['malloc']:<20}{r['samples']:>7}{r['peak_rss_growth_mb']:>14.2f}"
                  f"{r['returned_mb']:>13.3f}")
    for f, g in growth.items():
        print(f"{f}: {g['peak_rss_kb_per_sample']:.2f} KB peak RSS per extra sample "
              f"({g['returned_kb_per_sample']:.3f} KB returned)")
    print(f"source_spike_maps on VGG5/CIFAR: {vgg / 1024:.0f} KB per sample -> "
          f"{result['vgg5_cifar10_test_10000_spike_maps_gb']:.2f} GB for a 10,000-image test set -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
