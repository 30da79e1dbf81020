"""Compact binary encodings of widget data (decoded by ``js/decode.ts`` / ``js/data.ts``).

* observations: one PNG strip per trajectory (``S`` wide, ``S*T`` tall), concatenated, with byte
  offsets;
* per-step series: little-endian float32 / uint8 bytes;
* attribution maps: K signed features + residual per position, int8-quantised per
  (frame, channel) with a float32 scale (``x = q * scale / 127``), zlib-compressed.

>>> import numpy as np
>>> png, offsets = encode_png_strips(np.zeros((2, 3, 64, 64, 3), np.uint8))
>>> len(offsets)
3
>>> maps, scales, shape = encode_attribution(np.ones((1, 2, 4, 4, 3), np.float32),
...                                          np.zeros((1, 2, 4, 4), np.float32))
>>> shape
[1, 2, 4, 4, 4]
>>> np.allclose(decode_attribution(maps, scales, shape)[..., :3], 1.0)
True
"""
from __future__ import annotations

import io
import zlib
from typing import Sequence

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


def encode_attribution(features: np.ndarray, residual: np.ndarray | None = None,
                       level: int = 1) -> tuple[bytes, bytes, list[int]]:
    """Features (E, T, H, W, K) and residual (E, T, H, W) -> (zlib int8 maps, float32 scales,
    shape [E, T, H, W, K+1])."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 5:
        raise ValueError(f"features must be (E, T, H, W, K), got shape {f.shape}")
    r = np.zeros(f.shape[:4], np.float32) if residual is None else np.asarray(residual, np.float32)
    if r.shape != f.shape[:4]:
        raise ValueError(f"residual must be (E, T, H, W) = {f.shape[:4]}, got {r.shape}")
    x = np.concatenate([f, r[..., None]], axis=-1)
    scale = np.abs(x).max(axis=(2, 3)).astype(np.float32)          # (E, T, C)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.rint(x * (127.0 / safe[:, :, None, None, :]))
    q = np.clip(q, -127, 127).astype(np.int8)
    return zlib.compress(q.tobytes(), level), f32(scale), list(map(int, x.shape))


def decode_attribution(maps: bytes, scales: bytes, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`encode_attribution` -> (E, T, H, W, K+1) float32."""
    q = np.frombuffer(zlib.decompress(bytes(maps)), np.int8).reshape(shape)
    s = np.frombuffer(bytes(scales), "<f4").reshape(shape[0], shape[1], shape[4])
    return q.astype(np.float32) * s[:, :, None, None, :] / 127.0
