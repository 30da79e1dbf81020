"""AttributionLegend widget (``js/legend.ts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Tiles
from ._base import RLVisionWidget
from ._traits import AttributionTraits, FeatureTraits, GridTraits, LegendTraits, NavTraits


class LegendMixin(LegendTraits, FeatureTraits):
    """``set_thumbnails`` for widgets with a legend."""

    def set_thumbnails(self, thumbnails: Any) -> None:
        """Dataset-example thumbnails, (K, s, s, 3|4) uint8, one per feature (RGBA alpha shows
        response strength).

        >>> legend = AttributionLegend()
        >>> legend.set_thumbnails(np.zeros((3, 8, 8, 3), np.uint8))
        >>> legend.thumbnails.shape
        (3, 8, 8, 4)
        """
        th = np.asarray(thumbnails)
        if (
            th.ndim != 4
            or th.shape[1] != th.shape[2]
            or th.shape[-1] not in (3, 4)
            or th.dtype != np.uint8
        ):
            raise ValueError(f"thumbnails must be uint8 (K, s, s, 3|4), got {th.dtype} {th.shape}")
        if th.shape[-1] == 3:
            th = np.concatenate([th, np.full(th.shape[:3] + (1,), 255, np.uint8)], -1)
        self.thumbnails = Tiles.encode(th)  # side by side in one PNG

    def set_label_suggestions(self, suggestions: Sequence[Any]) -> None:
        """Suggested labels, one per feature: strings ("" for none) or dicts with ``label`` and
        the evidence (``confirmed``: passes the identification test; ``share``: share of the
        feature's strongest cells on the object; ``base_rate``; ``duplicate``, else found
        here: another feature has the same label). A suggestion is only a suggestion: the
        legend offers an explicit "use" control, and marks weak and duplicate ones.

        >>> legend = AttributionLegend(n_features=3)
        >>> legend.set_label_suggestions(
        ...     [{"label": "coin", "confirmed": True, "share": 0.8}, "saw", "saw"])
        >>> legend.suggested_labels, [e["duplicate"] for e in legend.label_evidence]
        (['coin', 'saw', 'saw'], [False, True, True])
        """
        items: list[dict[str, Any]] = []
        for s in suggestions:
            if isinstance(s, str):
                items.append({"label": s})
            elif isinstance(s, Mapping):
                items.append({k: _plain(v) for k, v in s.items()})
            else:
                raise TypeError(
                    f"label suggestions must be strings or dicts with 'label', got {type(s)}"
                )
        names = [str(it.get("label") or "").strip().lower() for it in items]
        for it, name in zip(items, names):
            it["label"] = str(it.get("label") or "")
            if "duplicate" not in it:
                it["duplicate"] = bool(name) and names.count(name) > 1
        with self.hold_sync():
            self.label_evidence = items
            self.suggested_labels = [it["label"] for it in items]

    def set_examples(self, examples: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """Per feature its strongest dataset examples, each a dict with ``trajectory``,
        ``frame`` (of the shown trajectories), ``box`` [top, left, side] of the crop in
        observation pixels, and optionally ``y``, ``x`` (layer position) and ``value``
        (``_engine.examples_from_frames`` makes them from an Analysis' dataset examples).

        >>> legend = AttributionLegend(n_features=1)
        >>> legend.set_examples([[{"trajectory": 0, "frame": 3, "box": [10, 12, 20]}]])
        >>> legend.feature_examples[0][0]["frame"]
        3
        """
        out = []
        for k, items in enumerate(examples):
            row = []
            for it in items:
                box = list(it.get("box", []))
                if len(box) != 3 or "trajectory" not in it or "frame" not in it:
                    raise ValueError(
                        f"example of feature {k} needs trajectory, frame and box "
                        f"[top, left, side], got {dict(it)}"
                    )
                row.append({k2: _plain(v) for k2, v in it.items()})
            out.append(row)
        self.feature_examples = out


def _plain(v: Any) -> Any:
    """JSON-ready value (numpy scalars and arrays to Python)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class AttributionLegend(LegendMixin, AttributionTraits, GridTraits, NavTraits, RLVisionWidget):
    """Per NMF feature: its colour, dataset-example thumbnail, an editable label and a
    suggested label, plus a residual entry. Hover isolates a feature (in every view of an
    Explorer); click sets ``grid_feature``; labels sync to ``feature_labels``.

    >>> legend = AttributionLegend(n_features=4, feature_labels=["coin", "saw", "", ""])
    >>> legend.observe(lambda ch: print(ch["new"]), "feature_labels")   # doctest: +SKIP
    """

    _component = "legend"

    def __init__(
        self, thumbnails: Any = None, labels: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if labels is not None:
            self.feature_labels = list(labels)
            if not self.n_features:
                self.n_features = len(labels)
        if thumbnails is not None:
            self.set_thumbnails(thumbnails)
            if not self.n_features:
                self.n_features = int(np.asarray(thumbnails).shape[0])
