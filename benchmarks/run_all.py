"""Run every benchmark script (benchmarks/bench_*.py) and print a summary of results/*.json.

Benchmarks measure; they never assert. Each script writes its own JSON into benchmarks/results/.
The demo runs first and its run folder (``.cache/bench/demo``) is kept, so that the attack and Lava
benchmarks measure the demo's own model (``PLAN``). The 1-minute load average before and after
each script is recorded in ``results/bench_run.json`` with the goals table (``goals.py``).
The thorough attack ensemble runs on the demo's whole test set, its chunks in as many processes as
the machine gives (its wall clock is the figure). The two long
attack comparisons (``LONG``: torchattacks' APGD over the ε sweep, Square on a deployed target)
run only when named.
Usage: python benchmarks/run_all.py [NAME ...]   (NAME: e.g. lava, pgd, counting, hire, apgd_reference)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from goals import render, table

HERE = Path(__file__).resolve().parent
DEMO = ".cache/bench/demo"
LONG = {"bench_apgd_reference.py", "bench_square_target.py"}
# script -> its invocations (argument lists); a script not named here runs once without arguments
PLAN = {
    "bench_demo.py": [["--keep", DEMO]],
    "bench_ensemble.py": [["--preset", "fast", "--run", DEMO], ["--preset", "thorough", "--run", DEMO]],
    "bench_apgd_reference.py": [["--run", DEMO]],
    "bench_lava.py": [["--nir", f"{DEMO}/model.nir"]],
    "bench_emu.py": [["--nir", f"{DEMO}/model.nir"]],
    "bench_pgd_peers.py": [["--run", DEMO]],
    "bench_square_target.py": [["--run", DEMO]],
}


def _ordered(scripts: list[Path]) -> list[Path]:
    """The demo first (the others read its run folder), then the rest by name."""
    return sorted(scripts, key=lambda s: (s.name != "bench_demo.py", s.name))


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    else:
        scripts = [s for s in scripts if s.name not in LONG]
    failed, log = [], []
    for s in _ordered(scripts):
        for args in PLAN.get(s.name, [[]]):
            name = " ".join([s.name, *args])
            print(f"== {name}", flush=True)
            t0, load0 = time.time(), os.getloadavg()[0]
            r = subprocess.run([sys.executable, str(s), *args], cwd=HERE.parent)
            wall, load1 = time.time() - t0, os.getloadavg()
            print(f"   {name}: exit {r.returncode} in {wall:.1f} s (1-min load {load0:.2f} -> {load1[0]:.2f})",
                  flush=True)
            log.append({"script": name, "exit_code": r.returncode, "wall_s": round(wall, 1),
                        "load_1min_start": load0, "load_1min_end": load1[0], "load_5min_end": load1[1]})
            if r.returncode:
                failed.append(name)
    print("\n== results")
    for j in sorted((HERE / "results").glob("*.json")):
        data = json.loads(j.read_text())
        # a script may name its headline figures in "headline"; else the first scalar fields
        src = data["headline"] if isinstance(data.get("headline"), dict) else data
        flat = {k: v for k, v in src.items() if isinstance(v, (int, float, str, bool))}
        print(f"{j.stem}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in list(flat.items())[:8]))
    rows = table()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_run.json").write_text(json.dumps(
        {"scripts": log, "goals": rows, "cpu_count": os.cpu_count()}, indent=2) + "\n")
    print("\n== goals (issue #20)\n" + render(rows))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
