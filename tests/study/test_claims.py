"""Claims evaluated on synthetic runs (source and deployed rows) and the claim table in study.md;
one tiny real study (2 recipes × 3 seeds) renders the table, the figure and study.json."""
from __future__ import annotations

import json

import pytest

from neurodeploy.recipe import Recipe
from neurodeploy.study import Claim, Comparison, RunResult, evaluate_claim, evaluate_claims, run_study, write_study
from neurodeploy.study.report import claims_markdown

CLAIM = Claim("c1", "A beats B", "Table 9", "A > B by 5 pp", "a", "b",
              (Comparison("pgd", 1), Comparison("tasa", -1, deployed=False), Comparison("eps=0.1", 1, b_metric="eps=0.2")))


def _runs() -> list[RunResult]:
    runs = []
    for s, (pa, pb) in enumerate([(0.50, 0.40), (0.52, 0.41), (0.49, 0.40)]):
        runs.append(RunResult("a", s, 0.9, 0.6, pa, metrics={"pgd": pa, "tasa": 0.1, "eps=0.1": 0.7, "eps=0.2": 0.1},
                              deployed={"chip": {"pgd": pa - 0.1, "clean": 0.9}, "tiny-chip": {"error": "too big"}}))
        runs.append(RunResult("b", s, 0.9, 0.5, pb, metrics={"pgd": pb, "tasa": 0.2 + s / 100, "eps=0.1": 0.6},
                              deployed={"chip": {"pgd": pb, "clean": 0.9}, "tiny-chip": {"error": "too big"}}))
    return runs


def test_claim_rows_source_and_deployed():
    rows = evaluate_claim(CLAIM, _runs())
    got = [(r.metric, r.where, r.verdict, r.seeds) for r in rows]
    assert got == [("pgd", "source", "reproduced", [0, 1, 2]), ("pgd", "chip", "inconclusive", [0, 1, 2]),
                   ("pgd", "tiny-chip", "inconclusive", []), ("tasa", "source", "reproduced", [0, 1, 2]),
                   ("eps=0.1 vs eps=0.2", "source", "inconclusive", []),
                   ("eps=0.1 vs eps=0.2", "tiny-chip", "inconclusive", [])]  # the chip without eps: no row
    assert rows[0].test["mean_diff"] == pytest.approx((0.10 + 0.11 + 0.09) / 3)
    assert rows[2].note == "too big" and rows[4].note == "not measured"  # b has no eps=0.2


def test_claim_table_in_markdown():
    ev = evaluate_claims([CLAIM, Claim("c2", "never ran", "Fig. 1", "-", "x", "y", (Comparison("pgd", 1),))], _runs())
    assert [c["key"] for c in ev] == ["c1"]  # claims whose recipes did not run are left out
    md = claims_markdown(ev, _runs(), "T", "study.png")
    assert "| A beats B | A > B by 5 pp (Table 9) | pgd: **reproduced**; tasa: **reproduced**" in md
    assert "| pgd | source | a > b | 3 | 50.3 ± 1.5 | 40.3 ± 0.6 | +10.0 ± 1.0 | 17.32 |" in md
    assert "| tasa | source | a < b | 3 | 0.100 ± 0.000 | 0.210 ± 0.010 | -0.110 ± 0.010 |" in md
    assert "| pgd | tiny-chip | a > b | — |" in md and "too big" in md and "![claims](study.png)" in md


def test_write_study_files(tmp_path):
    write_study(tmp_path, _runs(), [CLAIM], "T")
    saved = json.loads((tmp_path / "study.json").read_text())
    assert [r["verdict"] for r in saved["claims"][0]["rows"]][:2] == ["reproduced", "inconclusive"]
    assert (tmp_path / "study.png").stat().st_size > 1000 and "## A beats B" in (tmp_path / "study.md").read_text()


def _tiny(name: str, method: str) -> Recipe:
    r = Recipe(name=name, timesteps=2)
    r.model.name = "digits_mlp"
    r.train.ann.epochs = r.train.snn.epochs = 1
    r.train.snn.method = method
    if method == "hire":
        r.train.snn.periods, r.train.snn.noise_step, r.train.snn.noise_bound = 2, 0.02, 0.02
    a = r.attack
    a.epsilon, a.step_size, a.steps, a.max_samples, a.sparsity_samples = 0.1, 0.05, 2, 32, 16
    return r


def test_tiny_study_renders_the_claim_table(tmp_path):
    from neurodeploy.study import hire_claims

    claims = hire_claims("tiny_hire", "tiny_bptt")
    runs, _ = run_study([_tiny("tiny_hire", "hire"), _tiny("tiny_bptt", "bptt")], [0, 1, 2], tmp_path, claims=claims)
    assert sorted((r.recipe, r.seed) for r in runs) == [(n, s) for n in ("tiny_bptt", "tiny_hire") for s in (0, 1, 2)]
    assert all({"blackbox_fgsm", "blackbox_pgd", "tasa", "grad_zero"} <= set(r.metrics) for r in runs)
    md = (tmp_path / "study.md").read_text()
    assert "## HIRE > BPTT under white-box and black-box FGSM/PGD at equal clean accuracy" in md
    for metric in ("clean (≈, ±2 pp)", "fgsm", "pgd", "blackbox_fgsm", "blackbox_pgd", "tasa"):
        assert f"| {metric} | source | " in md
    saved = json.loads((tmp_path / "study.json").read_text())
    assert [len(c["rows"]) for c in saved["claims"]] == [5, 1]
    assert all(r["test"]["n"] == 3 for c in saved["claims"] for r in c["rows"])
    assert (tmp_path / "study.png").is_file()
