"""Trajectory collection and storage.

>>> from rlvision_widgets.trajectories import collect_trajectories, Trajectories
>>> traj = collect_trajectories("random", num_envs=8, num_steps=512, seed=0)  # doctest: +SKIP
>>> traj.save("traj.npz"); traj = Trajectories.load("traj.npz")              # doctest: +SKIP
"""
from .collect import collect_trajectories, resolve_agent
from .storage import (EPISODE_CAUSES, EPISODE_DTYPE, TrajectoryFileError, Trajectories,
                      gae_advantages)

__all__ = ["EPISODE_CAUSES", "EPISODE_DTYPE", "TrajectoryFileError", "Trajectories",
           "collect_trajectories", "gae_advantages", "resolve_agent"]
