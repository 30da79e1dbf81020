"""Shared fixtures: small CoinRun engine states for the environment and trajectory tests."""

from __future__ import annotations

import warnings

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
