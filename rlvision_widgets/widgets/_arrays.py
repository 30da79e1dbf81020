"""Typed array traits: each logical array of a widget is one trait that validates and
serializes itself (as lonboard's typed traits), decoded in JS by one function per kind
(``js/arrays.ts``, typed in ``js/model_state.ts``).

Every kind travels as a JSON object whose bytes are raw websocket buffers (ipywidgets splits
``bytes``/``memoryview`` out of nested dicts; no base64), ``null`` when unset:

* :class:`ArrayTrait` — a numpy array of one dtype and named axes:
  ``{"dtype", "shape", "data"}``;
* :class:`PngFrames` — image frames (E, T, S, S, C) as one PNG strip per trajectory
  (S wide, S·T tall): ``{"format": "png", "shape", "offsets", "data"}``;
* :class:`PngTiles` — K images (K, h, w, C) side by side in one PNG:
  ``{"format": "png", "shape", "data"}``;
* :class:`MosaicTrait` — K feature mosaics (tiles) and per cell its source (trajectory,
  frame): ``{"format": "png", "shape": [K, rows, cols, cell], "density", "data", "sources"}``;
* :class:`AttributionMaps` — per-feature maps int8-quantised per (frame, channel), one zlib
  stream per trajectory, with scales and a ready mask:
  ``{"shape", "offsets", "data", "scales", "ready"}``.

>>> import numpy as np, traitlets as t
>>> class W(t.HasTraits):
...     values = ArrayTrait("float32", ("trajectory", "step"))
>>> w = W(values=[[1, 2, 3]])
>>> w.values.dtype, w.values.shape
(dtype('float32'), (1, 3))
>>> W.values.to_json(w.values, w)["shape"]
[1, 3]
>>> W(values=[1, 2, 3])
Traceback (most recent call last):
...
traitlets.traitlets.TraitError: W.values: expected a float32 array with axes (trajectory, step), got shape (3,)
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import traitlets as t

from . import _encode as enc

_KINDS = {"f": "biuf", "i": "biuf", "u": "biuf", "b": "b"}


def _le(dtype: Any) -> np.dtype:
    """``dtype`` in little-endian byte order (the wire's; native on little-endian machines)."""
    return np.dtype("<" + np.dtype(dtype).str[1:])


def _owner(obj: Any, trait: t.TraitType) -> str:
    return f"{type(obj).__name__}.{trait.name}"


def _buffer(a: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(a)).cast("B")


def _raw(v: Any) -> bytes:
    return v.tobytes() if isinstance(v, memoryview) else bytes(v)


class _Typed(t.TraitType):
    """Base: ``None`` by default, synced, serialized by the subclass' ``to_json``/``from_json``."""

    info_text = "a typed array"

    def __init__(self, help: str = "", **kwargs: Any) -> None:
        super().__init__(default_value=None, allow_none=True, help=help, **kwargs)
        self.tag(sync=True, to_json=self.to_json, from_json=self.from_json)

    def fail(self, obj: Any, expected: str, got: str) -> None:
        raise t.TraitError(f"{_owner(obj, self)}: expected {expected}, got {got}")

    def to_json(self, value: Any, widget: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_json(self, value: Any, widget: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class ArrayTrait(_Typed):
    """A numpy array of ``dtype`` with one axis per name in ``axes`` (or None).

    Numeric input is cast to ``dtype`` (floats only to float dtypes); a wrong number of axes,
    a non-numeric or a float-to-integer input raises a ``TraitError`` naming the trait, what it
    expects and what it got. Wire: ``{"dtype", "shape", "data": bytes}`` (little-endian).

    >>> import traitlets as t
    >>> class S(t.HasTraits):
    ...     actions = ArrayTrait("uint8", ("trajectory", "step"))
    >>> S(actions=np.zeros((2, 4), np.int64)).actions.dtype
    dtype('uint8')
    """

    def __init__(self, dtype: str, axes: Sequence[str], help: str = "", **kwargs: Any) -> None:
        self.dtype = _le(dtype)
        self.axes = tuple(axes)
        super().__init__(help=help, **kwargs)

    @property
    def expected(self) -> str:
        return f"a {self.dtype.name} array with axes ({', '.join(self.axes)})"

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        try:
            a = np.asarray(value)
        except (TypeError, ValueError) as exc:
            self.fail(obj, self.expected, f"{type(value).__name__} ({exc})")
        if a.dtype.kind not in _KINDS.get(self.dtype.kind, self.dtype.kind):
            self.fail(obj, self.expected, f"dtype {a.dtype}")
        if a.ndim != len(self.axes):
            self.fail(obj, self.expected, f"shape {a.shape}")
        if self.dtype.kind in "iu" and a.dtype.kind == "f" and not np.array_equal(a, np.rint(a)):
            self.fail(obj, self.expected, f"non-integral {a.dtype} values")
        if self.dtype.kind == "u" and a.dtype.kind in "if" and a.size and a.min() < 0:
            self.fail(obj, self.expected, f"negative values (min {a.min()})")
        return np.ascontiguousarray(a, dtype=self.dtype)

    def to_json(self, value: np.ndarray | None, widget: Any = None) -> dict | None:
        if value is None:
            return None
        return {
            "dtype": self.dtype.name,
            "shape": [int(n) for n in value.shape],
            "data": _buffer(value),
        }

    def from_json(self, value: Any, widget: Any = None) -> np.ndarray | None:
        return array_from_json(value, self.dtype)


def array_from_json(value: Any, dtype: Any = None) -> np.ndarray | None:
    """Inverse of :meth:`ArrayTrait.to_json` (``None`` and empty data give ``None``).

    >>> array_from_json({"dtype": "int32", "shape": [2], "data": b"\\x01\\0\\0\\0\\x02\\0\\0\\0"})
    array([1, 2], dtype=int32)
    """
    if value is None:
        return None
    if not isinstance(value, dict) or not {"dtype", "shape", "data"} <= set(value):
        raise TypeError(f"an array must be {{dtype, shape, data}} or null, got {value!r:.80}")
    dt = _le(value["dtype"])
    if dtype is not None and dt != _le(dtype):
        raise TypeError(f"expected dtype {np.dtype(dtype).name}, got {dt.name}")
    raw = _raw(value["data"])
    shape = tuple(int(n) for n in value["shape"])
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise ValueError(f"{len(raw)} bytes do not make a {dt.name} array of shape {shape}")
    return np.frombuffer(raw, dt).reshape(shape).copy()


# the arrays inside composite kinds travel as ArrayTrait values too
_SOURCES = ArrayTrait("int32", ("feature", "row", "col", "source"))
_SCALES = ArrayTrait("float32", ("trajectory", "step", "channel"))
_READY = ArrayTrait("uint8", ("trajectory", "step"))


# ---------------------------------------------------------------------------- PNG frames
@dataclass(frozen=True, eq=False)
class Frames:
    """Encoded frames (E, T, S, S, C): one PNG strip per trajectory and its byte offsets."""

    shape: tuple[int, ...]
    data: bytes
    offsets: tuple[int, ...]

    @classmethod
    def encode(cls, frames: Any, compress_level: int = 6) -> Frames:
        """Frames (E, T, S, S, 3|4) or (T, S, S, 3|4) uint8 -> PNG strips.

        >>> Frames.encode(np.zeros((2, 3, 8, 8, 3), np.uint8)).shape
        (2, 3, 8, 8, 3)
        """
        o = np.asarray(frames)
        if o.ndim == 4:
            o = o[None]
        if o.ndim != 5 or o.dtype != np.uint8 or o.shape[-1] not in (3, 4):
            raise ValueError(f"frames must be uint8 (E, T, S, S, 3|4), got {o.dtype} {o.shape}")
        parts = [enc.encode_png_strip(o[e], compress_level) for e in range(o.shape[0])]
        offsets = [0]
        for p in parts:
            offsets.append(offsets[-1] + len(p))
        return cls(tuple(int(n) for n in o.shape), b"".join(parts), tuple(offsets))

    def decode(self) -> np.ndarray:
        """The frames (E, T, S, S, C) uint8 back (for tests and exports)."""
        E, T, S, S2, C = self.shape
        out = np.zeros(self.shape, np.uint8)
        for e in range(E):
            a, b = self.offsets[e], self.offsets[e + 1]
            if b > a:
                out[e] = enc.decode_png(self.data[a:b]).reshape(T, S, S2, -1)[..., :C]
        return out


class PngFrames(_Typed):
    """Image frames as PNG strips (value: :class:`Frames`; a uint8 (E, T, S, S, 3|4) or
    (T, S, S, 3|4) array is encoded on assignment).

    >>> import traitlets as t
    >>> class V(t.HasTraits):
    ...     observations = PngFrames()
    >>> V(observations=np.zeros((4, 8, 8, 3), np.uint8)).observations.shape
    (1, 4, 8, 8, 3)
    """

    expected = "uint8 frames (E, T, S, S, 3|4) (or Frames)"

    def validate(self, obj: Any, value: Any) -> Frames | None:
        if value is None or isinstance(value, Frames):
            return value
        a = np.asarray(value)
        if a.dtype != np.uint8 or a.ndim not in (4, 5) or a.shape[-1] not in (3, 4):
            self.fail(obj, self.expected, f"{a.dtype} {a.shape}")
        if a.shape[-2] != a.shape[-3]:
            self.fail(obj, self.expected + " with square frames", f"{a.shape}")
        return Frames.encode(a)

    def to_json(self, value: Frames | None, widget: Any = None) -> dict | None:
        if value is None:
            return None
        return {
            "format": "png",
            "shape": list(value.shape),
            "offsets": list(value.offsets),
            "data": memoryview(value.data),
        }

    def from_json(self, value: Any, widget: Any = None) -> Frames | None:
        if value is None:
            return None
        return Frames(
            tuple(int(n) for n in value["shape"]),
            _raw(value["data"]),
            tuple(int(n) for n in value["offsets"]),
        )


# ----------------------------------------------------------------------------- PNG tiles
@dataclass(frozen=True, eq=False)
class Tiles:
    """K images (K, h, w, C) side by side in one PNG (h tall, K·w wide)."""

    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def encode(cls, images: Any, compress_level: int = 6) -> Tiles:
        """Images (K, h, w, 3|4) uint8 -> one PNG.

        >>> Tiles.encode(np.zeros((3, 4, 5, 4), np.uint8)).shape
        (3, 4, 5, 4)
        """
        a = np.asarray(images)
        if a.ndim != 4 or a.dtype != np.uint8 or a.shape[-1] not in (3, 4):
            raise ValueError(f"tiles must be uint8 (K, h, w, 3|4), got {a.dtype} {a.shape}")
        K, h, w, C = a.shape
        strip = a.transpose(1, 0, 2, 3).reshape(h, K * w, C)
        data = enc.encode_png(strip, compress_level) if K else b""
        return cls(tuple(int(n) for n in a.shape), data)

    def decode(self) -> np.ndarray:
        """The tiles (K, h, w, C) back."""
        K, h, w, C = self.shape
        if not K:
            return np.zeros(self.shape, np.uint8)
        strip = enc.decode_png(self.data).reshape(h, K, w, -1)[..., :C]
        return np.ascontiguousarray(strip.transpose(1, 0, 2, 3))


class PngTiles(_Typed):
    """K images side by side in one PNG (value: :class:`Tiles`; a uint8 (K, h, w, 3|4) array
    is encoded on assignment).

    >>> import traitlets as t
    >>> class L(t.HasTraits):
    ...     thumbnails = PngTiles()
    >>> L(thumbnails=np.zeros((2, 8, 8, 4), np.uint8)).thumbnails.shape
    (2, 8, 8, 4)
    """

    expected = "uint8 images (K, h, w, 3|4) (or Tiles)"

    def validate(self, obj: Any, value: Any) -> Tiles | None:
        if value is None or isinstance(value, Tiles):
            return value
        a = np.asarray(value)
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] not in (3, 4):
            self.fail(obj, self.expected, f"{a.dtype} {a.shape}")
        return Tiles.encode(a)

    def to_json(self, value: Tiles | None, widget: Any = None) -> dict | None:
        if value is None:
            return None
        return {"format": "png", "shape": list(value.shape), "data": memoryview(value.data)}

    def from_json(self, value: Any, widget: Any = None) -> Tiles | None:
        if value is None:
            return None
        return Tiles(tuple(int(n) for n in value["shape"]), _raw(value["data"]))


# ------------------------------------------------------------------------------- mosaics
@dataclass(frozen=True, eq=False)
class Mosaics:
    """K feature mosaics of rows x cols cells of ``cell`` pixels (``tiles``) and per cell its
    source (trajectory, frame) — (-2, i): observation i of a separate strip; (-1, -1): none —
    computed at ``density`` cells per side (0: unknown)."""

    tiles: Tiles
    sources: np.ndarray  # int32 (K, rows, cols, 2)
    density: int = 0

    @classmethod
    def encode(cls, images: Any, sources: Any, density: int = 0) -> Mosaics:
        """Images (K, rows·cell, cols·cell, 3|4) uint8 and sources (K, rows, cols, 2).

        >>> m = Mosaics.encode(np.zeros((2, 8, 8, 4), np.uint8), np.zeros((2, 2, 2, 2), int))
        >>> m.rows, m.cols, m.cell
        (2, 2, 4)
        """
        img = np.asarray(images)
        src = np.asarray(sources)
        if img.ndim != 4 or img.shape[-1] not in (3, 4) or img.dtype != np.uint8:
            raise ValueError(f"mosaics must be uint8 (K, H, W, 3|4), got {img.dtype} {img.shape}")
        if src.ndim != 4 or src.shape[-1] != 2 or src.shape[0] != img.shape[0]:
            raise ValueError(
                f"mosaic sources must be (K, rows, cols, 2) with K = {img.shape[0]}, "
                f"got {src.shape}"
            )
        if src.dtype.kind not in "iu":
            raise ValueError(f"mosaic sources must be integers, got {src.dtype}")
        return cls(Tiles.encode(img), np.ascontiguousarray(src, "<i4"), int(density))

    @property
    def K(self) -> int:
        return int(self.sources.shape[0])

    @property
    def rows(self) -> int:
        return int(self.sources.shape[1])

    @property
    def cols(self) -> int:
        return int(self.sources.shape[2])

    @property
    def cell(self) -> int:
        return int(self.tiles.shape[1]) // max(1, self.rows)


class MosaicTrait(_Typed):
    """Feature mosaics (value: :class:`Mosaics`; build it with :meth:`Mosaics.encode`).

    >>> import traitlets as t
    >>> class G(t.HasTraits):
    ...     grid = MosaicTrait()
    >>> m = Mosaics.encode(np.zeros((1, 8, 8, 4), np.uint8), np.zeros((1, 2, 2, 2), int), 2)
    >>> G.grid.to_json(m)["shape"], G.grid.to_json(m)["density"]
    ([1, 2, 2, 4], 2)
    """

    expected = "Mosaics (Mosaics.encode(images, sources, density))"

    def validate(self, obj: Any, value: Any) -> Mosaics | None:
        if value is None or isinstance(value, Mosaics):
            return value
        self.fail(obj, self.expected, type(value).__name__)

    def to_json(self, value: Mosaics | None, widget: Any = None) -> dict | None:
        if value is None:
            return None
        return {
            "format": "png",
            "shape": [value.K, value.rows, value.cols, value.cell],
            "density": int(value.density),
            "data": memoryview(value.tiles.data),
            "sources": _SOURCES.to_json(value.sources),
        }

    def from_json(self, value: Any, widget: Any = None) -> Mosaics | None:
        if value is None:
            return None
        K, rows, cols, cell = (int(n) for n in value["shape"])
        src = array_from_json(value["sources"], "<i4")
        tiles = Tiles((K, rows * cell, cols * cell, 4), _raw(value["data"]))
        return Mosaics(tiles, src, int(value.get("density", 0)))


# -------------------------------------------------------------------------- attributions
@dataclass(frozen=True, eq=False)
class QuantizedMaps:
    """Per-feature maps (E, T, H, W, C) as int8 ``q`` with ``x ~= q * scale / 127`` per
    (frame, channel): one zlib stream per trajectory (empty: not computed), ``scales``
    float32 (E, T, C), ``ready`` bool (E, T) (None: every frame ready)."""

    shape: tuple[int, ...]
    data: bytes
    offsets: tuple[int, ...]
    scales: np.ndarray
    ready: np.ndarray | None = None

    def decode(self) -> np.ndarray:
        """The maps (E, T, H, W, C) float32 (zeros where not computed).

        >>> m = AttributionPayload(1, 2, 3, 3, 2)
        >>> m.set(0, np.ones((2, 3, 3, 2), np.float32))
        >>> float(m.value().decode().min())
        1.0
        """
        E, T, H, W, C = self.shape
        out = np.zeros(self.shape, np.float32)
        for e in range(E):
            a, b = self.offsets[e], self.offsets[e + 1]
            if b > a:
                q = np.frombuffer(zlib.decompress(self.data[a:b]), np.int8)
                out[e] = q.reshape(T, H, W, C) * self.scales[e][:, None, None, :] / 127.0
        return out


class AttributionPayload:
    """Builder of :class:`QuantizedMaps`: per-trajectory chunks, scales and a per-frame ready
    mask, so trajectories (or frames) are computed and sent progressively (``value()`` is an
    immutable snapshot to assign to an :class:`AttributionMaps` trait).

    >>> p = AttributionPayload(2, 3, 4, 4, 5)
    >>> p.set(1, np.ones((3, 4, 4, 5), np.float32))
    >>> v = p.value()
    >>> v.offsets[1], bool(v.ready[1].all()), bool(v.ready[0].any())
    (0, True, False)
    """

    def __init__(self, E: int, T: int, H: int, W: int, C: int, level: int = 1):
        self.shape = (int(E), int(T), int(H), int(W), int(C))
        self.chunks = [b""] * int(E)
        self.scales = np.zeros((E, T, C), np.float32)
        self.ready = np.zeros((E, T), bool)
        self.level = level

    def set(self, e: int, maps: Any, frames: Sequence[int] | np.ndarray | None = None) -> None:
        """Maps (T, H, W, C) of trajectory ``e``; ``frames``: the frames that are final
        (default all)."""
        T, H, W, C = self.shape[1:]
        m = np.asarray(maps, np.float32)
        if m.shape != (T, H, W, C):
            raise ValueError(f"maps must be {(T, H, W, C)}, got {m.shape}")
        q, sc = enc.quantize(m)
        self.chunks[e] = zlib.compress(q.tobytes(), self.level)
        self.scales[e] = sc
        if frames is None:
            self.ready[e] = True
        else:
            self.ready[e] = False
            self.ready[e, np.asarray(frames, np.int64)] = True

    def value(self) -> QuantizedMaps:
        """An immutable snapshot of the maps set so far."""
        offsets = [0]
        for c in self.chunks:
            offsets.append(offsets[-1] + len(c))
        return QuantizedMaps(
            self.shape,
            b"".join(self.chunks),
            tuple(offsets),
            self.scales.copy(),
            None if self.ready.all() else self.ready.copy(),
        )


def encode_attribution(features: Any, residual: Any = None, level: int = 1) -> QuantizedMaps:
    """Features (E, T, H, W, K) and residual (E, T, H, W) -> :class:`QuantizedMaps` of the
    K features + residual channel.

    >>> m = encode_attribution(np.ones((1, 2, 4, 4, 3), np.float32))
    >>> m.shape, bool(np.allclose(m.decode()[..., :3], 1.0))
    ((1, 2, 4, 4, 4), True)
    """
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 5:
        raise ValueError(f"features must be (E, T, H, W, K), got shape {f.shape}")
    x = enc.stack_features(f, residual)
    p = AttributionPayload(*x.shape, level=level)
    for e in range(x.shape[0]):
        p.set(e, x[e])
    return p.value()


class AttributionMaps(_Typed):
    """Quantised per-feature attribution maps (value: :class:`QuantizedMaps`, made by
    :class:`AttributionPayload`; a float (E, T, H, W, C) array is quantised on assignment).

    >>> import traitlets as t
    >>> class A(t.HasTraits):
    ...     attributions = AttributionMaps()
    >>> A(attributions=np.ones((1, 2, 4, 4, 3), np.float32)).attributions.shape
    (1, 2, 4, 4, 3)
    """

    expected = "float maps (E, T, H, W, K+1) (or QuantizedMaps)"

    def validate(self, obj: Any, value: Any) -> QuantizedMaps | None:
        if value is None or isinstance(value, QuantizedMaps):
            return value
        a = np.asarray(value)
        if a.ndim != 5 or a.dtype.kind not in "fiu":
            self.fail(obj, self.expected, f"{a.dtype} {a.shape}")
        p = AttributionPayload(*a.shape)
        for e in range(a.shape[0]):
            p.set(e, a[e])
        return p.value()

    def to_json(self, value: QuantizedMaps | None, widget: Any = None) -> dict | None:
        if value is None:
            return None
        return {
            "shape": list(value.shape),
            "offsets": list(value.offsets),
            "data": memoryview(value.data),
            "scales": _SCALES.to_json(np.asarray(value.scales, "<f4")),
            "ready": None if value.ready is None else _READY.to_json(value.ready.astype("u1")),
        }

    def from_json(self, value: Any, widget: Any = None) -> QuantizedMaps | None:
        if value is None:
            return None
        ready = array_from_json(value.get("ready"), "u1")
        return QuantizedMaps(
            tuple(int(n) for n in value["shape"]),
            _raw(value["data"]),
            tuple(int(n) for n in value["offsets"]),
            array_from_json(value["scales"], "<f4"),
            None if ready is None else ready.astype(bool),
        )


def wire_bytes(value: Any) -> int:
    """Bytes of the binary buffers in a serialized trait value (dicts and lists walked).

    >>> wire_bytes({"data": memoryview(b"abc"), "sources": {"data": b"12"}})
    5
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value).nbytes
    if isinstance(value, dict):
        return sum(wire_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(wire_bytes(v) for v in value)
    return 0


__all__ = [
    "ArrayTrait",
    "AttributionMaps",
    "AttributionPayload",
    "Frames",
    "MosaicTrait",
    "Mosaics",
    "PngFrames",
    "PngTiles",
    "QuantizedMaps",
    "Tiles",
    "array_from_json",
    "encode_attribution",
    "wire_bytes",
]
