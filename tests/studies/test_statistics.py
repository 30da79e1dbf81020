"""Comparison statistics: per-cause comparisons, rate ratios, Holm's correction, the paired
bootstrap of the blindness measure."""

import math

import pytest

from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.rollouts.stats import two_proportion_test
from rlvision_widgets.studies.article import table_counts
from rlvision_widgets.studies.statistics import (
    compare_results,
    holm_adjust,
    paired_bootstrap_blindness,
    rate_ratio_ci,
)


def test_compare_results_on_synthetic_counts(make_result):
    n = 2000
    base = make_result(
        {"saw": 500, "enemy_left": 20, "enemy_right": 30, "lava": 5, "timeout": 10}, n
    )
    edited = make_result(
        {"saw": 800, "enemy_left": 22, "enemy_right": 28, "lava": 4, "timeout": 12}, n
    )
    comp = compare_results(base, edited)
    for c in (*FAILURE_CAUSES, "other", "failed", "success"):
        d = comp[c]
        z, p = two_proportion_test(d["base"], n, d["edited"], n)
        assert d["z"] == pytest.approx(z) and d["p"] == pytest.approx(p)
    assert comp["other"]["base"] == 15 and comp["other"]["edited"] == 16
    assert comp["failed"]["base"] + comp["success"]["base"] == n
    assert comp["saw"]["ratio"] == pytest.approx(1.6) and comp["saw"]["p"] < 1e-20
    assert comp["enemy_left"]["p"] > 0.5
    # Holm-adjusted p-values are >= raw and monotone in the raw order
    raw = sorted((comp[c]["p"], comp[c]["p_holm"]) for c in FAILURE_CAUSES)
    assert all(h >= p for p, h in raw) and all(a[1] <= b[1] for a, b in zip(raw, raw[1:]))
    # paired counts: the outcome lists line up the same levels, so only moved levels count
    assert comp["saw"]["only_edited"] - comp["saw"]["only_base"] == 300
    with pytest.raises(ValueError, match="same levels"):
        compare_results(base, make_result({}, n, seed0=1))
    assert table_counts(base) == {"saw": 500, "enemy_left": 20, "enemy_right": 30, "other": 15}


def test_rate_ratio_ci_closed_form():
    r, lo, hi = rate_ratio_ci(40, 1000, 100, 1000)
    se = math.sqrt(1 / 40 - 1 / 1000 + 1 / 100 - 1 / 1000)
    assert r == pytest.approx(2.5)
    assert lo == pytest.approx(2.5 * math.exp(-1.959964 * se), rel=1e-5)
    assert hi == pytest.approx(2.5 * math.exp(1.959964 * se), rel=1e-5)
    r0, lo0, hi0 = rate_ratio_ci(0, 100, 3, 100)  # zero count: 0.5 added for the CI
    assert r0 == math.inf and 0 < lo0 < 7 < hi0
    with pytest.raises(ValueError):
        rate_ratio_ci(5, 0, 1, 10)


def test_holm_adjust_matches_the_step_down_definition():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    adj = holm_adjust(p)
    assert adj == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm_adjust({}) == {} and holm_adjust({"x": 0.7}) == {"x": 0.7}


def test_paired_bootstrap_blindness_point_and_interval(make_result):
    n = 400
    orig = make_result({"saw": 20}, n)
    invisible = make_result({"saw": 220}, n)
    edited = make_result({"saw": 120}, n)
    b, lo, hi = paired_bootstrap_blindness(orig, edited, invisible, n_boot=500)
    assert b == pytest.approx(0.5) and lo < 0.5 < hi and hi - lo < 0.3
    same = paired_bootstrap_blindness(orig, orig, orig, n_boot=50)
    assert math.isnan(same[0]) and math.isnan(same[1])  # no gap to close: undefined
