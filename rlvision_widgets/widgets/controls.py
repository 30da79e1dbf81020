"""Controls widget (``js/controls.ts``)."""

from __future__ import annotations

from typing import Any

from ._base import RLVisionWidget
from ._traits import ControlTraits, DisplayTraits, NavTraits, OutputTraits, StatusTraits


def output_options(
    action_names: tuple[str, ...] | list[str] | None = None, groups: list[str] | None = None
) -> list[list[str]]:
    """Menu entries ``[spec, label, group]`` for every output spec.

    >>> output_options()[0]
    ['value', 'value V(s)', '']
    """
    from ..environment.actions import ACTION_GLYPHS, ACTION_GROUPS, ACTION_NAMES

    names = list(action_names or ACTION_NAMES)
    glyphs = list(ACTION_GLYPHS) + [""] * max(0, len(names) - len(ACTION_GLYPHS))
    opts = [["value", "value V(s)", ""]]
    opts += [
        [f"logit:{i}", f"logit {g} {n}", "policy logit"]
        for i, (n, g) in enumerate(zip(names, glyphs))
    ]
    opts += [[f"group:{g}", f"Σ logits: {g}", "action group"] for g in (groups or ACTION_GROUPS)]
    opts += [[f"logprob:{i}", f"log π({n})", "log-probability"] for i, n in enumerate(names)]
    return opts


def output_label(spec: str) -> str:
    """Human-readable label of an output spec ("logit:7" -> "logit → RIGHT")."""
    for s, label, _ in output_options():
        if s == spec:
            return label
    return spec


class Controls(ControlTraits, OutputTraits, DisplayTraits, StatusTraits, NavTraits, RLVisionWidget):
    """Layer, output, NMF rank, residual, gain, blur, scale, overlay mode, grey underlay,
    full-resolution frames, and a bookmarks list. Standalone it is a settings panel whose
    traits you observe; in the :class:`Explorer` it drives the analysis.

    >>> c = Controls(layers=["2a", "2b"], layer="2b")
    >>> c.observe(lambda ch: print("rank", ch["new"]), "rank")     # doctest: +SKIP
    """

    _component = "controls"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("outputs", output_options())
        super().__init__(**kwargs)
