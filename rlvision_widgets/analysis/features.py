"""Automatic feature identification: which game object does each NMF feature respond to?

Every NMF feature gives, per frame, a map at layer resolution (its share of the attribution, or
its coefficient in the activations). Every object class has a ground-truth map from the engine
(:mod:`rlvision_widgets.environment.render`): the share of each layer cell covered by the class,
from exact masks or from boxes. A feature is scored against a class over all frames and cells:

* ``correlation`` (the default score): Pearson correlation between ``|feature|`` and the class
  coverage. It rewards a feature that is large exactly where the class is, whatever the
  class's size, and is 0 for a feature unrelated to it.
* ``mass_share``: the share of the feature's mass that lies on the class (precision).
* ``lift``: ``mass_share`` divided by the class's share of all cells (1 = no preference).
* ``recall``: the share of the class's coverage where the feature is "on" (above a quarter of
  its 99th percentile).

The best class of each feature, with its score, is its suggested label; ``feature_for("saw")``
finds "the saw feature" with no hand inspection.

>>> rng = np.random.default_rng(0)
>>> maps = (rng.random((20, 8, 8, len(OBJECT_CLASSES))) > 0.9).astype(np.float32)
>>> feats = rng.random((20, 8, 8, 3)).astype(np.float32) * 0.1
>>> feats[..., 2] += 2 * maps[..., OBJECT_CLASSES.index("saw")]
>>> scores = score_features(feats, maps)
>>> scores.best_class(2)[0], scores.feature_for("saw")[0]
('saw', 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..environment.render import OBJECT_CLASSES, ObjectAnnotations, object_boxes
from .labels import CLASS_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..rollouts import Trajectories
    from .nmf import AttributionNMF

__all__ = [
    "FeatureIdentification",
    "FeatureScores",
    "METRICS",
    "OBJECT_CLASSES",
    "class_maps",
    "coverage",
    "identify_features",
    "resolve_class",
    "score_features",
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


def suggest_labels(
    features: np.ndarray,
    maps: np.ndarray | None = None,
    traj: Trajectories | None = None,
    frames: Sequence[tuple[int, int]] | None = None,
    max_frames: int = 512,
    min_score: float = 0.1,
    with_score: bool = True,
    seed: int = 0,
    **score_kwargs: Any,
) -> list[str]:
    """Suggested legend labels, one per feature, for the explorer.

    Either pass ``maps`` for the same frames as ``features`` (F, h, w, K), or pass the
    trajectories ``traj`` and per-step features (E, T, h, w, K): up to ``max_frames`` frames
    are sampled (seeded) and their class maps built from object boxes.

    >>> labels = suggest_labels(reduction.features, traj=traj)               # doctest: +SKIP
    >>> labels[:2]                                                            # doctest: +SKIP
    ['buzzsaw (corr 0.41)', 'coin (corr 0.55)']
    """
    x = np.asarray(features)
    if maps is None:
        if traj is None:
            raise ValueError(
                "suggest_labels needs class maps (maps=...) or the trajectories "
                "(traj=...) the features were computed on"
            )
        if x.ndim != 5 or x.shape[:2] != (traj.num_envs, traj.num_steps):
            raise ValueError(
                f"with traj=..., features must be (envs, steps, h, w, K) = "
                f"({traj.num_envs}, {traj.num_steps}, h, w, K); got {x.shape}"
            )
        if frames is None:
            all_frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
            rng = np.random.default_rng(seed)
            pick = np.sort(
                rng.choice(len(all_frames), min(max_frames, len(all_frames)), replace=False)
            )
            frames = [all_frames[i] for i in pick]
        maps, kept = trajectory_class_maps(traj, x.shape[2:4], frames)
        x = x[kept[:, 0], kept[:, 1]]
    scores = score_features(x, maps, **score_kwargs)
    return scores.suggested_labels(min_score=min_score, with_score=with_score)


# ------------------------------------------------------------------ end to end on an agent
@dataclass
class FeatureIdentification:
    """NMF features of an agent's layer, each scored against the object classes.

    ``nmf``: the fitted :class:`~rlvision_widgets.analysis.nmf.AttributionNMF`
    (``nmf.components_[k]`` is feature k's direction); ``scores``: :class:`FeatureScores`;
    ``layer``, ``output``; ``frames`` (F, 2) the (env, step) frames scored.
    """

    nmf: AttributionNMF
    scores: FeatureScores
    layer: str
    output: str
    frames: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def direction(self, feature: int | str) -> np.ndarray:
        """Channel-space direction of a feature given by index or object-class name."""
        k = self.index(feature)
        return np.asarray(self.nmf.components_[k], np.float32)

    def index(self, feature: int | str) -> int:
        """Feature index from an index or an object-class name (its best-matching feature)."""
        K = self.nmf.components_.shape[0]
        if isinstance(feature, (int, np.integer)) or (
            isinstance(feature, str) and feature.strip().isdigit()
        ):
            k = int(feature)
            if not 0 <= k < K:
                raise ValueError(f"feature index {k} out of range: valid indices 0..{K - 1}")
            return k
        return self.scores.feature_for(feature)[0]

    def summary(self) -> list[dict[str, Any]]:
        """Per feature: index, best class, score, explained mass share."""
        mass = np.asarray(self.nmf.component_mass_, np.float64)
        share = mass / max(mass.sum(), 1e-30)
        return [
            {
                "feature": k,
                "class": c,
                "label": CLASS_LABELS.get(c, c),
                "score": None if not math.isfinite(s) else round(s, 4),
                "mass_share_of_features": round(float(share[k]), 4),
            }
            for k, (c, s) in enumerate(self.scores.best_classes())
        ]


def _frames_for(traj: Trajectories, max_frames: int | None, seed: int) -> list[tuple[int, int]]:
    frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
    if max_frames is not None and len(frames) > max_frames:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(frames), max_frames, replace=False))
        frames = [frames[i] for i in pick]
    return frames


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
    """Fit (or take) the article's attribution NMF at ``layer`` and score its features.

    Integrated gradients of ``output`` (10 right-Riemann steps, zero baseline at the layer, as
    the article) on the trajectories' frames; NMF of rank ``rank`` on the attributions
    (positive and negative parts stacked; the one ``analysis.settings.NMF_SETTINGS``, as the
    explorer and :func:`~rlvision_widgets.analysis.pipeline.analyze`) unless ``nmf`` is given;
    features per frame from ``nmf.reduce`` (``source="attribution"``) or NMF coefficients of
    the activations (``source="activation"``: how strongly each direction is present, i.e. what
    an edit removes); class maps from ``masks`` ("boxes" or "exact"); see :func:`score_features`.
    ``layer`` defaults to the agent's object layer ("2b").

    >>> traj = collect_trajectories(agent, num_envs=8, num_steps=512, seed=0)  # doctest: +SKIP
    >>> ident = identify_features(agent, traj)                                 # doctest: +SKIP
    >>> ident.scores.feature_for("saw")                                        # doctest: +SKIP
    (3, 0.42)
    """
    from .integrated_gradients import integrated_gradients
    from .layers import LayerAccess
    from .settings import make_nmf

    if source not in ("attribution", "activation"):
        raise ValueError(f"source must be 'attribution' or 'activation', got {source!r}")
    access = LayerAccess(agent)
    layer = layer or object_layer(agent)
    layer = access.check_layer(layer)
    frames = _frames_for(traj, max_frames, seed)
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
    )


def object_layer(agent: nn.Module) -> str:
    """The agent's object layer: ``config.object_layer`` ("2b") or the middle conv layer.

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
    return names[len(names) // 2]
