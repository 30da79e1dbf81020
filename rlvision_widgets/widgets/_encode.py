"""Compact binary encodings of widget data (decoded by ``js/decode.ts`` / ``js/data.ts``).

* observations: one PNG strip per trajectory (``S`` wide, ``S*T`` tall), concatenated, with byte
  offsets;
* per-step series: little-endian float32 / uint8 bytes;
* attribution maps: K signed features + residual per position, int8-quantised per
  (frame, channel) with a float32 scale (``x = q * scale / 127``), one zlib stream per
  trajectory (byte offsets), and an optional per-frame ready mask.

>>> import numpy as np
>>> png, offsets = encode_png_strips(np.zeros((2, 3, 64, 64, 3), np.uint8))
>>> len(offsets)
3
>>> tr = encode_attribution(np.ones((1, 2, 4, 4, 3), np.float32), np.zeros((1, 2, 4, 4), np.float32))
>>> tr["attr_shape"]
[1, 2, 4, 4, 4]
>>> np.allclose(decode_attribution(tr)[..., :3], 1.0)
True
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence

import numpy as np


def f32(a: np.ndarray | Sequence[float] | None) -> bytes:
    """Float32 little-endian bytes (empty for None)."""
    if a is None:
        return b""
    return np.ascontiguousarray(np.asarray(a, dtype="<f4")).tobytes()


def u8(a: np.ndarray | Sequence[int] | None) -> bytes:
    """uint8 bytes (empty for None)."""
    if a is None:
        return b""
    return np.ascontiguousarray(np.asarray(a).astype(np.uint8)).tobytes()


def i32(a: np.ndarray | Sequence[int] | None) -> bytes:
    if a is None:
        return b""
    return np.ascontiguousarray(np.asarray(a, dtype="<i4")).tobytes()


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of an (H, W, 3|4) or (H, W) uint8 image."""
    from PIL import Image

    a = np.ascontiguousarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_png` (for tests)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def encode_png_strip(frames: np.ndarray, compress_level: int = 6) -> bytes:
    """One PNG of frames (T, S, S, C) stacked vertically (S wide, S*T tall)."""
    f = np.asarray(frames)
    if f.ndim != 4:
        raise ValueError(f"frames must be (T, S, S, 3|4), got shape {f.shape}")
    return encode_png(f.reshape(f.shape[0] * f.shape[1], f.shape[2], f.shape[3]), compress_level)


def encode_png_strips(obs: np.ndarray, compress_level: int = 6) -> tuple[bytes, list[int]]:
    """Observations (E, T, S, S, 3) -> (concatenated PNG strips, E+1 byte offsets)."""
    o = np.asarray(obs)
    if o.ndim != 5 or o.shape[-1] != 3 or o.dtype != np.uint8:
        raise ValueError(f"observations must be uint8 (E, T, S, S, 3), got {o.dtype} {o.shape}")
    parts = [encode_png_strip(o[e], compress_level) for e in range(o.shape[0])]
    offsets = [0]
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return b"".join(parts), offsets


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., H, W, C) float -> (int8 same shape, float32 scale (..., C)) with
    ``x ~= q * scale / 127`` (scale = max |x| over positions)."""
    x = np.asarray(x, np.float32)
    scale = np.abs(x).max(axis=(-3, -2)).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.rint(x * (127.0 / safe[..., None, None, :]))
    return np.clip(q, -127, 127).astype(np.int8), scale


class AttributionPayload:
    """Per-trajectory attribution chunks (zlib int8), scales and a per-frame ready mask, so
    trajectories (or frames) can be computed and sent progressively.

    >>> p = AttributionPayload(2, 3, 4, 4, 5)
    >>> p.set(1, np.ones((3, 4, 4, 5), np.float32))
    >>> p.traits()["attr_offsets"][1:], p.ready[1].all(), p.ready[0].any()
    ([0, ...], True, False)
    """

    def __init__(self, E: int, T: int, H: int, W: int, C: int, level: int = 1):
        self.shape = [int(E), int(T), int(H), int(W), int(C)]
        self.chunks = [b""] * E
        self.scales = np.zeros((E, T, C), np.float32)
        self.ready = np.zeros((E, T), bool)
        self.level = level

    def set(
        self, e: int, maps: np.ndarray, frames: Sequence[int] | np.ndarray | None = None
    ) -> None:
        """Maps (T, H, W, C) of trajectory ``e``; ``frames``: the frames that are final
        (default all)."""
        T, H, W, C = self.shape[1:]
        m = np.asarray(maps, np.float32)
        if m.shape != (T, H, W, C):
            raise ValueError(f"maps must be {(T, H, W, C)}, got {m.shape}")
        q, sc = quantize(m)
        self.chunks[e] = zlib.compress(q.tobytes(), self.level)
        self.scales[e] = sc
        if frames is None:
            self.ready[e] = True
        else:
            self.ready[e] = False
            self.ready[e, np.asarray(frames, np.int64)] = True

    def traits(self, prefix: str = "") -> dict:
        offsets = [0]
        for c in self.chunks:
            offsets.append(offsets[-1] + len(c))
        return {
            f"{prefix}attr_maps": b"".join(self.chunks),
            f"{prefix}attr_offsets": offsets,
            f"{prefix}attr_scales": f32(self.scales),
            f"{prefix}attr_shape": list(self.shape),
            f"{prefix}attr_ready": b"" if self.ready.all() else u8(self.ready),
        }


def stack_features(features: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
    """(…, H, W, K) features + (…, H, W) residual -> (…, H, W, K+1)."""
    f = np.asarray(features, np.float32)
    r = np.zeros(f.shape[:-1], np.float32) if residual is None else np.asarray(residual, np.float32)
    if r.shape != f.shape[:-1]:
        raise ValueError(f"residual must have shape {f.shape[:-1]}, got {r.shape}")
    return np.concatenate([f, r[..., None]], axis=-1)


def encode_attribution(
    features: np.ndarray, residual: np.ndarray | None = None, level: int = 1
) -> dict:
    """Features (E, T, H, W, K) and residual (E, T, H, W) -> attribution trait values
    (``attr_maps``, ``attr_offsets``, ``attr_scales``, ``attr_shape``, ``attr_ready``)."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 5:
        raise ValueError(f"features must be (E, T, H, W, K), got shape {f.shape}")
    x = stack_features(f, residual)
    p = AttributionPayload(*x.shape, level=level)
    for e in range(x.shape[0]):
        p.set(e, x[e])
    return p.traits()


def decode_attribution(traits: dict, prefix: str = "") -> np.ndarray:
    """Inverse of :func:`encode_attribution` -> (E, T, H, W, K+1) float32 (for tests)."""
    shape = traits[f"{prefix}attr_shape"]
    E, T, H, W, C = shape
    data = bytes(traits[f"{prefix}attr_maps"])
    off = traits[f"{prefix}attr_offsets"]
    s = np.frombuffer(bytes(traits[f"{prefix}attr_scales"]), "<f4").reshape(E, T, C)
    out = np.zeros(shape, np.float32)
    for e in range(E):
        if off[e + 1] > off[e]:
            q = np.frombuffer(zlib.decompress(data[off[e] : off[e + 1]]), np.int8)
            out[e] = q.reshape(T, H, W, C).astype(np.float32) * s[e][:, None, None, :] / 127.0
    return out
