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

    def set_mosaics(self, images: Any, sources: Any, density: int) -> None:
        """The mosaic of every feature at ``density`` cells per side (the grid shows them at once,
        also in a static export): ``images`` (K, rows*cell, cols*cell, 4) uint8 RGBA and
        ``sources`` (K, rows, cols, 2) (trajectory, frame) per cell, (-1, -1) for none.

        >>> g = FeatureGrid()
        >>> g.set_mosaics(np.zeros((3, 40, 40, 4), np.uint8), np.zeros((3, 2, 2, 2), int), 2)
        >>> g.mosaics_shape
        [3, 2, 2, 20, 2]
        """
        img = np.asarray(images)
        src = np.asarray(sources)
        if img.ndim != 4 or img.shape[-1] != 4 or img.dtype != np.uint8:
            raise ValueError(f"mosaics must be uint8 (K, H, W, 4), got {img.dtype} {img.shape}")
        if src.ndim != 4 or src.shape[-1] != 2 or src.shape[0] != img.shape[0]:
            raise ValueError(
                f"mosaic sources must be (K, rows, cols, 2) with K = {img.shape[0]}, "
                f"got {src.shape}"
            )
        k, rows, cols = src.shape[:3]
        if k == 0:
            with self.hold_sync():
                self.mosaics_png, self.mosaics_shape, self.mosaics_sources = b"", [], b""
            return
        cell = img.shape[1] // rows
        strip = img.transpose(1, 0, 2, 3).reshape(img.shape[1], k * img.shape[2], 4)
        with self.hold_sync():
            self.mosaics_png = enc.encode_png(strip)
            self.mosaics_shape = [int(k), int(rows), int(cols), int(cell), int(density)]
            self.mosaics_sources = enc.i32(src.reshape(-1, 2))


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
