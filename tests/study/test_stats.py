"""The verdict rule on synthetic seed results: exact verdicts, p-values against scipy."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from neurodeploy.study import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, paired_test, verdict

A = [0.80, 0.82, 0.81, 0.83, 0.84]
GAIN = [0.05, 0.06, 0.04, 0.05, 0.07]  # a beats b by 4..7 pp on every seed
B = [x - g for x, g in zip(A, GAIN)]


def test_p_values_match_scipy():
    t = paired_test(A, B)
    ref = stats.ttest_rel(A, B)
    assert t.n == 5 and t.t == pytest.approx(ref.statistic) and t.p_t == pytest.approx(ref.pvalue)
    assert t.p_wilcoxon == pytest.approx(stats.wilcoxon(A, B, method="exact").pvalue) == pytest.approx(0.0625)
    assert t.p_sign == pytest.approx(stats.binomtest(5, 5, 0.5).pvalue) == pytest.approx(0.0625)
    assert t.mean_diff == pytest.approx(0.054) and t.std_diff == pytest.approx(stats.tstd(GAIN))
    assert t.mean_a == pytest.approx(0.82) and math.isnan(t.p_tost)


def test_directional_verdicts():
    t = paired_test(A, B)
    assert t.p_t < 0.001
    assert verdict(t, +1) == REPRODUCED
    assert verdict(t, -1) == NOT_REPRODUCED
    noisy = paired_test(A, [0.79, 0.84, 0.80, 0.84, 0.83])  # differences +1, -2, +1, -1, +1 pp
    assert noisy.p_t == pytest.approx(stats.ttest_rel(A, [0.79, 0.84, 0.80, 0.84, 0.83]).pvalue)
    assert noisy.p_t > 0.05 and verdict(noisy, +1) == verdict(noisy, -1) == INCONCLUSIVE


def test_equivalence_verdicts_use_tost():
    d = [0.001, -0.002, 0.0, 0.001, -0.001]
    t = paired_test([0.5 + x for x in d], [0.5] * 5, margin=0.02)
    lower = stats.ttest_1samp(d, -0.02, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.02, alternative="less").pvalue
    assert t.p_tost == pytest.approx(max(lower, upper), rel=1e-6)
    assert verdict(t, 0, 0.02) == REPRODUCED
    far = paired_test(A, B, margin=0.02)  # 5.4 pp apart, significantly
    assert verdict(far, 0, 0.02) == NOT_REPRODUCED
    spread = [0.03, -0.03, 0.02, -0.02, 0.0]  # mean 0 but the 90 % CI is wider than ±2 pp
    wide = paired_test(A, [x - d for x, d in zip(A, spread)], margin=0.02)
    assert wide.p_tost > 0.05 and verdict(wide, 0, 0.02) == INCONCLUSIVE


def test_degenerate_samples():
    same = paired_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])  # the same +10 pp on every seed: sd = 0
    assert (same.t, same.p_t) == (math.inf, 0.0) and verdict(same, +1) == REPRODUCED
    tie = paired_test([0.5, 0.6], [0.5, 0.6])
    assert (tie.p_t, tie.p_wilcoxon, tie.p_sign) == (1.0, 1.0, 1.0) and verdict(tie, +1) == INCONCLUSIVE
    assert verdict(paired_test([0.9], [0.1]), +1) == INCONCLUSIVE  # one seed: no test
    with pytest.raises(ValueError, match="equal-length"):
        paired_test([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="direction"):
        verdict(paired_test(A, B), 2)
