"""Trajectory files are untrusted: crafted engine states and actions are refused at load, with
an error naming the episode, the field, the value and the valid range, before any engine call.

The engine calls run in a child process: a crafted state that slipped through would abort it.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from children import run_child

from rlvision_widgets.agents.sampling import sample_actions, sample_with_log_probs
from rlvision_widgets.environment import EnvOptions, parse_state
from rlvision_widgets.environment.state import ENTITY_DTYPE, EntityType
from rlvision_widgets.rollouts import Trajectories, TrajectoryFileError, collect_trajectories

CHILD = r"""
import sys, warnings
warnings.filterwarnings("ignore")
from rlvision_widgets.rollouts import Trajectories, TrajectoryFileError
for path in sys.argv[1:]:
    try:
        traj = Trajectories.load(path)
    except TrajectoryFileError as e:
        print("refused", path, flush=True)
        continue
    for env in range(traj.num_envs):
        for step in (0, traj.num_steps // 2, traj.num_steps - 1):
            traj.render_full(env, step)                 # replay + 512x512 re-render
    print("rendered", path, flush=True)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    traj = collect_trajectories(
        "random",
        num_envs=2,
        num_steps=40,
        seed=3,
        progress=False,
        env_options=EnvOptions(distribution_mode="hard"),
    )
    path = traj.save(tmp_path_factory.mktemp("traj") / "good.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays


def craft(arrays: dict, tmp_path: Path, name: str, episode: int, edit) -> Path:
    """Write a copy whose episode's start state went through ``edit(bytearray, GameState)``."""
    out = dict(arrays)
    data, offsets = arrays["states_data"].copy(), arrays["states_offsets"]
    lo, hi = int(offsets[episode]), int(offsets[episode + 1])
    state = bytearray(data[lo:hi].tobytes())
    edit(state, parse_state(bytes(state)))
    if len(state) == hi - lo:
        data[lo:hi] = np.frombuffer(bytes(state), np.uint8)
    out["states_data"] = data
    path = tmp_path / f"{name}.npz"
    np.savez_compressed(path, **out)
    return path


def entity_field(st, etype: int, field: str) -> int:
    k = int(np.flatnonzero(st.entities["type"] == etype)[0])
    return st.layout.entities + 124 * k + ENTITY_DTYPE.fields[field][1]


EDITS = {  # name: (edit, message pattern)
    "tile 0x7fffffff": (
        lambda b, st: struct.pack_into("<i", b, st.layout.grid + 4 * (64 + 3), 0x7FFFFFFF),
        r"grid tile at \(x=3, y=1\) is 2147483647, valid: one of 1 \(GOAL\)",
    ),
    "huge image_type": (
        lambda b, st: struct.pack_into("<i", b, entity_field(st, 0, "image_type"), 10**6),
        r"entity 0 \(type 0\) image_type is 1000000, valid: 0..63",
    ),
    "player theme": (
        lambda b, st: struct.pack_into("<i", b, entity_field(st, 0, "image_theme"), 7),
        r"image_theme is 7, valid: 0..4 for image_type 0",
    ),
    "entity count": (
        lambda b, st: struct.pack_into("<i", b, st.layout.num_entities, 10**6),
        r"entity count 1000000 does not fit",
    ),
    "no player": (
        lambda b, st: struct.pack_into("<i", b, entity_field(st, 0, "type"), int(EntityType.SAW)),
        r"no PLAYER entity|number of PLAYER entities",
    ),
    "nan position": (
        lambda b, st: struct.pack_into("<f", b, entity_field(st, 0, "x"), float("nan")),
        r"entity 0 \(type 0\) x is nan, valid: -64.0..128.0",
    ),
    "background": (
        lambda b, st: struct.pack_into(
            "<i", b, st.layout.entities + 124 * len(st.entities) + 4, 62
        ),
        r"background_index is 62, valid: 0..61",
    ),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_crafted_start_state_is_refused_at_load(saved, tmp_path, name):
    path, arrays = saved
    edit, pattern = EDITS[name]
    episode = len(arrays["ep_env"]) - 1  # the last episode (env 1)
    bad = craft(arrays, tmp_path, name.replace(" ", "_"), episode, edit)
    with pytest.raises(TrajectoryFileError) as err:
        Trajectories.load(bad)
    msg = str(err.value)
    assert f"level-start state of episode {episode} (env 1, steps" in msg, msg
    assert re.search(pattern, msg), msg


def test_out_of_range_actions_are_refused(saved, tmp_path):
    _, arrays = saved
    for value in (-1, 15, 2**31 - 1):
        acts = arrays["actions"].copy()
        acts[1, 5] = value
        path = tmp_path / "actions.npz"
        np.savez_compressed(path, **{**arrays, "actions": acts})
        with pytest.raises(TrajectoryFileError, match=r"actions must be integers in \[0, 15\)"):
            Trajectories.load(path)
    path = tmp_path / "float_actions.npz"
    np.savez_compressed(path, **{**arrays, "actions": arrays["actions"].astype(np.float32)})
    with pytest.raises(TrajectoryFileError, match="actions must be integers"):
        Trajectories.load(path)


def test_crafted_files_never_kill_the_process(saved, tmp_path):
    path, arrays = saved
    files = [str(path)]
    for k, (edit, _) in enumerate(EDITS.values()):
        files.append(str(craft(arrays, tmp_path, f"c{k}", k % len(arrays["ep_env"]), edit)))
    stdout = run_child(CHILD, *files, timeout=300)
    lines = stdout.split("\n")
    assert f"rendered {files[0]}" in lines
    assert all(f"refused {f}" in lines for f in files[1:]), stdout


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_are_refused(bad):
    logits = torch.zeros(3, 15)
    logits[1, 4] = bad
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="NaN"):
        sample_actions(logits, g)
    with pytest.raises(ValueError, match="NaN"):
        sample_with_log_probs(logits, g)
