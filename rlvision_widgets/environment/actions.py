"""CoinRun's action table, the one definition: names, glyphs, groups and count.

procgen's 15 actions (``procgen.env.ProcgenGym3Env.get_combos``). In CoinRun procgen's button
actions D, A, W, S, Q and E do nothing, like NOOP; the group ``"noop"`` holds every action that
neither moves sideways nor jumps.

>>> NUM_ACTIONS, ACTION_NAMES[7], ACTION_GLYPHS[7]
(15, 'RIGHT', '→')
>>> [ACTION_NAMES[a] for a in ACTION_GROUPS["right"]]
['RIGHT+DOWN', 'RIGHT', 'RIGHT+UP']
>>> action_index("right+up"), action_index(4)
(8, 4)
"""

from __future__ import annotations

__all__ = [
    "ACTION_GLYPHS",
    "ACTION_GROUPS",
    "ACTION_NAMES",
    "NOOP_BUTTONS",
    "NUM_ACTIONS",
    "action_index",
]

# fmt: off
ACTION_NAMES: tuple[str, ...] = (
    "LEFT+DOWN", "LEFT", "LEFT+UP", "DOWN", "NOOP", "UP", "RIGHT+DOWN", "RIGHT", "RIGHT+UP",
    "D", "A", "W", "S", "Q", "E",
)
NUM_ACTIONS: int = len(ACTION_NAMES)
ACTION_GLYPHS: tuple[str, ...] = (
    "↙", "←", "↖", "↓", "·", "↑", "↘", "→", "↗", "D", "A", "W", "S", "Q", "E",
)
# fmt: on
ACTION_GROUPS: dict[str, tuple[int, ...]] = {
    "left": (0, 1, 2),
    "right": (6, 7, 8),
    "up": (2, 5, 8),
    "down": (0, 3, 6),
    "noop": (3, 4, 9, 10, 11, 12, 13, 14),
}
#: procgen's button actions, which do nothing in CoinRun
NOOP_BUTTONS: tuple[int, ...] = (9, 10, 11, 12, 13, 14)


def action_index(action: int | str) -> int:
    """An action's index from its index or its name (any case).

    >>> action_index("JUMP")
    Traceback (most recent call last):
    ValueError: unknown action 'JUMP': use an index 0-14 or one of LEFT+DOWN, LEFT, LEFT+UP, DOWN, NOOP, UP, RIGHT+DOWN, RIGHT, RIGHT+UP, D, A, W, S, Q, E
    """
    if isinstance(action, str):
        name = action.strip().upper()
        if name in ACTION_NAMES:
            return ACTION_NAMES.index(name)
        if name.isdigit():
            action = int(name)
        else:
            raise ValueError(
                f"unknown action {action!r}: use an index 0-{NUM_ACTIONS - 1} or one "
                f"of {', '.join(ACTION_NAMES)}"
            )
    if isinstance(action, bool) or not 0 <= int(action) < NUM_ACTIONS:
        raise ValueError(f"action index {action!r} is out of range 0-{NUM_ACTIONS - 1}")
    return int(action)
