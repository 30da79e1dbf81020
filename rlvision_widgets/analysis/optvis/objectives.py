"""What to maximize: objectives on one layer's activations (NCHW).

Every objective maps a layer activation ``(N, C, H, W)`` to one value per image ``(N,)``:
its mean over the positions it covers. The same function scores optimized images and real
frames, so the two are compared like for like.

- :class:`Channel`: a channel, mean over all positions.
- :class:`Neuron`: a channel at one position (default: the centre, as in the article's figure).
- :class:`Direction`: an activation-space direction (e.g. an NMF direction), ``<a, v>`` at
  every position, mean over all positions or at one position.
- :class:`Caricature`: the dot product of the activations with a real frame's (the article's
  footnote 13), mean over positions. Its reference activations are bound by the engine.

>>> acts = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
>>> Channel("2b", 1)(acts).tolist()
[5.5, 17.5]
>>> Neuron("2b", 1, y=0, x=1)(acts).tolist()
[5.0, 17.0]
>>> Direction("2b", [0, 1, 0])(acts).tolist()
[5.5, 17.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "Caricature",
    "Channel",
    "Direction",
    "Neuron",
    "Objective",
    "nmf_objectives",
    "parse_objective",
]


class Objective:
    """Base class: ``layer`` and ``__call__(acts NCHW) -> (N,)``; ``label`` names it.

    >>> isinstance(Channel("2b", 0), Objective)
    True
    """

    layer: str
    label: str

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, shape: tuple[int, int, int]) -> None:
        """Raise ``ValueError`` when the objective does not fit a layer of ``shape`` (C, H, W)."""

    def weights(self, shape: tuple[int, int, int]) -> torch.Tensor | None:
        """For an objective linear in the activations, ``W`` (C, H, W) with value
        ``(acts * W).sum()``; the engine then scores every objective in one product.
        None for nonlinear objectives (scored by ``__call__``).

        >>> Channel("2b", 1).weights((2, 1, 2)).tolist()
        [[[0.0, 0.0]], [[0.5, 0.5]]]
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label})"


def _index(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def _check_layer(layer: Any) -> str:
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"layer must be a layer name such as '2b', got {layer!r}")
    return layer


class Channel(Objective):
    """Mean activation of ``channel`` at ``layer`` over all positions.

    >>> Channel("2b", 3).label
    '2b:3'
    """

    def __init__(self, layer: str, channel: int):
        self.layer, self.channel = _check_layer(layer), _index("channel", channel)
        self.label = f"{layer}:{self.channel}"

    def check(self, shape: tuple[int, int, int]) -> None:
        if self.channel >= shape[0]:
            raise ValueError(
                f"{self!r}: layer {self.layer!r} has {shape[0]} channels (0..{shape[0] - 1})"
            )

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        return acts[:, self.channel].mean(dim=(1, 2))

    def weights(self, shape: tuple[int, int, int]) -> torch.Tensor:
        c, h, w = shape
        out = torch.zeros(shape)
        out[self.channel] = 1.0 / (h * w)
        return out


class Neuron(Objective):
    """Activation of ``channel`` at position ``(y, x)`` (default: the layer's centre).

    >>> Neuron("2b", 0).label
    '2b:0@centre'
    """

    def __init__(self, layer: str, channel: int, y: int | None = None, x: int | None = None):
        self.layer, self.channel = _check_layer(layer), _index("channel", channel)
        if (y is None) != (x is None):
            raise ValueError("give both y and x, or neither (the layer's centre)")
        self.y = None if y is None else _index("y", y)
        self.x = None if x is None else _index("x", x)
        where = "centre" if y is None else f"{self.y},{self.x}"
        self.label = f"{layer}:{self.channel}@{where}"

    def check(self, shape: tuple[int, int, int]) -> None:
        c, h, w = shape
        if self.channel >= c:
            raise ValueError(f"{self!r}: layer {self.layer!r} has {c} channels (0..{c - 1})")
        if self.y is not None and (self.y >= h or self.x >= w):
            raise ValueError(f"{self!r}: position outside the layer's {h}x{w} grid")

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        h, w = acts.shape[2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        return acts[:, self.channel, y, x]

    def weights(self, shape: tuple[int, int, int]) -> torch.Tensor:
        c, h, w = shape
        out = torch.zeros(shape)
        out[
            self.channel, h // 2 if self.y is None else self.y, w // 2 if self.x is None else self.x
        ] = 1
        return out


class Direction(Objective):
    """Projection of the activations on ``vector`` (length C), mean over all positions or at
    ``(y, x)``; ``name`` labels it (e.g. "NMF 3").

    >>> Direction("2b", np.eye(32)[5], name="NMF 0").label
    'NMF 0'
    """

    def __init__(
        self,
        layer: str,
        vector: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        name: str | None = None,
        y: int | None = None,
        x: int | None = None,
    ):
        self.layer = _check_layer(layer)
        v = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        if v.ndim != 1 or v.numel() == 0 or not torch.isfinite(v).all() or not v.abs().sum() > 0:
            raise ValueError(
                f"direction must be a finite, non-zero vector of length C (channels), got shape "
                f"{tuple(v.shape)}"
            )
        if (y is None) != (x is None):
            raise ValueError("give both y and x, or neither (all positions)")
        self.vector, self.y, self.x = v, y, x
        self.label = name or f"{layer}:direction"

    def check(self, shape: tuple[int, int, int]) -> None:
        if self.vector.numel() != shape[0]:
            raise ValueError(
                f"{self!r}: direction has length {self.vector.numel()}, layer {self.layer!r} has "
                f"{shape[0]} channels"
            )

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        proj = torch.einsum("nchw,c->nhw", acts, self.vector.to(acts.dtype))
        if self.y is not None:
            return proj[:, self.y, self.x]
        return proj.mean(dim=(1, 2))

    def weights(self, shape: tuple[int, int, int]) -> torch.Tensor:
        c, h, w = shape
        if self.y is not None:
            out = torch.zeros(shape)
            out[:, self.y, self.x] = self.vector
            return out
        return self.vector.view(c, 1, 1).expand(shape) / (h * w)


class Caricature(Objective):
    """Dot product with a real ``frame``'s activations at ``layer``, mean over positions
    (the article's caricature objective). optimize() and objective_values() bind the reference
    activations of the frame on the agent they run (again on every call).

    >>> c = Caricature("2b", np.zeros((64, 64, 3), np.uint8))
    >>> c.bind(torch.ones(1, 2, 2, 2))(torch.full((1, 2, 2, 2), 3.0)).tolist()
    [6.0]
    """

    def __init__(self, layer: str, frame: np.ndarray, *, name: str | None = None):
        self.layer = _check_layer(layer)
        f = np.asarray(frame)
        if f.dtype != np.uint8 or f.shape[-1:] != (3,) or f.ndim != 3:
            raise ValueError(f"caricature frame must be uint8 (H, W, 3), got {f.dtype} {f.shape}")
        self.frame = f
        self.reference: torch.Tensor | None = None
        self.label = name or f"{layer}:caricature"

    def bind(self, reference: torch.Tensor) -> Caricature:
        """Set the frame's activations ``(1, C, H, W)``; returns self."""
        self.reference = reference.detach()
        return self

    def check(self, shape: tuple[int, int, int]) -> None:
        if self.reference is not None and tuple(self.reference.shape[1:]) != tuple(shape):
            raise ValueError(f"{self!r}: reference activations do not match layer shape {shape}")

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        if self.reference is None:
            raise RuntimeError(f"{self!r} has no reference activations; optimize() binds them")
        return (acts * self.reference.to(acts.dtype)).sum(1).mean(dim=(1, 2))

    def weights(self, shape: tuple[int, int, int]) -> torch.Tensor | None:
        if self.reference is None:
            return None
        return self.reference[0] / (shape[1] * shape[2])


def nmf_objectives(directions: Any, layer: str = "2b") -> list[Direction]:
    """One :class:`Direction` per row of ``directions`` (K, C), e.g. ``Analysis.directions``.

    >>> [o.label for o in nmf_objectives(np.eye(3)[:2])]
    ['2b NMF 0', '2b NMF 1']
    """
    d = np.asarray(getattr(directions, "directions", directions), dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"NMF directions must be a (K, C) array, got shape {d.shape}")
    return [Direction(layer, row, name=f"{layer} NMF {k}") for k, row in enumerate(d)]


def parse_objective(spec: str | Objective) -> Objective:
    """An objective from a short string: ``"2b:5"`` (channel 5), ``"2b:5@8,8"`` (neuron at
    y=8, x=8), ``"2b:5@centre"``; objectives pass through.

    >>> parse_objective("2b:5@3,4")
    Neuron(2b:5@3,4)
    >>> parse_objective("2b:7")
    Channel(2b:7)
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(
            f"objective must be an Objective or a string 'layer:channel[@y,x]' such as '2b:5', "
            f"got {spec!r}"
        )
    layer, rest = spec.split(":", 1)
    chan, _, where = rest.partition("@")
    try:
        c = int(chan)
        if not where:
            return Channel(layer, c)
        if where == "centre":
            return Neuron(layer, c)
        y, x = (int(v) for v in where.split(","))
        return Neuron(layer, c, y, x)
    except ValueError as e:
        raise ValueError(
            f"cannot read objective {spec!r} ({e}); use e.g. '2b:5' or '2b:5@8,8'"
        ) from None
