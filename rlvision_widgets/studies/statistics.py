"""Comparison statistics for two evaluations on the same levels: rate ratios with a CI, Holm's
correction, per-cause comparisons and the paired bootstrap of the article's blindness measure.

The single-sample statistics (Wilson interval, two-proportion z-test) are the rollouts'
(:mod:`rlvision_widgets.rollouts.stats`).

>>> r, lo, hi = rate_ratio_ci(50, 1000, 100, 1000)
>>> round(r, 2), round(lo, 2), round(hi, 2)
(2.0, 1.44, 2.78)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm

from ..environment.causes import FAILURE_CAUSES
from ..rollouts.evaluate import EvaluationResult
from ..rollouts.stats import two_proportion_test
from .article import OTHER_CAUSES

__all__ = ["compare_results", "holm_adjust", "paired_bootstrap_blindness", "rate_ratio_ci"]


def rate_ratio_ci(
    k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Ratio ``(k2/n2) / (k1/n1)`` with a Katz log-scale CI (0.5 added to zero counts).

    >>> r, lo, hi = rate_ratio_ci(50, 1000, 100, 1000)
    >>> round(r, 2), round(lo, 2), round(hi, 2)
    (2.0, 1.44, 2.78)
    """
    for k, n in ((k1, n1), (k2, n2)):
        if n <= 0 or not 0 <= k <= n:
            raise ValueError(f"need 0 <= count <= n and n > 0, got {k} of {n}")
    a, b = (k1, k2) if k1 and k2 else (k1 + 0.5, k2 + 0.5)
    ratio = (b / n2) / (a / n1)
    se = math.sqrt(max(1 / a - 1 / n1 + 1 / b - 1 / n2, 0.0))
    z = float(norm.ppf(0.5 + confidence / 2))
    ratio_point = (k2 / n2) / (k1 / n1) if k1 else (math.inf if k2 else 1.0)
    return ratio_point, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def holm_adjust(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (same keys).

    >>> holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03})
    {'a': 0.03, 'c': 0.06, 'b': 0.06}
    """
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    out, running = {}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def compare_results(base: EvaluationResult, other: EvaluationResult) -> dict[str, dict[str, Any]]:
    """Per cause (each failure cause, "other", "failed", "success"): counts, rates, the
    two-proportion z-test against ``base`` (``z``, ``p``, ``p_holm`` over the failure causes),
    the rate ratio with its 95% CI, and the paired counts on the same levels.

    >>> a = EvaluationResult(np.arange(4), ["saw", "success", "success", "lava"], np.ones(4))
    >>> b = EvaluationResult(np.arange(4), ["saw", "saw", "success", "lava"], np.ones(4))
    >>> c = compare_results(a, b)["saw"]
    >>> c["base"], c["edited"], c["only_edited"]
    (1, 2, 1)
    """
    if base.levels != other.levels or not np.array_equal(base.level_seeds, other.level_seeds):
        raise ValueError(
            "compare_results needs evaluations on the same levels (same levels, "
            "start level and distribution mode)"
        )
    n = base.levels
    ob, oe = np.asarray(base.outcomes), np.asarray(other.outcomes)
    groups: dict[str, tuple[str, ...]] = {c: (c,) for c in FAILURE_CAUSES}
    groups["other"] = OTHER_CAUSES
    groups["failed"] = FAILURE_CAUSES
    groups["success"] = ("success",)
    out: dict[str, dict[str, Any]] = {}
    for name, members in groups.items():
        in_b, in_e = np.isin(ob, members), np.isin(oe, members)
        k1, k2 = int(in_b.sum()), int(in_e.sum())
        z, p = two_proportion_test(k1, n, k2, n)
        ratio, lo, hi = rate_ratio_ci(k1, n, k2, n)
        out[name] = {
            "base": k1,
            "edited": k2,
            "base_rate": k1 / n,
            "edited_rate": k2 / n,
            "ratio": ratio,
            "ratio_ci95": [lo, hi],
            "z": z,
            "p": p,
            "only_base": int((in_b & ~in_e).sum()),
            "only_edited": int((in_e & ~in_b).sum()),
        }
    holm = holm_adjust({c: out[c]["p"] for c in FAILURE_CAUSES})
    for c in FAILURE_CAUSES:
        out[c]["p_holm"] = holm[c]
    return out


def paired_bootstrap_blindness(
    orig: EvaluationResult,
    edited: EvaluationResult,
    invisible: EvaluationResult,
    cause: str = "saw",
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Blindness ``(edited - original) / (invisible - original)`` of ``cause``'s failure rate
    with a paired (same levels) percentile bootstrap 95% CI: ``(point, low, high)``.

    >>> levels, ones = np.arange(4), np.ones(4)
    >>> orig = EvaluationResult(levels, ["success"] * 4, ones)
    >>> hidden = EvaluationResult(levels, ["saw", "saw", "success", "success"], ones)
    >>> edited = EvaluationResult(levels, ["saw", "success", "success", "success"], ones)
    >>> paired_bootstrap_blindness(orig, edited, hidden)[0]
    0.5
    """
    a = np.asarray(orig.outcomes) == cause
    b = np.asarray(edited.outcomes) == cause
    c = np.asarray(invisible.outcomes) == cause

    def frac(ia: np.ndarray, ib: np.ndarray, ic: np.ndarray) -> np.ndarray:
        den = ic - ia
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, (ib - ia) / den, np.nan)

    point = float(frac(a.mean(), b.mean(), c.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = frac(a[idx].mean(1), b[idx].mean(1), c[idx].mean(1))
    boots = boots[np.isfinite(boots)]
    if not len(boots):
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return point, float(lo), float(hi)
