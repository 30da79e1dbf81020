"""Load agents by name or path, offline.

>>> agent = load_agent("coinrun")        # the shipped reference agent (compact network)
>>> agent = load_agent("random")         # uniform random policy
>>> agent = load_agent("runs/my-run")    # any checkpoint or training run folder  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import CheckpointError, load_checkpoint
from .editing import apply_recorded_edits
from .random_agent import RandomAgent

REFERENCE_DIR = Path(__file__).parent / "reference"


def reference_agents() -> dict[str, Path]:
    """Shipped reference agents: name -> checkpoint folder."""
    if not REFERENCE_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(REFERENCE_DIR.iterdir())
        if (p / "config.json").is_file() and (p / "model.safetensors").is_file()
    }


def agent_names() -> list[str]:
    """Every name :func:`load_agent` accepts besides a path.

    >>> agent_names()
    ['random', 'coinrun']
    """
    return ["random", *reference_agents()]


def load_agent(name_or_path: str | os.PathLike = "coinrun") -> nn.Module:
    """A shipped agent by name ("coinrun", "random", ...) or a checkpoint / run folder.

    The returned module is in eval mode and maps uint8 (N, 64, 64, 3) observations to
    (policy logits (N, 15), value (N,)). Checkpoint agents carry their JSON config in
    ``agent.checkpoint_config``.

    >>> import torch
    >>> agent = load_agent("coinrun")                   # shipped, offline
    >>> logits, value = agent(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    >>> tuple(logits.shape), agent.checkpoint_config["network"]["name"]
    ((1, 15), 'compact')
    >>> load_agent("random")
    RandomAgent(uniform over 15 actions)
    >>> agent = load_agent("runs/my-run")               # doctest: +SKIP
    """
    key = str(name_or_path)
    if key == "random":
        return RandomAgent()
    refs = reference_agents()
    if key in refs:
        path = refs[key]
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ValueError(
                f"unknown agent {key!r}: not a shipped agent {agent_names()} "
                "and no such checkpoint path"
            )
    model, config = load_checkpoint(path)
    model.checkpoint_config = config
    if config.get("edits"):
        model = apply_recorded_edits(model, config)
        model.checkpoint_config = config
    return model


def resolve_agent(agent: nn.Module | str | os.PathLike | None = None) -> nn.Module:
    """The one agent resolver: a module as it is, a name or path through :func:`load_agent`,
    ``None`` as the shipped reference agent ``"coinrun"``. An unknown name or a broken file is
    an error, never a stand-in network.

    >>> resolve_agent("random")
    RandomAgent(uniform over 15 actions)
    >>> from rlvision_widgets.agents import build_network
    >>> net = build_network("compact")
    >>> resolve_agent(net) is net
    True
    >>> type(resolve_agent()).__name__           # the shipped reference agent
    'ConvAgent'
    """
    if isinstance(agent, nn.Module):
        return agent
    if agent is None:
        return load_agent("coinrun")
    if isinstance(agent, (str, os.PathLike)):
        return load_agent(agent)
    raise TypeError(
        f"agent must be a torch.nn.Module, a shipped agent's name {agent_names()} "
        f"or a checkpoint path, got {type(agent).__name__}"
    )


def model_card(name: str = "coinrun") -> dict[str, Any]:
    """The JSON model card of a shipped agent (steps, wall time, success rates, network)."""
    refs = reference_agents()
    if name not in refs:
        raise ValueError(f"no shipped agent {name!r}; shipped: {sorted(refs)}")
    card = refs[name] / "model_card.json"
    if not card.is_file():
        raise CheckpointError(f"{refs[name]} has no model_card.json")
    return json.loads(card.read_text())
