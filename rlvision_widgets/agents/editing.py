"""Model editing (the article's Appendix A): an edit is a value, applied by one function to a copy.

An :class:`Edit` names a ``layer``, the ``directions`` (K, C) to project out of its channel
space, a ``strength`` s in [0, 1] and a ``mode``. :func:`apply_edit` deep-copies the agent,
edits the copy and returns it wrapped in an :class:`EditedAgent`; the caller's module is never
modified and never hooked. With ``Q`` the orthogonal projector onto the span of the directions,
the edit is ``P = I - s Q`` (one direction: ``Q = v v^T / ||v||^2``, the article's formula).

* ``mode="weight"`` (the default, the article's edit): every ``c x d`` slice of the kernel of
  the conv that reads the layer is multiplied by ``P``, so that conv sees ``P x`` instead of its
  input ``x``. On both shipped networks an L2 pool sits between the object layer and that conv
  (2b -> pool -> 3a), so this is ``conv(P pool(a))``: the direction is removed from the *pooled*
  activation. L2 pooling is nonlinear, so that is not ``conv(pool(P a))``; the two agree when
  every direction is one-hot (pooling acts per channel).
* ``mode="activation"``: a forward hook on the copy's layer replaces its output ``a`` by
  ``P a`` at every position, so everything downstream (pooling included) sees the projection.

Where the conv that reads a layer is not known, a weight edit falls back to the activation
edit, with an :class:`EditFallbackWarning`, and the returned agent records the mode used
(``edited.edits[i].mode``). It is known for a model that declares it with a
``next_conv(layer)`` method (``ConvAgent``: the conv layers "1a" ... "3a"; "4a" feeds the dense
layer, so it falls back) and for a layer inside plain ``nn.Sequential`` containers whose next
module, past per-channel pools, is an ungrouped ``nn.Conv2d``. Nothing else is guessed.

Several edits compose in list order: the activation downstream is ``P_K ... P_1 a``. Edits
serialize to JSON (:meth:`Edit.to_dict`); :meth:`EditedAgent.save` writes a checkpoint with the
weight edits baked in and every edit recorded, which :func:`~rlvision_widgets.load_agent`
restores (:func:`apply_recorded_edits`).

>>> edited = apply_edit(agent, Edit("2b", direction))                # doctest: +SKIP
>>> logits, value = edited(obs)                                      # doctest: +SKIP
>>> edited.save("runs/saw-blind")                                    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .networks import L2Pool

__all__ = [
    "EDIT_MODES",
    "Edit",
    "EditFallbackWarning",
    "EditedAgent",
    "apply_edit",
    "apply_recorded_edits",
    "projection",
]

#: ``"weight"`` (the default, the article's) and ``"activation"``
EDIT_MODES = ("weight", "activation")

# modules that act on each channel separately: a weight edit of the conv after them is still
# the article's edit "of the next conv" (ConvAgent's L2 pool is one of them)
_PER_CHANNEL = (
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.LPPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    L2Pool,
)


class EditFallbackWarning(UserWarning):
    """A weight edit was asked for where the conv reading the layer is not known: the activation
    edit was applied instead (and recorded as the edit's mode)."""


def _as_directions(directions: Any) -> np.ndarray:
    try:
        v = np.asarray(directions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "edit directions must be numbers: one direction (C,) or several (K, C)"
        ) from exc
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(
            f"edit directions must have shape (C,) or (K, C) with K, C >= 1, got {v.shape}"
        )
    if not np.isfinite(v).all():
        raise ValueError("edit directions must be finite (found NaN or inf)")
    zero = [k for k in range(len(v)) if not (v[k] ** 2).sum() > 0]
    if zero:
        raise ValueError(f"edit direction(s) {zero} are zero: every direction must be non-zero")
    return v


def projection(directions: np.ndarray | torch.Tensor | Sequence, strength: float = 1.0):
    """``I - strength * Q`` as a float32 (C, C) tensor, ``Q`` the orthogonal projector onto the
    span of ``directions`` (one (C,) or several (K, C); for one, ``Q = v v^T / ||v||^2``).

    >>> P = projection([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])      # span of e0 and e1
    >>> [round(x, 6) for x in P.diagonal().tolist()]
    [0.0, 0.0, 1.0]
    >>> projection([3.0, 4.0], strength=0.5) @ torch.tensor([3.0, 4.0])   # halves v itself
    tensor([1.5000, 2.0000])
    """
    v = _as_directions(
        directions.detach().cpu().numpy() if isinstance(directions, torch.Tensor) else directions
    )
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"edit strength must be in [0, 1], got {strength}")
    if len(v) == 1:
        q = np.outer(v[0], v[0]) / (v[0] @ v[0])
    else:  # an orthonormal basis of the row space (dependent directions count once)
        _, s, wt = np.linalg.svd(v, full_matrices=False)
        basis = wt[s > s[0] * max(v.shape) * np.finfo(np.float64).eps]
        q = basis.T @ basis
    return torch.from_numpy((np.eye(v.shape[1]) - strength * q).astype(np.float32))


@dataclass(frozen=True)
class Edit:
    """One projection edit: project ``directions`` (one (C,) or several (K, C), the span
    together) out of ``layer`` with ``strength`` in [0, 1], as a ``"weight"`` (default) or
    ``"activation"`` edit; ``label`` is free text. A value: hashable, JSON round trip.

    >>> e = Edit("2b", np.eye(32)[[3, 7]], label="both saw features")
    >>> e.num_directions, e.mode, e.strength
    (2, 'weight', 1.0)
    >>> Edit.from_dict(e.to_dict()) == e
    True
    """

    layer: str
    directions: tuple[tuple[float, ...], ...]
    strength: float = 1.0
    mode: str = "weight"
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise ValueError(f"edit layer must be a non-empty layer name, got {self.layer!r}")
        v = _as_directions(self.directions)
        object.__setattr__(self, "directions", tuple(tuple(float(x) for x in row) for row in v))
        try:
            strength = float(self.strength)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"edit strength must be a number in [0, 1], got {self.strength!r}"
            ) from exc
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"edit strength must be in [0, 1], got {self.strength}")
        object.__setattr__(self, "strength", strength)
        if self.mode not in EDIT_MODES:
            raise ValueError(f"edit mode must be one of {EDIT_MODES}, got {self.mode!r}")
        object.__setattr__(self, "label", str(self.label))

    @property
    def num_directions(self) -> int:
        """K, the number of directions projected out together."""
        return len(self.directions)

    @property
    def channels(self) -> int:
        """C, the layer's channel count the directions live in."""
        return len(self.directions[0])

    @property
    def direction(self) -> tuple[float, ...]:
        """The direction of a one-direction edit (a ``ValueError`` for several)."""
        if len(self.directions) != 1:
            raise ValueError(f"this edit has {len(self.directions)} directions: use .directions")
        return self.directions[0]

    def projection(self) -> torch.Tensor:
        """The (C, C) matrix ``P`` of this edit (:func:`projection`)."""
        return projection(self.directions, self.strength)

    def replace(self, **changes: Any) -> Edit:
        """A copy with some fields changed (e.g. ``mode="activation"``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (directions as a list of lists)."""
        return {
            "layer": self.layer,
            "directions": [list(v) for v in self.directions],
            "strength": self.strength,
            "mode": self.mode,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        """Inverse of :meth:`to_dict`; also reads the 0.1 form with one ``"direction"``."""
        if not isinstance(d, dict):
            raise ValueError(f"an edit must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        if "direction" in d and "directions" not in d:  # 0.1: one direction, default mode
            d["directions"] = d.pop("direction")  # "activation"
            d.setdefault("mode", "activation")
        unknown = set(d) - {"layer", "directions", "strength", "mode", "label"}
        if unknown or "layer" not in d or "directions" not in d:
            raise ValueError(
                f"an edit needs 'layer' and 'directions' (optional 'strength', 'mode', "
                f"'label'); got keys {sorted(d)}"
            )
        return cls(**d)


def _layer_module(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError as exc:
        names = getattr(model, "layer_names", None) or [n for n, _ in model.named_modules() if n]
        raise KeyError(f"unknown layer {layer!r}; valid layers: {names}") from exc


def _is_plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _following_conv(model: nn.Module, layer: str) -> tuple[nn.Conv2d | None, str]:
    """The conv that reads ``layer``'s output through per-channel modules only, or
    (None, why not). Known from a ``next_conv`` method or plain ``nn.Sequential`` nesting."""
    conv, why = None, ""
    if callable(getattr(model, "next_conv", None)):
        try:
            conv = model.next_conv(layer)
        except KeyError:
            names = getattr(model, "layer_names", None)
            why = f"{type(model).__name__}.next_conv knows only the layers {names}"
        else:
            if conv is None:
                why = f"layer {layer!r} feeds a dense layer, not a conv"
    elif _is_plain_sequential(model):
        parts = layer.split(".")
        chain = [model]
        for p in parts[:-1]:
            chain.append(chain[-1].get_submodule(p))
        if not all(_is_plain_sequential(m) for m in chain):
            why = f"a module on the path to {layer!r} is not a plain nn.Sequential"
        else:
            depth = len(parts) - 1
            while depth >= 0 and conv is None and not why:
                names = list(chain[depth]._modules)
                for nxt in list(chain[depth])[names.index(parts[depth]) + 1 :]:
                    while _is_plain_sequential(nxt) and len(nxt):
                        nxt = nxt[0]
                    if isinstance(nxt, nn.Conv2d):
                        conv = nxt
                        break
                    if not isinstance(nxt, _PER_CHANNEL):
                        why = f"{layer!r} is followed by {type(nxt).__name__}, not a conv"
                        break
                else:
                    depth -= 1  # the container's output goes on to its parent's next module
            if conv is None and not why:
                why = f"{layer!r} is the model's output"
    else:
        why = (
            f"{type(model).__name__} does not say which conv reads {layer!r} (define "
            "next_conv(layer) or use plain nn.Sequential containers)"
        )
    if conv is not None and conv.groups != 1:
        conv, why = None, f"the conv after {layer!r} is grouped (groups={conv.groups})"
    return conv, why


def _layer_channels(model: nn.Module, layer: str, module: nn.Module) -> int | None:
    shapes = getattr(model, "layer_shapes", None)
    if isinstance(shapes, dict) and layer in shapes:
        return int(shapes[layer][-1])
    for attr in ("out_channels", "out_features", "num_features"):
        if isinstance(getattr(module, attr, None), int):
            return int(getattr(module, attr))
    return None


def _activation_hook(layer: str, P: torch.Tensor):
    def hook(_m: nn.Module, _inp: Any, out: Any) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            raise TypeError(
                f"an activation edit needs layer {layer!r} to output a tensor (N, C, ...), "
                f"got {type(out).__name__}"
            )
        if out.shape[1] != P.shape[0]:
            raise ValueError(
                f"edit direction has {P.shape[0]} channels but layer {layer!r} has "
                f"{out.shape[1]}: give directions of length {out.shape[1]}"
            )
        return torch.einsum("nc...,dc->nd...", out, P.to(out.device, out.dtype))

    return hook


def _edit_copy(
    source: nn.Module, edits: Sequence[Edit], baked: frozenset[int] = frozenset()
) -> tuple[nn.Module, tuple[Edit, ...]]:
    """The one mechanism: a deep copy of ``source`` with ``edits`` applied (those whose index
    is in ``baked`` are already in its weights), and the edits with the modes actually used."""
    try:
        agent = copy.deepcopy(source)
    except Exception as exc:  # any failure to copy: we cannot edit without touching it
        raise TypeError(
            f"cannot deep-copy {type(source).__name__} ({exc}); edits are applied to a copy "
            "so that the original is never modified"
        ) from exc
    agent.eval()
    done: list[Edit] = []
    by_conv: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    for i, e in enumerate(edits):
        if not isinstance(e, Edit):
            raise TypeError(f"edits must be Edit values, got {type(e).__name__}")
        module = _layer_module(agent, e.layer)
        if i in baked:
            done.append(e)
            continue
        P = e.projection()
        if e.mode == "weight":
            conv, why = _following_conv(agent, e.layer)
            if conv is None:
                warnings.warn(
                    f"weight edit of {e.layer!r} applied as an activation edit: {why}",
                    EditFallbackWarning,
                    stacklevel=3,
                )
                e = e.replace(mode="activation")
            else:
                if conv.in_channels != P.shape[0]:
                    raise ValueError(
                        f"edit direction has {P.shape[0]} channels but the conv after "
                        f"{e.layer!r} takes {conv.in_channels}"
                    )
                prev = by_conv.get(id(conv), (conv, torch.eye(P.shape[0])))[1]
                by_conv[id(conv)] = (conv, P @ prev)  # later edits act after earlier ones
        if e.mode == "activation":
            c = _layer_channels(agent, e.layer, module)
            if c is not None and c != P.shape[0]:
                raise ValueError(
                    f"edit direction has {P.shape[0]} channels but layer {e.layer!r} has {c}"
                )
            module.register_forward_hook(_activation_hook(e.layer, P))
        done.append(e)
    with torch.no_grad():  # conv(P x) = (W P) x: W[d, e, i, j] <- sum_c W[d, c, i, j] P[c, e]
        for conv, P in by_conv.values():
            w = conv.weight
            w.copy_(torch.einsum("dcij,ce->deij", w, P.to(w.device, w.dtype)))
    return agent, tuple(done)


class EditedAgent(nn.Module):
    """An edited copy of an agent, as :func:`apply_edit` returns it: ``agent`` is the copy,
    ``edits`` the edits with the modes actually used, ``source`` the unmodified original
    (not a submodule: moving or training the wrapper never touches it). Other attributes
    (``forward_to``, ``layer_names``, ...) are the copy's.

    >>> from rlvision_widgets.agents import build_network
    >>> net = build_network("compact")
    >>> edited = EditedAgent(net, [Edit("2b", np.eye(32)[5], label="ch5")])
    >>> [(e.layer, e.mode, e.label) for e in edited.edits]
    [('2b', 'weight', 'ch5')]
    >>> w = edited.agent.get_submodule("3a").conv.weight.detach()   # the copy's next conv
    >>> float(w[:, 5].abs().max())
    0.0
    >>> edited.source is net and bool(net.get_submodule("3a").conv.weight[:, 5].any())
    True
    """

    def __init__(
        self, agent: nn.Module, edits: Iterable[Edit] = (), _baked: frozenset[int] = frozenset()
    ):
        super().__init__()
        if isinstance(agent, EditedAgent):  # one level of wrapping: edit the original again
            edits = (*agent.edits, *edits)
            _baked = agent._baked
            agent = agent.source
        copy_, done = _edit_copy(agent, tuple(edits), _baked)
        object.__setattr__(self, "source", agent)
        self.agent = copy_
        self.edits: tuple[Edit, ...] = done
        self._baked = frozenset(_baked)

    @property
    def original(self) -> nn.Module:
        """The unedited agent (``source``; the 0.1 name)."""
        return self.source

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["agent"], name)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.agent(obs)

    def _rebuild(self, edits: Sequence[Edit]) -> EditedAgent:
        new = EditedAgent(self.source, edits, self._baked)
        self.agent, self.edits = new.agent, new.edits
        return self

    def add(
        self,
        layer: str,
        direction: Sequence[float] | np.ndarray,
        strength: float = 1.0,
        mode: str = "activation",
        label: str = "",
    ) -> EditedAgent:
        """Deprecated (0.1): add an edit in place; use ``apply_edit(agent, Edit(...))``.
        Keeps the 0.1 default ``mode="activation"``."""
        warnings.warn(
            "EditedAgent.add is deprecated and goes away in the next release: use "
            "rlvision_widgets.agents.editing.apply_edit(agent, Edit(layer, directions, "
            "strength, mode)), which returns a new edited copy",
            FutureWarning,
            stacklevel=2,
        )
        return self._rebuild((*self.edits, Edit(layer, direction, strength, mode, label)))

    def remove(self) -> EditedAgent:
        """Deprecated (0.1): undo every edit in place; use the original agent (``source``)."""
        warnings.warn(
            "EditedAgent.remove is deprecated and goes away in the next release: use "
            "edited.source (the unedited agent)",
            FutureWarning,
            stacklevel=2,
        )
        return self._rebuild([self.edits[i] for i in sorted(self._baked)])

    def save(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Save as a checkpoint: the copy's weights (weight edits baked in) and every edit in
        ``config["edits"]``; :func:`~rlvision_widgets.load_agent` re-applies the activation
        edits."""
        base = dict(getattr(self.source, "checkpoint_config", {}) or {})
        for k in ("format", "version", "network", "files", "edits"):
            base.pop(k, None)
        return save_checkpoint(
            folder, self.agent, {**base, **(meta or {}), "edits": [e.to_dict() for e in self.edits]}
        )


def apply_edit(agent: nn.Module, edits: Edit | Iterable[Edit]) -> EditedAgent:
    """The one editing function: a deep copy of ``agent`` with ``edits`` (one or several, in
    order) applied, as an :class:`EditedAgent`. ``agent`` is never modified nor hooked; an
    :class:`EditedAgent` gets its edits and the new ones applied to its original again.

    >>> from rlvision_widgets.agents import build_network
    >>> net = build_network("compact")
    >>> obs = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    >>> blind = apply_edit(net, Edit("2b", np.eye(32)[5], mode="activation"))
    >>> bool((blind.forward_to(obs, "2b")[:, 5] == 0).all())       # projected out
    True
    >>> bool((net.forward_to(obs, "2b")[:, 5] == 0).all())         # the original is untouched
    False
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):                # "4a" feeds the dense layer
    ...     warnings.simplefilter("always")
    ...     apply_edit(net, Edit("4a", np.ones(32))).edits[0].mode
    'activation'
    """
    if not isinstance(agent, nn.Module):
        raise TypeError(f"agent must be a torch.nn.Module, got {type(agent).__name__}")
    return EditedAgent(agent, [edits] if isinstance(edits, Edit) else list(edits))


def apply_recorded_edits(agent: nn.Module, config: dict[str, Any]) -> nn.Module:
    """The agent of a checkpoint whose ``config["edits"]`` records edits, as an
    :class:`EditedAgent` (weight edits are already in its weights; activation edits are
    re-applied); ``agent`` itself when none are recorded.

    >>> from rlvision_widgets.agents import build_network
    >>> net = build_network("compact")
    >>> cfg = {"edits": [Edit("2b", np.ones(32), mode="activation").to_dict()]}
    >>> [e.mode for e in apply_recorded_edits(net, cfg).edits]
    ['activation']
    """
    records = config.get("edits") or []
    if not records:
        return agent
    if not isinstance(records, list):
        raise ValueError(f"config['edits'] must be a list of edits, got {type(records).__name__}")
    edits = [Edit.from_dict(r) for r in records]
    baked = frozenset(i for i, e in enumerate(edits) if e.mode == "weight")
    return EditedAgent(agent, edits, baked)
