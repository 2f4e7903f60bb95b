"""Benchmark: wall time and peak memory of the ``make demo`` job.

Runs ``neurodeploy run models/digits.toml --out <tmp> --force`` (what ``make demo`` runs, into a
temporary folder) with ``OMP_NUM_THREADS=1`` (the Makefile's setting) in a child process and
measures:

- ``wall_s``: wall-clock time of the whole run (training, export, every target, energy, attacks,
  report); goal: under 5 minutes on 2 cores;
- ``peak_rss_largest_process_mb``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` — the peak resident set
  of the largest single process of the run (the CLI or one of the Lava workers);
- ``peak_pss_tree_mb``: the largest sum of proportional set sizes (PSS: pages shared by forked
  workers split between them) over the run's whole process tree (the CLI plus the Lava runner and
  its worker processes), sampled from /proc every ``--interval`` seconds (psutil is not in the
  lock), so it can miss short peaks; ``peak_rss_sum_tree_mb`` is the plain Σ RSS, which counts the
  shared pages once per worker and so overstates the tree's use;
- ``cpu_s_children``: user + system CPU time of all finished child processes.

Writes ``benchmarks/results/demo.json``. The default run is one demo (a few minutes; most of it is
training and the Lava simulation).

    .venv/bin/python benchmarks/bench_demo.py [--recipe models/digits.toml] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from neurodeploy.util import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "demo.json"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, rss bytes) for every process visible in /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "(comm) "
        out[int(d)] = (int(fields[1]), int(fields[21]) * PAGE)
    return out


def _pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages split between their users), 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int, int]:
    """(Σ RSS, Σ PSS, number of processes) over ``root`` and all its descendants. Σ RSS counts pages
    shared between forked workers once per process; Σ PSS splits them, so it is the tree's real use."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    rss, pss, n, todo = 0, 0, 0, [root]
    while todo:
        p = todo.pop()
        if p in table:
            rss += table[p][1]
            pss += _pss(p)
            n += 1
        todo += children.get(p, [])
    return rss, pss, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="models/digits.toml")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for the run (the Makefile's 1)")
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--keep", default="", help="write the run here instead of a temporary folder")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    exe = Path(sys.executable).parent / "neurodeploy"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "neurodeploy.cli"])]
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nd-demo-"))
    run_dir = tmp / "demo" if not a.keep else tmp
    cmd += ["run", a.recipe, "--out", str(run_dir), "--force"]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MPLCONFIGDIR": str(ROOT / ".cache" / "matplotlib")}
    peak = {"bytes": 0, "pss": 0, "procs": 0}
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sample():
        while not done.is_set():
            b, pss, n = tree_memory(proc.pid)
            peak["bytes"] = max(peak["bytes"], b)
            if pss > peak["pss"]:
                peak["pss"], peak["procs"] = pss, n
            peak["procs_max"] = max(peak.get("procs_max", 0), n)
            done.wait(a.interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    log = proc.stdout.read() if proc.stdout else ""
    rc = proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "benchmark": "make demo equivalent: neurodeploy run models/digits.toml",
        "command": " ".join(cmd), "omp_num_threads": a.threads, "exit_code": rc,
        "wall_s": wall, "goal_wall_s_max": 300.0,
        "cpu_s_children": ru.ru_utime + ru.ru_stime,
        "peak_rss_largest_process_mb": ru.ru_maxrss / 1024,
        "peak_pss_tree_mb": peak["pss"] / 2**20, "peak_rss_sum_tree_mb": peak["bytes"] / 2**20,
        "processes_at_peak": peak["procs"],
        "processes_max": peak.get("procs_max", 0), "sample_interval_s": a.interval,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "log_tail": log.strip().splitlines()[-15:],
    }
    result["headline"] = {k: result[k] for k in ("exit_code", "wall_s", "cpu_s_children", "peak_rss_largest_process_mb",
                                                 "peak_pss_tree_mb", "omp_num_threads")}
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(a.out)
    write_json_atomic(out, result)
    print(f"{'demo run':<34}{'value':>12}")
    print(f"{'exit code':<34}{rc:>12}")
    print(f"{'wall (s)':<34}{wall:>12.1f}")
    print(f"{'CPU, all children (s)':<34}{result['cpu_s_children']:>12.1f}")
    print(f"{'peak RSS, largest process (MB)':<34}{result['peak_rss_largest_process_mb']:>12.0f}")
    print(f"{'peak PSS, process tree (MB)':<34}{result['peak_pss_tree_mb']:>12.0f}")
    print(f"{'peak Σ RSS, process tree (MB)':<34}{result['peak_rss_sum_tree_mb']:>12.0f}")
    print(f"-> {out}")
    if rc:
        print("\n".join(result["log_tail"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
