"""Failure listing and the hallucination search, as explorer bookmarks."""

import numpy as np
import pytest

from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.rollouts import collect_trajectories
from rlvision_widgets.studies.failures import (
    FailureRecord,
    failure_bookmarks,
    hallucination_search,
    list_failures,
)


def test_failure_listing_on_a_real_rollout():
    traj = collect_trajectories("random", num_envs=8, num_steps=300, seed=1, progress=False)
    fails = list_failures(traj, frames_before=6, visibility=True)
    table = traj.failed_episodes()
    assert len(fails) == len(table) >= 1
    for f, row in zip(fails, table):
        assert (f.env, f.start, f.stop, f.cause) == (
            int(row["env"]),
            int(row["start"]),
            int(row["stop"]),
            str(row["cause"]),
        )
        assert f.cause in FAILURE_CAUSES
        assert f.steps[-1] == f.stop - 1 and len(f.steps) == min(7, f.stop - f.start)
        assert len(f.values) == len(f.steps) == len(f.visible)
        if f.cause == "saw":  # the saw that killed the agent is in view
            assert f.visible[-1]["saw"] >= 1
        assert traj.episodes[f.episode]["start"] == f.start
    bms = failure_bookmarks(traj, frames_before=6)
    assert [b["kind"] for b in bms] == ["failure"] * len(fails)
    assert bms[0]["frame"] == fails[0].steps[0] and bms[0]["trajectory"] == fails[0].env
    assert bms[0]["cause"] == fails[0].cause and bms[0]["stop"] == fails[0].stop
    assert list_failures(traj, cause="lava") == [f for f in fails if f.cause == "lava"]
    traj.close()


def test_hallucination_ranking_on_a_synthetic_value_series():
    T = 200
    rng = np.random.default_rng(0)
    v = np.cumsum(rng.normal(0, 0.002, (2, T)), axis=1) + 0.9
    v[0, 40] += 0.03  # coin hallucination: up for one step
    v[1, 120] -= 0.08  # buzzsaw hallucination: down for one step
    v[0, 150] += 0.015  # a smaller spike
    v[1, 60:] += 0.2  # a lasting jump is not a spike
    firsts = np.zeros((2, T), bool)
    firsts[0, 100] = True
    v[0, 99] += 0.5  # last step of an episode: no next frame in the same episode
    spikes = hallucination_search(values=v, firsts=firsts, kinds=("spike",))
    assert [(s["env"], s["step"], s["direction"], s["rank"]) for s in spikes[:3]] == [
        (1, 120, -1, 1),
        (0, 40, 1, 2),
        (0, 150, 1, 3),
    ]
    assert all(s["kind"] == "spike" and s["strength"] >= 3 for s in spikes)
    assert not any(s["step"] in (59, 60, 99, 100) for s in spikes)
    assert spikes[0]["values"][1] == pytest.approx(v[1, 120])
    assert spikes[0]["score"] == pytest.approx(-0.08, abs=0.01)

    adv = rng.normal(0, 0.01, (2, T))
    adv[0, 10] = 2.0
    adv[1, 30] = -3.0
    adv[0, 99] = -5.0  # terminal step of the first episode (a death)
    adv[0, 80] = -1.0  # ... whose earlier, non-terminal dip is still found
    ext = hallucination_search(values=v, advantages=adv, firsts=firsts, kinds=("high", "low"))
    top3 = [(b["kind"], b["env"], b["step"]) for b in ext[:3]]
    assert top3 == [("low", 1, 30), ("high", 0, 10), ("low", 0, 80)]
    assert not any(b["terminal"] for b in ext)
    with_terminal = hallucination_search(
        values=v, advantages=adv, firsts=firsts, kinds=("low",), exclude_terminal=False
    )
    assert (with_terminal[0]["env"], with_terminal[0]["step"]) == (0, 99)
    assert with_terminal[0]["terminal"]

    hits = hallucination_search(values=v, advantages=adv, firsts=firsts, top=5)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    strengths = [h["strength"] for h in hits]
    assert strengths == sorted(strengths, reverse=True)
    assert {"spike", "low", "high"} <= {h["kind"] for h in hits}
    assert all(
        {"env", "step", "trajectory", "frame", "kind", "score", "label", "detail"} <= set(h)
        for h in hits
    )
    with pytest.raises(ValueError, match="valid kinds"):
        hallucination_search(values=v, kinds=("jump",))


def test_failure_summary_names_the_cause_with_the_label_table():
    rec = FailureRecord(
        0,
        1,
        0,
        30,
        9,
        "enemy_left",
        [28, 29],
        [0.5, 0.1],
        visible=[{"enemy_left": 0}, {"enemy_left": 1}],
    )
    assert rec.summary().endswith(
        "the enemy moving left was out of view in 1 of the 2 frames before"
    )
    assert "several hazards" in FailureRecord(0, 1, 0, 30, 9, "multiple", [], []).summary()
