"""MACO: magnitude-constrained optimization (Fel et al. 2023, "Unlocking Feature
Visualization for Deeper Networks with MAgnitude Constrained Optimization").

Only the *phase* of the image's Fourier spectrum is optimized; its magnitude is fixed to the
mean magnitude spectrum of real CoinRun frames (the shipped :mod:`.statistics`, colour
decorrelated). Images therefore keep CoinRun's power at every frequency and cannot drift into
the high-frequency or extremal-colour patterns plain optimization favours. Phases can start
at random or at a real frame's (``from_frames``: feature accentuation of that frame).

>>> img = MacoImage(2, seed=0)
>>> tuple(img().shape), tuple(img.phase.shape)
((2, 3, 64, 64), (2, 3, 64, 33))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .statistics import ImageStatistics, coinrun_statistics, to_logits

__all__ = ["MacoImage"]


class MacoImage(nn.Module):
    """``n`` images ``sigmoid(mean + C @ irfft2(spectrum * exp(i * phase)))`` with only
    ``phase`` free (uniform in [-pi, pi) at start, seeded).

    >>> img = MacoImage(1, seed=3)
    >>> amp = torch.fft.rfft2(img.decorrelated(), norm="ortho").abs()
    >>> bool(torch.allclose(amp[0, 0, 1:-1, 1:-1], img.spectrum[1:-1, 1:-1], rtol=1e-3))
    True
    """

    def __init__(self, n: int, *, stats: ImageStatistics | None = None, seed: int = 0):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"number of images must be a positive integer, got {n!r}")
        self.stats = stats or coinrun_statistics()
        mean, colour, spectrum = self.stats.tensors()
        self.size = self.stats.size
        self.register_buffer("mean", mean.view(1, 3, 1, 1))
        self.register_buffer("colour", colour)
        self.register_buffer("spectrum", spectrum)
        gen = torch.Generator().manual_seed(int(seed))
        shape = (int(n), 3, self.size, self.size // 2 + 1)
        self.phase = nn.Parameter((torch.rand(shape, generator=gen) * 2 - 1) * np.pi)

    def decorrelated(self) -> torch.Tensor:
        """Colour-decorrelated logit images ``(N, 3, S, S)`` with the fixed magnitude."""
        c = torch.polar(self.spectrum.expand_as(self.phase), self.phase)
        return torch.fft.irfft2(c, s=(self.size, self.size), norm="ortho")

    def forward(self) -> torch.Tensor:
        z = torch.einsum("ij,njhw->nihw", self.colour, self.decorrelated())
        return torch.sigmoid(z + self.mean)

    @classmethod
    def from_frames(cls, frames: Any, *, stats: ImageStatistics | None = None) -> MacoImage:
        """Start from the phases of real ``frames`` (their magnitudes are replaced by CoinRun's
        mean magnitude, so the start is a recognisable, re-textured version of each frame).

        >>> frames = np.zeros((1, 64, 64, 3), np.uint8)
        >>> MacoImage.from_frames(frames).phase.shape[0]
        1
        """
        stats = stats or coinrun_statistics()
        z = to_logits(frames)
        if z.shape[1:3] != (stats.size, stats.size):
            raise ValueError(f"frames must be {stats.size}x{stats.size}, got {z.shape[1:3]}")
        img = cls(z.shape[0], stats=stats)
        dec = np.moveaxis((z - stats.mean) @ np.linalg.inv(stats.colour).T, -1, 1)
        phase = np.angle(np.fft.rfft2(dec, norm="ortho")).astype(np.float32)
        with torch.no_grad():
            img.phase.copy_(torch.from_numpy(phase))
        return img
