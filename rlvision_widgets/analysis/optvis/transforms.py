"""Transformation robustness: random jitter, scale and rotation applied between steps.

Each transform draws one 2 x 3 affine matrix per image (in pixels, about the image centre);
:class:`Transforms` composes them and resamples the whole batch with one
``grid_sample`` (reflection padding, so no blank borders). Integer jitter is an exact pixel
shift; a jitter-only pipeline skips resampling and slices a reflection-padded batch.
Randomness comes only from the ``torch.Generator`` passed in, so a seeded run repeats.
The article's settings: jitter up to 2 px for the first layer, 8 px for 2b
(:func:`article_transforms`).

>>> t = article_transforms("2b", first_layer="1a", scales=(0.95, 1.05), degrees=5)
>>> t
Transforms([Jitter(8), RandomScale((0.95, 1.05)), RandomRotate(5.0)])
>>> x = torch.rand(4, 3, 64, 64)
>>> tuple(t(x, torch.Generator().manual_seed(0)).shape)
(4, 3, 64, 64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "Jitter",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "Transforms",
    "article_transforms",
]


class Transform:
    """One random affine transform: :meth:`matrices` gives ``(N, 3, 3)`` pixel-space matrices.

    >>> Jitter(2).matrices(3, 64, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 3, 3])
    """

    def matrices(self, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class Jitter(Transform):
    """Shift by a random whole number of pixels in [-pixels, pixels] on each axis.

    >>> m = Jitter(8).matrices(100, 64, torch.Generator().manual_seed(0))
    >>> int(m[:, :2, 2].abs().max())
    8
    """

    def __init__(self, pixels: int):
        if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
            raise ValueError(
                f"jitter must be a non-negative whole number of pixels, got {pixels!r}"
            )
        self.pixels = pixels

    def matrices(self, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
        m = torch.eye(3).repeat(n, 1, 1)
        p = self.pixels
        m[:, :2, 2] = torch.randint(-p, p + 1, (n, 2), generator=gen).float()
        return m

    def __repr__(self) -> str:
        return f"Jitter({self.pixels})"


class RandomScale(Transform):
    """Scale about the centre by a factor drawn uniformly from ``scales`` ``(low, high)``.

    >>> m = RandomScale((0.9, 1.1)).matrices(50, 64, torch.Generator().manual_seed(0))
    >>> bool(((m[:, 0, 0] >= 0.9) & (m[:, 0, 0] <= 1.1)).all())
    True
    """

    def __init__(self, scales: tuple[float, float] = (0.95, 1.05)):
        lo, hi = (float(s) for s in scales)
        if not 0 < lo <= hi:
            raise ValueError(f"scales must be (low, high) with 0 < low <= high, got {scales!r}")
        self.scales = (lo, hi)

    def matrices(self, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
        lo, hi = self.scales
        s = lo + (hi - lo) * torch.rand(n, generator=gen)
        m = torch.eye(3).repeat(n, 1, 1)
        m[:, 0, 0] = s
        m[:, 1, 1] = s
        return m

    def __repr__(self) -> str:
        return f"RandomScale({self.scales})"


class RandomRotate(Transform):
    """Rotate about the centre by an angle drawn uniformly from [-degrees, degrees].

    >>> m = RandomRotate(0).matrices(2, 64, torch.Generator())
    >>> bool(torch.equal(m, torch.eye(3).repeat(2, 1, 1)))
    True
    """

    def __init__(self, degrees: float = 5.0):
        if float(degrees) < 0:
            raise ValueError(f"rotation must be a non-negative angle in degrees, got {degrees!r}")
        self.degrees = float(degrees)

    def matrices(self, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
        a = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(self.degrees)
        m = torch.eye(3).repeat(n, 1, 1)
        m[:, 0, 0], m[:, 0, 1] = torch.cos(a), -torch.sin(a)
        m[:, 1, 0], m[:, 1, 1] = torch.sin(a), torch.cos(a)
        return m

    def __repr__(self) -> str:
        return f"RandomRotate({self.degrees})"


class Transforms:
    """Apply ``transforms`` in order (composed into one resampling per step).

    ``Transforms([])`` is the identity (the image is returned unchanged).

    >>> x = torch.rand(2, 3, 64, 64)
    >>> Transforms([])(x, torch.Generator()) is x
    True
    >>> y = Transforms([Jitter(0)])(x, torch.Generator())
    >>> bool(torch.allclose(x, y, atol=1e-5))                      # zero jitter = identity
    True
    """

    def __init__(self, transforms: Sequence[Transform] = ()):
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(
                    f"transforms must be Transform objects (Jitter, RandomScale, RandomRotate), "
                    f"got {type(t).__name__}"
                )
        self.transforms = list(transforms)

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.transforms:
            return images
        if all(isinstance(t, Jitter) for t in self.transforms):
            return self._shift(images, gen)
        n, _, h, w = images.shape
        m = torch.eye(3).repeat(n, 1, 1)
        for t in self.transforms:
            m = t.matrices(n, h, gen) @ m
        # the sampling grid maps output pixels to input pixels: invert, then normalise to [-1, 1]
        inv = torch.linalg.inv(m)
        theta = inv[:, :2, :].clone()
        theta[:, 0, 2] = theta[:, 0, 2] * 2 / w
        theta[:, 1, 2] = theta[:, 1, 2] * 2 / h
        theta = theta.to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def _shift(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Jitter only: whole-pixel shifts by slicing a reflection-padded batch (no resampling;
        the same random draws as the affine path, so the same shifts)."""
        n, _, h, w = images.shape
        m = torch.eye(3).repeat(n, 1, 1)
        for t in self.transforms:
            m = t.matrices(n, h, gen) @ m
        shifts = m[:, :2, 2].round().long().tolist()
        p = max(1, max(abs(v) for s in shifts for v in s))
        if p >= min(h, w):
            raise ValueError(f"jitter of {p} px is too large for {h}x{w} images")
        padded = F.pad(images, (p, p, p, p), mode="reflect")
        return torch.stack(
            [
                padded[k, :, p - dy : p - dy + h, p - dx : p - dx + w]
                for k, (dx, dy) in enumerate(shifts)
            ]
        )

    def __repr__(self) -> str:
        return f"Transforms({self.transforms!r})"


def article_transforms(
    layer: str,
    *,
    first_layer: str = "1a",
    scales: tuple[float, float] = (1.0, 1.0),
    degrees: float = 0.0,
) -> Transforms:
    """The article's jitter: up to 2 px at the first layer, 8 px deeper. Jitter only by
    default (the article notes CoinRun frames are not scale- or rotation-invariant); pass
    ``scales=(0.95, 1.05), degrees=5`` to add Lucid's mild random scale and rotation.

    >>> article_transforms("1a")
    Transforms([Jitter(2)])
    >>> article_transforms("2b", scales=(0.95, 1.05), degrees=5)
    Transforms([Jitter(8), RandomScale((0.95, 1.05)), RandomRotate(5.0)])
    """
    out: list[Transform] = [Jitter(2 if layer == first_layer else 8)]
    if tuple(scales) != (1, 1):
        out.append(RandomScale(scales))
    if degrees:
        out.append(RandomRotate(degrees))
    return Transforms(out)
