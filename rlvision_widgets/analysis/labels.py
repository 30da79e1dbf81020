"""Readable names of object classes and episode outcomes: the one display-label table.

The names themselves come from the environment (:data:`~rlvision_widgets.environment.render.
OBJECT_CLASSES`, :data:`~rlvision_widgets.environment.causes.CAUSES`); this module only says
how to show them (the article's wording) and which failure causes are objects in view
(:data:`HAZARD_CLASSES`).

>>> label("enemy_left"), label("multiple"), CAUSE_LABELS["saw"]
('enemy moving left', 'several hazards', 'buzzsaw')
>>> HAZARD_CLASSES
('saw', 'enemy_left', 'enemy_right', 'lava')
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..environment.causes import CAUSES, FAILURE_CAUSES
from ..environment.render import OBJECT_CLASSES

__all__ = ["CAUSE_LABELS", "CLASS_LABELS", "HAZARD_CLASSES", "LABELS", "label"]

#: Every object class and episode outcome -> how to show it (the article's wording).
LABELS: Mapping[str, str] = MappingProxyType(
    {
        "agent": "agent",
        "saw": "buzzsaw",
        "enemy_left": "enemy moving left",
        "enemy_right": "enemy moving right",
        "crate": "crate",
        "coin": "coin",
        "lava": "lava",
        "wall": "wall",
        "velocity": "velocity info",
        "success": "success",
        "multiple": "several hazards",
        "timeout": "timeout",
        "unknown": "unknown",
    }
)
#: Readable names of the object classes (:data:`OBJECT_CLASSES`), in their order.
CLASS_LABELS: dict[str, str] = {c: LABELS[c] for c in OBJECT_CLASSES}
#: Readable names of the episode outcomes (:data:`CAUSES`), in their order.
CAUSE_LABELS: dict[str, str] = {c: LABELS[c] for c in CAUSES}
#: Failure causes that are object classes: the hazards an agent can see (or be blind to).
HAZARD_CLASSES: tuple[str, ...] = tuple(c for c in FAILURE_CAUSES if c in OBJECT_CLASSES)


def label(name: str) -> str:
    """How to show an object class or an outcome (the name itself if it has no label).

    >>> label("saw"), label("velocity"), label("unfinished")
    ('buzzsaw', 'velocity info', 'unfinished')
    """
    return LABELS.get(name, name)
