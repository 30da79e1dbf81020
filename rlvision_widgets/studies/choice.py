"""Which features an edit removes: the features identified with a hazard, and a control
feature identified with no hazard.

Identification is the one of :mod:`rlvision_widgets.analysis.features` (a feature's strongest
cells on or next to the engine's objects, >= 3x the base rate, permutation-tested). "The saw
feature" is the saw-identified feature whose strongest cells lie on saws most often; "every saw
feature" all of them (projected out together). A class no feature is identified with is
reported as *not identified*, never faked with an unrelated feature.

>>> choice = choose_feature(ident, "saw", "saw_blind")                      # doctest: +SKIP
>>> choice.feature, choice.identified, choice.note                          # doctest: +SKIP
(6, True, 'feature 6: buzzsaw: 32/32 strongest cells on/next to it, ...')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..analysis.features import FeatureIdentification, FeatureLabels, resolve_class
from ..analysis.labels import HAZARD_CLASSES, label

__all__ = ["EditChoice", "choose_all_features", "choose_control", "choose_feature"]


@dataclass
class EditChoice:
    """The feature an edit removes: ``condition``, target object ``cls``, ``feature`` index
    (None if not identified), its ``score`` for ``cls`` (the share of its strongest cells on
    or next to ``cls``), the feature's own ``best_class``, ``identified`` (confirmed for
    ``cls`` by :mod:`~rlvision_widgets.analysis.features`), the unit ``direction`` and a human
    ``note``; for an edit of several features, ``features`` and their ``directions``
    (projected out together: the subspace they span, one edit), and ``evidence`` (per
    feature, its :meth:`~rlvision_widgets.analysis.features.FeatureEvidence.to_json`).

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
    evidence: list[dict[str, Any]] = field(default_factory=list, repr=False)

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


def _no_min_score(min_score: float | None) -> None:
    if min_score is not None:
        warnings.warn(
            "min_score no longer applies: features are identified by their strongest examples "
            "(rlvision_widgets.analysis.features); drop the argument",
            FutureWarning,
            stacklevel=3,
        )


def _labels(ident: FeatureIdentification) -> FeatureLabels:
    if ident.labels is None:
        raise ValueError(
            "this feature identification has no labels (loaded from an old report); "
            "run identify_features again"
        )
    return ident.labels


def _not_identified(ident: FeatureIdentification, condition: str, cls: str) -> EditChoice:
    labels = _labels(ident)
    j = labels.classes.index(cls)
    found = labels.by_class()
    have = ", ".join(f"{label(c)} ({', '.join(map(str, v))})" for c, v in found.items())
    if labels.base_rate[j] <= 0:
        why = f"no {label(cls)} visible in the {labels.settings.get('frames', 0)} frames"
    else:
        k = int(np.nanargmax(np.nan_to_num(labels.share[:, j], nan=-1)))
        why = (
            f"no feature identified with {label(cls)} (closest: feature {k}, "
            f"{labels.share[k, j]:.0%} of its strongest cells on/next to it, "
            f"{labels.lift[k, j]:.1f}x base rate)"
        )
    return EditChoice(
        condition,
        cls,
        None,
        float("nan"),
        "",
        False,
        [],
        f"{why}; identified classes: {have or 'none'}",
    )


def choose_feature(
    ident: FeatureIdentification, cls: str, condition: str = "", min_score: float | None = None
) -> EditChoice:
    """The feature identified with object class ``cls`` whose strongest cells lie on it most
    often (see the module doc); not identified when there is none.

    >>> choice = choose_feature(ident, "saw")                                 # doctest: +SKIP
    >>> choice.feature, choice.score, choice.identified                       # doctest: +SKIP
    (6, 1.0, True)
    """
    _no_min_score(min_score)
    cls = resolve_class(cls)
    labels = _labels(ident)
    ks = labels.features_for(cls)
    if not ks:
        return _not_identified(ident, condition, cls)
    k = ks[0]
    ev = labels.evidence[k]
    j = labels.classes.index(cls)
    note = f"feature {k}: {ev.describe()}"
    if len(ks) > 1:
        note += f"; {len(ks)} features identified with {label(cls)}: {', '.join(map(str, ks))}"
    return EditChoice(
        condition,
        cls,
        k,
        float(labels.share[k, j]),
        ev.best_class,
        True,
        ident.direction(k).tolist(),
        note,
        evidence=[ev.to_json()],
    )


def choose_all_features(
    ident: FeatureIdentification,
    condition: str,
    cls: str,
    min_score: float | None = None,
    *,
    min_features: int = 2,
) -> EditChoice:
    """Every feature identified with ``cls`` (best supported first), to project out together;
    not identified when fewer than ``min_features`` qualify (the study's every-saw-feature
    edit needs two, the single-feature edit covers one; an edit named by a class, as
    ``rlvision evaluate --edit saw``, uses ``min_features=1``).

    >>> choice = choose_all_features(ident, "saw_blind_all", "saw")           # doctest: +SKIP
    >>> choice.features, choice.identified                                    # doctest: +SKIP
    ([6, 7, 1], True)
    """
    _no_min_score(min_score)
    cls = resolve_class(cls)
    labels = _labels(ident)
    ks = labels.features_for(cls)
    if not ks:
        return _not_identified(ident, condition, cls)
    if len(ks) < min_features:
        return EditChoice(
            condition,
            cls,
            None,
            float("nan"),
            cls,
            False,
            [],
            f"only {len(ks)} feature(s) identified with {label(cls)}: nothing more "
            "to edit than the single-feature edit",
        )
    j = labels.classes.index(cls)
    evs = [labels.evidence[k] for k in ks]
    note = (
        f"feature{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))} identified with "
        f"{label(cls)}" + (", projected out together" if len(ks) > 1 else "")
    )
    return EditChoice(
        condition,
        cls,
        ks[0],
        float(labels.share[ks[0], j]),
        evs[0].best_class,
        True,
        ident.direction(ks[0]).tolist(),
        note,
        features=list(ks),
        directions=[ident.direction(k).tolist() for k in ks],
        evidence=[e.to_json() for e in evs],
    )


def choose_control(
    ident: FeatureIdentification, reference: int | None, exclude: Sequence[int] = ()
) -> EditChoice:
    """A feature identified with no hazard (:data:`HAZARD_CLASSES`; identified with another
    class, or unidentified) whose explained mass is closest to ``reference``'s, as a control
    edit of the same kind. Features whose strongest cells lie on a hazard at >= 2x its base
    rate are avoided when possible.

    >>> control = choose_control(ident, reference=6, exclude=[6])             # doctest: +SKIP
    >>> control.cls, control.note                                             # doctest: +SKIP
    ('crate', 'control: feature 3 (crate), the non-hazard feature closest ...')
    """
    labels = _labels(ident)
    mass = np.asarray(ident.nmf.component_mass_, np.float64)
    hz = [labels.classes.index(c) for c in HAZARD_CLASSES if c in labels.classes]
    free = [
        e.feature
        for e in labels.evidence
        if not set(e.classes) & set(HAZARD_CLASSES) and e.feature not in exclude
    ]
    clean = [k for k in free if not np.nan_to_num(labels.lift[k, hz], nan=0).max(initial=0) >= 2]
    cands = clean or free
    if not cands:
        return EditChoice(
            "control",
            "",
            None,
            float("nan"),
            "",
            False,
            [],
            "every feature is identified with a hazard: no control feature",
        )
    target = mass[reference] if reference is not None else np.median(mass)
    k = min(cands, key=lambda i: abs(math.log(max(mass[i], 1e-30) / max(target, 1e-30))))
    ev = labels.evidence[k]
    cls = ev.label
    return EditChoice(
        "control",
        cls,
        k,
        ev.share if cls else float("nan"),
        ev.best_class,
        True,
        ident.direction(k).tolist(),
        f"control: feature {k} ({label(cls) if cls else 'unidentified'}), the "
        "non-hazard feature closest in attribution mass to the saw feature",
        evidence=[ev.to_json()],
    )
