"""How object-like is an optimized image? (issue 15, requirement 4)

The article's finding: gradient-based feature visualization of the CoinRun model gives
"featureless clouds of color", while dataset examples show objects. This module measures it.

- :func:`objective_maps`: each objective's value per layer position on real frames (its
  position-wise contribution: summed over positions it is the objective's value).
- :func:`nearest_real_patches`: the real (frame, y, x) cells whose activation vector at the
  layer is nearest (cosine) to the optimized image's at its strongest cell(s) for the
  objective, at most ``per_frame`` per frame; and beside them the objective's dataset examples,
  its strongest real cells (32, one per frame, as
  :func:`~rlvision_widgets.analysis.features.label_features` takes them).
- :func:`objectness`: the share of those two sets of cells that lie on or next to each object
  class by the engine's boxes (:func:`frame_class_maps`, the machinery of
  :mod:`~rlvision_widgets.analysis.features`), against the class's share of all cells.
- :func:`appearance_statistics`: "extremal colour clouds" in numbers: colour saturation, the
  share of near-black/near-white channel values, and the share of spectral power above half
  the Nyquist frequency, per image.
- :func:`patch_distances`: in pixels, how far the optimized image's window is from the real
  windows the layer reads alike (its nearest real cells), against those real windows' own
  spread.

>>> stats = appearance_statistics(np.zeros((2, 64, 64, 3), np.uint8))
>>> sorted(stats), stats["saturation"].tolist()
(['extreme', 'high_frequency', 'saturation'], [0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..features import (
    NEAR,
    OBJECT_CLASSES,
    PER_FRAME,
    TOP_CELLS,
    near_maps,
    resolve_class,
    strongest_cells,
    trajectory_class_maps,
)
from ..layers import LayerAccess
from .evaluate import _bind_caricatures
from .objectives import Objective, parse_objective

if TYPE_CHECKING:  # pragma: no cover
    from ...rollouts import Trajectories

__all__ = [
    "OBJECTS",
    "NearestPatches",
    "Objectness",
    "appearance_statistics",
    "frame_class_maps",
    "nearest_real_patches",
    "objective_maps",
    "objectness",
    "patch_distances",
]

#: the classes counted as "an object" by :attr:`Objectness.object_share`: everything with
#: ground truth except the agent itself (always at the centre), walls (in most cells) and the
#: painted velocity squares
OBJECTS = ("saw", "enemy_left", "enemy_right", "crate", "coin", "lava")


def _frames(frames: Any, name: str = "frames") -> np.ndarray:
    f = np.asarray(frames)
    if f.ndim == 5:
        f = f.reshape((-1,) + f.shape[2:])
    if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(
            f"{name} must be uint8 observations (N, H, W, 3) or (E, T, H, W, 3), got "
            f"{f.dtype} {f.shape}"
        )
    return f


def _one_layer(objectives: Sequence[Objective | str]) -> tuple[list[Objective], str]:
    objs = [parse_objective(o) for o in objectives]
    if not objs:
        raise ValueError("need at least one objective")
    layers = sorted({o.layer for o in objs})
    if len(layers) != 1:
        raise ValueError(f"objectives must all be on one layer, got layers {layers}")
    return objs, layers[0]


def _weights(access: LayerAccess, objs: list[Objective], layer: str) -> np.ndarray:
    """(K, C, H, W) linear weights of every objective at ``layer``."""
    _bind_caricatures(access, objs)
    h, w, c = access.layer_shape(layer)
    out = []
    for o in objs:
        o.check((c, h, w))
        wt = o.weights((c, h, w))
        if wt is None:
            raise ValueError(f"{o!r} is not linear in the activations; per-position maps need one")
        out.append(np.asarray(wt, np.float32))
    return np.stack(out)


def _activations(access: LayerAccess, frames: np.ndarray, layer: str, batch: int) -> np.ndarray:
    parts = [
        access.activations(frames[s : s + batch], layer).numpy()
        for s in range(0, len(frames), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def _maps(acts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(K, N, H, W): ``sum_c acts[n, y, x, c] * W[k, c, y, x]``."""
    return np.einsum("nyxc,kcyx->knyx", acts, weights, optimize=True)


def objective_maps(
    agent: nn.Module,
    objectives: Sequence[Objective | str],
    frames: Any,
    *,
    activations: np.ndarray | None = None,
    batch: int = 256,
) -> np.ndarray:
    """``(K, N, H, W)``: objective ``k``'s contribution at each layer position of frame ``n``
    (zero where it covers no position; summed over positions it is the objective's value).
    ``activations`` (N, H, W, C) at the objectives' layer skips the forward pass.

    >>> from rlvision_widgets.agents import build_network
    >>> from rlvision_widgets.analysis.optvis import Channel
    >>> m = objective_maps(build_network("compact"), [Channel("2b", 0)],
    ...                    np.zeros((3, 64, 64, 3), np.uint8))
    >>> m.shape
    (1, 3, 16, 16)
    """
    objs, layer = _one_layer(objectives)
    access = LayerAccess(agent)
    weights = _weights(access, objs, layer)
    acts = _layer_acts(access, frames, layer, activations, batch)
    return _maps(acts, weights)


def _layer_acts(
    access: LayerAccess, frames: Any, layer: str, activations: np.ndarray | None, batch: int
) -> np.ndarray:
    if activations is None:
        return _activations(access, _frames(frames), layer, batch)
    acts = np.asarray(activations, np.float32)
    if acts.ndim == 5:
        acts = acts.reshape((-1,) + acts.shape[2:])
    h, w, c = access.layer_shape(layer)
    if acts.ndim != 4 or acts.shape[1:] != (h, w, c):
        raise ValueError(
            f"activations must be (N, {h}, {w}, {c}) at layer {layer!r} (channels last, as "
            f"Analysis.activations), got {acts.shape}"
        )
    return acts


@dataclass
class NearestPatches:
    """What :func:`nearest_real_patches` returns, per objective ``k``:

    ``query`` (K, q, 2): the optimized image's (y, x) cells whose activation vectors were
    matched; ``cells`` (K, k, 3) the nearest real (frame, y, x) cells, nearest first, and
    ``similarity`` (K, k) their cosine similarity to the query (-1 / nan: fewer cells with a
    positive similarity); ``examples`` (K, top, 3) the objective's strongest real cells (its
    dataset examples) and ``example_values`` (K, top); ``labels``, ``layer``; ``grid`` the
    layer's (H, W).

    >>> p = NearestPatches(["a"], "2b", np.zeros((1, 1, 2), int), np.zeros((1, 2, 3), int),
    ...                    np.ones((1, 2)), np.zeros((1, 2, 3), int), np.ones((1, 2)))
    >>> p.mean_similarity.tolist()
    [1.0]
    """

    labels: list[str]
    layer: str
    query: np.ndarray
    cells: np.ndarray
    similarity: np.ndarray
    examples: np.ndarray
    example_values: np.ndarray
    grid: tuple[int, int] = (16, 16)

    @property
    def mean_similarity(self) -> np.ndarray:
        """(K,) mean cosine similarity of the nearest real cells to the optimized image's."""
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.where(self.cells[..., 0] >= 0, self.similarity, np.nan), 1)


def _top_positions(m: np.ndarray, covered: np.ndarray, q: int) -> np.ndarray:
    """(q, 2) (y, x) of the q largest entries of an (H, W) map among covered positions."""
    flat = np.where(covered, m, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[: min(q, int(covered.sum()))]
    return np.stack([order // m.shape[1], order % m.shape[1]], 1)


def nearest_real_patches(
    agent: nn.Module,
    objectives: Sequence[Objective | str],
    images: Any,
    frames: Any,
    *,
    k: int = TOP_CELLS,
    queries: int = 1,
    per_frame: int = PER_FRAME,
    top: int = TOP_CELLS,
    activations: np.ndarray | None = None,
    batch: int = 256,
) -> NearestPatches:
    """Real cells nearest, by activation at the objectives' layer, to each optimized image.

    For objective ``k`` and its optimized image ``images[k]`` (uint8, shown as an
    observation): the query is the image's activation vector at its ``queries`` strongest
    cells for the objective (among the positions it covers; a neuron has one); every cell
    (frame, y, x) of ``frames`` scores its largest cosine similarity to a query vector; the
    ``k`` best cells with a positive similarity are kept, at most ``per_frame`` per frame
    (:func:`~rlvision_widgets.analysis.features.strongest_cells`). Beside them, the
    objective's ``top`` strongest real cells (its dataset examples, same per-frame cap).
    ``activations`` (N, H, W, C) of ``frames`` at the layer (e.g. ``Analysis.activations``)
    skips their forward pass; frames index ``frames`` flattened (env-major for (E, T, ...)).

    >>> from rlvision_widgets.agents import build_network
    >>> frames = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    >>> p = nearest_real_patches(build_network("compact"), ["2b:0"], frames[:1], frames, k=3)
    >>> p.cells.shape, p.cells[0, 0].tolist() == [0, *p.query[0, 0].tolist()]
    ((1, 3, 3), True)
    """
    objs, layer = _one_layer(objectives)
    for name, v in (("k", k), ("queries", queries), ("per_frame", per_frame), ("top", top)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    imgs = _frames(images, "images")
    if len(imgs) != len(objs):
        raise ValueError(
            f"need one optimized image per objective: {len(imgs)} images, {len(objs)} objectives"
        )
    access = LayerAccess(agent)
    weights = _weights(access, objs, layer)
    acts = _layer_acts(access, frames, layer, activations, batch)
    img_acts = _activations(access, imgs, layer, batch)  # (K, H, W, C)
    covered = np.abs(weights).sum(1) > 0  # (K, H, W)
    img_maps = np.einsum("kyxc,kcyx->kyx", img_acts, weights)
    N, H, W, C = acts.shape
    flat = acts.reshape(-1, C).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1)
    unit = flat / np.where(norms > 0, norms, 1.0)[:, None]
    real_maps = _maps(acts, weights)  # (K, N, H, W)
    K = len(objs)
    q_all = np.full((K, queries, 2), -1, np.int64)
    cells = np.full((K, k, 3), -1, np.int64)
    sims = np.full((K, k), np.nan)
    examples = np.full((K, top, 3), -1, np.int64)
    ex_vals = np.full((K, top), np.nan)
    for i in range(K):
        pos = _top_positions(img_maps[i], covered[i], queries)
        q_all[i, : len(pos)] = pos
        qv = img_acts[i, pos[:, 0], pos[:, 1]].astype(np.float64)  # (q, C)
        qn = np.linalg.norm(qv, axis=1)
        qv = qv / np.where(qn > 0, qn, 1.0)[:, None]
        sim = (unit @ qv.T).max(1).reshape(N, H, W)
        sel = strongest_cells(sim, k, per_frame)
        cells[i, : len(sel)] = sel
        sims[i, : len(sel)] = sim[sel[:, 0], sel[:, 1], sel[:, 2]]
        ex = strongest_cells(np.where(covered[i], real_maps[i], 0.0), top, per_frame)
        examples[i, : len(ex)] = ex
        ex_vals[i, : len(ex)] = real_maps[i][ex[:, 0], ex[:, 1], ex[:, 2]]
    return NearestPatches(
        [o.label for o in objs], layer, q_all, cells, sims, examples, ex_vals, (H, W)
    )


def frame_class_maps(
    traj: Trajectories, size: int | tuple[int, int], classes: Sequence[str] = OBJECT_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Class coverage maps (E*T, h, w, C) from the engine's object boxes for every frame of
    recorded trajectories, in the order of ``traj.obs`` flattened (env-major), and ``valid``
    (E*T,): False for frames whose engine state could not be recovered (their maps are 0).

    >>> import rlvision_widgets as rv
    >>> traj = rv.collect_trajectories("random", num_envs=1, num_steps=3, progress=False)
    >>> maps, valid = frame_class_maps(traj, 16)
    >>> maps.shape, bool(valid.all())
    ((3, 16, 16, 9), True)
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    maps, kept = trajectory_class_maps(traj, (h, w), classes=classes)
    T = traj.num_steps
    out = np.zeros((traj.num_envs * T, h, w, len(classes)), np.float32)
    valid = np.zeros(traj.num_envs * T, bool)
    idx = kept[:, 0] * T + kept[:, 1]
    out[idx] = maps
    valid[idx] = True
    return out, valid


@dataclass
class Objectness:
    """Per objective, the share of cells on or next to each class (``classes``): ``nearest``
    (K, C) of the real cells nearest to the optimized image, ``examples`` (K, C) of the
    objective's dataset examples; ``base`` (C,) of all cells; ``similarity`` (K,) the mean
    cosine similarity of the nearest cells; ``counts`` (K, 2) cells used (nearest, examples);
    ``objects`` the classes :attr:`object_share` counts.

    >>> o = Objectness(["a"], ("coin", "wall"), np.array([[0.1, 0.9]]),
    ...                np.array([[0.8, 0.5]]), np.array([0.1, 0.7]), np.array([0.6]),
    ...                np.array([[32, 32]]), ("coin",), np.array([[0.1, 0.8]]))
    >>> o.best_class(0)
    ('coin', 8.0)
    """

    labels: list[str]
    classes: tuple[str, ...]
    nearest: np.ndarray
    examples: np.ndarray
    base: np.ndarray
    similarity: np.ndarray
    counts: np.ndarray
    objects: tuple[str, ...]
    object_share: np.ndarray  # (K, 2): any of ``objects``, nearest and examples

    def best_class(self, k: int) -> tuple[str, float]:
        """The class whose share among objective ``k``'s dataset examples most exceeds its
        base rate (as an unconfirmed feature's best class in
        :func:`~rlvision_widgets.analysis.features.label_features`), and its lift."""
        excess = np.where(self.base > 0, self.examples[k] - self.base, -np.inf)
        j = int(np.argmax(np.nan_to_num(excess, nan=-np.inf)))
        b = self.base[j]
        return self.classes[j], float(self.examples[k, j] / b) if b > 0 else float("nan")

    def table(self) -> str:
        """Markdown: per objective, the dataset examples' best class and its share among the
        examples and among the nearest real cells to the optimized image, the share on any
        object for both, and the nearest cells' mean cosine similarity.

        >>> o = Objectness(["a"], ("coin",), np.array([[0.25]]), np.array([[0.75]]),
        ...                np.array([0.1]), np.array([0.5]), np.array([[32, 32]]), ("coin",),
        ...                np.array([[0.25, 0.75]]))
        >>> print(o.table().splitlines()[2])
        | a | coin | 0.75 (7.5x) | 0.25 (2.5x) | 0.10 | 0.75 | 0.25 | 0.50 |
        """
        rows = [
            "| objective | examples' best class | share in dataset examples (lift) | share near "
            "optimized image (lift) | base rate | on any object: examples | on any object: "
            "near optimized | cosine of nearest |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for i, lab in enumerate(self.labels):
            cls, lift = self.best_class(i)
            j = self.classes.index(cls)
            b = self.base[j]
            near = self.nearest[i, j]
            rows.append(
                f"| {lab} | {cls} | {self.examples[i, j]:.2f} ({lift:.1f}x) | {near:.2f} "
                f"({near / b if b > 0 else float('nan'):.1f}x) | {b:.2f} | "
                f"{self.object_share[i, 1]:.2f} | {self.object_share[i, 0]:.2f} | "
                f"{self.similarity[i]:.2f} |"
            )
        return "\n".join(rows)


def objectness(
    patches: NearestPatches,
    class_maps: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    classes: Sequence[str] = OBJECT_CLASSES,
    objects: Sequence[str] = OBJECTS,
    near: int = NEAR,
) -> Objectness:
    """Share of the nearest real cells and of the dataset examples lying on or within
    ``near`` cells of each class, by the engine's class maps (F, h, w, C) for the frames
    ``patches`` index (:func:`frame_class_maps`); cells of frames with ``valid`` False are
    left out. ``object_share``: the share holding any class of ``objects``.

    >>> maps = np.zeros((2, 4, 4, 2), np.float32); maps[1, 0, 0, 1] = 1
    >>> p = NearestPatches(["a"], "2b", np.zeros((1, 1, 2), int), np.array([[[1, 1, 1]]]),
    ...                    np.ones((1, 1)), np.array([[[0, 3, 3]]]), np.ones((1, 1)))
    >>> o = objectness(p, maps, classes=("wall", "coin"), objects=("coin",))
    >>> o.nearest.tolist(), o.examples.tolist()
    ([[0.0, 1.0]], [[0.0, 0.0]])
    """
    classes = tuple(resolve_class(c) for c in classes)
    objects = tuple(resolve_class(c) for c in objects)
    missing = [c for c in objects if c not in classes]
    if missing:
        raise ValueError(f"objects {missing} are not among the classes {list(classes)}")
    maps = np.asarray(class_maps)
    if maps.ndim != 4 or maps.shape[-1] != len(classes):
        raise ValueError(
            f"class_maps must be (frames, h, w, {len(classes)}) for classes {list(classes)}, "
            f"got {maps.shape}"
        )
    F = maps.shape[0]
    for name, arr in (("nearest cells", patches.cells), ("dataset examples", patches.examples)):
        used = arr[arr[..., 0] >= 0]
        if len(used) and (
            used[:, 0].max() >= F
            or used[:, 1].max() >= maps.shape[1]
            or used[:, 2].max() >= maps.shape[2]
        ):
            raise ValueError(
                f"{name} index frames/cells outside the class maps {maps.shape[:3]}: pass the "
                "class maps of the same frames, at the layer's resolution"
            )
    ok = np.ones(F, bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (F,):
        raise ValueError(f"valid must be (frames,) = ({F},), got {ok.shape}")
    hold = near_maps(maps, int(near))  # (F, h, w, C)
    base = hold[ok].reshape(-1, len(classes)).mean(0) if ok.any() else np.full(len(classes), 0.0)
    obj_idx = [classes.index(c) for c in objects]
    K = len(patches.labels)
    shares = np.full((2, K, len(classes)), np.nan)
    any_obj = np.full((K, 2), np.nan)
    counts = np.zeros((K, 2), np.int64)
    for s, arr in enumerate((patches.cells, patches.examples)):
        for i in range(K):
            c = arr[i][arr[i][:, 0] >= 0]
            c = c[ok[c[:, 0]]]
            counts[i, s] = len(c)
            if len(c):
                h = hold[c[:, 0], c[:, 1], c[:, 2]]  # (n, C)
                shares[s, i] = h.mean(0)
                any_obj[i, s] = h[:, obj_idx].any(1).mean()
    return Objectness(
        list(patches.labels),
        classes,
        shares[0],
        shares[1],
        base,
        patches.mean_similarity,
        counts,
        objects,
        any_obj,
    )


def _crops(frames: np.ndarray, cells: np.ndarray, grid: tuple[int, int], near: int) -> np.ndarray:
    """(n, s, s, 3) float pixel windows of ``(2 near + 1)`` cells around each (frame, y, x)."""
    H, W = frames.shape[1:3]
    sy, sx = H // grid[0], W // grid[1]
    py, px = near * sy, near * sx
    padded = np.pad(frames, ((0, 0), (py, py), (px, px), (0, 0)), mode="edge")
    out = [
        padded[f, y * sy : y * sy + (2 * near + 1) * sy, x * sx : x * sx + (2 * near + 1) * sx]
        for f, y, x in cells
    ]
    return np.asarray(out, np.float64).reshape(len(cells), (2 * near + 1) * sy, -1, 3)


def _rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).mean((-3, -2, -1)))


def patch_distances(
    patches: NearestPatches, images: Any, frames: Any, *, near: int = NEAR
) -> np.ndarray:
    """``(K, 2)`` RMS pixel distance (0-255) between windows of ``2 near + 1`` layer cells:
    column 0, the optimized image's window at its (first) query cell against the windows of
    its nearest real cells (mean); column 1, those real windows against each other (mean over
    pairs), the distance between real patches the layer reads alike. Column 0 well above
    column 1: the network reads the optimized image like those real patches, but it does not
    look like them. ``frames``: those ``patches`` index.

    >>> frames = np.zeros((3, 64, 64, 3), np.uint8); frames[2] = 30
    >>> p = NearestPatches(["a"], "2b", np.array([[[5, 5]]]), np.array([[[0, 5, 5], [1, 5, 5]]]),
    ...                    np.ones((1, 2)), np.zeros((1, 1, 3), int), np.ones((1, 1)))
    >>> patch_distances(p, frames[2:], frames).tolist()
    [[30.0, 0.0]]
    """
    imgs = _frames(images, "images")
    real = _frames(frames)
    g = tuple(patches.grid)
    if len(imgs) != len(patches.labels):
        raise ValueError(
            f"need one image per objective: {len(imgs)} images for {len(patches.labels)}"
        )
    out = np.full((len(patches.labels), 2), np.nan)
    for i in range(len(patches.labels)):
        c = patches.cells[i][patches.cells[i][:, 0] >= 0]
        if not len(c):
            continue
        q = np.array([[i, *patches.query[i, 0]]])
        mine = _crops(imgs, q, g, near)
        theirs = _crops(real, c, g, near)
        out[i, 0] = _rms(mine, theirs).mean()
        if len(c) > 1:
            d = _rms(theirs[:, None], theirs[None, :])
            out[i, 1] = d[~np.eye(len(c), dtype=bool)].mean()
    return out


def appearance_statistics(images: Any) -> dict[str, np.ndarray]:
    """Per image (N,): ``saturation`` the mean HSV saturation ``(max - min) / max`` of its
    pixels; ``extreme`` the share of channel values <= 15 or >= 240 (near black / full
    colour); ``high_frequency`` the share of the (mean-removed) spectral power of its
    luminance above half the Nyquist frequency (radius > 1/4 cycle per pixel).

    >>> rng = np.random.default_rng(0)
    >>> noise = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    >>> flat = np.full((1, 64, 64, 3), 128, np.uint8)
    >>> s = appearance_statistics(np.concatenate([noise, flat]))
    >>> s["high_frequency"].round(1).tolist(), s["extreme"].round(2).tolist()
    ([0.8, 0.0], [0.13, 0.0])
    """
    x = _frames(images, "images").astype(np.float64) / 255.0
    mx, mn = x.max(-1), x.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.where(mx > 0, mx, 1.0), 0.0).mean((1, 2))
    extreme = ((x <= 15 / 255) | (x >= 240 / 255)).mean((1, 2, 3))
    lum = x @ np.array([0.299, 0.587, 0.114])
    lum = lum - lum.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(lum)) ** 2
    fy = np.fft.fftfreq(lum.shape[1])[:, None]
    fx = np.fft.fftfreq(lum.shape[2])[None, :]
    high = np.sqrt(fy**2 + fx**2) > 0.25
    total = power.sum((1, 2))
    hf = np.where(total > 0, (power * high).sum((1, 2)) / np.where(total > 0, total, 1.0), 0.0)
    return {"saturation": sat, "extreme": extreme, "high_frequency": hf}
