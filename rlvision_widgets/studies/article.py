"""The article's blindness table: its rows (the experimental conditions), its columns (failure
causes, from :mod:`rlvision_widgets.environment.causes`) and its published figures.

The article's columns (footnotes 7-8) are buzzsaw / enemy moving left / enemy moving right /
multiple or other; our "other" gathers every remaining failure cause (lava, multiple,
timeout).

>>> TABLE_CAUSES, OTHER_CAUSES
(('saw', 'enemy_left', 'enemy_right', 'other'), ('lava', 'multiple', 'timeout'))
>>> TABLE_HEADERS["enemy_left"], TABLE_HEADERS["other"]
('enemy moving left', 'multiple or other')
"""

from __future__ import annotations

from ..analysis.labels import LABELS
from ..environment.causes import FAILURE_CAUSES
from ..rollouts.evaluate import EvaluationResult

__all__ = [
    "ARTICLE_LEVELS",
    "ARTICLE_TABLE",
    "CONDITIONS",
    "CONDITION_TITLES",
    "EDIT_TARGETS",
    "OTHER_CAUSES",
    "TABLE_CAUSES",
    "TABLE_HEADERS",
    "table_counts",
]

#: Failure causes with a column of their own, in the article's order.
_OWN_COLUMNS = ("saw", "enemy_left", "enemy_right")
#: Failure causes counted together as "multiple or other".
OTHER_CAUSES: tuple[str, ...] = tuple(c for c in FAILURE_CAUSES if c not in _OWN_COLUMNS)
#: The article's columns.
TABLE_CAUSES: tuple[str, ...] = (*_OWN_COLUMNS, "other")
#: Column headers: the causes' display labels, and the article's name for "other".
TABLE_HEADERS: dict[str, str] = {
    **{c: LABELS[c] for c in _OWN_COLUMNS},
    "other": "multiple or other",
}
#: Experimental conditions, in table order.
CONDITIONS = (
    "original",
    "saw_blind",
    "saw_blind_all",
    "left_enemy_blind",
    "invisible_saws",
    "control",
)
CONDITION_TITLES = {
    "original": "Original model",
    "saw_blind": "Buzzsaw blindness",
    "saw_blind_all": "Buzzsaw blindness, every saw feature",
    "left_enemy_blind": "Enemy moving left blindness",
    "invisible_saws": "Original model, invisible buzzsaws",
    "control": "Control edit (non-hazard feature)",
}
#: Which object class each edit blinds, and which cause it should raise.
EDIT_TARGETS = {"saw_blind": "saw", "saw_blind_all": "saw", "left_enemy_blind": "enemy_left"}
#: The article's results, % of 10,000 levels failed by cause (footnotes 7 and 8).
ARTICLE_TABLE = {
    "original": {"saw": 0.37, "enemy_left": 0.16, "enemy_right": 0.12, "other": 0.08},
    "saw_blind": {"saw": 12.76, "enemy_left": 0.16, "enemy_right": 0.08, "other": 0.05},
    "left_enemy_blind": {"saw": 0.36, "enemy_left": 4.69, "enemy_right": 0.97, "other": 0.07},
    "invisible_saws": {"saw": 32.20, "enemy_left": 0.05, "enemy_right": 0.05, "other": 0.05},
}
ARTICLE_LEVELS = 10_000


def table_counts(result: EvaluationResult) -> dict[str, int]:
    """Failures in the article's four categories (other = lava + multiple + timeout).

    >>> import numpy as np
    >>> r = EvaluationResult(np.arange(4), ["saw", "lava", "success", "timeout"], np.ones(4))
    >>> table_counts(r)
    {'saw': 1, 'enemy_left': 0, 'enemy_right': 0, 'other': 2}
    """
    f = result.failures
    return {**{c: f[c] for c in _OWN_COLUMNS}, "other": sum(f[c] for c in OTHER_CAUSES)}
