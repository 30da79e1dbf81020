"""Image statistics of CoinRun frames for the decorrelated parameterization.

Pixels are modelled in logit space, ``logit(x)`` with ``x`` in (0, 1) (frames clipped half a
grey level inside [0, 255] so every logit is finite): a mean colour, a colour matrix (the
symmetric square root of the 3 x 3 colour covariance) and the RMS amplitude of the orthonormal
2-D FFT of the colour-decorrelated frames at every frequency (averaged over the 3 channels).
An image ``sigmoid(mean + C @ irfft2(spectrum * coeffs))`` with white unit-variance
``coeffs`` then has the second-order statistics of CoinRun frames; optimizing ``coeffs`` is
Lucid's decorrelated Fourier parameterization with the colour and spectrum *estimated from
CoinRun* instead of ImageNet's.

The shipped estimate (``coinrun_stats.npz`` / ``.json`` beside this module) was made by
``scripts/estimate_optvis_stats.py`` from 4,096 frames the shipped agent saw; nothing is
downloaded.

>>> frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
>>> stats = estimate_statistics(frames)
>>> stats.colour.shape, stats.spectrum.shape
((3, 3), (64, 33))
>>> coinrun_statistics().size
64
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...files import load_arrays, save_arrays

__all__ = [
    "SHIPPED_STATS",
    "ImageStatistics",
    "coinrun_statistics",
    "estimate_statistics",
    "to_logits",
]

SHIPPED_STATS = Path(__file__).with_name("coinrun_stats")
EPS = 0.5 / 255.0


def to_logits(frames: Any) -> np.ndarray:
    """uint8 frames ``(N, H, W, 3)`` -> float64 logits, clipped half a grey level inside (0, 1).

    >>> float(to_logits(np.array([[[[0, 128, 255]]]], np.uint8))[0, 0, 0, 1]) > 0
    True
    """
    x = np.asarray(frames)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}; pass observations "
            "as the environment gives them"
        )
    p = np.clip(x.astype(np.float64) / 255.0, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class ImageStatistics:
    """Mean logit colour ``mean`` (3,), colour matrix ``colour`` (3, 3) (symmetric square root
    of the logit colour covariance), ``spectrum`` (H, W // 2 + 1): RMS amplitude of the
    orthonormal rfft2 of the decorrelated channels; ``meta`` says where they came from.

    >>> s = coinrun_statistics()
    >>> bool(np.allclose(s.colour, s.colour.T)), s.spectrum.shape
    (True, (64, 33))
    """

    mean: np.ndarray
    colour: np.ndarray
    spectrum: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mean, colour, spec = (
            np.asarray(a, np.float64) for a in (self.mean, self.colour, self.spectrum)
        )
        if mean.shape != (3,) or colour.shape != (3, 3) or spec.ndim != 2:
            raise ValueError(
                f"image statistics need mean (3,), colour (3, 3), spectrum (H, W//2+1); got "
                f"{mean.shape}, {colour.shape}, {spec.shape}"
            )
        if spec.shape[1] != spec.shape[0] // 2 + 1:
            raise ValueError(
                f"spectrum must be (H, H // 2 + 1) for square images, got {spec.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(colour).all() and np.isfinite(spec).all()):
            raise ValueError("image statistics must be finite; re-estimate them")
        if (spec <= 0).any():
            raise ValueError("spectrum amplitudes must be positive; re-estimate them")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "colour", colour)
        object.__setattr__(self, "spectrum", spec)

    @property
    def size(self) -> int:
        """Image side the spectrum is for."""
        return int(self.spectrum.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean (3,), colour (3, 3), spectrum (H, W//2+1))`` as float32 tensors.

        >>> [tuple(t.shape) for t in coinrun_statistics().tensors()]
        [(3,), (3, 3), (64, 33)]
        """
        return (
            torch.as_tensor(self.mean, dtype=torch.float32),
            torch.as_tensor(self.colour, dtype=torch.float32),
            torch.as_tensor(self.spectrum, dtype=torch.float32),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.npz`` + ``path.json`` (no pickle); returns the stem.

        >>> import tempfile
        >>> s = coinrun_statistics()
        >>> ImageStatistics.load(s.save(tempfile.mkdtemp() + "/s")).size
        64
        """
        arrays = {"mean": self.mean, "colour": self.colour, "spectrum": self.spectrum}
        return save_arrays(path, arrays, self.meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageStatistics:
        """Read what :meth:`save` wrote; a missing or malformed file is a clear error.

        >>> ImageStatistics.load(SHIPPED_STATS).meta["frames"]
        4096
        """
        arrays, meta = load_arrays(path)
        missing = {"mean", "colour", "spectrum"} - set(arrays)
        if missing:
            raise ValueError(f"{path}: not image statistics (missing {sorted(missing)})")
        return cls(arrays["mean"], arrays["colour"], arrays["spectrum"], meta)


def estimate_statistics(frames: Any, meta: dict[str, Any] | None = None) -> ImageStatistics:
    """Estimate :class:`ImageStatistics` from uint8 frames ``(N, S, S, 3)`` (square, N >= 2).

    >>> frames = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> estimate_statistics(frames).size
    32
    """
    z = to_logits(frames)
    n, h, w, _ = z.shape
    if n < 2 or h != w:
        raise ValueError(f"need at least 2 square frames to estimate statistics, got {z.shape}")
    pix = z.reshape(-1, 3)
    mean = pix.mean(0)
    cov = np.cov(pix - mean, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)
    evals = np.maximum(evals, 1e-6 * max(evals.max(), 1e-12))
    colour = (evecs * np.sqrt(evals)) @ evecs.T
    white = np.linalg.inv(colour)
    dec = (z - mean) @ white.T  # decorrelated channels, unit variance each
    power = np.zeros((h, w // 2 + 1))
    for start in range(0, n, 256):
        chunk = np.moveaxis(dec[start : start + 256], -1, 1)
        power += (np.abs(np.fft.rfft2(chunk, norm="ortho")) ** 2).sum(axis=(0, 1))
    spectrum = np.sqrt(power / (3 * n))
    spectrum = np.maximum(spectrum, 1e-3 * spectrum.max())
    info = {"frames": int(n), "size": int(h), **(meta or {})}
    return ImageStatistics(mean, colour, spectrum, info)


@lru_cache(maxsize=1)
def coinrun_statistics() -> ImageStatistics:
    """The shipped statistics of CoinRun frames (see the module docstring for their source).

    >>> coinrun_statistics().meta["agent"]
    'coinrun'
    """
    if not SHIPPED_STATS.with_suffix(".npz").is_file():
        raise FileNotFoundError(
            f"the shipped CoinRun image statistics are missing ({SHIPPED_STATS}.npz); "
            "recreate them with `python scripts/estimate_optvis_stats.py`"
        )
    return ImageStatistics.load(SHIPPED_STATS)
