"""Which feature an edit removes: the NMF feature that best matches a hazard (or every such
feature), and a control feature that matches no hazard.

"The saw feature" is the feature that best matches buzzsaws in the engine's object masks
(:mod:`rlvision_widgets.analysis.features`). A class whose best feature scores below
``min_score`` is reported as *not identified* rather than faked with an unrelated feature.

>>> choice = choose_feature(ident, "saw", "saw_blind")                      # doctest: +SKIP
>>> choice.feature, choice.identified, choice.note                          # doctest: +SKIP
(4, True, 'feature 4 matches buzzsaw with correlation 0.270')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..analysis.features import FeatureIdentification, resolve_class
from ..analysis.labels import HAZARD_CLASSES, label

__all__ = ["EditChoice", "choose_all_features", "choose_control", "choose_feature"]


@dataclass
class EditChoice:
    """The feature an edit removes: ``condition``, target object ``cls``, ``feature`` index
    (None if not identified), its ``score`` for ``cls``, the feature's own ``best_class``,
    ``identified`` (score >= min_score and the class visible in the corpus), the unit
    ``direction`` and a human ``note``; for an edit of several features, ``features`` and
    their ``directions`` (projected out together: the subspace they span, one edit).

    >>> c = EditChoice("saw_blind", "saw", 3, 0.4, "saw", True, [1.0, 0.0], "by hand")
    >>> c.all_directions, c.to_json()["score"]
    ([[1.0, 0.0]], 0.4)
    """

    condition: str
    cls: str
    feature: int | None
    score: float
    best_class: str
    identified: bool
    direction: list[float] = field(default_factory=list, repr=False)
    note: str = ""
    features: list[int] = field(default_factory=list)
    directions: list[list[float]] = field(default_factory=list, repr=False)

    @property
    def all_directions(self) -> list[list[float]]:
        """Every direction this edit projects out."""
        return self.directions or ([self.direction] if self.direction else [])

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = None if not math.isfinite(self.score) else round(self.score, 5)
        d["direction"] = [round(float(x), 6) for x in self.direction]
        d["directions"] = [[round(float(x), 6) for x in v] for v in self.directions]
        return d


def choose_feature(
    ident: FeatureIdentification, cls: str, condition: str = "", min_score: float = 0.05
) -> EditChoice:
    """The feature that best matches object class ``cls`` (see the module doc).

    >>> choice = choose_feature(ident, "saw")                                 # doctest: +SKIP
    >>> choice.feature, choice.score, choice.identified                       # doctest: +SKIP
    (4, 0.27, True)
    """
    cls = resolve_class(cls)
    scores = ident.scores
    j = scores.classes.index(cls)
    if scores.frames_with_class[j] == 0:
        return EditChoice(
            condition,
            cls,
            None,
            float("nan"),
            "",
            False,
            [],
            f"no {label(cls)} visible in the {scores.n_frames} corpus frames",
        )
    k, s = scores.feature_for(cls)
    best, best_s = scores.best_class(k)
    ok = bool(np.isfinite(s) and s >= min_score)
    note = (
        f"feature {k} matches {label(cls)} with {scores.metric} {s:.3f}"
        + ("" if best == cls else f" (its best class is {label(best)}, {best_s:.3f})")
        + ("" if ok else f"; below min_score {min_score}: no {label(cls)} feature identified")
    )
    return EditChoice(
        condition,
        cls,
        k if ok else None,
        s,
        best,
        ok,
        ident.direction(k).tolist() if ok else [],
        note,
    )


def choose_all_features(
    ident: FeatureIdentification, condition: str, cls: str, min_score: float
) -> EditChoice:
    """Every feature whose best class is ``cls`` (scoring >= ``min_score``), to edit together;
    not identified when fewer than two features qualify (the single-feature edit covers it).

    >>> choice = choose_all_features(ident, "saw_blind_all", "saw", 0.05)    # doctest: +SKIP
    >>> choice.features                                                       # doctest: +SKIP
    [2, 5]
    """
    best = ident.scores.best_classes()
    same = [k for k, (c, s) in enumerate(best) if c == cls and s >= min_score]
    if len(same) < 2:
        return EditChoice(
            condition,
            cls,
            None,
            float("nan"),
            cls,
            False,
            [],
            f"only {len(same)} feature(s) match {label(cls)}: nothing more "
            "to edit than the single-feature edit",
        )
    return EditChoice(
        condition,
        cls,
        same[0],
        best[same[0]][1],
        cls,
        True,
        ident.direction(same[0]).tolist(),
        f"features {', '.join(map(str, same))} (every feature whose best match is "
        f"{label(cls)}), projected out together",
        features=same,
        directions=[ident.direction(k).tolist() for k in same],
    )


def choose_control(
    ident: FeatureIdentification, reference: int | None, exclude: Sequence[int] = ()
) -> EditChoice:
    """A non-hazard feature (best class not in :data:`HAZARD_CLASSES`) with explained mass
    closest to ``reference``'s, as a control edit of the same kind.

    >>> control = choose_control(ident, reference=4, exclude=[4])             # doctest: +SKIP
    >>> control.cls, control.note                                             # doctest: +SKIP
    ('wall', 'control: feature 1 (wall, 0.310), the non-hazard feature closest ...')
    """
    best = ident.scores.best_classes()
    mass = np.asarray(ident.nmf.component_mass_, np.float64)
    cands = [
        k for k, (c, _) in enumerate(best) if c and c not in HAZARD_CLASSES and k not in exclude
    ]
    if not cands:
        return EditChoice(
            "control",
            "",
            None,
            float("nan"),
            "",
            False,
            [],
            "every feature matches a hazard: no control feature",
        )
    target = mass[reference] if reference is not None else np.median(mass)
    k = min(cands, key=lambda i: abs(math.log(max(mass[i], 1e-30) / max(target, 1e-30))))
    cls, s = best[k]
    return EditChoice(
        "control",
        cls,
        k,
        s,
        cls,
        True,
        ident.direction(k).tolist(),
        f"control: feature {k} ({label(cls)}, {s:.3f}), the "
        "non-hazard feature closest in attribution mass to the saw feature",
    )
