"""FeatureGrid widget (``js/feature_grid.ts``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _encode as enc
from ._base import RLVisionWidget, TrajectoryDataMixin
from ._traits import FeatureTraits, GridTraits, NavTraits, StatusTraits, TrajectoryTraits


class GridMixin(GridTraits):
    """``set_mosaic`` for widgets with a feature grid."""

    def set_mosaic(self, image: Any, sources: Any, source_obs: Any = None) -> None:
        """A spatially-aware mosaic: ``image`` (rows*cell, cols*cell, 4) uint8 RGBA and
        ``sources`` (rows, cols, 2) int: per cell the (trajectory, frame) it came from, or
        (-2, i) for observation i of ``source_obs`` (N, S, S, 3), or (-1, -1) for none."""
        img = np.asarray(image)
        src = np.asarray(sources)
        if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
            raise ValueError(f"mosaic image must be uint8 (H, W, 3|4), got {img.dtype} {img.shape}")
        if src.ndim != 3 or src.shape[-1] != 2:
            raise ValueError(f"sources must be (rows, cols, 2), got {src.shape}")
        rows, cols = src.shape[:2]
        cell = img.shape[0] // rows
        with self.hold_sync():
            self.grid_png = enc.encode_png(img)
            self.grid_shape = [int(rows), int(cols), int(cell)]
            self.grid_sources = enc.i32(src.reshape(-1, 2))
            self.grid_source_png = (
                enc.encode_png_strip(np.asarray(source_obs, np.uint8))
                if source_obs is not None and len(source_obs)
                else b""
            )


class FeatureGrid(
    GridMixin,
    TrajectoryDataMixin,
    TrajectoryTraits,
    FeatureTraits,
    StatusTraits,
    NavTraits,
    RLVisionWidget,
):
    """Spatially-aware dataset-example mosaic of one feature, with zoom (local) and density
    (``grid_density``: observe it to recompute) sliders; pressing a cell shows its source
    observation.

    >>> import numpy as np
    >>> grid = FeatureGrid(np.zeros((64, 64, 4), np.uint8), np.zeros((2, 2, 2), int),
    ...                    source_obs=np.zeros((1, 64, 64, 3), np.uint8), grid_feature=0)
    >>> grid.grid_shape
    [2, 2, 32]
    """

    _component = "feature_grid"

    def __init__(
        self, image: Any = None, sources: Any = None, source_obs: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if image is not None and sources is not None:
            self.set_mosaic(image, sources, source_obs)
