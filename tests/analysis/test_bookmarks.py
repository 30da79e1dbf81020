"""Bookmarks: GAE, advantage extremes (one per episode), value spikes, failed episodes."""

from __future__ import annotations

import numpy as np
import pytest

from rlvision_widgets.analysis.bookmarks import (
    advantage_bookmarks,
    episode_ids,
    failed_episodes,
    value_spikes,
)
from rlvision_widgets.rollouts.gae import gae_advantages


def _manual_gae(r, v, f, last_v, last_f, gamma, lam):
    e, t = r.shape
    adv = np.zeros((e, t))
    for i in range(e):
        run = 0.0
        for s in reversed(range(t)):
            nf = last_f[i] if s == t - 1 else f[i, s + 1]
            nv = last_v[i] if s == t - 1 else v[i, s + 1]
            nonterm = 1.0 - float(nf)
            delta = r[i, s] + gamma * nv * nonterm - v[i, s]
            run = delta + gamma * lam * nonterm * run
            adv[i, s] = run
    return adv


def test_gae_matches_definition():
    rng = np.random.default_rng(0)
    r = (rng.random((3, 20)) < 0.1) * 10.0
    v = rng.random((3, 20))
    f = rng.random((3, 20)) < 0.1
    lv, lf = rng.random(3), np.array([True, False, False])
    ours = gae_advantages(r, v, f, last_values=lv, last_firsts=lf)
    np.testing.assert_allclose(
        ours, _manual_gae(r, v, f, lv, lf, 0.999, 0.95), rtol=1e-4, atol=1e-5
    )
    # without a bootstrap value the last step is 0 and the rest bootstrap on values[:, -1]
    no_boot = gae_advantages(r, v, f)
    assert np.all(no_boot[:, -1] == 0)
    ref = _manual_gae(r[:, :-1], v[:, :-1], f[:, :-1], v[:, -1], f[:, -1], 0.999, 0.95)
    np.testing.assert_allclose(no_boot[:, :-1], ref, rtol=1e-4, atol=1e-5)


def test_episode_ids():
    f = np.array([[True, False, True, False], [False, False, False, True]])
    assert episode_ids(f).tolist() == [[0, 0, 1, 1], [2, 2, 2, 3]]


def test_advantage_bookmarks_one_per_episode():
    adv = np.array([[0.5, 0.9, 0.1, -0.2, -0.8, 0.3], [0.2, 0.0, -0.1, 0.7, 0.6, -0.9]])
    f = np.array([[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], bool)
    high = advantage_bookmarks(adv, f, k=10, sign="high")
    assert [(b.env, b.step) for b in high] == [(0, 1), (1, 3), (0, 5)]
    assert len({b.episode for b in high}) == len(high)
    low = advantage_bookmarks(adv, f, k=1, sign="low")
    assert [(b.env, b.step, b.score) for b in low] == [(1, 5, -0.9)]
    with pytest.raises(ValueError, match="high"):
        advantage_bookmarks(adv, f, sign="up")


def test_value_spikes_find_hallucinations():
    v = np.full((2, 12), 0.9)
    v[0, 5] = 0.98  # coin hallucination: one-frame spike up
    v[1, 7] = 0.4  # saw hallucination: one-frame dip
    v[1, 10:] = 0.2  # a real drop that stays: a jump, not a spike
    f = np.zeros((2, 12), bool)
    f[0, 6] = True  # ...but episode boundaries are not spikes
    spikes = value_spikes(v, f, k=5)
    assert [(b.env, b.step) for b in spikes] == [(1, 7)]
    f[0, 6] = False
    spikes = value_spikes(v, f, k=5)
    assert [(b.env, b.step, round(b.score, 2)) for b in spikes] == [(1, 7, -0.5), (0, 5, 0.08)]
    ups = value_spikes(v, f, direction="up")
    assert [(b.env, b.step) for b in ups] == [(0, 5)]
    jumps = value_spikes(v, f, kind="jump", one_per_episode=False, k=10)
    assert (1, 10) in [(b.env, b.step) for b in jumps]
    assert value_spikes(v, f, min_size=0.6) == []


def test_failed_episodes_from_trajectory_table():
    from rlvision_widgets.rollouts import EPISODE_DTYPE

    rows = [
        (0, 0, 50, 50, 11, True, True, "success"),
        (0, 50, 80, 30, 12, True, False, "saw"),
        (1, 0, 5, 5, 13, True, False, "enemy_left"),
        (1, 5, 64, 59, 14, False, False, "unfinished"),
    ]
    eps = np.array(rows, dtype=EPISODE_DTYPE)
    failed = failed_episodes(eps, before=16)
    assert [(f.env, f.cause, f.level_seed) for f in failed] == [
        (0, "saw", 12),
        (1, "enemy_left", 13),
    ]
    assert failed[0].frames.tolist() == list(range(64, 80))
    assert failed[1].frames.tolist() == list(range(0, 5))  # short episode: all frames
    assert [f.cause for f in failed_episodes(eps, causes=["saw"])] == ["saw"]
    as_dict = {k: eps[k] for k in eps.dtype.names}
    assert len(failed_episodes(as_dict)) == 2
    with pytest.raises(ValueError, match="missing"):
        failed_episodes([{"env": 0, "start": 0}])
