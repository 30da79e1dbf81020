"""The frame-level blindness check: editing an object out against hiding it."""

import numpy as np
import pytest

from rlvision_widgets.agents.editing import Edit
from rlvision_widgets.rollouts import collect_trajectories
from rlvision_widgets.studies.blindness import blind_agent
from rlvision_widgets.studies.removal import removal_effects


def test_removal_effects_compare_hiding_with_editing(random_net):
    traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=0, progress=False)
    same = removal_effects(random_net, random_net, traj, "wall", max_frames=12)
    assert same["frames"] == 12 and same["value_edit"] == 0 and same["policy_kl_edit"] == 0
    assert same["value_blindness"] == 0 and same["value_hidden"] != 0
    edited = blind_agent(random_net, np.ones(32), "2b")
    eff = removal_effects(random_net, edited, traj, "wall", max_frames=12)
    assert eff["value_edit"] != 0 and eff["policy_kl_edit"] > 0
    assert eff["value_blindness"] == pytest.approx(eff["value_edit"] / eff["value_hidden"])
    # an Edit value is applied to a copy of the agent by the one editing function
    as_value = removal_effects(random_net, Edit("2b", np.ones(32)), traj, "wall", max_frames=12)
    assert as_value == eff
    traj.close()
