"""benchmarks/goals.py reads each goal's figure from the benchmark JSON and judges it against the goal."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _goals(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_goals", ROOT / "benchmarks" / "goals.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_goals", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    return mod


def test_figures_are_read_from_the_json_and_judged(tmp_path, monkeypatch):
    g = _goals(tmp_path, monkeypatch)
    (tmp_path / "training.json").write_text(json.dumps({"nets": {
        "digits": {"timing": {"speedup_ours_vs_fastest_wall": 1.62}},
        "vgg5": {"timing": {"speedup_ours_vs_fastest_wall": 1.2}}}}))
    (tmp_path / "lava.json").write_text(json.dumps({"rows": [
        {"target": "loihi-emu", "samples_per_s": 6000.0},
        {"target": "lava", "samples_per_s": 100.0, "cold_samples_per_s": 30.0, "fixed_cost_s": 9.0},
        {"target": "lava", "samples_per_s": 120.0, "cold_samples_per_s": 40.0, "fixed_cost_s": 4.0}]}))
    (tmp_path / "demo.json").write_text(json.dumps({"exit_code": 1, "wall_s": 30.0}))
    digits = [r for r in g.table() if "digits convnet" in r["label"]][0]
    assert digits["figure"] == 1.62 and digits["met"] is True
    vgg = [r for r in g.table() if "VGG5" in r["label"]][0]
    assert vgg["figure"] == 1.2 and vgg["met"] is False
    lava = {r["label"]: r for r in g.table()}
    ratio = next(r for k, r in lava.items() if k.startswith("loihi-emu"))
    assert ratio["figure"] == 50.0 and ratio["met"] is True  # 6000 / the best Lava row (120)
    fixed = next(r for k, r in lava.items() if k.startswith("Lava fixed"))
    assert fixed["figure"] == 4.0 and fixed["met"] is True  # the best row's cold - warm
    cold = next(r for k, r in lava.items() if "first run" in k)
    assert cold["figure"] == 40.0 and cold["met"] is False
    demo = next(r for k, r in lava.items() if k.startswith("make demo"))
    assert demo["figure"] is None and demo["met"] is None  # a failed demo is not a figure
    assert "not measured" in g.render(g.table())
