"""The saw counterfactual study (issue 17, requirement 4) on a small real run of the shipped agent:
rows agree with independent ``compare`` calls and the engine's own rendering, saws out of view
are never hidden, the feature fallback is what it says, and the rank statistics agree with
scipy and with plain numpy ranks.

    .venv/bin/python -m pytest tests/studies/test_counterfactual_saws.py -q
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

import rlvision_widgets as rv
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis.counterfactual import compare
from rlvision_widgets.environment.counterfactual import hide_object, objects
from rlvision_widgets.environment.render import object_boxes
from rlvision_widgets.rollouts import collect_trajectories
from rlvision_widgets.studies.counterfactual_saws import (
    SawStudy,
    _spearman_ranks,
    bootstrap_spearman,
    rank_data,
    saw_counterfactual_study,
    saw_features,
    spearman,
)


@pytest.fixture(scope="module")
def run():
    """8 x 16 frames of the shipped agent (seed 0: saws in view in envs 4-6 from step 1),
    analysed at 2b, rank 8, and the study on 12 of its frames with saws."""
    agent = load_agent()
    traj = collect_trajectories(agent, num_envs=8, num_steps=16, seed=0, progress=False)
    analysis = rv.analyze(agent, traj, layer="2b", rank=8, seed=0)
    study = saw_counterfactual_study(agent, traj, analysis, max_frames=12, progress=False)
    yield agent, traj, analysis, study
    traj.close()


def _box_cells(box, h: int, w: int) -> np.ndarray:
    """Layer cells (a 64/h x 64/w pixel block each) that a [x0, y0, x1, y1) pixel box touches."""
    x0, y0, x1, y1 = (int(v) for v in box)
    sy, sx = 64 // h, 64 // w
    m = np.zeros((h, w), bool)
    m[y0 // sy : -(-y1 // sy), x0 // sx : -(-x1 // sx)] = True
    return m


def test_rows_agree_with_an_independent_compare(run):
    agent, traj, analysis, study = run
    assert len(study) > 0 and study.visible.any()
    h, w = analysis.features.shape[2:4]
    c = study.columns
    checked = 0
    for i in np.argsort(-c["pixels_changed"])[:2]:  # two saws whose hiding changes the frame
        e, t, ref = int(c["env"][i]), int(c["step"][i]), int(c["saw"][i])
        state = traj.state_at(e, t)
        cmp = compare(agent, state, hide_object(state, ref), nmf=analysis)
        row = study.table[i]
        assert row["value"] == pytest.approx(float(cmp.values[0]), abs=1e-4)
        assert row["value_change"] == pytest.approx(cmp.value_change, abs=1e-4)
        assert row["kl"] == pytest.approx(cmp.kl, rel=1e-3, abs=1e-6)
        changed = (cmp.observations[0] != cmp.observations[1]).any(-1)
        assert row["pixels_changed"] == int(changed.sum()) > 0
        # attribution at the saw: compare's own IG reduced onto the same directions, summed
        # over the cells of the saw's box, computed here by block arithmetic
        box = object_boxes(state, 64).pixel_boxes("saw")[
            list(object_boxes(state, 64).ids["saw"]).index(ref)
        ]
        cells = _box_cells(box, h, w)
        expected = cmp.features[0][cells][:, study.features].sum()
        assert row["attribution"] == pytest.approx(float(expected), rel=1e-3, abs=1e-4)
        assert c["cells"][i] == int(cells.sum())
        checked += 1
    assert checked == 2


def test_every_drawn_saw_and_no_other_is_hidden(run):
    """Engine ground truth per studied frame: the saws whose hiding changes the observation are
    all in the table; saws of the level outside the view are not."""
    _, traj, _, study = run
    c = study.columns
    out_of_view = 0
    for e, t in sorted({(int(a), int(b)) for a, b in zip(c["env"], c["step"])}):
        state = traj.state_at(e, t)
        rows = {int(r): i for i, r in enumerate(c["saw"]) if c["env"][i] == e and c["step"][i] == t}
        in_view = set(object_boxes(state, 64).ids["saw"].tolist())
        assert set(rows) == in_view
        for saw in objects(state, ["saw"]):
            obs = traj.renderer.frames(hide_object(state, saw.ref))[0]
            n_changed = int((obs != traj.obs[e, t]).any(-1).sum())
            if saw.ref in rows:
                assert c["pixels_changed"][rows[saw.ref]] == n_changed
            else:
                assert n_changed == 0, f"saw {saw.ref} at ({e}, {t}) is drawn but not studied"
                out_of_view += 1
    assert out_of_view > 0  # the frames' levels do hold saws out of view


def test_summary_uses_visible_rows(run):
    *_, study = run
    s = study.summary(n_boot=200)
    v = study.visible
    assert s["n"] == int(v.sum()) and s["n_excluded_unchanged"] == int((~v).sum())
    dv = study.columns["value_change"][v]
    assert s["value_change"]["spearman"] == pytest.approx(
        stats.spearmanr(study.attribution[v], dv).statistic
    )
    assert s["kl"]["spearman"] == pytest.approx(
        stats.spearmanr(np.abs(study.attribution[v]), study.columns["kl"][v]).statistic
    )
    assert s["value_change"]["share_value_rises"] == pytest.approx(float((dv > 0).mean()))
    neg = study.attribution[v] < 0
    assert s["value_change"]["negative_attribution"]["n"] == int(neg.sum())
    # value_change is exactly hidden minus original, KL is non-negative
    np.testing.assert_allclose(
        study.columns["value_change"], study.columns["value_hidden"] - study.columns["value"]
    )
    assert (study.columns["kl"] >= 0).all()
    assert (study.columns["kl"][~v] == 0).all() and (study.columns["value_change"][~v] == 0).all()


def test_feature_choice_by_label_and_fallback(run):
    agent, traj, analysis, study = run
    labelled = saw_features(analysis)
    if labelled:  # the analysis's own labels decide
        assert study.features == labelled
        assert study.feature_source.startswith("suggested label")
    unlabelled = copy.copy(analysis)
    unlabelled.suggested_labels = [""] * analysis.n_features
    fb = saw_counterfactual_study(agent, traj, unlabelled, max_frames=12, progress=False)
    mass = np.abs(study.columns["feature_box"][study.visible]).sum(0)
    assert fb.features == [int(np.argmax(mass))]
    assert fb.feature_source.startswith("fallback")
    np.testing.assert_array_equal(fb.columns["feature_box"], study.columns["feature_box"])


def test_save_load_roundtrip_and_bad_inputs(run, tmp_path):
    agent, traj, analysis, study = run
    stem = study.save(tmp_path / "study")
    again = SawStudy.load(stem)
    assert again.features == study.features and again.feature_source == study.feature_source
    for k, a in study.columns.items():
        np.testing.assert_array_equal(again.columns[k], a)
    assert again.table == study.table
    with pytest.raises(ValueError, match="not made on these trajectories"):
        other = copy.copy(analysis)
        other.observations = analysis.observations[:, :8]
        saw_counterfactual_study(agent, traj, other, progress=False)
    with pytest.raises(ValueError, match="agent the analysis was made with"):
        saw_counterfactual_study("random", traj, analysis, max_frames=2, progress=False)


def test_saw_features_reads_labels():
    from types import SimpleNamespace

    labels = ["velocity info", "buzzsaw (27/32 on, 9.1x base)", "", "crate / buzzsaw", "coin"]
    assert saw_features(SimpleNamespace(suggested_labels=labels)) == [1, 3]
    assert saw_features(SimpleNamespace(suggested_labels=[])) == []


def test_rank_statistics_match_references():
    rng = np.random.default_rng(0)
    for n, levels in ((7, 3), (50, 10), (400, 1000)):  # heavy ties to none
        x = rng.integers(0, levels, n).astype(float)
        y = x + rng.normal(0, 3, n)
        y[: n // 3] = np.round(y[: n // 3])
        np.testing.assert_allclose(rank_data(x), stats.rankdata(x))
        ref = stats.spearmanr(x, y).statistic
        assert spearman(x, y) == pytest.approx(ref, abs=1e-12)
        assert _spearman_ranks(x, y) == pytest.approx(ref, abs=1e-12)
    # without ties: Pearson of argsort ranks, plain numpy
    x, y = rng.normal(size=100), rng.normal(size=100)
    r = np.corrcoef(np.argsort(np.argsort(x)), np.argsort(np.argsort(y)))[0, 1]
    assert _spearman_ranks(x, y) == pytest.approx(r, abs=1e-12)
    assert np.isnan(spearman([1, 1, 1, 1], [1, 2, 3, 4])) and np.isnan(spearman([1, 2], [2, 1]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])


def test_bootstrap_resamples_clusters():
    """20 clusters of 10 identical rows: resampling rows treats them as 200 independent points
    and gives a narrower CI than resampling the clusters, whose CI matches the CI of the 20
    distinct points (same seed, same draws)."""
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=20)
    y0 = x0 + rng.normal(0, 1.5, 20)
    x, y, g = np.repeat(x0, 10), np.repeat(y0, 10), np.repeat(np.arange(20), 10)
    lo_c, hi_c = bootstrap_spearman(x, y, g, n_boot=500, seed=3)
    lo_r, hi_r = bootstrap_spearman(x, y, None, n_boot=500, seed=3)
    lo_u, hi_u = bootstrap_spearman(x0, y0, None, n_boot=500, seed=3)
    assert hi_c - lo_c > 1.5 * (hi_r - lo_r)
    assert (lo_c, hi_c) == pytest.approx((lo_u, hi_u), abs=1e-12)
    assert lo_c < spearman(x0, y0) < hi_c
