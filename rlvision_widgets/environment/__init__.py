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
from .counterfactual import (
    Counterfactual,
    CounterfactualError,
    GameObject,
    add_object,
    frame_state,
    hide_object,
    move_object,
    objects,
    remove_object,
    render_state,
    set_agent,
    show_object,
)
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
    "Counterfactual",
    "CounterfactualError",
    "EntityType",
    "EnvOptions",
    "EpisodeRecord",
    "GameObject",
    "GameState",
    "ObjectAnnotations",
    "OpenEpisode",
    "Renderer",
    "ScratchEnv",
    "StateError",
    "Tile",
    "action_index",
    "add_object",
    "episode_cause",
    "frame_state",
    "harmless_copy",
    "hide_entities",
    "hide_object",
    "move_object",
    "object_boxes",
    "objects",
    "parse_state",
    "remove_object",
    "render_state",
    "set_agent",
    "show_object",
]
