"""Feature identification: which game object (if any) does each NMF feature respond to?

A label is a claim a researcher relies on, so it is given only when a feature's strongest
examples show it, and "unidentified" (no label, never a guess) otherwise.

**Method** (:func:`label_features`). The ground truth is the engine's object boxes (or exact
masks) per frame (:mod:`rlvision_widgets.environment.render`), turned into per-class maps at
layer resolution (:func:`class_maps`, :func:`trajectory_class_maps`). For feature k:

1. *Strongest examples.* Its map per frame is the layer's activations projected on its
   direction (what the dataset examples show and what an edit removes; :func:`project`).
   The 32 strongest cells (frame, y, x) are taken over the frames analysed, **at most one per
   frame** (so one frame, or the two neighbouring cells of one object, cannot decide a label;
   the 32 examples come from 32 frames).
2. *On or next to the object.* A cell holds class c when c covers any part of the cell or of
   its 8 neighbours (at 2b on the compact network: a 12 x 12 px window around the cell,
   inside its 20 px receptive field; the whole receptive field would hold a wall in most
   cells). ``share[k, c]``: the share of the 32 cells that hold c; ``base_rate[c]``: the
   share of all cells of the analysed frames that hold c; ``lift = share / base_rate``.
3. *Test.* A permutation test over cells: the null draws 32 random cells with the same frame
   structure (32 random frames, one random cell each; 999 draws), p = (1 + #null shares >=
   share) / 1000.
4. *Label.* Class c is confirmed when ``share >= 0.5`` and ``share >= 3 x base_rate`` and
   ``p <= 0.01`` (and at least 16 cells where the feature is active). The label is the
   confirmed class with the largest share; a feature confirmed for several classes lists
   them all (``FeatureEvidence.classes``). Unconfirmed features are "unidentified", or
   "weak" when their best class has share >= 0.25, lift >= 2 and p <= 0.01 (shown to the
   user, never used as a label).
5. *Duplicates* are legitimate (saws spread over two features): every feature of a class is
   kept and marked (``FeatureLabels.by_class()``, ``FeatureEvidence.duplicates``); an edit
   named by a class projects all of them out.

False positives, measured (``tests/analysis/test_features.py``, and on 2,048 frames of the
shipped agent): random feature maps get no label: 0 of 320 (white and smoothed noise,
synthetic maps), 0 of 200 white and 0 of 200 smoothed (sigma 1.5 cells) on real frames; with
coarse smoothing (sigma 3, reflecting borders, so maxima gather in the corners) 2 of 200 were
labelled "velocity info": the velocity squares are always in the top-left corner, and a
feature that prefers that corner does have its strongest cells on them. Such classes (drawn
at the same place in every frame: velocity, the centred agent; :func:`fixed_classes`) are
marked ``fixed_place`` in the evidence. The share/lift thresholds bind before the p-value
(with a base rate <= 1/6 and 32 cells, share >= 0.5 has a binomial tail of 1.4e-5).

The older whole-map scores (:func:`score_features`: correlation, mass share, lift, recall of
``|feature|`` against class coverage over all cells) remain for reports; they do not label.

>>> rng = np.random.default_rng(0)
>>> maps = (rng.random((200, 8, 8, len(OBJECT_CLASSES))) > 0.97).astype(np.float32)
>>> feats = rng.random((200, 8, 8, 3)).astype(np.float32) * 0.1
>>> feats[..., 2] += 2 * maps[..., OBJECT_CLASSES.index("saw")]
>>> fl = label_features(feats, maps)
>>> fl.labels, fl.evidence[2].share >= 0.5
(['', '', 'saw'], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..environment.render import OBJECT_CLASSES, ObjectAnnotations, object_boxes
from .labels import CLASS_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..rollouts import Trajectories
    from .nmf import AttributionNMF

__all__ = [
    "FeatureEvidence",
    "FeatureIdentification",
    "FeatureLabels",
    "FeatureScores",
    "METRICS",
    "OBJECT_CLASSES",
    "class_maps",
    "coverage",
    "identify_features",
    "identify_labels",
    "label_features",
    "fixed_classes",
    "project",
    "resolve_class",
    "score_features",
    "strongest_cells",
    "suggest_labels",
    "trajectory_class_maps",
]

_ALIASES = {
    "buzzsaw": "saw",
    "saws": "saw",
    "buzzsaws": "saw",
    "left_enemy": "enemy_left",
    "enemy_moving_left": "enemy_left",
    "left_enemies": "enemy_left",
    "right_enemy": "enemy_right",
    "enemy_moving_right": "enemy_right",
    "right_enemies": "enemy_right",
    "player": "agent",
    "goal": "coin",
    "walls": "wall",
    "crates": "crate",
    "velocity_info": "velocity",
    "vel": "velocity",
    "coins": "coin",
    "box": "crate",
}
METRICS = ("correlation", "mass_share", "lift", "recall")
SIGNALS = ("abs", "positive", "negative")


def resolve_class(name: str) -> str:
    """Canonical object-class name from a name or alias ("buzzsaw", "enemy moving left", ...).

    >>> resolve_class("enemy moving left"), resolve_class("Buzzsaw")
    ('enemy_left', 'saw')
    """
    if not isinstance(name, str):
        raise ValueError(
            f"object class must be a string, one of {list(OBJECT_CLASSES)}; got {name!r}"
        )
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in OBJECT_CLASSES:
        raise ValueError(
            f"unknown object class {name!r}; valid classes: "
            f"{', '.join(OBJECT_CLASSES)} (aliases: {', '.join(sorted(_ALIASES))})"
        )
    return key


# ----------------------------------------------------------------------------- class maps
def coverage(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Share of each cell of a ``size`` grid covered by a boolean (S, S) pixel mask.

    >>> m = np.zeros((64, 64), bool); m[:4, :8] = True
    >>> coverage(m, 16)[0, :3]
    array([1., 1., 0.], dtype=float32)
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    H, W = m.shape
    if H % h == 0 and W % w == 0:
        return m.reshape(h, H // h, w, W // w).mean((1, 3))
    # uneven cells: average the pixels whose centres fall into each cell
    rows = np.minimum((np.arange(H) + 0.5) * h // H, h - 1).astype(int)
    cols = np.minimum((np.arange(W) + 0.5) * w // W, w - 1).astype(int)
    out = np.zeros((h, w), np.float64)
    cnt = np.zeros((h, w), np.float64)
    np.add.at(out, (rows[:, None], cols[None, :]), m)
    np.add.at(cnt, (rows[:, None], cols[None, :]), 1.0)
    return (out / np.maximum(cnt, 1)).astype(np.float32)


def class_maps(
    annotations: Sequence[ObjectAnnotations | dict[int, ObjectAnnotations]],
    size: int | tuple[int, int],
    classes: Sequence[str] = OBJECT_CLASSES,
    use_masks: bool = True,
) -> np.ndarray:
    """(F, h, w, C) class coverage maps at layer resolution from per-frame annotations.

    Each item is an :class:`ObjectAnnotations` or the ``{64: ..., 512: ...}`` dict that
    ``Renderer.objects`` returns (the 64-pixel one is used). Exact masks are used when the
    annotation has them and ``use_masks``; otherwise the union of the class's boxes.

    >>> from rlvision_widgets.environment import CoinRunEnv, EnvOptions
    >>> from rlvision_widgets.environment.render import object_boxes
    >>> st = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0)).get_state()[0]   # doctest: +SKIP
    >>> class_maps([object_boxes(st)], 16).shape                              # doctest: +SKIP
    (1, 16, 16, 9)
    """
    classes = [resolve_class(c) for c in classes]
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    out = np.zeros((len(annotations), h, w, len(classes)), np.float32)
    for f, ann in enumerate(annotations):
        if isinstance(ann, dict):
            ann = ann.get(64) or ann[min(ann)]
        for j, c in enumerate(classes):
            if use_masks and ann.masks is not None and c in ann.masks:
                m = ann.masks[c]
            else:
                m = ann.box_mask(c)
            out[f, ..., j] = coverage(m, (h, w))
    return out


def trajectory_class_maps(
    traj: Trajectories,
    size: int | tuple[int, int],
    frames: Sequence[tuple[int, int]] | None = None,
    masks: str = "boxes",
    classes: Sequence[str] = OBJECT_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Class coverage maps for frames ``(env, step)`` of recorded trajectories.

    ``masks="boxes"`` uses object boxes from the engine state (no rendering, ~1 ms a frame);
    ``"exact"`` re-renders each frame once per class for pixel-exact masks (~30-80 ms a frame).
    Frames whose state cannot be recovered are left out. Returns ``(maps (F, h, w, C),
    frames (F, 2))``.

    >>> traj = collect_trajectories("random", num_envs=1, num_steps=8)        # doctest: +SKIP
    >>> maps, frames = trajectory_class_maps(traj, 16)                         # doctest: +SKIP
    """
    if masks not in ("boxes", "exact"):
        raise ValueError(f"masks must be 'boxes' or 'exact', got {masks!r}")
    if frames is None:
        frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
    frames = sorted((int(e), int(t)) for e, t in frames)  # sequential replay is cheapest
    anns, kept = [], []
    for e, t in frames:
        try:
            state = traj.state_at(e, t)
        except (KeyError, IndexError):
            continue
        if masks == "exact":
            anns.append(traj.renderer.objects(state, masks=True)[64])
        else:
            anns.append(object_boxes(state, 64))
        kept.append((e, t))
    maps = (
        class_maps(anns, size, classes, use_masks=(masks == "exact"))
        if anns
        else np.zeros(
            (0,)
            + ((size, size) if isinstance(size, (int, np.integer)) else tuple(size))
            + (len(classes),),
            np.float32,
        )
    )
    return maps, np.asarray(kept, dtype=np.int64).reshape(-1, 2)


# -------------------------------------------------------------------------------- scoring
@dataclass
class FeatureScores:
    """Scores of K features against C object classes (arrays are (K, C) unless noted).

    ``classes``: class names; ``correlation``, ``mass_share``, ``lift``, ``recall``: see the
    module doc; ``area_share`` (C,): mean coverage of each class; ``frames_with_class`` (C,):
    frames where the class is visible; ``metric``: the score used to rank (``scores``).
    Classes never visible get NaN scores and are never chosen.
    """

    classes: tuple[str, ...]
    correlation: np.ndarray
    mass_share: np.ndarray
    lift: np.ndarray
    recall: np.ndarray
    area_share: np.ndarray
    frames_with_class: np.ndarray
    n_frames: int
    metric: str = "correlation"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.correlation.shape[0])

    @property
    def scores(self) -> np.ndarray:
        """(K, C) the ranking metric."""
        return getattr(self, self.metric)

    def _class_index(self, cls: str) -> int:
        c = resolve_class(cls)
        if c not in self.classes:
            raise ValueError(f"class {c!r} was not scored; scored classes: {list(self.classes)}")
        return self.classes.index(c)

    def best_class(self, k: int) -> tuple[str, float]:
        """(class, score) of the best-matching class of feature ``k`` (("", nan) if none)."""
        if not 0 <= k < self.n_features:
            raise IndexError(f"feature {k} out of range: there are {self.n_features} features")
        row = self.scores[k]
        if not np.isfinite(row).any():
            return "", float("nan")
        j = int(np.nanargmax(row))
        return self.classes[j], float(row[j])

    def best_classes(self) -> list[tuple[str, float]]:
        """:meth:`best_class` of every feature."""
        return [self.best_class(k) for k in range(self.n_features)]

    def feature_for(self, cls: str) -> tuple[int, float]:
        """(feature index, score) of the feature that best matches object class ``cls``.

        >>> s = score_features(np.eye(2, dtype=np.float32).reshape(2, 1, 1, 2).repeat(4, 1),
        ...                    np.eye(2, dtype=np.float32).reshape(2, 1, 1, 2).repeat(4, 1),
        ...                    classes=("saw", "coin"))
        >>> s.feature_for("coin")
        (1, 1.0)
        """
        j = self._class_index(cls)
        col = self.scores[:, j]
        if not np.isfinite(col).any():
            raise ValueError(
                f"no frame shows a {CLASS_LABELS[self.classes[j]]}: cannot find its "
                "feature (collect more frames)"
            )
        k = int(np.nanargmax(col))
        return k, float(col[k])

    def suggested_labels(self, min_score: float = 0.1, with_score: bool = True) -> list[str]:
        """One label per feature: the best class (readable name) and its score, or "" when
        no class scores ``min_score`` or more."""
        out = []
        for cls, s in self.best_classes():
            if not cls or not np.isfinite(s) or s < min_score:
                out.append("")
            else:
                name = CLASS_LABELS.get(cls, cls)
                out.append(f"{name} ({self.metric[:4]} {s:.2f})" if with_score else name)
        return out

    def table(self, digits: int = 2) -> str:
        """Markdown table of the ranking metric (features x classes), best class per row."""
        head = "| feature | " + " | ".join(self.classes) + " | best |"
        rows = [head, "|" + " --- |" * (len(self.classes) + 2)]
        for k in range(self.n_features):
            cells = ["–" if not np.isfinite(x) else f"{x:.{digits}f}" for x in self.scores[k]]
            cls, s = self.best_class(k)
            rows.append(f"| {k} | " + " | ".join(cells) + f" | {cls} ({s:.{digits}f}) |")
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON summary (NaN -> None)."""

        def clean(a: np.ndarray) -> Any:
            a = np.asarray(a, np.float64)
            if a.ndim == 0:
                return round(float(a), 5) if np.isfinite(a) else None
            return [clean(x) for x in a]

        return {
            "metric": self.metric,
            "classes": list(self.classes),
            "n_frames": self.n_frames,
            "correlation": clean(self.correlation),
            "mass_share": clean(self.mass_share),
            "lift": clean(self.lift),
            "recall": clean(self.recall),
            "area_share": clean(self.area_share),
            "frames_with_class": self.frames_with_class.astype(int).tolist(),
            "best": [
                {"feature": k, "class": c, "score": None if not math.isfinite(s) else round(s, 5)}
                for k, (c, s) in enumerate(self.best_classes())
            ],
            "meta": self.meta,
        }


def _signal(features: np.ndarray, signal: str) -> np.ndarray:
    if signal == "abs":
        return np.abs(features)
    if signal == "positive":
        return np.maximum(features, 0)
    if signal == "negative":
        return np.maximum(-features, 0)
    raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")


def score_features(
    features: np.ndarray,
    maps: np.ndarray,
    classes: Sequence[str] = OBJECT_CLASSES,
    metric: str = "correlation",
    signal: str = "abs",
    dilate: int = 0,
) -> FeatureScores:
    """Score every feature map against every class map.

    ``features``: (F, h, w, K) per-frame feature maps (e.g. ``AttributionNMF.reduce(attr)
    .features``, signed attribution, or NMF coefficients of activations); (E, T, h, w, K)
    is flattened. ``maps``: (F, h, w, C) class coverage (:func:`class_maps`) for the same
    frames. ``signal``: use ``|feature|`` ("abs"), its positive or its negative part.
    ``dilate``: grow class maps by this many cells (max filter) to tolerate small offsets
    between an object and where the network responds to it.

    >>> f = np.zeros((4, 4, 4, 2), np.float32); m = np.zeros((4, 4, 4, 2), np.float32)
    >>> m[:, 1, 1, 0] = 1; f[:, 1, 1, 1] = -3; f[:, 2, 2, 0] = 1; m[:, 2, 2, 1] = 1
    >>> s = score_features(f, m, classes=("saw", "coin"))
    >>> [(c, round(v, 6)) for c, v in s.best_classes()]
    [('coin', 1.0), ('saw', 1.0)]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    classes = tuple(resolve_class(c) for c in classes)
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(maps, dtype=np.float32)
    if x.ndim == 5:
        x = x.reshape((-1,) + x.shape[2:])
    if y.ndim == 5:
        y = y.reshape((-1,) + y.shape[2:])
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(
            f"features and maps must be (frames, h, w, K|C); got {x.shape} and {y.shape}"
        )
    if x.shape[:3] != y.shape[:3]:
        raise ValueError(
            f"features {x.shape[:3]} and class maps {y.shape[:3]} must cover the "
            "same frames at the same (layer) resolution"
        )
    if y.shape[-1] != len(classes):
        raise ValueError(
            f"maps have {y.shape[-1]} classes but {len(classes)} class names were given ({classes})"
        )
    if not isinstance(dilate, (int, np.integer)) or dilate < 0:
        raise ValueError(f"dilate must be an integer >= 0, got {dilate!r}")
    if dilate:
        from scipy.ndimage import maximum_filter

        y = maximum_filter(y, size=(1, 2 * dilate + 1, 2 * dilate + 1, 1), mode="constant")
    n_frames = x.shape[0]
    frames_with = (y.reshape(n_frames, -1, y.shape[-1]) > 0).any(1).sum(0)
    X = _signal(x, signal).reshape(-1, x.shape[-1]).astype(np.float64)  # (N, K)
    Y = y.reshape(-1, y.shape[-1]).astype(np.float64)  # (N, C)
    n = X.shape[0]
    xs, ys = X.sum(0), Y.sum(0)
    xy = X.T @ Y  # (K, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = xy / n - np.outer(xs / n, ys / n)
        sx = np.sqrt(np.maximum((X**2).sum(0) / n - (xs / n) ** 2, 0))
        sy = np.sqrt(np.maximum((Y**2).sum(0) / n - (ys / n) ** 2, 0))
        corr = cov / np.outer(sx, sy)
        mass = xy / xs[:, None]
        area = ys / n
        lift = mass / area[None, :]
        thresh = 0.25 * np.percentile(X, 99, axis=0) if n else np.zeros(X.shape[1])
        on = (X > np.maximum(thresh, 1e-12)[None, :]).astype(np.float64)
        recall = (on.T @ Y) / ys[None, :]
    absent = ys <= 0
    for a in (corr, mass, lift, recall):
        a[:, absent] = np.nan
        a[~np.isfinite(a)] = np.nan
    corr = np.clip(corr, -1.0, 1.0)
    return FeatureScores(
        classes,
        corr,
        mass,
        lift,
        recall,
        area,
        frames_with,
        n_frames,
        metric,
        {"signal": signal, "dilate": int(dilate)},
    )


# ------------------------------------------------------- identification by strongest examples
#: Cells taken as a feature's strongest examples (the issue's acceptance property uses 32).
TOP_CELLS = 32
#: At most this many of them from one frame (so one frame cannot decide a label).
PER_FRAME = 1
#: "On or next to the object": the cell or one of its 8 neighbours (at layer resolution).
NEAR = 1
#: A label needs at least this share of the strongest cells on/next to the class ...
MIN_SHARE = 0.5
#: ... at least this many times the class's base rate ...
MIN_LIFT = 3.0
#: ... and a cell-permutation p-value at most this (per feature and class).
ALPHA = 0.01
#: Permutations of the test (the smallest p-value is 1 / (N + 1)).
PERMUTATIONS = 999
#: Fewer positive cells than this: no label (too few examples to judge).
MIN_CELLS = 16
#: Unconfirmed, but the best class has at least this share and lift with p <= ALPHA: "weak".
WEAK = (0.25, 2.0)


@dataclass(frozen=True)
class FeatureEvidence:
    """What one feature's strongest cells contain, and the label it earns.

    ``best_class``: the class with the largest excess share (share - base rate);
    ``share``: the share of the ``n_cells`` strongest cells on or next to it, ``base_rate`` its
    share over all cells, ``lift = share / base_rate``, ``p_value`` the cell-permutation
    p-value; ``confirmed``: the label test passed for ``best_class`` (``label`` is then that
    class, else ""); ``classes``: every class that passed, best first; ``duplicates``: other
    features confirmed for ``label``; ``fixed_place``: ``best_class`` is drawn at the same
    place in (nearly) every frame (the velocity squares, the centred agent), so the label
    cannot be told apart from a preference for that place. ``status``: "identified", "duplicate" (identified, and so
    is another feature), "weak" (a real but not strong enough association) or "unidentified".

    >>> e = FeatureEvidence(3, "saw", 0.8, 0.05, 16.0, 0.001, 32, True, ("saw",), (5,))
    >>> e.label, e.status, e.describe()
    ('saw', 'duplicate', 'buzzsaw: 26/32 strongest cells on/next to it, 16.0x its base rate 5%, p=0.001 (also feature 5)')
    """

    feature: int
    best_class: str
    share: float
    base_rate: float
    lift: float
    p_value: float
    n_cells: int
    confirmed: bool
    classes: tuple[str, ...] = ()
    duplicates: tuple[int, ...] = ()
    weak: bool = False
    fixed_place: bool = False

    @property
    def label(self) -> str:
        """The confirmed class ("" when unidentified)."""
        return self.best_class if self.confirmed else ""

    @property
    def status(self) -> str:
        """ "identified", "duplicate", "weak" or "unidentified"."""
        if self.confirmed:
            return "duplicate" if self.duplicates else "identified"
        return "weak" if self.weak else "unidentified"

    def describe(self) -> str:
        """One line of evidence, e.g. for a legend tooltip or the CLI."""
        if not self.best_class:
            return f"unidentified: only {self.n_cells} cells where the feature is active"
        name = CLASS_LABELS.get(self.best_class, self.best_class)
        hits = int(round(self.share * self.n_cells))
        text = (
            f"{name}: {hits}/{self.n_cells} strongest cells on/next to it, "
            f"{self.lift:.1f}x its base rate {self.base_rate:.0%}, p={self.p_value:.2g}"
        )
        if not self.confirmed:
            return f"{self.status} (best match {text})"
        if self.fixed_place:
            text += " (always at the same place: also fits a feature that prefers that place)"
        others = [CLASS_LABELS.get(c, c) for c in self.classes[1:]]
        if others:
            text += f"; also confirmed: {', '.join(others)}"
        if self.duplicates:
            text += " (also feature" + ("s " if len(self.duplicates) > 1 else " ")
            text += ", ".join(map(str, self.duplicates)) + ")"
        return text

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (rounded numbers, NaN -> None)."""

        def num(x: float, d: int = 4) -> float | None:
            return round(float(x), d) if math.isfinite(x) else None

        return {
            "feature": self.feature,
            "label": self.label,
            "status": self.status,
            "best_class": self.best_class,
            "share": num(self.share),
            "base_rate": num(self.base_rate),
            "lift": num(self.lift, 3),
            "p_value": num(self.p_value, 5),
            "n_cells": self.n_cells,
            "confirmed": self.confirmed,
            "classes": list(self.classes),
            "duplicates": list(self.duplicates),
            "fixed_place": self.fixed_place,
        }


@dataclass
class FeatureLabels:
    """Identification of K features by their strongest examples (see the module doc).

    Arrays: ``share``, ``lift``, ``p_value`` (K, C); ``base_rate`` (C,); ``cells`` (K, n, 3)
    the (frame, y, x) strongest cells of each feature (-1 rows where there were fewer);
    ``evidence``: one :class:`FeatureEvidence` per feature; ``settings``: the test's settings.

    >>> maps = np.zeros((40, 8, 8, 2), np.float32); maps[np.arange(40), np.arange(40) % 8, 2, 0] = 1
    >>> feats = np.random.default_rng(0).random((40, 8, 8, 2)).astype(np.float32) * 0.1
    >>> feats[..., 0] += maps[..., 0]
    >>> fl = label_features(feats, maps, classes=("saw", "coin"))
    >>> fl.labels, fl.by_class()
    (['saw', ''], {'saw': [0]})
    """

    classes: tuple[str, ...]
    share: np.ndarray
    base_rate: np.ndarray
    lift: np.ndarray
    p_value: np.ndarray
    cells: np.ndarray
    evidence: list[FeatureEvidence]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Per feature: its confirmed class, or "" (unidentified)."""
        return [e.label for e in self.evidence]

    def by_class(self) -> dict[str, list[int]]:
        """Class -> every feature confirmed for it (duplicates kept; a feature confirmed for
        several classes appears under each)."""
        out: dict[str, list[int]] = {}
        for e in self.evidence:
            for c in e.classes:
                out.setdefault(c, []).append(e.feature)
        return out

    def features_for(self, cls: str) -> list[int]:
        """Every feature confirmed for class ``cls`` (best share first; [] when none)."""
        c = resolve_class(cls)
        ks = self.by_class().get(c, [])
        if not ks:
            return []
        j = self.classes.index(c)
        return sorted(ks, key=lambda k: (-self.share[k, j], k))

    def meets_property(self, k: int, cls: str) -> bool:
        """Share >= ``min_share`` and lift >= ``min_lift`` for ``cls`` (the p-value aside)."""
        j = self.classes.index(resolve_class(cls))
        s = self.settings
        return bool(
            self.evidence[k].n_cells >= s.get("min_cells", MIN_CELLS)
            and self.share[k, j] >= s.get("min_share", MIN_SHARE)
            and self.lift[k, j] >= s.get("min_lift", MIN_LIFT)
        )

    def suggestions(self, with_score: bool = True) -> list[str]:
        """Legend suggestions: the readable class name ("" when unidentified); with
        ``with_score``, its evidence, e.g. ``"buzzsaw (27/32 on, 9.1x base; also feature 5)"``.
        """
        out = []
        for e in self.evidence:
            if not e.confirmed:
                out.append("")
                continue
            name = " / ".join(CLASS_LABELS.get(c, c) for c in e.classes)
            if with_score:
                hits = int(round(e.share * e.n_cells))
                extra = (
                    f"; also feature {', '.join(map(str, e.duplicates))}" if e.duplicates else ""
                )
                name = f"{name} ({hits}/{e.n_cells} on, {e.lift:.1f}x base{extra})"
            out.append(name)
        return out

    def table(self) -> str:
        """Markdown table: per feature, its label or status and the evidence."""
        rows = ["| feature | label | status | best class | share | base rate | lift | p |"]
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for e in self.evidence:
            rows.append(
                f"| {e.feature} | {CLASS_LABELS.get(e.label, e.label) or 'unidentified'} | "
                f"{e.status} | {e.best_class} | {e.share:.2f} | {e.base_rate:.3f} | "
                f"{e.lift:.1f} | {e.p_value:.3g} |"
            )
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: settings, per-feature evidence, class -> features, and the (K, C)
        share / lift / p-value tables (:meth:`from_json` reads it back, without the cells).

        >>> maps = np.zeros((40, 8, 8, 1), np.float32); maps[np.arange(40), 3, 2, 0] = 1
        >>> feats = np.random.default_rng(0).random((40, 8, 8, 1)).astype(np.float32)
        >>> fl = label_features(feats + maps, maps, classes=("saw",))
        >>> FeatureLabels.from_json(fl.to_json()).labels == fl.labels
        True
        """

        def table(x: np.ndarray, d: int) -> list[list[float | None]]:
            return [[round(float(v), d) if math.isfinite(v) else None for v in r] for r in x]

        return {
            "method": "strongest examples",
            "settings": dict(self.settings),
            "classes": list(self.classes),
            "base_rate": [round(float(x), 5) for x in self.base_rate],
            "share": table(self.share, 5),
            "lift": table(self.lift, 4),
            "p_value": table(self.p_value, 5),
            "features": [e.to_json() for e in self.evidence],
            "by_class": self.by_class(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FeatureLabels:
        """Read :meth:`to_json`'s output (a saved report); ``cells`` come back empty. A
        malformed document raises ``ValueError`` naming the field."""
        try:
            classes = tuple(str(c) for c in doc["classes"])
            K = len(doc["features"])

            def arr(name: str) -> np.ndarray:
                a = np.array(
                    [[np.nan if v is None else float(v) for v in r] for r in doc[name]],
                    np.float64,
                ).reshape(K, len(classes))
                return a

            evidence = [
                FeatureEvidence(
                    int(e["feature"]),
                    str(e["best_class"]),
                    np.nan if e["share"] is None else float(e["share"]),
                    np.nan if e["base_rate"] is None else float(e["base_rate"]),
                    np.nan if e["lift"] is None else float(e["lift"]),
                    np.nan if e["p_value"] is None else float(e["p_value"]),
                    int(e["n_cells"]),
                    bool(e["confirmed"]),
                    tuple(e.get("classes", ())),
                    tuple(int(k) for k in e.get("duplicates", ())),
                    e.get("status") == "weak",
                    bool(e.get("fixed_place", False)),
                )
                for e in doc["features"]
            ]
            return cls(
                classes,
                arr("share"),
                np.array(doc["base_rate"], np.float64),
                arr("lift"),
                arr("p_value"),
                np.full((K, 0, 3), -1, np.int64),
                evidence,
                dict(doc.get("settings", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not a FeatureLabels document ({type(exc).__name__}: {exc})"
            ) from None


def project(activations: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(..., h, w, K) activations projected on each direction (dot product), as the dataset
    examples (:func:`~rlvision_widgets.analysis.featureviz.feature_maps`, "project").

    >>> project(np.ones((2, 3, 3, 4)), np.eye(2, 4)).shape
    (2, 3, 3, 2)
    """
    a = np.asarray(activations, np.float32)
    d = np.asarray(directions, np.float32)
    if d.ndim != 2 or a.shape[-1] != d.shape[1]:
        raise ValueError(
            f"activations (..., C) and directions (K, C) must share C; got {a.shape} and {d.shape}"
        )
    return a @ d.T


def fixed_classes(
    hold: np.ndarray, classes: Sequence[str], min_iou: float = 0.8
) -> tuple[str, ...]:
    """Classes drawn at the same place in (nearly) every frame where they are visible: the
    mean IoU of each frame's (F, h, w, C) ``hold`` mask with the cells held in most frames is
    at least ``min_iou``.

    >>> hold = np.zeros((4, 4, 4, 2), bool); hold[:, 0, 0, 0] = True
    >>> hold[np.arange(4), np.arange(4), 2, 1] = True
    >>> fixed_classes(hold, ("velocity", "saw"))
    ('velocity',)
    """
    out = []
    for j, c in enumerate(classes):
        h = hold[..., j]
        seen = h.any((1, 2))
        if not seen.any():
            continue
        mode = h[seen].mean(0) >= 0.5
        inter = (h[seen] & mode).sum((1, 2))
        union = (h[seen] | mode).sum((1, 2))
        if np.mean(inter / np.maximum(union, 1)) >= min_iou:
            out.append(c)
    return tuple(out)


def near_maps(maps: np.ndarray, near: int) -> np.ndarray:
    """(F, h, w, C) bool: class present in the cell or within ``near`` cells of it.

    >>> m = np.zeros((1, 3, 3, 1)); m[0, 0, 0, 0] = 1
    >>> near_maps(m, 1)[0, :, :, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    """
    hold = np.asarray(maps) > 0
    if near:
        from scipy.ndimage import maximum_filter

        size = (1, 2 * near + 1, 2 * near + 1, 1)
        hold = maximum_filter(hold, size=size, mode="constant", cval=False)
    return hold


def strongest_cells(
    signal: np.ndarray, top: int = TOP_CELLS, per_frame: int = PER_FRAME
) -> np.ndarray:
    """(n, 3) (frame, y, x) of the ``top`` largest positive cells of an (F, h, w) map, at most
    ``per_frame`` from one frame, strongest first (n < ``top`` when fewer cells are positive).

    >>> s = np.zeros((3, 4, 4)); s[0, 1, 1] = 5; s[0, 2, 2] = 4; s[0, 3, 3] = 3; s[2, 0, 0] = 1
    >>> strongest_cells(s, top=3, per_frame=2).tolist()
    [[0, 1, 1], [0, 2, 2], [2, 0, 0]]
    """
    s = np.asarray(signal, np.float64)
    if s.ndim != 3:
        raise ValueError(f"signal must be (frames, h, w), got shape {s.shape}")
    if top < 1 or per_frame < 1:
        raise ValueError(f"top and per_frame must be >= 1, got {top} and {per_frame}")
    F, h, w = s.shape
    flat = s.reshape(F, h * w)
    m = min(per_frame, h * w)
    part = np.argpartition(-flat, m - 1, axis=1)[:, :m]  # each frame's m largest
    vals = np.take_along_axis(flat, part, 1)
    frames = np.repeat(np.arange(F), m)
    cells, vals = part.ravel(), vals.ravel()
    keep = vals > 0
    frames, cells, vals = frames[keep], cells[keep], vals[keep]
    order = np.lexsort((cells, frames, -vals))[:top]  # strongest first, ties stable
    f, c = frames[order], cells[order]
    return np.stack([f, c // w, c % w], 1).astype(np.int64).reshape(-1, 3)


def label_features(
    features: np.ndarray,
    maps: np.ndarray,
    classes: Sequence[str] = OBJECT_CLASSES,
    *,
    signal: str = "abs",
    top: int = TOP_CELLS,
    per_frame: int = PER_FRAME,
    near: int = NEAR,
    min_share: float = MIN_SHARE,
    min_lift: float = MIN_LIFT,
    alpha: float = ALPHA,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> FeatureLabels:
    """Identify each feature by its strongest examples (the module doc has the method).

    ``features``: (F, h, w, K) per-frame feature maps ((E, T, h, w, K) is flattened);
    ``maps``: (F, h, w, C) class coverage at the same resolution (:func:`class_maps`,
    :func:`trajectory_class_maps`). A feature gets class c when, of its ``top`` strongest cells
    (at most ``per_frame`` a frame), a share >= ``min_share`` lies on or within ``near`` cells
    of c, that share is >= ``min_lift`` x c's base rate, and the frame-permutation p-value
    (``permutations`` shuffles of which frame's objects go with which frame's feature map)
    is <= ``alpha``.

    >>> rng = np.random.default_rng(0)
    >>> maps = np.zeros((64, 8, 8, 2), np.float32)
    >>> maps[np.arange(64), rng.integers(0, 8, 64), rng.integers(0, 8, 64), 1] = 1
    >>> feats = rng.random((64, 8, 8, 3)).astype(np.float32) * 0.1
    >>> feats[..., 2] -= maps[..., 1]                       # a coin feature (negative)
    >>> label_features(feats, maps, classes=("saw", "coin")).labels
    ['', '', 'coin']
    """
    classes = tuple(resolve_class(c) for c in classes)
    x = np.asarray(features, np.float32)
    y = np.asarray(maps, np.float32)
    if x.ndim == 5:
        x = x.reshape((-1,) + x.shape[2:])
    if y.ndim == 5:
        y = y.reshape((-1,) + y.shape[2:])
    if x.ndim != 4 or y.ndim != 4 or x.shape[:3] != y.shape[:3]:
        raise ValueError(
            "features (frames, h, w, K) and class maps (frames, h, w, C) must cover the same "
            f"frames at the same (layer) resolution; got {x.shape} and {y.shape}"
        )
    if y.shape[-1] != len(classes):
        raise ValueError(f"maps have {y.shape[-1]} classes but {len(classes)} names were given")
    if not (0 < min_share <= 1 and min_lift > 0 and 0 < alpha < 1 and permutations >= 1):
        raise ValueError(
            "need 0 < min_share <= 1, min_lift > 0, 0 < alpha < 1 and permutations >= 1; got "
            f"{min_share}, {min_lift}, {alpha}, {permutations}"
        )
    F, K, C = x.shape[0], x.shape[-1], len(classes)
    hold = near_maps(y, int(near))  # (F, h, w, C)
    base = hold.reshape(-1, C).mean(0) if F else np.zeros(C)
    fixed = fixed_classes(hold, classes)
    rng = np.random.default_rng(seed)
    hw = hold.shape[1] * hold.shape[2]
    flat_hold = hold.reshape(F, hw, C)
    share = np.full((K, C), np.nan)
    pval = np.full((K, C), np.nan)
    cells = np.full((K, top, 3), -1, np.int64)
    counts = np.zeros(K, np.int64)
    sig = _signal(x, signal)
    for k in range(K):
        sel = strongest_cells(sig[..., k], top, per_frame)
        n = len(sel)
        counts[k] = n
        cells[k, :n] = sel
        if n == 0:
            continue
        f, r, c = sel[:, 0], sel[:, 1], sel[:, 2]
        obs = hold[f, r, c].mean(0)  # (C,)
        # null: n random cells with the same frame structure (as many frames, as many cells
        # from each), i.e. the selection with its cells permuted over all cells
        _, inverse = np.unique(f, return_inverse=True)
        nf = int(inverse.max()) + 1
        null_f = rng.integers(0, F, (permutations, nf))[:, inverse]  # (P, n)
        null_c = rng.integers(0, hw, (permutations, n))
        null = flat_hold[null_f, null_c].mean(1)  # (P, C)
        share[k] = obs
        pval[k] = (1 + (null >= obs[None, :] - 1e-12).sum(0)) / (permutations + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = share / base[None, :]
    lift[:, base <= 0] = np.nan
    ok = (
        (counts[:, None] >= MIN_CELLS)
        & (share >= min_share)
        & (lift >= min_lift)
        & (pval <= alpha)
        & (base[None, :] > 0)
    )
    weak_ok = (
        (counts[:, None] >= MIN_CELLS)
        & (share >= WEAK[0])
        & (lift >= WEAK[1])
        & (pval <= alpha)
        & (base[None, :] > 0)
    )
    evidence = []
    for k in range(K):
        conf = [j for j in np.argsort(-np.nan_to_num(share[k], nan=-1), kind="stable") if ok[k, j]]
        if conf:
            j = conf[0]
        elif counts[k] and np.isfinite(share[k]).any():
            excess = np.where(base > 0, share[k] - base, -np.inf)
            j = int(np.argmax(excess))
        else:
            j = None
        evidence.append(
            FeatureEvidence(
                k,
                classes[j] if j is not None else "",
                float(share[k, j]) if j is not None else float("nan"),
                float(base[j]) if j is not None else float("nan"),
                float(lift[k, j]) if j is not None else float("nan"),
                float(pval[k, j]) if j is not None else float("nan"),
                int(counts[k]),
                bool(conf),
                tuple(classes[i] for i in conf),
                (),
                bool(j is not None and not conf and weak_ok[k, j]),
                bool(j is not None and classes[j] in fixed),
            )
        )
    by_label: dict[str, list[int]] = {}
    for e in evidence:
        if e.confirmed:
            by_label.setdefault(e.label, []).append(e.feature)
    evidence = [
        replace(e, duplicates=tuple(i for i in by_label[e.label] if i != e.feature))
        if e.confirmed
        else e
        for e in evidence
    ]
    settings = {
        "top": int(top),
        "per_frame": int(per_frame),
        "near": int(near),
        "min_share": float(min_share),
        "min_lift": float(min_lift),
        "alpha": float(alpha),
        "permutations": int(permutations),
        "min_cells": MIN_CELLS,
        "fixed_place_classes": list(fixed),
        "signal": signal,
        "frames": int(F),
        "seed": int(seed),
    }
    return FeatureLabels(classes, share, base, lift, pval, cells, evidence, settings)


def _sample_frames(traj: Trajectories, max_frames: int | None, seed: int) -> list[tuple[int, int]]:
    frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
    if max_frames is not None and len(frames) > max_frames:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(frames), max_frames, replace=False))
        frames = [frames[i] for i in pick]
    return frames


def identify_labels(
    features: np.ndarray | None,
    maps: np.ndarray | None = None,
    traj: Trajectories | None = None,
    frames: Sequence[tuple[int, int]] | None = None,
    max_frames: int | None = 1024,
    seed: int = 0,
    *,
    activations: np.ndarray | None = None,
    directions: np.ndarray | None = None,
    **kwargs: Any,
) -> FeatureLabels:
    """:func:`label_features` for the explorer and :func:`~rlvision_widgets.analysis.pipeline.
    analyze`: class maps are built from the trajectories' engine states (object boxes).

    Either pass ``maps`` for the same frames as ``features`` (F, h, w, K), or ``traj`` with
    per-step features (E, T, h, w, K): ``frames`` (env, step) or up to ``max_frames`` frames
    sampled (seeded; None = all). ``kwargs`` go to :func:`label_features`.

    The recommended input (what the dataset examples show, and what an edit removes) is the
    layer's ``activations`` (E, T, h, w, C) with the NMF ``directions`` (K, C): the features
    are then the activations projected on each direction (``signal="positive"``), and
    ``features`` may be None. Attribution features (``AttributionNMF.reduce(...).features``)
    also work, but their strongest cells are where the *output* depends most on them, mostly
    walls near the agent, so few of them earn a label.

    >>> fl = identify_labels(reduction.features, traj=traj)                  # doctest: +SKIP
    >>> fl.suggestions()[:2], fl.by_class()                                  # doctest: +SKIP
    (['', 'buzzsaw (27/32 on, 9.1x base)'], {'saw': [1]})
    """
    if activations is not None or directions is not None:
        if activations is None or directions is None:
            raise ValueError("pass both activations=(E, T, h, w, C) and directions=(K, C)")
        features = project(activations, directions)
        kwargs.setdefault("signal", "positive")
    if features is None:
        raise ValueError("pass the features (or activations=... and directions=...)")
    x = np.asarray(features)
    if maps is None:
        if traj is None:
            raise ValueError(
                "feature identification needs class maps (maps=...) or the trajectories "
                "(traj=...) the features were computed on"
            )
        if x.ndim != 5 or x.shape[:2] != (traj.num_envs, traj.num_steps):
            raise ValueError(
                f"with traj=..., features must be (envs, steps, h, w, K) = "
                f"({traj.num_envs}, {traj.num_steps}, h, w, K); got {x.shape}"
            )
        if frames is None:
            frames = _sample_frames(traj, max_frames, seed)
        maps, kept = trajectory_class_maps(traj, x.shape[2:4], frames)
        x = x[kept[:, 0], kept[:, 1]]
    return label_features(x, maps, seed=seed, **kwargs)


def suggest_labels(
    features: np.ndarray | None,
    maps: np.ndarray | None = None,
    traj: Trajectories | None = None,
    frames: Sequence[tuple[int, int]] | None = None,
    max_frames: int | None = 1024,
    with_score: bool = True,
    seed: int = 0,
    *,
    activations: np.ndarray | None = None,
    directions: np.ndarray | None = None,
    **kwargs: Any,
) -> list[str]:
    """Suggested legend labels, one per feature: ``identify_labels(...).suggestions()``.

    "" for a feature that is not identified (never a guess); a confirmed class otherwise,
    with its evidence when ``with_score``. Use :func:`identify_labels` for the evidence
    (status "weak"/"duplicate", share, base rate, lift, p-value).

    >>> labels = suggest_labels(None, traj=traj, activations=acts, directions=nmf.components_)
    ... # doctest: +SKIP
    >>> labels[:2]                                                            # doctest: +SKIP
    ['', 'buzzsaw (27/32 on, 9.1x base)']
    """
    fl = identify_labels(
        features,
        maps,
        traj,
        frames,
        max_frames,
        seed,
        activations=activations,
        directions=directions,
        **kwargs,
    )
    return fl.suggestions(with_score=with_score)


# ------------------------------------------------------------------ end to end on an agent
@dataclass
class FeatureIdentification:
    """NMF features of an agent's layer and what each one is (see the module doc).

    ``nmf``: the fitted :class:`~rlvision_widgets.analysis.nmf.AttributionNMF`
    (``nmf.components_[k]`` is feature k's direction); ``labels``: :class:`FeatureLabels`,
    the identification by strongest examples (None for an identification loaded without
    it); ``scores``: :class:`FeatureScores`, the older whole-map correlation scores (kept for
    reports; not used to label); ``layer``, ``output``; ``frames`` (F, 2) the frames used.
    ``attributions``, ``activations`` (F, h, w, C) and ``class_maps`` (F, h, w, classes): what
    the identification computed on those frames (None for one loaded from a file).
    """

    nmf: AttributionNMF
    scores: FeatureScores
    layer: str
    output: str
    frames: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    labels: FeatureLabels | None = None
    attributions: np.ndarray | None = field(default=None, repr=False)
    activations: np.ndarray | None = field(default=None, repr=False)
    class_maps: np.ndarray | None = field(default=None, repr=False)

    def direction(self, feature: int | str) -> np.ndarray:
        """Channel-space direction of a feature given by index or object-class name (the
        best-supported feature identified with that class)."""
        k = self.index(feature)
        return np.asarray(self.nmf.components_[k], np.float32)

    def identified_classes(self) -> dict[str, list[int]]:
        """Class -> features identified with it ({} without labels)."""
        return self.labels.by_class() if self.labels is not None else {}

    def features_for(self, cls: str) -> list[int]:
        """Every feature identified with object class ``cls``; a ValueError naming the
        classes that were identified when there is none."""
        c = resolve_class(cls)
        ks = self.labels.features_for(c) if self.labels is not None else []
        if not ks:
            found = self.identified_classes()
            have = (
                ", ".join(
                    f"{CLASS_LABELS.get(k, k)} (feature {', '.join(map(str, v))})"
                    for k, v in found.items()
                )
                or "none"
            )
            raise ValueError(
                f"no feature is identified with {CLASS_LABELS.get(c, c)!r} at layer {self.layer} "
                f"(rank {self.nmf.components_.shape[0]}); identified classes: {have}. Edit a "
                "feature by its number instead, or try another rank or a larger corpus"
            )
        return ks

    def index(self, feature: int | str) -> int:
        """Feature index from an index or an object-class name (the feature identified with
        it whose strongest cells lie on it most often)."""
        K = self.nmf.components_.shape[0]
        if isinstance(feature, (int, np.integer)) or (
            isinstance(feature, str) and feature.strip().isdigit()
        ):
            k = int(feature)
            if not 0 <= k < K:
                raise ValueError(f"feature index {k} out of range: valid indices 0..{K - 1}")
            return k
        return self.features_for(feature)[0]

    def summary(self) -> list[dict[str, Any]]:
        """Per feature: index, label ("" if unidentified), status and evidence (best class,
        share of strongest cells, base rate, lift, p-value), explained mass share."""
        mass = np.asarray(self.nmf.component_mass_, np.float64)
        share = mass / max(mass.sum(), 1e-30)
        rows = []
        for k in range(self.nmf.components_.shape[0]):
            ev = self.labels.evidence[k].to_json() if self.labels is not None else {}
            cls = ev.get("label", "")
            rows.append(
                {
                    "feature": k,
                    "class": cls,
                    "label": CLASS_LABELS.get(cls, cls) if cls else "unidentified",
                    "status": ev.get("status", "not computed"),
                    "evidence": ev,
                    "mass_share_of_features": round(float(share[k]), 4),
                }
            )
        return rows


def identify_features(
    agent: nn.Module,
    traj: Trajectories,
    layer: str | None = None,
    rank: int = 8,
    output: str = "value",
    ig_steps: int = 10,
    nmf: AttributionNMF | None = None,
    masks: str = "boxes",
    signal: str = "abs",
    source: str = "attribution",
    dilate: int = 0,
    metric: str = "correlation",
    max_frames: int | None = 4096,
    seed: int = 0,
) -> FeatureIdentification:
    """Fit (or take) the article's attribution NMF at ``layer`` and identify its features.

    Integrated gradients of ``output`` (10 right-Riemann steps, zero baseline at the layer, as
    the article) on the trajectories' frames; NMF of rank ``rank`` on the attributions (the
    one ``analysis.settings.NMF_SETTINGS``, as the explorer and
    :func:`~rlvision_widgets.analysis.pipeline.analyze`) unless ``nmf`` is given. Labels:
    :func:`label_features` on the activations projected on each direction (the dataset
    examples) against class maps from ``masks`` ("boxes" or "exact"). ``signal``, ``source``,
    ``dilate`` and ``metric`` only set the older correlation ``scores``. ``layer`` defaults to
    the agent's object layer ("2b").

    >>> traj = collect_trajectories(agent, num_envs=8, num_steps=256, seed=0)  # doctest: +SKIP
    >>> ident = identify_features(agent, traj)                                 # doctest: +SKIP
    >>> ident.features_for("saw")                                              # doctest: +SKIP
    [6, 7, 1]
    """
    from .integrated_gradients import integrated_gradients
    from .layers import LayerAccess
    from .settings import make_nmf

    if source not in ("attribution", "activation"):
        raise ValueError(f"source must be 'attribution' or 'activation', got {source!r}")
    access = LayerAccess(agent)
    layer = layer or object_layer(agent)
    layer = access.check_layer(layer)
    frames = _sample_frames(traj, max_frames, seed)
    idx = np.asarray(frames, dtype=np.int64)
    obs = traj.obs[idx[:, 0], idx[:, 1]]
    attr = integrated_gradients(access, obs, layer, output=output, steps=ig_steps)
    if nmf is None:
        nmf = make_nmf(rank, seed).fit(attr.attributions)  # the package's one NMF_SETTINGS
    if source == "attribution":
        feats = nmf.reduce(attr.attributions).features
    else:
        feats = nmf.transform(attr.activations)
    h, w = feats.shape[1:3]
    maps, kept = trajectory_class_maps(traj, (h, w), frames, masks=masks)
    pos = {f: i for i, f in enumerate(frames)}
    rows = np.array([pos[(int(e), int(t))] for e, t in kept], dtype=np.int64)
    scores = score_features(feats[rows], maps, metric=metric, signal=signal, dilate=dilate)
    scores.meta.update(layer=layer, output=output, source=source, masks=masks)
    acts = np.asarray(attr.activations)[rows]
    labels = label_features(project(acts, nmf.components_), maps, signal="positive", seed=seed)
    labels.settings.update(layer=layer, masks=masks, source="activations on directions")
    return FeatureIdentification(
        nmf,
        scores,
        layer,
        str(attr.output),
        kept,
        {
            "ig_steps": ig_steps,
            "rank": int(nmf.components_.shape[0]),
            "frames": int(len(kept)),
            "source": source,
            "masks": masks,
            "seed": int(seed),
        },
        labels,
        attributions=np.asarray(attr.attributions)[rows],
        activations=acts,
        class_maps=maps,
    )


def object_layer(agent: nn.Module) -> str:
    """The agent's object layer: ``config.object_layer`` ("2b") or, for any other model, the
    middle of its layers that are not activations (no "relu" in the name). The default layer of
    :func:`~rlvision_widgets.analysis.pipeline.analyze`, the explorer and the CLI.

    >>> from rlvision_widgets.agents import build_network
    >>> object_layer(build_network("compact"))
    '2b'
    """
    from .layers import LayerAccess

    inner = getattr(agent, "agent", agent)  # EditedAgent wraps the network
    cfg = getattr(inner, "config", None)
    name = getattr(cfg, "object_layer", None)
    names = LayerAccess(agent).layer_names
    if name in names:
        return name
    convs = [n for n in names if "relu" not in n.lower()] or names
    return convs[len(convs) // 2]
