"""Shared fixtures: small CoinRun engine states for the environment and trajectory tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*Gym has been unmaintained.*")


@pytest.fixture(scope="session")
def saw_level_state() -> bytes:
    """Level-start state (hard mode) of the first level, over rand_seeds 0.., holding a saw."""
    from rlvision_widgets.environment import CoinRunEnv, EnvOptions, parse_state

    for seed in range(50):
        env = CoinRunEnv(EnvOptions(num_envs=4, rand_seed=seed, distribution_mode="hard"))
        for state in env.get_state():
            if len(parse_state(state).saws):
                env.close()
                return state
        env.close()
    pytest.fail("no level with a saw in 200 levels")


@pytest.fixture(scope="session")
def saw_in_view_files(tmp_path_factory) -> tuple[Path, Path]:
    """Two engine states as files, for child processes: the first state (hard mode, rand_seed
    3, 8 envs holding "right") with a saw in view after at least 3 steps of its level, and
    another env's state at that moment."""
    from rlvision_widgets.environment import CoinRunEnv, parse_state
    from rlvision_widgets.environment.render import object_boxes

    env = CoinRunEnv(num_envs=8, rand_seed=3, distribution_mode="hard")
    try:
        for _ in range(300):
            states = env.get_state()
            for i, s in enumerate(states):
                if len(object_boxes(s, 512).boxes["saw"]) and parse_state(s).cur_time > 3:
                    folder = tmp_path_factory.mktemp("saw_in_view")
                    saw, other = folder / "saw.state", folder / "other.state"
                    saw.write_bytes(s)
                    other.write_bytes(states[(i + 1) % len(states)])
                    return saw, other
            env.step(np.full(8, 8))
    finally:
        env.close()
    pytest.fail("no saw in view in 300 steps of 8 envs (hard mode, rand_seed 3)")


@pytest.fixture()
def play():
    """``play(state, actions, **tracker_kwargs)``: run ``actions`` (an int = hold it) in a 1-env
    CoinRunEnv restored to ``state`` with a CauseTracker; stops at the first episode end and
    returns (env, tracker, steps_taken)."""
    from rlvision_widgets.environment import CauseTracker, CoinRunEnv, EnvOptions

    envs = []

    def _play(state: bytes, actions, max_steps: int = 200, options=None, **kw):
        env = CoinRunEnv(options or EnvOptions(num_envs=1, rand_seed=0))
        envs.append(env)
        env.set_state_of(0, state)
        tracker = CauseTracker(env, **kw)
        seq = [actions] * max_steps if isinstance(actions, (int, np.integer)) else list(actions)
        for t, a in enumerate(seq):
            _, _, first = env.step(np.array([a]))
            if first[0]:
                return env, tracker, t + 1
        return env, tracker, len(seq)

    yield _play
    for env in envs:
        env.close()
