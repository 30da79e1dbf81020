"""An automatic interpretability score: how far an agent's object-layer features are about
game objects, judged against the engine's object masks, with no human in the loop.

The article (section "The diversity hypothesis") had two researchers rate 8 NMF features per
model, subjectively; this module measures the same three things they looked at, with the
package's one feature identification (:func:`~rlvision_widgets.analysis.features.
identify_features`: integrated gradients of the value at the object layer, the one NMF of
:mod:`~rlvision_widgets.analysis.settings`, labels by strongest examples against object boxes).

**Components** (all in [0, 1]; ``docs/diversity.md`` has the same definitions):

* ``identified``: the share of the ``rank`` NMF features confirmed for an object class by
  :func:`~rlvision_widgets.analysis.features.label_features` (share of the 32 strongest cells
  on/next to the class >= 0.5, >= 3x its base rate, p <= 0.01), not counting classes drawn at
  the same place in every frame (``fixed_place``: the velocity squares, the centred agent),
  which cannot be told apart from a preference for a place on the screen. Duplicates (two saw
  features) both count.
* ``consistency``: for each identified feature k, its map per frame is the object layer's
  activations projected on its direction (positive part; what the labels use). A frame is
  *active* when its peak is at least ``active`` (0.5) times the mean peak of the feature's 32
  strongest frames (its dataset examples); ``consistency[k]`` is the share of active frames
  whose peak cell lies on or next to (the cell or its 8 neighbours) one of k's confirmed
  classes. The component is the mean over identified features (0 when none is identified).
  The label test looks at the 32 strongest frames; this asks whether the feature keeps to its
  object in every frame where it responds.
* ``background``: the share of the attribution magnitude at the object layer that falls on
  background cells (cells no object class covers, walls included as objects): per cell the
  magnitude is ``|sum over channels of IG|`` (the cell's attribution to the value, the
  quantity the article's overlays show), summed over frames and cells. Lower is better.
  ``background_base_rate`` is the share of cells that are background (what attribution spread
  evenly would give), and ``object_focus = clip(1 - background / background_base_rate, 0, 1)``
  the background avoided, relative to chance (0: no better than spread evenly, 1: none at all).

``score = (identified + consistency + object_focus) / 3``.

Measured (``tests/analysis/test_interpretability.py``; 512 frames of the shipped agent on
unseen levels 1,000,000+, rank 8): the shipped agent identifies 5 of 8 features (3 saw,
2 crate; one velocity feature does not count), random compact networks 0 of 8 on the same
frames (their features find only the velocity squares).

>>> agent = load_agent("coinrun")                                          # doctest: +SKIP
>>> traj = collect_trajectories(agent, num_envs=8, num_steps=128, seed=0)  # doctest: +SKIP
>>> s = interpretability_score(agent, traj)                                # doctest: +SKIP
>>> s.identified, s.n_identified                                           # doctest: +SKIP
(0.625, 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import (
    NEAR,
    OBJECT_CLASSES,
    TOP_CELLS,
    identify_features,
    near_maps,
    project,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..rollouts import Trajectories

__all__ = ["COMPONENTS", "InterpretabilityScore", "interpretability_score"]

#: the components averaged into the score
COMPONENTS = ("identified", "consistency", "object_focus")
#: fewer frames than this cannot give a label (the identification needs 16 active cells)
MIN_FRAMES = 32


@dataclass
class InterpretabilityScore:
    """Result of :func:`interpretability_score` (the module doc defines every number).

    ``features``: one dict per NMF feature (``feature``, ``label``, ``classes``, ``status``,
    ``fixed_place``, ``counted``, ``consistency`` (None unless counted), ``active_frames``);
    ``settings``: what was computed with what.

    >>> s = InterpretabilityScore(0.5, 0.25, 0.75, 0.1, 0.4, 0.75, 8, 2, 64, "2b")
    >>> InterpretabilityScore.from_json(s.to_json()) == s
    True
    """

    score: float
    identified: float
    consistency: float
    background: float
    background_base_rate: float
    object_focus: float
    n_features: int
    n_identified: int
    n_frames: int
    layer: str
    features: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def components(self) -> dict[str, float]:
        """The numbers plotted against the number of training levels."""
        return {
            "score": self.score,
            "identified": self.identified,
            "consistency": self.consistency,
            "background": self.background,
            "background_base_rate": self.background_base_rate,
            "object_focus": self.object_focus,
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (numbers rounded to 6 digits)."""

        def num(x: float) -> float | None:
            return round(float(x), 6) if math.isfinite(x) else None

        return {
            **{k: num(v) for k, v in self.components().items()},
            "n_features": int(self.n_features),
            "n_identified": int(self.n_identified),
            "n_frames": int(self.n_frames),
            "layer": self.layer,
            "features": [dict(f) for f in self.features],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> InterpretabilityScore:
        """Read :meth:`to_json`'s output; a malformed document raises ValueError naming it."""
        try:
            nums = {
                k: float("nan") if doc[k] is None else float(doc[k])
                for k in (
                    "score",
                    "identified",
                    "consistency",
                    "background",
                    "background_base_rate",
                    "object_focus",
                )
            }
            return cls(
                **nums,
                n_features=int(doc["n_features"]),
                n_identified=int(doc["n_identified"]),
                n_frames=int(doc["n_frames"]),
                layer=str(doc["layer"]),
                features=[dict(f) for f in doc.get("features", [])],
                settings=dict(doc.get("settings", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an interpretability score document ({type(exc).__name__}: {exc})"
            ) from None


def _check(name: str, value: Any, low: float, high: float | None = None) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not low <= value or (high is not None and value > high):
        where = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {where}, got {value!r}")


def interpretability_score(
    agent: nn.Module,
    trajectories: Trajectories,
    *,
    rank: int = 8,
    layer: str | None = None,
    output: str = "value",
    max_frames: int | None = 1024,
    active: float = 0.5,
    seed: int = 0,
) -> InterpretabilityScore:
    """Score how interpretable ``agent``'s object-layer features are (see the module doc).

    ``trajectories``: frames to score (collect them with
    :func:`~rlvision_widgets.rollouts.collect.collect_trajectories`; the engine states give
    the object masks); up to ``max_frames`` of them are sampled (seeded by ``seed``; None =
    all). ``rank``: NMF features; ``layer``: default the object layer
    (:func:`~rlvision_widgets.analysis.features.object_layer`); ``output``: the attributed
    output; ``active``: a frame counts for consistency when the feature's peak there is at
    least this share of its strongest examples' mean peak.

    >>> s = interpretability_score(agent, traj, rank=8)                       # doctest: +SKIP
    >>> s.score, s.components()["identified"]                                 # doctest: +SKIP
    """
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    _check("active", active, 0.0, 1.0)
    frames_available = trajectories.num_envs * trajectories.num_steps
    if max_frames is not None:
        _check("max_frames", max_frames, MIN_FRAMES)
    if frames_available < MIN_FRAMES or (max_frames is not None and max_frames < MIN_FRAMES):
        raise ValueError(
            f"the interpretability score needs at least {MIN_FRAMES} frames; the trajectories "
            f"hold {frames_available} (collect more envs or steps)"
        )
    ident = identify_features(
        agent, trajectories, layer, rank, output, max_frames=max_frames, seed=seed
    )
    labels = ident.labels
    assert labels is not None  # identify_features always labels
    fixed = set(labels.settings.get("fixed_place_classes", ()))
    frames = ident.frames
    maps, attributions = ident.class_maps, ident.attributions  # on exactly these frames
    h, w = attributions.shape[1:3]
    F = len(frames)

    # (a) identified: confirmed for a class that is not fixed in place
    hold = near_maps(maps, NEAR)  # (F, h, w, C): class on or next to the cell
    feats = np.maximum(project(ident.activations, ident.nmf.components_), 0.0)  # (F, h, w, K)
    rows = []
    cons = []
    for e in labels.evidence:
        counted = [c for c in e.classes if c not in fixed] if e.confirmed else []
        row: dict[str, Any] = {
            "feature": e.feature,
            "label": e.label,
            "classes": list(e.classes),
            "status": e.status,
            "fixed_place": bool(e.fixed_place),
            "counted": bool(counted),
            "consistency": None,
            "active_frames": 0,
        }
        if counted:
            # (b) consistency over the frames where the feature responds
            peaks = feats[..., e.feature].reshape(F, h * w)
            peak, arg = peaks.max(1), peaks.argmax(1)
            ref = float(np.sort(peak)[-TOP_CELLS:].mean())
            on_frames = peak >= active * ref if ref > 0 else np.zeros(F, bool)
            cls = [OBJECT_CLASSES.index(c) for c in counted]
            on = hold[np.arange(F), arg // w, arg % w][:, cls].any(1)
            c = float(on[on_frames].mean()) if on_frames.any() else 0.0
            row.update(consistency=round(c, 6), active_frames=int(on_frames.sum()))
            cons.append(c)
        rows.append(row)
    n_ident = sum(r["counted"] for r in rows)
    identified = n_ident / len(rows)
    consistency = float(np.mean(cons)) if cons else 0.0

    # (c) background: attribution magnitude on cells no class covers
    mag = np.abs(attributions.sum(-1, dtype=np.float64))  # (F, h, w)
    bg = maps.sum(-1) <= 0
    total = float(mag.sum())
    background = float(mag[bg].sum() / total) if total > 0 else float("nan")
    base = float(bg.mean())
    if not math.isfinite(background):
        focus = 0.0
    elif base > 0:
        focus = float(np.clip(1.0 - background / base, 0.0, 1.0))
    else:
        focus = 1.0
    score = (identified + consistency + focus) / 3
    return InterpretabilityScore(
        float(score),
        float(identified),
        consistency,
        background,
        base,
        focus,
        len(rows),
        int(n_ident),
        F,
        ident.layer,
        rows,
        {
            "rank": int(rank),
            "layer": ident.layer,
            "output": ident.output,
            "max_frames": None if max_frames is None else int(max_frames),
            "active": float(active),
            "near": int(NEAR),
            "ig_steps": int(ident.meta["ig_steps"]),
            "masks": "boxes",
            "fixed_place_classes": sorted(fixed),
            "seed": int(seed),
        },
    )
