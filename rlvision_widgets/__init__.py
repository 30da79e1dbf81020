"""rlvision_widgets: live Jupyter widgets for understanding vision-based RL agents.

Reproduces and extends *Understanding RL Vision* (Hilton et al., 2020) on Procgen CoinRun, live
in the notebook on a CPU. Data flows one way, each layer importing only from those above it
in this list:

Package map
-----------
files           atomic writes, strict JSON, npz array pairs, hashes (the base of every layer)
engines         the engine option of the large jobs: local or Ray, the same results
environment     CoinRun options and vectorized env; the action table; engine state, failure
                causes, invisible saws, object masks, full-resolution frames
agents          networks ("article", "compact"), checkpoints, the sampler, editing, ``load_agent``
rollouts        ``collect_trajectories`` -> ``Trajectories``; ``evaluate``; the corpus; GAE;
                the statistics evaluation reports
training        PPO trainer (``rlvision train``) and packaging of a shipped agent
analysis        integrated gradients, attribution NMF, feature visualization, display maths,
                bookmarks, feature identification, caching
studies         blindness experiments (model editing), failure dissection, reports, charts,
                the diversity sweep
widgets         anywidget components and the composed ``Explorer``
cli             ``rlvision train | evaluate | export | sweep | explore``

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

from . import _compat

__version__ = "0.1.0"

_LAZY = {
    "load_agent": ("rlvision_widgets.agents.registry", "load_agent"),
    "build_network": ("rlvision_widgets.agents.networks", "build_network"),
    "EditedAgent": ("rlvision_widgets.agents.editing", "EditedAgent"),
    "Edit": ("rlvision_widgets.agents.editing", "Edit"),
    "apply_edit": ("rlvision_widgets.agents.editing", "apply_edit"),
    "EnvOptions": ("rlvision_widgets.environment.coinrun", "EnvOptions"),
    "CoinRunEnv": ("rlvision_widgets.environment.coinrun", "CoinRunEnv"),
    "collect_trajectories": ("rlvision_widgets.rollouts", "collect_trajectories"),
    "Trajectories": ("rlvision_widgets.rollouts", "Trajectories"),
    "train": ("rlvision_widgets.training", "train"),
    "PPOConfig": ("rlvision_widgets.training", "PPOConfig"),
    "evaluate": ("rlvision_widgets.rollouts.evaluate", "evaluate"),
    "analyze": ("rlvision_widgets.analysis.pipeline", "analyze"),
    "Analysis": ("rlvision_widgets.analysis.pipeline", "Analysis"),
    "Explorer": ("rlvision_widgets.widgets", "Explorer"),
    "explore": ("rlvision_widgets.widgets", "explore"),
}
_SUBPACKAGES = {
    "environment",
    "agents",
    "rollouts",
    "training",
    "analysis",
    "studies",
    "widgets",
    "cli",
    "files",
    "engines",
}

_compat.install()

__all__ = sorted(_LAZY) + sorted(_SUBPACKAGES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES or name in _compat.MOVED_MODULES:
        return importlib.import_module(f"rlvision_widgets.{name}")
    raise AttributeError(f"module 'rlvision_widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
