"""TrajectoryViewer widget (``js/trajectory_viewer.ts``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import RLVisionWidget, TrajectoryDataMixin
from ._traits import (
    AttributionTraits,
    DisplayTraits,
    EditedTraits,
    FeatureTraits,
    NavTraits,
    OutputTraits,
    StatusTraits,
    TrajectoryTraits,
)


class TrajectoryViewer(
    TrajectoryDataMixin,
    TrajectoryTraits,
    OutputTraits,
    AttributionTraits,
    FeatureTraits,
    DisplayTraits,
    EditedTraits,
    StatusTraits,
    NavTraits,
    RLVisionWidget,
):
    """Observation with positive / negative attribution overlays, policy bar, video controls
    (←/→/space inside JupyterLab) and a timeline of value, advantage and the selected output.

    Works on plain arrays; the :class:`Explorer` feeds it from the analysis engines.

    >>> import numpy as np
    >>> obs = np.zeros((2, 16, 64, 64, 3), np.uint8)            # 2 trajectories x 16 steps
    >>> viewer = TrajectoryViewer(obs, values=np.zeros((2, 16)),
    ...                           features=np.zeros((2, 16, 16, 16, 4), np.float32))
    >>> viewer.frame = 5                                         # moves the view
    >>> viewer.n_features
    4
    """

    _component = "trajectory_viewer"

    def __init__(
        self,
        obs: Any = None,
        *,
        values: Any = None,
        advantages: Any = None,
        rewards: Any = None,
        actions: Any = None,
        firsts: Any = None,
        logits: Any = None,
        features: Any = None,
        residual: Any = None,
        labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if obs is not None:
            self.set_trajectories(obs, values, advantages, rewards, actions, firsts, logits, labels)
        if features is not None:
            self.set_attribution(features, residual)
