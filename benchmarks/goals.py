"""The performance goals of the project (issue #20) beside the figures the benchmarks measured.

Each row reads one figure from a benchmark's JSON in ``benchmarks/results/`` (written by the
``bench_*.py`` scripts; nothing here measures or types a number) and compares it with its goal.
A row whose JSON is missing says ``not measured``. ``python benchmarks/goals.py`` prints the table;
``run_all.py`` prints it after a ``make bench`` run, with the machine's load over each script.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Goal:
    """One row: a label, the JSON it reads, how to read its figure, and the goal it must meet."""

    label: str
    source: str
    read: Callable[[dict], float | None]
    goal: float
    higher_is_better: bool
    unit: str = ""

    def figure(self) -> float | None:
        data = _load(self.source)
        if data is None:
            return None
        try:
            v = self.read(data)
        except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError):
            return None
        return None if v is None else float(v)

    def met(self, v: float) -> bool:
        return v >= self.goal if self.higher_is_better else v <= self.goal


def _timing(net: str, key: str):
    return lambda d: d["nets"][net]["timing"][key]


def _lava_rows(d: dict, target: str) -> list[dict]:
    return [r for r in d.get("rows", []) if r.get("target") == target]


def _lava_best(d: dict) -> dict:
    return max(_lava_rows(d, "lava"), key=lambda r: r["samples_per_s"])


def _fixed_cost(d: dict) -> float:
    """What a process's first run pays on top of a warm one (``bench_lava.py``'s cold - warm)."""
    return _lava_best(d)["fixed_cost_s"]


def _thorough_wall(d: dict) -> float | None:
    """The wall clock of a run over the whole test set (a run on fewer samples gives no figure)."""
    return d["wall_s"] if d.get("samples") == d.get("test_set_samples") else None


def _emu_over_lava(d: dict) -> float:
    """bench_emu's rate (1,440 samples, median of repeats) when it ran, else bench_lava's own emulator
    row (the demo's test set once), over Lava's warm end-to-end rate from the same make bench run."""
    emu = _load("emu")
    rate = emu["rows"][0]["samples_per_s"] if emu else _lava_rows(d, "loihi-emu")[0]["samples_per_s"]
    return rate / _lava_best(d)["samples_per_s"]


GOALS = [
    Goal("training step, digits convnet (T 8, batch 64) vs fastest peer", "training",
         _timing("digits", "speedup_ours_vs_fastest_wall"), 1.5, True, "×"),
    Goal("training step, VGG5 3×32×32 (T 6, batch 32) vs fastest peer", "training",
         _timing("vgg5", "speedup_ours_vs_fastest_wall"), 1.5, True, "×"),
    Goal("loihi-emu samples/s (results/emu.json) over Lava's warm rate, digits T 16 (identical spikes)", "lava",
         _emu_over_lava, 50, True, "×"),
    Goal("Lava end to end, digits T 16, worker and network up (every run after a process's first)", "lava",
         lambda d: _lava_best(d)["samples_per_s"], 150, True, "samples/s"),
    Goal("Lava end to end, digits T 16, a process's first run (worker start, import, build included)", "lava",
         lambda d: _lava_best(d)["cold_samples_per_s"], 150, True, "samples/s"),
    Goal("Lava fixed cost (child start, import, build)", "lava", _fixed_cost, 5, False, "s"),
    Goal("PGD-7 wall time, ours over torchattacks (same images)", "pgd_peers",
         lambda d: d["ratio_ours_over_torchattacks"], 1.1, False, "×"),
    Goal("thorough attack ensemble, demo model's whole test set, ε = 8/255, wall clock on the machine's cores",
         "ensemble_thorough", _thorough_wall, 120, False, "s"),
    Goal("make demo after set-up", "demo", lambda d: d["wall_s"] if d.get("exit_code") == 0 else None, 120, False, "s"),
]


def table() -> list[dict]:
    """One dict per goal: label, figure (or None), goal, met (or None), the JSON it came from."""
    rows = []
    for g in GOALS:
        v = g.figure()
        rows.append({"label": g.label, "figure": v, "unit": g.unit, "goal": g.goal,
                     "goal_text": f"{'≥' if g.higher_is_better else '≤'} {g.goal:g} {g.unit}".strip(),
                     "met": None if v is None else g.met(v), "source": f"results/{g.source}.json"})
    return rows


def render(rows: list[dict]) -> str:
    """The table as Markdown."""
    out = ["| figure | measured | goal | met | from |", "|---|---|---|---|---|"]
    for r in rows:
        fig = "not measured" if r["figure"] is None else f"{r['figure']:.3g} {r['unit']}".strip()
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        out.append(f"| {r['label']} | {fig} | {r['goal_text']} | {met} | {r['source']} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(table()))
