"""Network outputs that attribution can explain, named by a short spec string.

=====================  ==========================================================
spec                   scalar per frame
=====================  ==========================================================
``"value"``            the value head V(x)
``"logit:<action>"``   one policy logit
``"group:<group>"``    the sum of the logits of an action group (left, right, up, down, noop)
``"logprob:<action>"`` log pi(action | x) = logit - logsumexp(logits)
=====================  ==========================================================

``<action>`` is an index 0-14 or a name from :data:`~rlvision_widgets.environment.ACTION_NAMES`
(case-insensitive, e.g. ``"RIGHT+UP"``).

>>> spec = parse_output("group:right")
>>> spec.name, spec.actions
('group:right', (6, 7, 8))
>>> parse_output("logit:LEFT").actions
(1,)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch

from ..environment.coinrun import ACTION_GROUPS, ACTION_NAMES

OUTPUT_KINDS = ("value", "logit", "group", "logprob")


def valid_outputs() -> list[str]:
    """Every concrete output spec, for error messages and menus.

    >>> valid_outputs()[:3]
    ['value', 'logit:0', 'logit:1']
    """
    n = len(ACTION_NAMES)
    return (["value"] + [f"logit:{i}" for i in range(n)]
            + [f"group:{g}" for g in ACTION_GROUPS] + [f"logprob:{i}" for i in range(n)])


def _help() -> str:
    names = ", ".join(f"{i}={n}" for i, n in enumerate(ACTION_NAMES))
    return ('valid outputs: "value", "logit:<action>", "group:<group>", "logprob:<action>" '
            f"with <group> one of {sorted(ACTION_GROUPS)} and <action> an index or name "
            f"({names})")


def parse_action(action: Union[int, str]) -> int:
    """An action index from an index or an :data:`ACTION_NAMES` name.

    >>> parse_action("right+up"), parse_action(3), parse_action("4")
    (8, 3, 4)
    """
    n = len(ACTION_NAMES)
    if isinstance(action, str):
        s = action.strip()
        if s.lstrip("-").isdigit():
            action = int(s)
        else:
            upper = [a.upper() for a in ACTION_NAMES]
            if s.upper() not in upper:
                raise ValueError(f"unknown action {action!r}; valid actions: 0-{n - 1} or one of "
                                 f"{list(ACTION_NAMES)}")
            return upper.index(s.upper())
    if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < n:
        raise ValueError(f"action index {action!r} out of range; valid: 0-{n - 1} "
                         f"({', '.join(ACTION_NAMES)})")
    return int(action)


@dataclass(frozen=True)
class OutputSpec:
    """A parsed output: ``kind`` in :data:`OUTPUT_KINDS`, ``actions`` (logit indices summed, or
    the single action of a logit/logprob), and the canonical ``name``.

    Calling it maps ``(logits (N, A), value (N,))`` to a ``(N,)`` tensor.

    >>> spec = parse_output("logprob:0")
    >>> spec(torch.zeros(2, 15), torch.zeros(2)).shape
    torch.Size([2])
    """

    kind: str
    actions: tuple[int, ...] = ()
    name: str = "value"

    def __call__(self, logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        if self.kind == "value":
            return value.reshape(-1)
        if self.actions and max(self.actions) >= logits.shape[-1]:
            raise ValueError(f"output {self.name!r} needs {max(self.actions) + 1} logits, the "
                             f"model has {logits.shape[-1]}")
        if self.kind == "logit":
            return logits[:, self.actions[0]]
        if self.kind == "group":
            return logits[:, list(self.actions)].sum(-1)
        if self.kind == "logprob":
            return logits[:, self.actions[0]] - torch.logsumexp(logits, dim=-1)
        raise AssertionError(self.kind)


OutputLike = Union[str, OutputSpec]


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
        a = parse_action(arg)
    except ValueError as exc:
        raise ValueError(f"bad output {spec!r}: {exc}") from None
    return OutputSpec(kind, (a,), f"{kind}:{a}")


def output_fn(spec: OutputLike) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The callable ``(logits, value) -> (N,)`` for a spec (same as :func:`parse_output`).

    >>> output_fn("value")(torch.zeros(3, 15), torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """
    return parse_output(spec)
