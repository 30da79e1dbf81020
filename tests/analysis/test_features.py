"""Automatic feature identification: NMF features scored against ground-truth object classes."""

import numpy as np
import pytest
import torch

from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis.features import (
    OBJECT_CLASSES,
    class_maps,
    coverage,
    identify_features,
    object_layer,
    resolve_class,
    score_features,
    suggest_labels,
    trajectory_class_maps,
)
from rlvision_widgets.analysis.labels import CLASS_LABELS
from rlvision_widgets.environment.render import ObjectAnnotations
from rlvision_widgets.rollouts import collect_trajectories

SAW = OBJECT_CLASSES.index("saw")


def _synthetic_maps(frames=60, size=16, seed=0):
    """Random boxes of every class per frame (walls big, hazards small), at layer size."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((frames, size, size, len(OBJECT_CLASSES)), np.float32)
    for f in range(frames):
        for j, cls in enumerate(OBJECT_CLASSES):
            if cls == "wall":
                maps[f, size - 4 :, :, j] = 1
                continue
            if cls == "velocity":
                maps[f, :2, :4, j] = 1
                continue
            for _ in range(rng.integers(0, 3)):
                y, x = rng.integers(0, size - 2, 2)
                maps[f, y : y + 2, x : x + 2, j] = rng.uniform(0.3, 1.0)
    return maps


def test_planted_saw_feature_is_identified_with_the_highest_score():
    maps = _synthetic_maps()
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 0.05, maps.shape[:3] + (6,)).astype(np.float32)
    feats[..., 2] -= 3.0 * maps[..., SAW]  # saws lower the value: negative
    feats[..., 4] += 1.5 * maps[..., OBJECT_CLASSES.index("coin")]
    scores = score_features(feats, maps)
    assert scores.best_class(2)[0] == "saw"
    assert scores.feature_for("saw")[0] == 2
    # the planted pair has the highest score of the whole matrix, close to a perfect match
    best = np.unravel_index(np.nanargmax(scores.correlation), scores.correlation.shape)
    assert tuple(int(i) for i in best) == (2, SAW)
    assert scores.best_class(2)[1] > 0.95
    assert scores.lift[2, SAW] > 10 and scores.mass_share[2, SAW] > 10 * scores.area_share[SAW]
    assert scores.feature_for("coin")[0] == 4
    labels = scores.suggested_labels()
    assert labels[2].startswith("buzzsaw") and labels[4].startswith("coin")
    assert labels[0] == ""  # noise: no suggestion
    # only the negative part carries the saw: signal="positive" must not find it there
    pos = score_features(feats, maps, signal="positive")
    assert pos.best_class(2)[0] != "saw" or pos.best_class(2)[1] < 0.2
    js = scores.to_json()
    assert js["best"][2] == {
        "feature": 2,
        "class": "saw",
        "score": pytest.approx(scores.correlation[2, SAW], abs=1e-5),
    }


def test_offset_responses_are_found_with_dilation():
    maps = _synthetic_maps(seed=3)
    feats = np.zeros(maps.shape[:3] + (2,), np.float32)
    feats[:, 1:, :, 0] = maps[:, :-1, :, SAW]  # responds one cell below the saw
    feats[..., 1] = 0.1
    plain = score_features(feats, maps)
    dil = score_features(feats, maps, dilate=1)
    assert dil.correlation[0, SAW] > plain.correlation[0, SAW]
    assert dil.best_class(0)[0] == "saw"


def test_absent_class_and_errors():
    maps = _synthetic_maps(frames=5)
    maps[..., SAW] = 0
    scores = score_features(np.random.default_rng(0).random(maps.shape[:3] + (3,)), maps)
    assert np.isnan(scores.correlation[:, SAW]).all() and scores.frames_with_class[SAW] == 0
    with pytest.raises(ValueError, match="no frame shows a buzzsaw"):
        scores.feature_for("saw")
    with pytest.raises(ValueError, match="valid classes: agent, saw"):
        resolve_class("dragon")
    with pytest.raises(ValueError, match="metric"):
        score_features(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 9)), metric="iou")
    with pytest.raises(ValueError, match="same frames"):
        score_features(np.zeros((2, 4, 4, 1)), np.zeros((2, 2, 2, 9)))
    with pytest.raises(IndexError, match="out of range"):
        scores.best_class(7)
    assert resolve_class("Enemy moving left") == "enemy_left" and resolve_class("buzzsaw") == "saw"
    assert set(CLASS_LABELS) == set(OBJECT_CLASSES)


def test_coverage_and_class_maps_from_annotations():
    m = np.zeros((64, 64), bool)
    m[4:8, 0:2] = True
    cov = coverage(m, 16)
    assert cov[1, 0] == 0.5 and cov.sum() == pytest.approx(m.sum() / 16)
    assert coverage(m, 32)[2:4, 0].tolist() == [1.0, 1.0]
    uneven = coverage(m, 10)  # cells of 6.4 px: still the right share
    assert uneven.shape == (10, 10) and 0 < uneven.max() <= 1
    boxes = {c: np.zeros((0, 4), np.float32) for c in OBJECT_CLASSES}
    boxes["saw"] = np.array([[8, 8, 16, 16]], np.float32)
    ann = ObjectAnnotations(64, boxes, {c: np.zeros(0) for c in OBJECT_CLASSES})
    maps = class_maps([ann, {64: ann}], 16)
    assert maps.shape == (2, 16, 16, 9)
    assert maps[0, 2:4, 2:4, SAW].tolist() == [[1, 1], [1, 1]] and maps[0, ..., SAW].sum() == 4


@pytest.fixture(scope="module")
def small_traj():
    traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=0, progress=False)
    yield traj
    traj.close()


def test_real_frames_planted_feature_and_identify_features(small_traj):
    """Class maps from real engine states; a feature planted on the walls is named 'wall';
    identify_features runs end to end on a random-weight network."""
    maps, frames = trajectory_class_maps(small_traj, 16)
    assert maps.shape == (48, 16, 16, 9) and frames.shape == (48, 2)
    wall = OBJECT_CLASSES.index("wall")
    assert (maps[..., wall].sum((1, 2)) > 0).all()
    assert np.allclose(maps[..., OBJECT_CLASSES.index("velocity")].max((1, 2)), 1)
    feats = np.random.default_rng(0).normal(0, 0.01, maps.shape[:3] + (3,)).astype(np.float32)
    feats[..., 1] += maps[..., wall]
    per_step = feats.reshape(2, 24, 16, 16, 3)
    labels = suggest_labels(per_step, traj=small_traj, max_frames=20)
    assert labels[1].startswith("wall") and len(labels) == 3

    torch.manual_seed(0)
    net = build_network("compact").eval()
    assert object_layer(net) == "2b"
    ident = identify_features(net, small_traj, rank=3, max_frames=32)
    assert ident.nmf.components_.shape == (3, 32) and ident.layer == "2b"
    assert ident.scores.correlation.shape == (3, 9) and len(ident.frames) == 32
    assert len(ident.summary()) == 3
    k = ident.index("wall")
    assert ident.index(str(k)) == k
    assert np.linalg.norm(ident.direction("wall")) == pytest.approx(1, abs=1e-4)
    with pytest.raises(ValueError, match="out of range"):
        ident.index(9)
