"""The blindness report: the article's table, the verdict, its files and reloading them."""

import json

import pytest

from rlvision_widgets.studies.article import ARTICLE_TABLE
from rlvision_widgets.studies.choice import EditChoice
from rlvision_widgets.studies.report import BlindnessReport, load_report


def _synthetic_report(result, n=2000) -> BlindnessReport:
    res = {
        "original": result({"saw": 500, "enemy_left": 20, "enemy_right": 20, "lava": 10}, n),
        "saw_blind": result({"saw": 900, "enemy_left": 22, "enemy_right": 19, "lava": 9}, n),
        "invisible_saws": result({"saw": 1400, "enemy_left": 10, "enemy_right": 10}, n),
    }
    choices = {
        "saw_blind": EditChoice("saw_blind", "saw", 3, 0.3, "saw", True, [1.0] * 4, "x"),
        "left_enemy_blind": EditChoice(
            "left_enemy_blind", "enemy_left", None, 0.01, "saw", False, [], "no enemy feature"
        ),
    }
    return BlindnessReport(res, choices, {"agent_steps": 700_000, "levels": n})


def test_report_table_verdict_and_files(tmp_path, make_result):
    rep = _synthetic_report(make_result)
    md = rep.markdown_table()
    assert "| Buzzsaw blindness | 2,000 | 45.00% (12.76%)" in md
    assert "| Enemy moving left blindness | – | not run" in md
    assert "25.00% (0.37%)" in md
    v = rep.verdict()["saw_blind"]
    assert v["ratio"] == pytest.approx(1.8) and v["ceiling_ratio"] == pytest.approx(4.0)
    assert not v["5x_possible"] and not v["reaches_5x"] and not v["target_met"]
    assert v["other_causes_changed_p05"] == []
    assert v["blindness"] == pytest.approx((0.45 - 0.25) / (0.70 - 0.25))
    lo, hi = v["blindness_ci95"]
    assert lo < v["blindness"] < hi
    assert rep.verdict()["left_enemy_blind"] == {"evaluated": False, "note": "no enemy feature"}
    paths = rep.write(tmp_path)
    data = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["article_table"] == ARTICLE_TABLE
    assert data["results"]["saw_blind"]["levels"] == 2000
    assert paths["chart"].stat().st_size > 10_000
    rows = paths["table_csv"].read_text().splitlines()
    assert rows[0].startswith("condition,levels,pct_saw")
    assert rows[1].startswith("original,2000,25.0000")
    assert len(paths["levels_csv"].read_text().splitlines()) == 2001
    again = load_report(tmp_path)  # redraw without re-running
    assert again.markdown_table() == md and again.verdict() == rep.verdict()
