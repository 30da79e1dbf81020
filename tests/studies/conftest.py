"""Shared fixtures of the studies' tests: one torch thread, a random-weight agent that finishes
episodes quickly, a feature identification with a planted saw feature, synthetic evaluations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis.features import (
    OBJECT_CLASSES,
    FeatureIdentification,
    label_features,
    score_features,
)
from rlvision_widgets.analysis.nmf import AttributionNMF
from rlvision_widgets.engines import torch_threads
from rlvision_widgets.rollouts.evaluate import EvaluationResult


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small-batch evaluation with more torch threads than free cores is 10-100x slower."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def random_net():
    """A random-weight compact network whose policy mostly jumps right, so that episodes end
    within ~150 steps (a uniform policy runs into the 1000-step timeout)."""
    torch.manual_seed(0)
    net = build_network("compact").eval()
    with torch.no_grad():
        net.policy.weight.mul_(0.1)
        net.policy.bias.zero_()
        net.policy.bias[8] = 4.0  # RIGHT+UP
    return net


def _result(counts: dict, n: int, seed0: int = 0) -> EvaluationResult:
    outcomes = [c for c, k in counts.items() for _ in range(k)]
    outcomes += ["success"] * (n - len(outcomes))
    return EvaluationResult(np.arange(seed0, seed0 + n), outcomes, np.ones(n, np.int64))


@pytest.fixture()
def make_result() -> Callable[..., EvaluationResult]:
    """``make_result({"saw": 5, ...}, n, seed0=0)``: an evaluation of levels seed0.. with those
    failure counts, the rest successes."""
    return _result


@pytest.fixture()
def planted_identification() -> Callable[[], FeatureIdentification]:
    """``planted_identification(second_saw=False)``: a FeatureIdentification whose feature 1 is
    (by construction) the saw feature, feature 0 the crate feature, feature 2 unidentified (or
    a second saw feature)."""
    return _planted_identification


def _planted_identification(channels: int = 32, second_saw: bool = False) -> FeatureIdentification:
    """A FeatureIdentification whose feature 1 is (by construction) the saw feature, feature 0
    the crate feature and feature 2 noise (unidentified), or with ``second_saw`` a second saw
    feature (firing on the same saws more weakly)."""
    rng = np.random.default_rng(0)
    nmf = AttributionNMF(3, source="activation").fit(rng.random((200, channels)).astype(np.float32))
    frames, size = 60, 8
    maps = np.zeros((frames, size, size, len(OBJECT_CLASSES)), np.float32)
    feats = rng.random((frames, size, size, 3)).astype(np.float32) * 0.1
    for f in range(frames):
        for j, cls in ((1, "saw"), (0, "crate")):
            y, x = rng.integers(0, size, 2)
            maps[f, y, x, OBJECT_CLASSES.index(cls)] = 1
            feats[f, y, x, j] += 2 if cls == "crate" else -2  # saws lower the value
            if cls == "saw" and second_saw:
                feats[f, y, x, 2] += 1
    maps[:, -2:, :, OBJECT_CLASSES.index("wall")] = 1
    labels = label_features(feats, maps)
    scores = score_features(feats, maps)
    return FeatureIdentification(
        nmf,
        scores,
        "2b",
        "value",
        np.zeros((frames, 2), np.int64),
        {"rank": 3, "frames": frames},
        labels,
    )
