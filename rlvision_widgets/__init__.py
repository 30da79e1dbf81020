"""rlvision_widgets: live Jupyter widgets for understanding vision-based RL agents.

Reproduces and extends *Understanding RL Vision* (Hilton et al., 2020) on Procgen CoinRun, live
in the notebook on a CPU. Data flows one way: environment -> agents -> trajectories ->
analysis -> widgets.

Package map
-----------
environment     CoinRun options and vectorized env; engine state, failure causes, invisible
                saws, object masks, full-resolution frames
agents          networks ("article", "compact"), checkpoints, editing, ``load_agent``
training        PPO trainer (``rlvision train``)
trajectories    ``collect_trajectories`` -> ``Trajectories`` (save/load, re-render frames)
analysis        integrated gradients, attribution NMF, feature visualization, display maths,
                bookmarks, caching, evaluation by failure cause
widgets         anywidget components and the composed ``Explorer``
cli             ``rlvision train | evaluate | export | explore``

Quick start
-----------
>>> import rlvision_widgets as rv
>>> agent = rv.load_agent("coinrun")                      # shipped reference agent, offline
>>> traj = rv.collect_trajectories(agent, num_envs=2, num_steps=64, seed=0)  # doctest: +SKIP
>>> rv.explore()                                          # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_agent": ("rlvision_widgets.agents.registry", "load_agent"),
    "build_network": ("rlvision_widgets.agents.networks", "build_network"),
    "EditedAgent": ("rlvision_widgets.agents.editing", "EditedAgent"),
    "EnvOptions": ("rlvision_widgets.environment.coinrun", "EnvOptions"),
    "CoinRunEnv": ("rlvision_widgets.environment.coinrun", "CoinRunEnv"),
    "collect_trajectories": ("rlvision_widgets.trajectories", "collect_trajectories"),
    "Trajectories": ("rlvision_widgets.trajectories", "Trajectories"),
    "train": ("rlvision_widgets.training", "train"),
    "PPOConfig": ("rlvision_widgets.training", "PPOConfig"),
    "evaluate": ("rlvision_widgets.analysis.evaluation", "evaluate"),
    "Explorer": ("rlvision_widgets.widgets", "Explorer"),
    "explore": ("rlvision_widgets.widgets", "explore"),
}
_SUBPACKAGES = {"environment", "agents", "training", "trajectories", "analysis", "widgets", "cli"}

__all__ = sorted(_LAZY) + sorted(_SUBPACKAGES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"rlvision_widgets.{name}")
    raise AttributeError(f"module 'rlvision_widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
