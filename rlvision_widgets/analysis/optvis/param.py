"""Image parameterizations: what the optimizer changes to make an image.

:class:`FourierImage` is the decorrelated parameterization (Lucid's, with CoinRun's own colour
and spectrum from :mod:`.statistics`): white Fourier coefficients, scaled by the CoinRun
amplitude spectrum, inverse FFT, colour matrix, mean colour, sigmoid.
:class:`PixelImage` is the plain baseline (one logit per pixel and colour). Both are
``nn.Module``\\ s whose ``forward()`` returns float images ``(N, 3, S, S)`` in (0, 1), and both
can start from real frames (``from_frames``) for feature accentuation.

>>> img = FourierImage(2, seed=0)
>>> x = img()
>>> tuple(x.shape), bool((x > 0).all() and (x < 1).all())
((2, 3, 64, 64), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .statistics import ImageStatistics, coinrun_statistics, to_logits

__all__ = ["FourierImage", "PixelImage", "frames_to_tensor", "images_to_frames"]


def frames_to_tensor(frames: Any) -> torch.Tensor:
    """uint8 frames ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in [0, 1].

    >>> tuple(frames_to_tensor(np.zeros((1, 64, 64, 3), np.uint8)).shape)
    (1, 3, 64, 64)
    """
    x = np.asarray(frames)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255.0)


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """float ``(N, 3, H, W)`` in [0, 1] -> uint8 frames ``(N, H, W, 3)`` (rounded).

    >>> images_to_frames(torch.full((1, 3, 2, 2), 0.5))[0, 0, 0].tolist()
    [128, 128, 128]
    """
    x = images.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of images must be a positive integer, got {n!r}")
    return int(n)


class FourierImage(nn.Module):
    """``n`` images ``sigmoid(mean + C @ irfft2(spectrum * coeffs))`` from white coefficients.

    ``stats``: :class:`~.statistics.ImageStatistics` (default: the shipped CoinRun estimate;
    its spectrum fixes the image size). ``init_std``: standard deviation of the random start
    (0.01, as in Lucid: a near-uniform image of the mean colour). ``seed``: the start.

    >>> frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    >>> back = images_to_frames(FourierImage.from_frames(frames)())
    >>> int(np.abs(back.astype(int) - frames).max()) <= 1          # exact round trip
    True
    """

    def __init__(
        self,
        n: int,
        *,
        stats: ImageStatistics | None = None,
        init_std: float = 0.01,
        seed: int = 0,
    ):
        super().__init__()
        n = _check_count(n)
        self.stats = stats or coinrun_statistics()
        mean, colour, spectrum = self.stats.tensors()
        self.size = self.stats.size
        self.register_buffer("mean", mean.view(1, 3, 1, 1))
        self.register_buffer("colour", colour)
        self.register_buffer("spectrum", spectrum)
        gen = torch.Generator().manual_seed(int(seed))
        shape = (n, 3, self.size, self.size // 2 + 1, 2)
        self.coeffs = nn.Parameter(torch.randn(shape, generator=gen) * float(init_std))

    def decorrelated(self) -> torch.Tensor:
        """The colour-decorrelated logit images ``(N, 3, S, S)`` (before colour and mean)."""
        c = torch.view_as_complex(self.coeffs) * self.spectrum
        return torch.fft.irfft2(c, s=(self.size, self.size), norm="ortho")

    def logits(self) -> torch.Tensor:
        """Pixel logits ``(N, 3, S, S)``."""
        z = self.decorrelated()
        return torch.einsum("ij,njhw->nihw", self.colour, z) + self.mean

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits())

    @classmethod
    def from_frames(cls, frames: Any, *, stats: ImageStatistics | None = None) -> FourierImage:
        """The parameterization whose images are exactly ``frames`` (up to rounding).

        >>> FourierImage.from_frames(np.zeros((1, 64, 64, 3), np.uint8)).coeffs.shape[0]
        1
        """
        stats = stats or coinrun_statistics()
        z = to_logits(frames)
        if z.shape[1:3] != (stats.size, stats.size):
            raise ValueError(f"frames must be {stats.size}x{stats.size}, got {z.shape[1:3]}")
        img = cls(z.shape[0], stats=stats, init_std=0.0)
        white = np.linalg.inv(stats.colour)
        dec = np.moveaxis((z - stats.mean) @ white.T, -1, 1)
        coeffs = np.fft.rfft2(dec, norm="ortho") / stats.spectrum
        t = torch.view_as_real(torch.from_numpy(coeffs.astype(np.complex64)))
        with torch.no_grad():
            img.coeffs.copy_(t)
        return img


class PixelImage(nn.Module):
    """``n`` images ``sigmoid(logits)``, one free logit per pixel and colour (the baseline
    without decorrelation). Starts at the CoinRun mean colour plus noise of ``init_std``.

    >>> tuple(PixelImage(3, seed=1)().shape)
    (3, 3, 64, 64)
    """

    def __init__(
        self,
        n: int,
        *,
        size: int = 64,
        stats: ImageStatistics | None = None,
        init_std: float = 0.01,
        seed: int = 0,
    ):
        super().__init__()
        n = _check_count(n)
        stats = stats or coinrun_statistics()
        self.size = int(size)
        gen = torch.Generator().manual_seed(int(seed))
        mean = torch.as_tensor(stats.mean, dtype=torch.float32).view(1, 3, 1, 1)
        noise = torch.randn((n, 3, self.size, self.size), generator=gen) * float(init_std)
        self.pixels = nn.Parameter(mean + noise)

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.pixels)

    @classmethod
    def from_frames(cls, frames: Any, *, stats: ImageStatistics | None = None) -> PixelImage:
        """The parameterization whose images are ``frames`` (up to rounding).

        >>> PixelImage.from_frames(np.zeros((2, 64, 64, 3), np.uint8)).pixels.shape[0]
        2
        """
        z = to_logits(frames)
        img = cls(z.shape[0], size=z.shape[1], stats=stats, init_std=0.0)
        with torch.no_grad():
            img.pixels.copy_(torch.from_numpy(np.moveaxis(z, -1, 1).astype(np.float32)))
        return img
