"""Benchmark: time of PGD-7 (HIRE-SNN settings: ε = 8/255, α = 0.01, K = 7) over the digits test set.

The attack back-propagates through the surrogate gradient over all T steps of the SNN (7 forward
+ backward passes per image) with :class:`neurodeploy.attacks.PGD` on a
:class:`neurodeploy.attacks.SourceEstimator`, in batches of ``--batch``. The model is the SNN of a
run folder (``--run runs/demo``) or, without one, the digits convnet converted from an ANN trained
for ``--ann-epochs`` epochs (the test fixture's recipe). Reported per repeat: wall-clock and this
process's CPU time (on a shared machine the wall clock mostly measures the load; the CPU time with
one torch thread is the work done). Also FGSM and one clean forward pass for scale. Writes
``benchmarks/results/pgd.json``.

    .venv/bin/python benchmarks/bench_pgd.py [--repeats 3] [--threads 1] [--run RUN_DIR]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch


def _timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, out


def _model(args):
    if args.run:
        from neurodeploy.run import load_run

        run = load_run(args.run)
        x, y = run.test_data()
        return run.model, x, y, f"run {args.run}"
    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import Recipe
    from neurodeploy.snn import create_ann, create_snn
    from neurodeploy.train import convert, train_ann
    from neurodeploy.util import seed_everything

    r = Recipe()
    r.timesteps = args.timesteps
    r.train.ann.epochs = args.ann_epochs
    r.train.ann.lr = 3e-3
    d = load_dataset(r.data, r.seed)
    seed_everything(0)
    ann = create_ann(r, d.input_shape, d.num_classes)
    snn = create_snn(r, d.input_shape, d.num_classes)
    if args.ann_epochs:
        train_ann(ann, d, r.train.ann, 64, 0, progress=False)
    convert(ann, snn, d.x_train[:256], 99.7, 1.0)
    return snn.eval(), d.x_test, d.y_test, f"digits_convnet, ANN {args.ann_epochs} epochs + conversion"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is the work done)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--ann-epochs", type=int, default=8)
    ap.add_argument("--run", default="", help="a run folder whose SNN to attack (instead of training one)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pgd.json"))
    args = ap.parse_args()

    from neurodeploy.attacks import FGSM, PGD, SourceEstimator, accuracy
    from neurodeploy.recipe import AttackConfig

    torch.set_num_threads(args.threads)
    model, x, y, what = _model(args)
    cfg = AttackConfig()
    est = SourceEstimator(model)
    pgd = PGD(cfg.epsilon, cfg.step_size, cfg.steps, cfg.random_start, seed=0, batch_size=args.batch)
    fgsm = FGSM(cfg.epsilon, batch_size=args.batch)
    pgd.generate(est, x[: args.batch], y[: args.batch])  # warm-up
    fw_wall, fw_cpu, _ = _timed(lambda: accuracy(est, x, y, args.batch), args.repeats)
    f_wall, f_cpu, x_f = _timed(lambda: fgsm.generate(est, x, y), args.repeats)
    p_wall, p_cpu, x_p = _timed(lambda: pgd.generate(est, x, y), args.repeats)
    med = statistics.median
    result = {
        "benchmark": "PGD-7 over the digits test set",
        "model": what,
        "timesteps": int(getattr(model, "timesteps", 0)),
        "samples": len(x),
        "batch_size": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "attack": {"epsilon": cfg.epsilon, "step_size": cfg.step_size, "steps": cfg.steps},
        "pgd_wall_s": med(p_wall), "pgd_cpu_s": med(p_cpu),
        "pgd_wall_s_all": p_wall, "pgd_cpu_s_all": p_cpu,
        "pgd_ms_per_sample_cpu": 1000 * med(p_cpu) / len(x),
        "fgsm_wall_s": med(f_wall), "fgsm_cpu_s": med(f_cpu),
        "clean_forward_wall_s": med(fw_wall), "clean_forward_cpu_s": med(fw_cpu),
        "accuracy": {"clean": accuracy(est, x, y), "fgsm": accuracy(est, x_f, y), "pgd": accuracy(est, x_p, y)},
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"PGD-7 over {len(x)} digits test images (T = {result['timesteps']}, {args.threads} thread(s)): "
          f"{result['pgd_cpu_s']:.2f} s CPU, {result['pgd_wall_s']:.2f} s wall "
          f"({result['pgd_ms_per_sample_cpu']:.2f} ms/image); FGSM {result['fgsm_cpu_s']:.2f} s CPU; "
          f"accuracy clean {result['accuracy']['clean']:.3f}, FGSM {result['accuracy']['fgsm']:.3f}, "
          f"PGD {result['accuracy']['pgd']:.3f} -> {out}")


if __name__ == "__main__":
    main()
