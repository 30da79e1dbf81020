"""Trajectory collection and storage.

>>> from rlvision_widgets.rollouts import collect_trajectories, Trajectories
>>> traj = collect_trajectories("random", num_envs=8, num_steps=512, seed=0)  # doctest: +SKIP
>>> traj.save("traj.npz"); traj = Trajectories.load("traj.npz")              # doctest: +SKIP
"""

from .._compat import moved_names
from .collect import collect_trajectories
from .gae import gae, gae_advantages
from .storage import EPISODE_CAUSES, EPISODE_DTYPE, Trajectories, TrajectoryFileError

__all__ = [
    "EPISODE_CAUSES",
    "EPISODE_DTYPE",
    "TrajectoryFileError",
    "Trajectories",
    "collect_trajectories",
    "gae",
    "gae_advantages",
]

__getattr__ = moved_names(__name__, {"resolve_agent": "agents.registry:resolve_agent"})
