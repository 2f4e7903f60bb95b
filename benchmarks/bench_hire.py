"""Benchmark: training step time and peak memory of HIRE-SNN (𝒩 periods) vs traditional BPTT.

HIRE-SNN (Kundu et al. ICCV 2021, Fig. 7) claims no extra training time and up to ~25 % less
memory than traditional training, because each period back-propagates through only ⌊T/𝒩⌋ steps.
Both methods run on the same network, batch and T; a "step" is one batch (𝒩 optimiser steps for
HIRE, one for BPTT). Measured per method, each in a fresh process:

- ``step_s``: median wall time per batch (after warm-up);
- ``saved_activations_mb``: peak bytes of tensors autograd keeps for backward (counted with
  ``torch.autograd.graph.saved_tensors_hooks``) — the memory that BPTT's length drives, exact and
  independent of allocator noise;
- ``peak_rss_mb``: growth of the process's peak resident set size over warm-up and steps, from
  after the model, optimiser and batch were allocated (``ru_maxrss``; includes allocator noise);
- ``cuda_peak_mb`` on a GPU: ``torch.cuda.max_memory_allocated``.

Usage: ``python benchmarks/bench_hire.py [--model vgg5 --input 3,32,32 --batch 32 --timesteps 6]``;
writes ``benchmarks/results/hire.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "hire.json"


def worker(a: argparse.Namespace) -> dict:
    import torch

    from neurodeploy.recipe import ModelConfig, SnnTrainConfig
    from neurodeploy.snn import create_model
    from neurodeploy.train import KappaBuffer, hire_batch
    from neurodeploy.train.common import default_device, make_optimizer

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = default_device()
    shape = tuple(int(s) for s in a.input.split(","))
    net = create_model(a.model, shape, 10, ModelConfig(neuron="lif", dropout=0.2), timesteps=a.timesteps).to(device)
    for _, n in net.neurons():
        n.threshold.data.fill_(0.5)
    hire = a.method == "hire"
    cfg = SnnTrainConfig(method=a.method, periods=a.periods if hire else 1, noise_step=a.eps if hire else 0.0,
                         noise_bound=a.eps if hire else 0.0)
    opt = make_optimizer(net.parameters(), "adam", 1e-4, 0.0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(a.batch, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (a.batch,), generator=g).to(device)
    kappa = KappaBuffer()

    live = {"cur": 0, "peak": 0}

    class Packed:
        """A saved tensor; its bytes count as live until autograd frees the graph holding it."""

        def __init__(self, t):
            self.t, self.n = t, t.numel() * t.element_size()
            live["cur"] += self.n
            live["peak"] = max(live["peak"], live["cur"])

        def __del__(self):
            live["cur"] -= self.n

    def pack(t):
        return Packed(t)

    def unpack(p):
        return p.t

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # model, optimiser and data are allocated
    for _ in range(a.warmup):
        hire_batch(net, opt, x, y, cfg, kappa)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            hire_batch(net, opt, x, y, cfg, kappa)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {
        "method": a.method, "periods": cfg.periods, "step_s": statistics.median(times), "step_s_all": times,
        "saved_activations_mb": live["peak"] / 2**20,
        "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
        "device": str(device),
    }
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _periodwise_hook_note() -> str:
    return ("saved_activations_mb counts bytes saved for backward; with HIRE each period's graph is freed by "
            "its own backward, so the peak is one period's graph (⌊T/𝒩⌋ steps) instead of T steps")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg5")
    ap.add_argument("--input", default="3,32,32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--timesteps", type=int, default=6)
    ap.add_argument("--periods", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.013)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", choices=["hire", "bptt"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    if a.method:  # worker process
        sys.stdout.write(json.dumps(worker(a)) + "\n")
        return 0
    results = {}
    base = [sys.executable, __file__] + [f"--{k}={v}" for k, v in vars(a).items()
                                         if k not in ("method", "out") and v is not None]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    for method in ("bptt", "hire"):  # one fresh process per method: peak RSS is per process
        proc = subprocess.run(base + [f"--method={method}"], capture_output=True, text=True, env=env, check=True)
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    h, b = results["hire"], results["bptt"]
    summary = {
        "config": {k: v for k, v in vars(a).items() if k not in ("method", "out")},
        "results": results,
        "ratios_hire_over_bptt": {
            "step_time": h["step_s"] / b["step_s"],
            "saved_activations": h["saved_activations_mb"] / b["saved_activations_mb"],
            "peak_rss": (h["peak_rss_mb"] / b["peak_rss_mb"]) if b["peak_rss_mb"] > 0 else None,
            **({"cuda_peak": h["cuda_peak_mb"] / b["cuda_peak_mb"]} if "cuda_peak_mb" in h else {}),
        },
        "note": _periodwise_hook_note(),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(summary, indent=2) + "\n")
    sys.stdout.write(json.dumps(summary["ratios_hire_over_bptt"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
