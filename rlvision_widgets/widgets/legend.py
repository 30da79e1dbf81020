"""AttributionLegend widget (``js/legend.ts``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _encode as enc
from ._base import RLVisionWidget
from ._traits import AttributionTraits, FeatureTraits, GridTraits, LegendTraits, NavTraits


class LegendMixin(LegendTraits, FeatureTraits):
    """``set_thumbnails`` for widgets with a legend."""

    def set_thumbnails(self, thumbnails: Any) -> None:
        """Dataset-example thumbnails, (K, s, s, 3|4) uint8, one per feature (RGBA alpha shows
        response strength)."""
        th = np.asarray(thumbnails)
        if (
            th.ndim != 4
            or th.shape[1] != th.shape[2]
            or th.shape[-1] not in (3, 4)
            or th.dtype != np.uint8
        ):
            raise ValueError(f"thumbnails must be uint8 (K, s, s, 3|4), got {th.dtype} {th.shape}")
        if th.shape[-1] == 3:
            th = np.concatenate([th, np.full(th.shape[:3] + (1,), 255, np.uint8)], -1)
        k, s = th.shape[0], th.shape[1]
        strip = th.transpose(1, 0, 2, 3).reshape(s, k * s, 4)  # side by side
        with self.hold_sync():
            self.thumbnail_size = int(s)
            self.thumbnails_png = enc.encode_png(strip)


class AttributionLegend(LegendMixin, AttributionTraits, GridTraits, NavTraits, RLVisionWidget):
    """Per NMF feature: its colour, dataset-example thumbnail, an editable label and a
    suggested label, plus a residual entry. Hover isolates a feature (in every view of an
    Explorer); click sets ``grid_feature``; labels sync to ``feature_labels``.

    >>> legend = AttributionLegend(n_features=4, feature_labels=["coin", "saw", "", ""])
    >>> legend.observe(lambda ch: print(ch["new"]), "feature_labels")   # doctest: +SKIP
    """

    _component = "legend"

    def __init__(
        self, thumbnails: Any = None, labels: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if labels is not None:
            self.feature_labels = list(labels)
            if not self.n_features:
                self.n_features = len(labels)
        if thumbnails is not None:
            self.set_thumbnails(thumbnails)
            if not self.n_features:
                self.n_features = int(np.asarray(thumbnails).shape[0])
