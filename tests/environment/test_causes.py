"""Exact failure causes: scripted deaths with known causes, and consistency on random play."""

from __future__ import annotations

import numpy as np
import pytest

from rlvision_widgets.environment import (
    CauseTracker,
    CoinRunEnv,
    EntityType,
    EnvOptions,
    Tile,
    episode_cause,
    parse_state,
)

RIGHT, NOOP = 7, 4


def scenario(state: bytes, kind: str) -> bytes:
    """The level of ``state`` with a hazard placed right of the agent's start (x = 1.5)."""
    ed = parse_state(state).editable()
    saw = int(np.flatnonzero(ed.entities["type"] == EntityType.SAW)[0])
    e = ed.entities
    if kind in ("saw", "multiple"):
        e["x"][saw], e["y"][saw] = 3.5, 1.5
    if kind in ("lava", "multiple"):
        ed.set_tile(3, 1, Tile.LAVA_TOP)
    if kind in ("enemy_left", "enemy_right"):  # turn the saw into a walking enemy
        e["type"][saw], e["image_type"][saw], e["render_z"][saw] = EntityType.ENEMY, 6, 1
        e["smart_step"][saw] = 1
        e["x"][saw], e["y"][saw] = (4.5, 1.5) if kind == "enemy_left" else (2.8, 1.5)
        e["vx"][saw] = -0.15 if kind == "enemy_left" else 0.15
    if kind == "timeout":
        ed.set_timeout(30)
    if kind == "success":
        ed.set_tile(3, 1, Tile.GOAL)
    return ed.to_bytes()


@pytest.mark.parametrize(
    "kind", ["saw", "enemy_left", "enemy_right", "lava", "multiple", "timeout", "success"]
)
def test_scripted_walk_is_labelled_exactly(saw_level_state, play, kind):
    state = scenario(saw_level_state, kind)
    action = NOOP if kind == "timeout" else RIGHT
    for kw in (dict(replay_all=True, verify=True), dict()):  # full replay, and the default
        env, tracker, steps = play(state, action, keep_states=True, **kw)
        assert steps < 40
        [rec] = tracker.records
        assert rec.cause == kind, (kw, rec)
        assert rec.success == (kind == "success") and rec.length == steps and rec.env == 0
        assert rec.level_seed == parse_state(state).level_seed
        assert rec.start_state == state and len(rec.actions) == steps
    if kind == "timeout":
        assert steps == 30 and tracker.stats["snapshots"] == 1  # pre-timeout snapshot
    assert episode_cause(state, [action] * steps) == kind  # standalone replay agrees
    assert episode_cause(state, [action] * (steps - 1)) == "unfinished"


def test_shortcut_and_checkpoints_agree_with_full_replay():
    """Three trackers on one env: default, full replay (verified) and checkpoints."""
    env = CoinRunEnv(EnvOptions(num_envs=12, rand_seed=11, distribution_mode="hard"))
    default = CauseTracker(env)
    full = CauseTracker(env, replay_all=True, verify=True)
    ckpt = CauseTracker(env, checkpoint_every=16)
    rng = np.random.default_rng(0)
    for _ in range(1100):
        env.step(rng.integers(0, 15, 12))
    labels = [
        [(r.env, r.start, r.length, r.cause) for r in t.records] for t in (default, full, ckpt)
    ]
    assert labels[0] == labels[1] == labels[2]
    causes = [c for *_, c in labels[0]]
    assert len(causes) >= 8 and len(set(causes)) >= 3 and "unknown" not in causes
    assert full.stats["replays"] >= default.stats["replays"]
    assert ckpt.stats["replayed_steps"] <= 16 * ckpt.stats["replays"]
    open_eps = default.open_episodes()
    assert len(open_eps) == 12 and all(o.length > 0 for o in open_eps)


def test_episodes_running_at_attach_time_are_not_tracked():
    env = CoinRunEnv(EnvOptions(num_envs=2, rand_seed=0))
    for _ in range(5):
        env.step(np.array([RIGHT, RIGHT]))
    tracker = CauseTracker(env)
    assert tracker.open_episodes() == []
    tracker.detach()
    env.step(np.array([RIGHT, RIGHT]))
    assert tracker.step_count == 0


def test_checkpoint_every_is_validated():
    env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
    with pytest.raises(ValueError, match="checkpoint_every must be None or a positive integer"):
        CauseTracker(env, checkpoint_every=0)
