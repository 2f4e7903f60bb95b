"""Run every benchmark script (benchmarks/bench_*.py) and print a summary of results/*.json.

Benchmarks measure; they never assert. Each script writes its own JSON into benchmarks/results/.
Usage: python benchmarks/run_all.py [NAME ...]   (NAME: e.g. lava, pgd, counting, hire)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    for s in scripts:
        print(f"== {s.name}", flush=True)
        t0 = time.time()
        r = subprocess.run([sys.executable, str(s)], cwd=HERE.parent)
        print(f"   {s.name}: exit {r.returncode} in {time.time() - t0:.1f} s", flush=True)
        if r.returncode:
            failed.append(s.name)
    print("\n== results")
    for j in sorted((HERE / "results").glob("*.json")):
        data = json.loads(j.read_text())
        # a script may name its headline figures in "headline"; else the first scalar fields
        src = data["headline"] if isinstance(data.get("headline"), dict) else data
        flat = {k: v for k, v in src.items() if isinstance(v, (int, float, str, bool))}
        print(f"{j.stem}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in list(flat.items())[:8]))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
