"""CoinRun environment layer: options, vectorized env, engine state and ground truth.

- :mod:`.actions`: the action table (names, glyphs, groups, count)
- :mod:`.coinrun`: :class:`EnvOptions` (validated), :class:`CoinRunEnv`, :class:`ScratchEnv`
- :mod:`.state`: :func:`parse_state` -> :class:`GameState` (agent, saws, enemies, ...)
- :mod:`.causes`: :class:`CauseTracker`, exact failure cause of every finished episode
- :mod:`.render`: :class:`Renderer`, 512x512 frames, object boxes and masks
"""

from .actions import ACTION_GLYPHS, ACTION_GROUPS, ACTION_NAMES, NUM_ACTIONS, action_index
from .causes import CAUSES, FAILURE_CAUSES, CauseTracker, EpisodeRecord, OpenEpisode, episode_cause
from .coinrun import CoinRunEnv, EnvOptions, ScratchEnv
from .render import OBJECT_CLASSES, ObjectAnnotations, Renderer, object_boxes
from .state import (
    ENTITY_DTYPE,
    EntityType,
    GameState,
    StateError,
    Tile,
    harmless_copy,
    hide_entities,
    parse_state,
)

__all__ = [
    "ACTION_GLYPHS",
    "ACTION_GROUPS",
    "ACTION_NAMES",
    "CAUSES",
    "ENTITY_DTYPE",
    "FAILURE_CAUSES",
    "NUM_ACTIONS",
    "OBJECT_CLASSES",
    "CauseTracker",
    "CoinRunEnv",
    "EntityType",
    "EnvOptions",
    "EpisodeRecord",
    "GameState",
    "OpenEpisode",
    "ObjectAnnotations",
    "Renderer",
    "ScratchEnv",
    "StateError",
    "Tile",
    "action_index",
    "episode_cause",
    "harmless_copy",
    "hide_entities",
    "object_boxes",
    "parse_state",
]
