"""Dataset-example feature visualization (the article's "Dataset example-based" and
"Spatially-aware" feature visualization).

Given observations (a corpus, or trajectory frames) and per-observation feature maps
``(N, H, W, K)`` at a layer (e.g. activations reduced onto NMF directions with
:func:`feature_maps`), this module draws

* **legend thumbnails** (:meth:`FeatureVisualizer.thumbnail`): a ``grid x grid`` (4 x 4) mosaic of
  patches from the observations and positions where the feature is strongest, each observation
  used once and at most ``max_per_position`` (4) observations per spatial position, sorted by
  position, opacity by activation;
* the **spatially-aware mosaic** (:meth:`FeatureVisualizer.mosaic`): for each cell of a grid over
  the layer (``density`` cells per position, any positive number), the observation with the
  strongest (bilinearly interpolated) activation at that cell, each observation reused at most
  ceil(cells / (top_frac * N)) times (``top_frac`` = 0.1), opacity by activation.

Patches are centred on the cell, ``expand`` x the layer stride wide (``patch="stride"``) or as wide
as the layer's receptive field (``patch="receptive_field"``), or a given number of 64-px pixels.
Beyond the screen edge patches show the grey-white checkerboard. With ``full_images`` (e.g.
512 x 512 renders of the same frames), patches are cut from those at full resolution.

>>> rng = np.random.default_rng(0)
>>> obs = rng.integers(0, 255, (40, 64, 64, 3), dtype=np.uint8)
>>> maps = rng.random((40, 16, 16, 2)).astype(np.float32)
>>> vis = FeatureVisualizer(obs, maps)
>>> vis.thumbnail(0, expand=2).image.shape            # 4 x 4 patches of 8 px
(32, 32, 4)
>>> m = vis.mosaic(1, density=1.0)
>>> m.image.shape, int(m.reuse_cap)
((64, 64, 4), 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .display import rescale_opacity

__all__ = [
    "FeatureVisualizer",
    "Mosaic",
    "ReceptiveField",
    "Thumbnail",
    "checkerboard",
    "legend_thumbnails",
    "feature_maps",
    "receptive_field",
    "reuse_cap",
]

CHECK_LIGHT, CHECK_DARK = 255, 191  # white and 0.75 grey, one check per 64-px pixel


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a layer in 64-px input pixels: ``size`` (side), ``stride`` (pixels
    between neighbouring positions) and ``center0`` (centre of position 0, continuous pixel
    coordinates). Position ``i`` is centred at ``center0 + i * stride``.

    >>> from rlvision_widgets.agents.networks import compact_config
    >>> rf = receptive_field(compact_config(), "2b")
    >>> rf
    ReceptiveField(size=20, stride=4, center0=2.0)
    >>> rf.center0 + 15 * rf.stride                  # centre of the last of 16 positions
    62.0
    """

    size: int
    stride: float
    center0: float


def receptive_field(model_or_config: Any, layer: str) -> ReceptiveField:
    """Receptive field of a ConvAgent layer (from its config: kernels, strides, pools).

    >>> from rlvision_widgets.agents.networks import article_config, compact_config
    >>> receptive_field(article_config(), "2b")
    ReceptiveField(size=24, stride=2, center0=1.0)
    >>> receptive_field(compact_config(), "2b").size
    20
    """
    config = getattr(model_or_config, "config", model_or_config)
    convs = getattr(config, "convs", None)
    if convs is None:
        raise TypeError(
            "receptive_field needs a ConvAgent or NetworkConfig; for other models "
            "use patch='stride' or a patch size in pixels"
        )
    names = [c.name for c in convs]
    if layer not in names:
        raise KeyError(f"unknown layer {layer!r}; valid layers: {names}")
    rf, jump, center = 1, 1, 0.5
    for spec in convs:
        pad = (spec.kernel - 1) // 2 if spec.stride == 1 else 0
        center += ((spec.kernel - 1) / 2 - pad) * jump
        rf += (spec.kernel - 1) * jump
        jump *= spec.stride
        if spec.name == layer:
            return ReceptiveField(int(rf), jump, center)
        if spec.pool > 1:
            center += (spec.pool - 1) / 2 * jump
            rf += (spec.pool - 1) * jump
            jump *= spec.pool
    raise AssertionError("unreachable")


def reuse_cap(cells: int, n_obs: int, top_frac: float = 0.1) -> int:
    """The mosaic's reuse limit: each observation may fill at most
    ceil(cells / (top_frac * N)) cells.

    >>> reuse_cap(1024, 4096), reuse_cap(256, 40)
    (3, 64)
    """
    if n_obs < 1:
        raise ValueError("need at least one observation")
    if not 0 < top_frac <= 1:
        raise ValueError(f"top_frac must be in (0, 1], got {top_frac!r}")
    return max(1, int(math.ceil(cells / (top_frac * n_obs) - 1e-9)))


def feature_maps(
    activations: np.ndarray,
    nmf: Any = None,
    *,
    directions: np.ndarray | None = None,
    method: str = "nnls",
) -> np.ndarray:
    """Per-observation feature maps (N, H, W, K) from activations (N, H, W, C).

    ``nmf``: a fitted :class:`~rlvision_widgets.analysis.nmf.AttributionNMF` (from attributions
    or activations), or ``directions`` (K, C). ``method``: "nnls" (non-negative least squares
    on the directions, as the original tool's ``transform``) or "project" (dot product with the
    unit-norm directions, clipped at 0; faster).

    >>> acts = np.random.default_rng(0).random((3, 4, 4, 6)).astype(np.float32)
    >>> feature_maps(acts, directions=np.eye(2, 6), method="project").shape
    (3, 4, 4, 2)
    """
    acts = np.asarray(activations, dtype=np.float32)
    if acts.ndim != 4:
        raise ValueError(f"activations must be (N, H, W, C), got shape {acts.shape}")
    if directions is None:
        if nmf is None:
            raise ValueError("give a fitted AttributionNMF (nmf=...) or directions=(K, C)")
        directions = nmf.components_
    d = np.asarray(directions, dtype=np.float32)
    if d.ndim != 2 or d.shape[1] != acts.shape[-1]:
        raise ValueError(f"directions must be (K, {acts.shape[-1]}), got shape {d.shape}")
    if method == "project":
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return np.maximum(acts @ d.T, 0)
    if method == "nnls":
        from .nmf import nnls_rows

        flat = np.maximum(acts.reshape(-1, acts.shape[-1]), 0)
        out = np.zeros((flat.shape[0], d.shape[0]), np.float32)
        nz = np.flatnonzero(flat.any(axis=1))
        if nz.size:
            out[nz] = nnls_rows(flat[nz], d).numpy()
        return out.reshape(acts.shape[:-1] + (d.shape[0],))
    raise ValueError(f"method must be 'nnls' or 'project', got {method!r}")


def checkerboard(h: int, w: int, y0: int = 0, x0: int = 0, check: int = 1) -> np.ndarray:
    """Grey-white checkerboard (h, w, 3) uint8 for absolute pixel origin (y0, x0), ``check``
    pixels per square (so neighbouring patches line up).

    >>> checkerboard(2, 2)[..., 0].tolist()
    [[255, 191], [191, 255]]
    """
    y = (np.arange(y0, y0 + h) // check)[:, None]
    x = (np.arange(x0, x0 + w) // check)[None, :]
    board = np.where((y + x) % 2 == 0, CHECK_LIGHT, CHECK_DARK).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=-1)


@dataclass
class Thumbnail:
    """A legend thumbnail: ``image`` RGBA uint8 (grid * p, grid * p, 4); ``obs_indices``
    (grid, grid) (-1 = empty); ``positions`` (grid, grid, 2) layer (row, col); ``activations``
    and ``opacity`` (grid, grid); ``patch_px`` patch side in image pixels.

    Made by :meth:`FeatureVisualizer.thumbnail`:

    >>> obs = np.zeros((30, 64, 64, 3), np.uint8)
    >>> maps = np.random.default_rng(0).random((30, 8, 8, 2)).astype(np.float32)
    >>> t = FeatureVisualizer(obs, maps).thumbnail(1)     # 4 x 4 patches, 4 x stride wide
    >>> t.image.shape, t.obs_indices.shape, t.positions.shape, t.patch_px
    ((128, 128, 4), (4, 4), (4, 4, 2), 32)
    """

    image: np.ndarray
    obs_indices: np.ndarray
    positions: np.ndarray
    activations: np.ndarray
    opacity: np.ndarray
    patch_px: int


@dataclass
class Mosaic:
    """A spatially-aware mosaic: ``image`` RGBA uint8 (rows * p, cols * p, 4);
    ``obs_indices``, ``activations``, ``opacity`` per cell (rows, cols); ``reuse_cap``;
    ``density``; ``patch_px``; ``centers`` (rows, cols, 2) cell centres in layer coordinates.

    Made by :meth:`FeatureVisualizer.mosaic`:

    >>> obs = np.zeros((30, 64, 64, 3), np.uint8)
    >>> maps = np.random.default_rng(0).random((30, 8, 8, 2)).astype(np.float32)
    >>> m = FeatureVisualizer(obs, maps).mosaic(1, density=2.0)   # 2 x 2 cells per position
    >>> m.obs_indices.shape, m.centers.shape, m.image.shape, m.patch_px
    ((16, 16), (16, 16, 2), (128, 128, 4), 8)
    >>> int(m.reuse_cap) == reuse_cap(16 * 16, 30)
    True
    """

    image: np.ndarray
    obs_indices: np.ndarray
    activations: np.ndarray
    opacity: np.ndarray
    reuse_cap: int
    density: float
    patch_px: int
    centers: np.ndarray


def _flatten_frames(x: np.ndarray, name: str, trailing: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == trailing + 2:  # (envs, steps, ...) trajectories
        x = x.reshape((-1,) + x.shape[2:])
    if x.ndim != trailing + 1:
        raise ValueError(
            f"{name} must be (N, ...) or (envs, steps, ...) with {trailing} "
            f"trailing axes, got shape {x.shape}"
        )
    return x


class FeatureVisualizer:
    """Dataset examples for the features of one layer.

    ``images``: uint8 (N, 64, 64, 3) observations, or trajectory frames (envs, steps, 64, 64, 3)
    (flattened; indices then refer to ``env * steps + step``). ``maps``: (N, H, W, K) feature
    maps for those observations (same flattening). ``full_images``: optional higher-resolution
    frames (N, S, S, 3) of the same observations (e.g. 512 px) to cut patches from.
    ``rf``: a :class:`ReceptiveField` (or ``model=..., layer=...``) for ``patch="receptive_field"``.

    >>> obs = np.zeros((20, 64, 64, 3), np.uint8)
    >>> maps = np.random.default_rng(1).random((20, 8, 8, 3)).astype(np.float32)
    >>> FeatureVisualizer(obs, maps).thumbnail(2).obs_indices.shape
    (4, 4)
    """

    def __init__(
        self,
        images: np.ndarray,
        maps: np.ndarray,
        *,
        full_images: np.ndarray | None = None,
        rf: ReceptiveField | None = None,
        model: Any = None,
        layer: str | None = None,
    ):
        images = _flatten_frames(images, "images", 3)
        maps = _flatten_frames(maps, "maps", 3).astype(np.float32, copy=False)
        if images.dtype != np.uint8 or images.shape[-1] != 3:
            raise TypeError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if maps.shape[0] != images.shape[0]:
            raise ValueError(f"maps has {maps.shape[0]} frames but images has {images.shape[0]}")
        if images.shape[0] == 0:
            raise ValueError("need at least one observation")
        self.images = images
        self.maps = maps
        self.full_images = None
        if full_images is not None:
            full = _flatten_frames(full_images, "full_images", 3)
            if full.shape[0] != images.shape[0] or full.dtype != np.uint8:
                raise ValueError(
                    f"full_images must be uint8 with {images.shape[0]} frames, got "
                    f"{full.dtype} {full.shape}"
                )
            self.full_images = full
        if rf is None and model is not None and layer is not None:
            rf = receptive_field(model, layer)
        self.rf = rf

    @property
    def n_features(self) -> int:
        """Number of features K (last axis of the maps)."""
        return self.maps.shape[-1]

    def _check_feature(self, feature: int) -> int:
        k = self.n_features
        if (
            isinstance(feature, bool)
            or not isinstance(feature, (int, np.integer))
            or not 0 <= feature < k
        ):
            raise ValueError(f"feature {feature!r} out of range; valid features: 0..{k - 1}")
        return int(feature)

    # ------------------------------------------------------------------ patches
    def _geometry(self, patch: str | int, expand: float) -> tuple[float, float, int]:
        """(pixel scale of the source images vs 64 px, layer stride in 64-px, patch side px)."""
        src = self.full_images if self.full_images is not None else self.images
        img_size = src.shape[1]
        h = self.maps.shape[1]
        scale = img_size / self.images.shape[1]
        stride = self.images.shape[1] / h
        if not expand > 0:
            raise ValueError(f"expand must be positive, got {expand!r}")
        if patch == "stride":
            base = stride
        elif patch == "receptive_field":
            if self.rf is None:
                raise ValueError(
                    "patch='receptive_field' needs rf=ReceptiveField(...) or "
                    "model=..., layer=... when building the FeatureVisualizer"
                )
            base = self.rf.size
        elif isinstance(patch, (int, np.integer)) and not isinstance(patch, bool) and patch > 0:
            base = int(patch)
        else:
            raise ValueError(
                f"patch must be 'stride', 'receptive_field' or a positive pixel size, got {patch!r}"
            )
        side = max(1, int(round(base * expand * scale)))
        return scale, stride, side

    def _patch(self, index: int, cy: float, cx: float, side: int, scale: float) -> np.ndarray:
        """Patch of ``side`` px centred on (cy, cx) in source pixels, checkerboard outside."""
        src = self.full_images if self.full_images is not None else self.images
        H, W = src.shape[1:3]
        y0 = int(round(cy - side / 2))
        x0 = int(round(cx - side / 2))
        check = max(1, int(round(scale)))
        out = checkerboard(side, side, y0 + 10 * check, x0 + 10 * check, check)
        ya, yb = max(0, y0), min(H, y0 + side)
        xa, xb = max(0, x0), min(W, x0 + side)
        if ya < yb and xa < xb:
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = src[index, ya:yb, xa:xb]
        return out

    def _center_px(
        self, pos_y: float, pos_x: float, stride: float, scale: float
    ) -> tuple[float, float]:
        if self.rf is not None and self.rf.stride == stride:
            c0 = self.rf.center0
            return (c0 + pos_y * stride) * scale, (c0 + pos_x * stride) * scale
        return (pos_y + 0.5) * stride * scale, (pos_x + 0.5) * stride * scale

    # ---------------------------------------------------------------- thumbnail
    def thumbnail(
        self,
        feature: int,
        *,
        grid: int = 4,
        max_per_position: int = 4,
        patch: str | int = "stride",
        expand: float = 4.0,
        rescale: bool = True,
    ) -> Thumbnail:
        """Legend thumbnail of ``feature``: the ``grid**2`` strongest (observation, position)
        pairs with distinct observations and at most ``max_per_position`` per position, sorted
        by position (rows by height, then width), opacity = activation / max.

        >>> obs = np.zeros((30, 64, 64, 3), np.uint8)
        >>> maps = np.zeros((30, 4, 4, 1), np.float32); maps[:, 0, 0, 0] = np.arange(30)
        >>> t = FeatureVisualizer(obs, maps).thumbnail(0, grid=2, max_per_position=4)
        >>> sorted(t.obs_indices.ravel().tolist())         # 4 strongest, all at (0, 0)
        [26, 27, 28, 29]
        """
        feature = self._check_feature(feature)
        if grid < 1 or max_per_position < 1:
            raise ValueError("grid and max_per_position must be >= 1")
        scale, stride, side = self._geometry(patch, expand)
        a = self.maps[..., feature]
        n, h, w = a.shape
        want = grid * grid
        flat = a.reshape(-1)
        chosen: list[tuple[int, int, float]] = []
        t = min(flat.size, want * 64)
        while True:
            top = np.argpartition(-flat, t - 1)[:t] if t < flat.size else np.arange(flat.size)
            top = top[np.argsort(-flat[top], kind="stable")]
            used_obs: set[int] = set()
            pos_count: dict[int, int] = {}
            chosen = []
            exhausted = t >= flat.size
            for idx in top:
                v = float(flat[idx])
                if v <= 0:
                    exhausted = True
                    break
                o, p = divmod(int(idx), h * w)
                if o in used_obs or pos_count.get(p, 0) >= max_per_position:
                    continue
                used_obs.add(o)
                pos_count[p] = pos_count.get(p, 0) + 1
                chosen.append((o, p, v))
                if len(chosen) == want:
                    break
            if len(chosen) == want or exhausted:
                break
            t = min(flat.size, t * 8)
        # arrange: sort by (row, col), fill grid rows, sort each row by col
        chosen.sort(key=lambda c: divmod(c[1], w))
        obs_idx = np.full((grid, grid), -1, np.int64)
        positions = np.full((grid, grid, 2), -1, np.int64)
        acts = np.zeros((grid, grid), np.float32)
        rows = [chosen[i : i + grid] for i in range(0, len(chosen), grid)]
        for r, row in enumerate(rows):
            row.sort(key=lambda c: c[1] % w)
            for cidx, (o, p, v) in enumerate(row):
                obs_idx[r, cidx] = o
                positions[r, cidx] = divmod(p, w)
                acts[r, cidx] = v
        vmax = float(acts.max())
        opacity = acts / vmax if vmax > 0 else np.zeros_like(acts)
        if rescale:
            opacity = self._rescale(opacity, max_scale=1.0, keep_zeros=True)
        image = np.zeros((grid * side, grid * side, 4), np.uint8)
        for r in range(grid):
            for c in range(grid):
                o = obs_idx[r, c]
                if o < 0:
                    continue
                cy, cx = self._center_px(positions[r, c, 0], positions[r, c, 1], stride, scale)
                tile = image[r * side : (r + 1) * side, c * side : (c + 1) * side]
                tile[..., :3] = self._patch(o, cy, cx, side, scale)
                tile[..., 3] = int(round(255 * float(opacity[r, c])))
        return Thumbnail(image, obs_idx, positions, acts, opacity.astype(np.float32), side)

    def thumbnails(self, **kwargs: Any) -> list[Thumbnail]:
        """:meth:`thumbnail` for every feature.

        >>> maps = np.random.default_rng(0).random((20, 4, 4, 3)).astype(np.float32)
        >>> len(FeatureVisualizer(np.zeros((20, 64, 64, 3), np.uint8), maps).thumbnails())
        3
        """
        return [self.thumbnail(k, **kwargs) for k in range(self.n_features)]

    # ------------------------------------------------------------------- mosaic
    def cell_activations(self, feature: int, density: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Activations (N, rows, cols) at the mosaic's cell centres (bilinear, edges clamped)
        and the centres (rows, cols, 2) in layer coordinates.

        >>> maps = np.random.default_rng(0).random((5, 4, 4, 1)).astype(np.float32)
        >>> vals, centers = FeatureVisualizer(np.zeros((5, 64, 64, 3), np.uint8),
        ...                                   maps).cell_activations(0, density=2)
        >>> vals.shape, centers.shape
        ((5, 8, 8), (8, 8, 2))
        """
        feature = self._check_feature(feature)
        if not density > 0:
            raise ValueError(f"density must be positive, got {density!r}")
        a = self.maps[..., feature]
        n, h, w = a.shape
        rows, cols = max(1, int(round(h * density))), max(1, int(round(w * density)))
        cy = (np.arange(rows) + 0.5) * h / rows - 0.5
        cx = (np.arange(cols) + 0.5) * w / cols - 0.5
        if (rows, cols) == (h, w):
            vals = a
        else:

            def interp(c: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                c = np.clip(c, 0, size - 1)
                lo = np.floor(c).astype(int)
                hi = np.minimum(lo + 1, size - 1)
                return lo, hi, (c - lo).astype(np.float32)

            y0, y1, fy = interp(cy, h)
            x0, x1, fx = interp(cx, w)
            top = a[:, y0][:, :, x0] * (1 - fx) + a[:, y0][:, :, x1] * fx
            bot = a[:, y1][:, :, x0] * (1 - fx) + a[:, y1][:, :, x1] * fx
            vals = top * (1 - fy)[:, None] + bot * fy[:, None]
        centers = np.stack(np.meshgrid(cy, cx, indexing="ij"), axis=-1)
        return vals.astype(np.float32), centers

    def mosaic(
        self,
        feature: int,
        *,
        density: float = 1.0,
        top_frac: float = 0.1,
        patch: str | int = "stride",
        expand: float = 1.0,
        rescale: bool = True,
    ) -> Mosaic:
        """Spatially-aware mosaic of ``feature`` (see module docstring).

        Cells are filled greedily in decreasing order of activation: a cell takes its strongest
        observation unless that observation already fills ``reuse_cap`` cells.

        >>> obs = np.zeros((10, 64, 64, 3), np.uint8)
        >>> maps = np.ones((10, 4, 4, 1), np.float32); maps[3] = 2.0
        >>> m = FeatureVisualizer(obs, maps).mosaic(0)
        >>> int(m.reuse_cap), int((m.obs_indices == 3).sum())
        (16, 16)
        """
        scale, stride, side = self._geometry(patch, expand)
        vals, centers = self.cell_activations(feature, density)
        n, rows, cols = vals.shape
        cells = rows * cols
        cap = reuse_cap(cells, n, top_frac)
        per_cell = vals.reshape(n, cells).T  # (cells, N)
        depth = min(n, cells // cap + 1)  # enough to always find one
        if depth < n:
            cand = np.argpartition(-per_cell, depth - 1, axis=1)[:, :depth]
        else:
            cand = np.broadcast_to(np.arange(n), (cells, n))
        cand_vals = np.take_along_axis(per_cell, cand, axis=1)
        order = np.argsort(-cand_vals, axis=None, kind="stable")
        assigned = np.full(cells, -1, np.int64)
        counts = np.zeros(n, np.int64)
        remaining = cells
        cell_of, obs_of = np.unravel_index(order, cand.shape)
        for ci, oi in zip(cell_of.tolist(), obs_of.tolist()):
            if assigned[ci] >= 0:
                continue
            o = int(cand[ci, oi])
            if counts[o] >= cap:
                continue
            assigned[ci] = o
            counts[o] += 1
            remaining -= 1
            if remaining == 0:
                break
        obs_idx = assigned.reshape(rows, cols)
        acts = per_cell[np.arange(cells), assigned].reshape(rows, cols)
        vmax = float(acts.max())
        opacity = np.maximum(acts, 0) / vmax if vmax > 0 else np.zeros_like(acts)
        if rescale:
            opacity = self._rescale(opacity)
        image = np.zeros((rows * side, cols * side, 4), np.uint8)
        for r in range(rows):
            for c in range(cols):
                cy, cx = self._center_px(centers[r, c, 0], centers[r, c, 1], stride, scale)
                tile = image[r * side : (r + 1) * side, c * side : (c + 1) * side]
                tile[..., :3] = self._patch(int(obs_idx[r, c]), cy, cx, side, scale)
                tile[..., 3] = int(round(255 * float(opacity[r, c])))
        return Mosaic(
            image,
            obs_idx,
            acts.astype(np.float32),
            opacity.astype(np.float32),
            cap,
            float(density),
            side,
            centers,
        )

    @staticmethod
    def _rescale(opacity: np.ndarray, **kwargs: Any) -> np.ndarray:
        rgba = np.zeros(opacity.shape + (4,), np.float32)
        rgba[..., 3] = opacity
        return rescale_opacity(rgba, **kwargs)[..., 3]


def legend_thumbnails(
    directions: np.ndarray,
    activations: np.ndarray,
    observations: np.ndarray,
    *,
    size: int = 64,
    grid: int = 4,
    max_per_position: int = 4,
    expand: float = 4.0,
    method: str = "project",
    full_images: np.ndarray | None = None,
    patch: str | int = "stride",
    rf: ReceptiveField | None = None,
) -> np.ndarray:
    """Legend thumbnails for every direction as one uint8 array (K, size, size, 4).

    ``directions`` (K, C) (e.g. ``nmf.components_``), ``activations`` (N, H, W, C) of the
    ``observations`` (N, 64, 64, 3); feature maps by ``method`` (see :func:`feature_maps`);
    each :meth:`FeatureVisualizer.thumbnail` (``grid`` x ``grid`` patches of ``patch`` x
    ``expand``; ``patch="receptive_field"`` needs ``rf``) is resized (nearest) to ``size`` px.

    >>> obs = np.zeros((20, 64, 64, 3), np.uint8)
    >>> acts = np.random.default_rng(0).random((20, 8, 8, 5)).astype(np.float32)
    >>> legend_thumbnails(np.eye(2, 5), acts, obs).shape
    (2, 64, 64, 4)
    >>> legend_thumbnails(np.eye(2, 5), acts, obs, size=120, grid=3, patch=20, expand=1).shape
    (2, 120, 120, 4)
    """
    maps = feature_maps(activations, directions=directions, method=method)
    vis = FeatureVisualizer(observations, maps, full_images=full_images, rf=rf)
    out = np.zeros((maps.shape[-1], size, size, 4), np.uint8)
    for k in range(maps.shape[-1]):
        img = vis.thumbnail(
            k, grid=grid, max_per_position=max_per_position, patch=patch, expand=expand
        ).image
        ys = (np.arange(size) * img.shape[0] // size).clip(0, img.shape[0] - 1)
        xs = (np.arange(size) * img.shape[1] // size).clip(0, img.shape[1] - 1)
        out[k] = img[ys][:, xs]
    return out
