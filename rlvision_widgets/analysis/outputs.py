"""Network outputs that attribution can explain, named by a short spec string.

=====================  ==========================================================
spec                   scalar per frame
=====================  ==========================================================
``"value"``            the value head V(x)
``"logit:<action>"``   one policy logit
``"group:<group>"``    the sum of the logits of an action group (left, right, up, down, noop)
``"logprob:<action>"`` log pi(action | x) = logit - logsumexp(logits)
=====================  ==========================================================

``<action>`` is an index below :data:`~rlvision_widgets.environment.NUM_ACTIONS` or a name from
:data:`~rlvision_widgets.environment.ACTION_NAMES` (case-insensitive, e.g. ``"RIGHT+UP"``), as
:func:`~rlvision_widgets.environment.actions.action_index` reads it.

>>> spec = parse_output("group:right")
>>> spec.name, spec.actions
('group:right', (6, 7, 8))
>>> parse_output("logit:LEFT").actions
(1,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from .._compat import moved_names
from ..environment.actions import ACTION_GROUPS, ACTION_NAMES, NUM_ACTIONS, action_index

OUTPUT_KINDS = ("value", "logit", "group", "logprob")


def valid_outputs() -> list[str]:
    """Every concrete output spec, for error messages and menus.

    >>> valid_outputs()[:3]
    ['value', 'logit:0', 'logit:1']
    """
    n = NUM_ACTIONS
    return (
        ["value"]
        + [f"logit:{i}" for i in range(n)]
        + [f"group:{g}" for g in ACTION_GROUPS]
        + [f"logprob:{i}" for i in range(n)]
    )


def _help() -> str:
    names = ", ".join(f"{i}={n}" for i, n in enumerate(ACTION_NAMES))
    return (
        'valid outputs: "value", "logit:<action>", "group:<group>", "logprob:<action>" '
        f"with <group> one of {sorted(ACTION_GROUPS)} and <action> an index or name "
        f"({names})"
    )


@dataclass(frozen=True)
class OutputSpec:
    """A parsed output: ``kind`` in :data:`OUTPUT_KINDS`, ``actions`` (logit indices summed, or
    the single action of a logit/logprob), and the canonical ``name``.

    Calling it maps ``(logits (N, A), value (N,))`` to a ``(N,)`` tensor.

    >>> spec = parse_output("logprob:0")
    >>> spec(torch.zeros(2, NUM_ACTIONS), torch.zeros(2)).shape
    torch.Size([2])
    """

    kind: str
    actions: tuple[int, ...] = ()
    name: str = "value"

    def __call__(self, logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        if self.kind == "value":
            return value.reshape(-1)
        if self.actions and max(self.actions) >= logits.shape[-1]:
            raise ValueError(
                f"output {self.name!r} needs {max(self.actions) + 1} logits, the "
                f"model has {logits.shape[-1]}"
            )
        if self.kind == "logit":
            return logits[:, self.actions[0]]
        if self.kind == "group":
            return logits[:, list(self.actions)].sum(-1)
        if self.kind == "logprob":
            return logits[:, self.actions[0]] - torch.logsumexp(logits, dim=-1)
        raise AssertionError(self.kind)


OutputLike = Union[str, OutputSpec]  # noqa: UP007 (a runtime alias: py3.10 has no str | class here)


def parse_output(spec: OutputLike) -> OutputSpec:
    """Parse an output spec string (see the module docstring); raises ``ValueError`` listing
    the valid choices.

    >>> parse_output("logit:RIGHT")
    OutputSpec(kind='logit', actions=(7,), name='logit:7')
    """
    if isinstance(spec, OutputSpec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"output must be a string spec, got {type(spec).__name__}; {_help()}")
    s = spec.strip()
    if s.lower() == "value":
        return OutputSpec("value", (), "value")
    kind, sep, arg = s.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in OUTPUT_KINDS[1:]:
        raise ValueError(f"unknown output {spec!r}; {_help()}")
    if kind == "group":
        g = arg.strip().lower()
        if g not in ACTION_GROUPS:
            raise ValueError(f"unknown action group {arg!r}; valid groups: {sorted(ACTION_GROUPS)}")
        return OutputSpec("group", tuple(ACTION_GROUPS[g]), f"group:{g}")
    try:
        a = action_index(arg)
    except ValueError as exc:
        raise ValueError(f"bad output {spec!r}: {exc}") from None
    return OutputSpec(kind, (a,), f"{kind}:{a}")


__getattr__ = moved_names(__name__, {"parse_action": "environment.actions:action_index"})
