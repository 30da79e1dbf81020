"""Statistics for evaluation: Wilson intervals (SciPy) and pooled two-proportion z-tests.

>>> lo, hi = wilson_interval(80, 100)
>>> round(lo, 3), round(hi, 3)
(0.711, 0.867)
>>> z, p = two_proportion_test(10, 1000, 30, 1000)
>>> round(p, 4)
0.0014
"""

from __future__ import annotations

import math

from scipy.stats import binomtest, norm


def _check(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= count <= n, got {k} of {n}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` ((0, 1) when n == 0)."""
    _check(successes, n)
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-sided z-test of ``k2/n2`` against ``k1/n1``: returns (z, p-value).

    Equivalent to the uncorrected chi-squared test of the 2x2 table (z**2 == chi2).
    """
    _check(k1, n1)
    _check(k2, n2)
    if min(n1, n2) == 0:
        raise ValueError("both samples need n > 0")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (k2 / n2 - k1 / n1) / se
    return (z, float(2 * norm.sf(abs(z))))
