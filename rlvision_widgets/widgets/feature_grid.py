"""FeatureGrid widget (``js/feature_grid.ts``): a feature's dataset examples, its
spatially-aware mosaic and, computed on request, its optimized image."""

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

    def set_optvis(self, image: Any, info: dict[str, Any] | None = None) -> None:
        """Show an optimized image (S, S, 3|4) uint8 beside the dataset examples, or clear it
        (None). ``info``: what the view prints beside it; ``feature`` (the image is shown only
        while that feature is in the grid), ``layer``, ``rank``, ``value`` (the objective on
        the image), ``best_real`` and ``ratio`` (against the best real frame), ``caption``.

        >>> g = FeatureGrid()
        >>> g.set_optvis(np.zeros((64, 64, 3), np.uint8), {"feature": 0, "value": 1.0})
        >>> g.optvis_image.shape, g.optvis_info["state"]
        ((1, 64, 64, 3), 'ready')
        """
        if image is None:
            with self.hold_sync():
                self.optvis_image = None
                self.optvis_info = dict(info or {})
            return
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
            raise ValueError(
                f"optimized image must be uint8 (S, S, 3|4), got {img.dtype} {img.shape}"
            )
        info = {"state": "ready", **dict(info or {})}
        if not isinstance(info.get("feature", 0), int):
            raise ValueError(f"info['feature'] must be a feature index, got {info['feature']!r}")
        with self.hold_sync():
            self.optvis_image = img[None]
            self.optvis_info = info


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
