"""Trajectory collection, determinism, re-rendering and one-file storage."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from rlvision_widgets.agents.random_agent import RandomAgent
from rlvision_widgets.environment import EnvOptions
from rlvision_widgets.rollouts import Trajectories, TrajectoryFileError, collect_trajectories

ARRAYS = (
    "obs",
    "actions",
    "logits",
    "values",
    "rewards",
    "firsts",
    "level_seeds",
    "advantages",
    "returns",
    "last_values",
    "last_firsts",
)


@pytest.fixture(scope="module")
def traj() -> Trajectories:
    # hard mode, 6 envs x 400 steps: long enough for finished episodes (success and failure)
    return collect_trajectories(
        "random",
        num_envs=6,
        num_steps=400,
        seed=4,
        progress=False,
        env_options=EnvOptions(distribution_mode="hard"),
    )


@pytest.fixture(scope="module")
def small() -> Trajectories:
    return collect_trajectories("random", num_envs=2, num_steps=48, seed=7, progress=False)


def test_random_agent_is_uniform():
    logits, value = RandomAgent()(torch.zeros(5, 64, 64, 3, dtype=torch.uint8))
    assert logits.shape == (5, 15) and value.shape == (5,)
    assert not logits.any() and not value.any()
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        RandomAgent()(torch.zeros(64, 64, 3, dtype=torch.uint8))


def test_collected_arrays_and_episodes_are_consistent(traj):
    E, T = 6, 400
    assert traj.obs.shape == (E, T, 64, 64, 3) and traj.obs.dtype == np.uint8
    assert traj.logits.shape == (E, T, 15) and traj.actions.max() < 15
    assert traj.firsts[:, 0].all()
    ep = traj.episodes
    assert len(traj.start_states) == len(ep)
    for e in range(E):
        rows = ep[ep["env"] == e]
        assert rows["start"][0] == 0 and rows["stop"][-1] == T
        assert (rows["start"][1:] == rows["stop"][:-1]).all()  # contiguous cover
        assert np.array_equal(np.flatnonzero(traj.firsts[e]), rows["start"])
        for r in rows:
            assert (traj.level_seeds[e, r["start"] : r["stop"]] == r["level_seed"]).all()
            if r["finished"]:
                assert (traj.rewards[e, r["stop"] - 1] > 0) == r["success"]
            else:
                assert r["cause"] == "unfinished" and r["stop"] == T
    finished = ep[ep["finished"]]
    assert len(finished) >= 3 and finished["success"].any() and not finished["success"].all()
    assert set(finished["cause"]) <= {
        "success",
        "saw",
        "enemy_left",
        "enemy_right",
        "lava",
        "multiple",
        "timeout",
    }
    assert (finished["cause"] == "success").sum() == finished["success"].sum()
    assert len(traj.failed_episodes()) == int((~finished["success"]).sum())
    adv_ret = traj.returns - traj.advantages
    assert np.allclose(adv_ret, traj.values)


def test_same_seed_same_trajectories(small):
    a = small
    b = collect_trajectories(RandomAgent(), num_envs=2, num_steps=48, seed=7, progress=False)
    c = collect_trajectories("random", num_envs=2, num_steps=48, seed=8, progress=False)
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.episodes, b.episodes) and a.start_states == b.start_states
    assert not np.array_equal(a.actions, c.actions)


def test_rerender_by_replay_matches_recorded_observations(traj):
    rng = np.random.default_rng(0)
    picks = [(int(e), int(t)) for e, t in zip(rng.integers(0, 6, 6), rng.integers(0, 400, 6))]
    picks += [(0, 5), (0, 6), (0, 30)]  # sequential: continues the replay
    for e, t in picks:
        small, full = traj.renderer.frames(traj.state_at(e, t))
        assert np.array_equal(small, traj.obs[e, t]), (e, t)
        assert full.shape == (512, 512, 3)
    assert traj.render_full(1, 10).shape == (512, 512, 3)
    st = traj.game_state_at(0, 0)
    assert st.cur_time == 0 and st.level_seed == traj.level_seeds[0, 0]
    ann = traj.objects_at(2, 50)
    assert ann[64].masks["agent"].any() and len(ann[512].boxes["agent"]) == 1
    with pytest.raises(IndexError, match="step 400 out of range"):
        traj.state_at(0, 400)


def test_save_load_round_trip(traj, tmp_path):
    path = traj.save(tmp_path / "traj.npz")
    again = Trajectories.load(path)
    for name in ARRAYS:
        assert np.array_equal(getattr(traj, name), getattr(again, name)), name
        assert getattr(traj, name).dtype == getattr(again, name).dtype
    assert np.array_equal(traj.episodes, again.episodes)
    assert traj.start_states == again.start_states
    assert again.metadata["env_options"]["distribution_mode"] == "hard"
    assert np.array_equal(again.render_full(3, 100), traj.render_full(3, 100))
    with zipfile.ZipFile(path) as z:  # one archive, plain arrays
        assert all(n.endswith(".npy") for n in z.namelist())


def test_bad_trajectory_files_give_clear_errors(small, tmp_path):
    with pytest.raises(FileNotFoundError, match="no trajectory file at"):
        Trajectories.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(TrajectoryFileError, match="cannot read it as a .npz archive"):
        Trajectories.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(TrajectoryFileError, match="no 'metadata' entry"):
        Trajectories.load(other)
    good = small.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TrajectoryFileError, match="not a valid trajectory file"):
        Trajectories.load(truncated)
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    bad_state = dict(arrays)
    data = arrays["states_data"].copy()
    data[arrays["states_offsets"][1] - 1] ^= 0xFF  # break episode 0's trailer
    bad_state["states_data"] = data
    np.savez_compressed(tmp_path / "bad_state.npz", **bad_state)
    with pytest.raises(
        TrajectoryFileError,
        match=r"level-start state of episode 0 \(env 0, steps 0-\d+\) is corrupted",
    ):
        Trajectories.load(tmp_path / "bad_state.npz")
    wrong = dict(arrays)
    wrong["metadata"] = np.array([json.dumps({"format": "something-else"})])
    np.savez_compressed(tmp_path / "wrong.npz", **wrong)
    with pytest.raises(TrajectoryFileError, match="expected 'rlvision_widgets.trajectories'"):
        Trajectories.load(tmp_path / "wrong.npz")
    shapes = dict(arrays)
    shapes["actions"] = arrays["actions"][:, :-1]
    np.savez_compressed(tmp_path / "shapes.npz", **shapes)
    with pytest.raises(TrajectoryFileError, match="actions has shape"):
        Trajectories.load(tmp_path / "shapes.npz")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown agent 'nobody'"):
        collect_trajectories("nobody", num_envs=1, num_steps=1, progress=False)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        collect_trajectories("random", num_envs=1, num_steps=0, progress=False)


def test_episode_causes_are_the_cause_list_plus_unfinished():
    # stored files index this tuple: its order is the trajectory file format
    from rlvision_widgets.rollouts.storage import EPISODE_CAUSES

    assert EPISODE_CAUSES == (
        "success",
        "saw",
        "enemy_left",
        "enemy_right",
        "lava",
        "multiple",
        "timeout",
        "unknown",
        "unfinished",
    )
