"""FeatureGrid widget (``js/feature_grid.ts``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import Frames, Mosaics
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
        with self.hold_sync():
            self.grid = Mosaics.encode(img[None], src[None])
            self.grid_source_frames = (
                Frames.encode(np.asarray(source_obs, np.uint8))
                if source_obs is not None and len(source_obs)
                else None
            )

    def set_mosaics(self, images: Any, sources: Any, density: int) -> None:
        """The mosaic of every feature at ``density`` cells per side (the grid shows them at once,
        also in a static export): ``images`` (K, rows*cell, cols*cell, 4) uint8 RGBA and
        ``sources`` (K, rows, cols, 2) (trajectory, frame) per cell, (-1, -1) for none.

        >>> g = FeatureGrid()
        >>> g.set_mosaics(np.zeros((3, 40, 40, 4), np.uint8), np.zeros((3, 2, 2, 2), int), 2)
        >>> m = g.mosaics
        >>> m.K, m.rows, m.cols, m.cell, m.density
        (3, 2, 2, 20, 2)
        """
        img = np.asarray(images)
        if img.ndim != 4 or img.shape[-1] != 4 or img.dtype != np.uint8:
            raise ValueError(f"mosaics must be uint8 (K, H, W, 4), got {img.dtype} {img.shape}")
        m = Mosaics.encode(img, sources, density)
        self.mosaics = m if m.K else None


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
    >>> grid.grid.rows, grid.grid.cols, grid.grid.cell
    (2, 2, 32)
    """

    _component = "feature_grid"

    def __init__(
        self, image: Any = None, sources: Any = None, source_obs: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if image is not None and sources is not None:
            self.set_mosaic(image, sources, source_obs)
