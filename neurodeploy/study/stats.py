"""Paired statistics across seeds and the verdict rule of a claim.

A claim compares two quantities measured on the same seeds (``a[i]`` and ``b[i]`` come from runs
with seed ``i``: same data split and initialisation). With the paired differences
``d_i = a_i − b_i`` (n seeds):

- paired t-test (two-sided): ``t = mean(d) / (sd(d) / √n)``, ``sd`` with ddof = 1, ``n − 1``
  degrees of freedom (``scipy.stats.ttest_rel``);
- exact Wilcoxon signed-rank test (two-sided, zero differences dropped; ``scipy.stats.wilcoxon``,
  ``method="exact"``) and the exact sign test (``scipy.stats.binomtest``, p = ½), reported beside
  the t-test. With n = 5 seeds their smallest possible two-sided p is 2/32 = 0.0625, so they can
  corroborate but never decide at α = 0.05; the t-test decides.

Verdict (α = 0.05) against the paper's direction ``+1`` (a > b), ``−1`` (a < b) or ``0`` (a ≈ b
within ``margin``):

- direction ±1: **reproduced** if ``mean(d)`` has the paper's sign and ``p_t < α``; **not
  reproduced** if it has the opposite sign and ``p_t < α``; else **inconclusive**.
- direction 0 (equivalence, two one-sided t-tests, TOST): **reproduced** if both one-sided tests
  reject ``|mean d| ≥ margin`` at α (the 90 % confidence interval lies inside ±margin); **not
  reproduced** if ``|mean(d)| > margin`` and ``p_t < α``; else **inconclusive**.

All-equal differences (sd = 0) are handled exactly: p = 1 when every d_i = 0, p = 0 when every
d_i is the same non-zero value (scipy returns NaN there).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

ALPHA = 0.05
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


@dataclass
class PairedTest:
    """Paired comparison of a and b over the same seeds."""

    n: int
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    mean_diff: float
    std_diff: float
    t: float
    p_t: float
    p_wilcoxon: float
    p_sign: float
    p_tost: float = float("nan")  # equivalence p (max of the two one-sided p), direction 0 only

    def to_dict(self) -> dict:
        return asdict(self)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s


def _t_test(d: Sequence[float]) -> tuple[float, float]:
    from scipy import stats

    n = len(d)
    m, s = mean_std(d)
    if n < 2:
        return float("nan"), float("nan")
    if s == 0.0:
        return (0.0, 1.0) if m == 0.0 else (math.copysign(math.inf, m), 0.0)
    t = m / (s / math.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def _wilcoxon(d: Sequence[float]) -> float:
    from scipy import stats

    nz = [v for v in d if v != 0.0]
    if not nz:
        return 1.0
    return float(stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided", method="exact").pvalue)


def _sign(d: Sequence[float]) -> float:
    from scipy import stats

    nz = [v for v in d if v != 0.0]
    if not nz:
        return 1.0
    return float(stats.binomtest(sum(v > 0 for v in nz), len(nz), 0.5).pvalue)


def _tost(d: Sequence[float], margin: float) -> float:
    """Equivalence p-value: the larger of the one-sided t-test p-values of H0: mean ≤ −margin and
    H0: mean ≥ +margin (two one-sided tests, Schuirmann 1987)."""
    from scipy import stats

    n = len(d)
    m, s = mean_std(d)
    if n < 2:
        return float("nan")
    if s == 0.0:
        return 0.0 if abs(m) < margin else 1.0
    se = s / math.sqrt(n)
    p_lower = stats.t.sf((m + margin) / se, n - 1)  # H0: mean <= -margin
    p_upper = stats.t.cdf((m - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(p_lower, p_upper))


def paired_test(a: Sequence[float], b: Sequence[float], margin: float | None = None) -> PairedTest:
    """The paired statistics of a vs b (same seeds, same order); ``margin`` adds the TOST p."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired test needs two equal-length non-empty samples, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    md, sd = mean_std(d)
    t, p = _t_test(d)
    return PairedTest(len(d), ma, sa, mb, sb, md, sd, t, p, _wilcoxon(d), _sign(d),
                      _tost(d, margin) if margin is not None else float("nan"))


def verdict(test: PairedTest, direction: int, margin: float = 0.0, alpha: float = ALPHA) -> str:
    """reproduced / not reproduced / inconclusive (see the module docstring)."""
    if test.n < 2 or math.isnan(test.p_t):
        return INCONCLUSIVE
    if direction == 0:
        if not math.isnan(test.p_tost) and test.p_tost < alpha:
            return REPRODUCED
        if abs(test.mean_diff) > margin and test.p_t < alpha:
            return NOT_REPRODUCED
        return INCONCLUSIVE
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1, -1 or 0, got {direction}")
    if test.p_t < alpha and test.mean_diff != 0.0:
        return REPRODUCED if (test.mean_diff > 0) == (direction > 0) else NOT_REPRODUCED
    return INCONCLUSIVE
