"""The multi-seed study helper: recipes × seeds -> clean/FGSM/PGD mean ± std, resumable."""
from __future__ import annotations

import json

import pytest

from neurodeploy.recipe import Recipe
from neurodeploy.study import RunResult, markdown_table, mean_std, run_study, summarize


def test_mean_std():
    m, s = mean_std([0.8, 0.9, 1.0])
    assert m == pytest.approx(0.9) and s == pytest.approx(0.1)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_summarize_groups_by_recipe():
    runs = [RunResult("a", 0, 0.9, 0.5, 0.3), RunResult("a", 1, 0.7, 0.3, 0.1), RunResult("b", 0, 1.0, 1.0, 1.0)]
    s = {x.recipe: x for x in summarize(runs)}
    assert s["a"].mean["clean"] == pytest.approx(0.8) and s["a"].std["pgd"] == pytest.approx(0.1414, abs=1e-4)
    assert "| a | 2 | 80.0 ± 14.1 | 40.0 ± 14.1 | 20.0 ± 14.1 |" in markdown_table(list(s.values()))


def test_run_study_end_to_end(tmp_path):
    r = Recipe(name="tiny")
    r.timesteps = 2
    r.model.name = "digits_mlp"
    r.train.ann.epochs = 1
    r.train.snn.epochs = 1
    r.train.snn.method = "hire"
    r.train.snn.periods = 2
    r.train.snn.noise_step = r.train.snn.noise_bound = 0.02
    r.attack.epsilon, r.attack.step_size, r.attack.steps, r.attack.max_samples = 0.1, 0.05, 2, 64
    runs, summary = run_study([r], [0, 1], tmp_path)
    assert [(x.recipe, x.seed, x.samples) for x in runs] == [("tiny", 0, 64), ("tiny", 1, 64)]
    for x in runs:
        assert 0 <= x.pgd <= x.clean <= 1 and x.fgsm <= x.clean
    saved = json.loads((tmp_path / "study.json").read_text())
    assert len(saved["runs"]) == 2 and saved["summary"][0]["recipe"] == "tiny"
    assert all(0.0 <= v <= 1.0 for x in runs for v in x.sparsity.values()) and runs[0].sparsity
    assert (tmp_path / "tiny.seed0" / "snn.state.safetensors").is_file()
    again, _ = run_study([r], [0, 1], tmp_path)  # resumes: nothing retrained
    assert [x.clean for x in again] == [x.clean for x in runs]


def test_sparsity_per_layer_in_study_table():
    """The max- vs avg-pool comparison: per-layer input-gradient sparsity, averaged over seeds."""
    runs = [RunResult("max", 0, 0.9, 0.5, 0.3, sparsity={"conv1": 0.2, "sn1": 0.6}),
            RunResult("max", 1, 0.9, 0.5, 0.3, sparsity={"conv1": 0.4, "sn1": 0.8}),
            RunResult("avg", 0, 0.9, 0.5, 0.2, sparsity={"conv1": 0.1, "sn1": 0.3})]
    s = {x.recipe: x for x in summarize(runs)}
    assert s["max"].sparsity == pytest.approx({"conv1": 0.3, "sn1": 0.7})
    md = markdown_table([s["max"], s["avg"]])
    assert "| recipe | conv1 | sn1 |" in md and "| max | 0.300 | 0.700 |" in md and "| avg | 0.100 | 0.300 |" in md


def test_parallel_study_resumes_from_parts_without_training(tmp_path):
    """A study killed after some runs: its parts/*.json runs are reused, nothing is trained again, and
    study.json gathers them (the --jobs path; no worker is started when every run is done)."""
    from dataclasses import asdict

    from neurodeploy.util import write_json_atomic

    r = Recipe(name="tiny")
    done = [RunResult("tiny", s, 0.9, 0.5, 0.4, train_cpu_seconds=3.0) for s in (0, 1)]
    write_json_atomic(tmp_path / "parts" / "tiny.json", [asdict(x) for x in done])
    runs, summary = run_study([r], [0, 1], tmp_path, jobs=2)
    assert [(x.recipe, x.seed, x.clean, x.train_cpu_seconds) for x in runs] == [("tiny", 0, 0.9, 3.0),
                                                                               ("tiny", 1, 0.9, 3.0)]
    assert not (tmp_path / "tiny.seed0").exists()  # not trained
    saved = json.loads((tmp_path / "study.json").read_text())
    assert [x["seed"] for x in saved["runs"]] == [0, 1]
