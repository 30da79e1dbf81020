"""EditPanel widget (``js/edit_panel.ts``)."""

from __future__ import annotations

from typing import Any

from ._base import RLVisionWidget
from ._traits import (
    EditedTraits,
    EditTraits,
    FeatureTraits,
    NavTraits,
    StatusTraits,
    TrajectoryTraits,
)


class EditPanel(
    EditTraits,
    EditedTraits,
    FeatureTraits,
    TrajectoryTraits,
    StatusTraits,
    NavTraits,
    RLVisionWidget,
):
    """Per feature an edit strength slider (0 = original, 1 = direction projected out) and a
    switch-off toggle, and a button that re-runs the edited agent (a ``{"type": "rerun"}``
    message; the :class:`Explorer` answers it). Standalone, observe ``edit_strengths`` /
    ``edit_off`` and handle the message with ``on_msg``.

    >>> panel = EditPanel(n_features=3, feature_labels=["coin", "saw", "enemy"])
    >>> panel.edit_off = [False, True, False]                 # switch the saw feature off
    """

    _component = "edit_panel"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.n_features and not self.edit_strengths:
            self.edit_strengths = [0.0] * self.n_features
            self.edit_off = [False] * self.n_features
