"""Low-level encodings the typed array traits (``_arrays.py``) build on: PNG images and
strips, and int8 quantisation per (frame, channel) with a float32 scale (``x = q * scale / 127``).

>>> import numpy as np
>>> decode_png(encode_png_strip(np.zeros((3, 8, 8, 3), np.uint8))).shape
(24, 8, 3)
>>> q, scale = quantize(np.ones((2, 4, 4, 3), np.float32))
>>> int(q.max()), scale.shape
(127, (2, 3))
"""

from __future__ import annotations

import io

import numpy as np


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


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., H, W, C) float -> (int8 same shape, float32 scale (..., C)) with
    ``x ~= q * scale / 127`` (scale = max |x| over positions)."""
    x = np.asarray(x, np.float32)
    scale = np.abs(x).max(axis=(-3, -2)).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.rint(x * (127.0 / safe[..., None, None, :]))
    return np.clip(q, -127, 127).astype(np.int8), scale


def stack_features(features: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
    """(…, H, W, K) features + (…, H, W) residual -> (…, H, W, K+1)."""
    f = np.asarray(features, np.float32)
    r = np.zeros(f.shape[:-1], np.float32) if residual is None else np.asarray(residual, np.float32)
    if r.shape != f.shape[:-1]:
        raise ValueError(f"residual must have shape {f.shape[:-1]}, got {r.shape}")
    return np.concatenate([f, r[..., None]], axis=-1)
