"""Display maths for attribution overlays, shared by the widgets and the HTML export.

Pure numpy functions; maps are ``(..., H, W, K)`` channels-last arrays at layer resolution.
The defaults reproduce the original tool (openai/understanding-rl-vision):

1. reduce attributions to K NMF features (signed, attribution units) + a residual;
2. divide by one scale per trajectory: the median over frames of each frame's max
   (:func:`trajectory_scale`), or per frame (:func:`frame_scale`);
3. take the positive part ("good news"), the negative part ("bad news") or the absolute value;
4. colour: feature k gets the unit-norm hue at 360 k / K (:func:`feature_colors`), the
   residual is white; rgb = sum_k value_k * colour_k;
5. blur at layer resolution with the unnormalised 15 x 15 disc exp(-r), r <= 7 (:func:`blur_disc`,
   the article's, on its 32 x 32 layer 2b), by default scaled to the layer's resolution
   (radius 7 H / 32, :func:`default_blur_radius`; 3.5 on a 16 x 16 layer), or a Gaussian
   (:func:`blur_gaussian`);
6. brightness -> opacity: alpha = min(1, ||rgb||), colour = rgb / alpha (:func:`brightness_to_opacity`);
7. upsample to the observation (64 px) or full-resolution (512 px) size (:func:`upsample`).

:func:`attribution_to_rgba` runs steps 3-7.

>>> feats = np.zeros((2, 8, 8, 3), np.float32); feats[0, 4, 4, 1] = 2.0; feats[1, 2, 2, 0] = 1.0
>>> scale = trajectory_scale(feats)
>>> rgba = attribution_to_rgba(feats, feature_colors(3), scale, size=64)
>>> rgba.shape, float(rgba[..., 3].max()) <= 1.0
((2, 64, 64, 4), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ARTICLE_BLUR_RADIUS",
    "ARTICLE_LAYER_SIZE",
    "attribution_to_rgba",
    "blur",
    "blur_disc",
    "blur_gaussian",
    "brightness_to_opacity",
    "channels_to_rgb",
    "default_blur_radius",
    "disc_kernel",
    "feature_colors",
    "feature_colors_hex",
    "frame_scale",
    "gaussian_kernel",
    "hue_to_rgb",
    "rescale_opacity",
    "scaled_disc_kernel",
    "sign_part",
    "trajectory_scale",
    "upsample",
]

SIGNS = ("positive", "negative", "absolute")
#: The article's blur: disc radius 7 (positions) on its layer 2b of 32 x 32 positions.
ARTICLE_BLUR_RADIUS = 7
ARTICLE_LAYER_SIZE = 32


# ----------------------------------------------------------------------------- scales
def trajectory_scale(maps: np.ndarray) -> float:
    """One display scale for a trajectory: the median over frames of each frame's max.

    ``maps``: (frames, ...) (e.g. features (F, H, W, K)). Falls back to the overall max, then
    1, when the median is not positive (the original tool's rule).

    >>> trajectory_scale(np.array([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0]]))
    2.0
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 1 or maps.shape[0] == 0:
        raise ValueError(f"maps must have a frames axis with at least one frame, got {maps.shape}")
    per_frame = maps.reshape(maps.shape[0], -1).max(axis=1)
    scale = float(np.median(per_frame))
    if not scale > 0:
        scale = float(maps.max())
    return scale if scale > 0 else 1.0


def frame_scale(maps: np.ndarray) -> np.ndarray:
    """Per-frame display scale: each frame's max (1 where the max is not positive), shaped to
    broadcast against ``maps``.

    >>> frame_scale(np.array([[1.0, 2.0], [0.0, -1.0]])).ravel().tolist()
    [2.0, 1.0]
    """
    maps = np.asarray(maps, dtype=np.float64)
    m = maps.reshape(maps.shape[0], -1).max(axis=1)
    m = np.where(m > 0, m, 1.0)
    return m.reshape((-1,) + (1,) * (maps.ndim - 1))


def sign_part(maps: np.ndarray, sign: str = "positive") -> np.ndarray:
    """``max(x, 0)`` ("positive", good news), ``max(-x, 0)`` ("negative", bad news) or ``|x|``.

    >>> sign_part(np.array([-1.0, 2.0]), "negative").tolist()
    [1.0, 0.0]
    """
    if sign in ("positive", "pos"):
        return np.maximum(maps, 0)
    if sign in ("negative", "neg"):
        return np.maximum(-maps, 0)
    if sign in ("absolute", "abs"):
        return np.abs(maps)
    raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")


# ----------------------------------------------------------------------------- colours
def hue_to_rgb(angle: float, warp: bool = True) -> np.ndarray:
    """Unit-norm RGB vector for a hue angle in degrees, interpolating red, yellow, green, cyan,
    blue, magenta (each normalised), warped away from the primaries as in Lucid.

    >>> np.round(hue_to_rgb(0.0), 3).tolist()
    [1.0, 0.0, 0.0]
    """
    angle = angle - 360 * (angle // 360)
    corners = np.array(
        [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=np.float64
    )
    corners /= np.linalg.norm(corners, axis=1, keepdims=True)
    width = 360 / len(corners)
    n = int(math.floor(angle / width))
    d = (angle - n * width) / width
    if warp:
        d = math.sin(d * math.pi / 2) if n % 2 == 0 else 1 - math.sin((1 - d) * math.pi / 2)
    v = (1 - d) * corners[n % 6] + d * corners[(n + 1) % 6]
    return v / np.linalg.norm(v)


def feature_colors(k: int, warp: bool = True) -> np.ndarray:
    """(K, 3) unit-norm hue colours at 360 i / K degrees (the original tool's palette).

    >>> feature_colors(4).shape
    (4, 3)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"number of features must be a positive integer, got {k!r}")
    return np.stack([hue_to_rgb(360 * i / k, warp) for i in range(int(k))]).astype(np.float32)


def feature_colors_hex(k: int) -> list[str]:
    """CSS colours for legends: each hue scaled so its largest component is 1.

    >>> feature_colors_hex(3)
    ['#ff0000', '#00ff00', '#0000ff']
    """
    cols = feature_colors(k).astype(np.float64)
    cols = np.round(cols / cols.max(axis=1, keepdims=True) * 255).astype(int)
    return ["#" + "".join(f"{v:02x}" for v in c) for c in cols]


def channels_to_rgb(
    maps: np.ndarray, colors: np.ndarray | None = None, residual: np.ndarray | None = None
) -> np.ndarray:
    """rgb = sum_k maps[..., k] * colors[k] (+ residual * white), for non-negative maps.

    >>> channels_to_rgb(np.array([[1.0, 0.0]]), np.eye(2, 3)).tolist()
    [[1.0, 0.0, 0.0]]
    """
    maps = np.asarray(maps, dtype=np.float32)
    colors = feature_colors(maps.shape[-1]) if colors is None else np.asarray(colors, np.float32)
    if colors.shape != (maps.shape[-1], 3):
        raise ValueError(f"colors must have shape ({maps.shape[-1]}, 3), got {colors.shape}")
    rgb = maps @ colors
    if residual is not None:
        rgb = rgb + np.asarray(residual, np.float32)[..., None]
    return rgb


def brightness_to_opacity(rgb: np.ndarray) -> np.ndarray:
    """RGBA with alpha = min(1, ||rgb||) and colour rgb / alpha (0 where alpha is 0).

    >>> brightness_to_opacity(np.array([[0.3, 0.4, 0.0], [3.0, 0.0, 0.0]])).astype(float).round(3).tolist()
    [[0.6, 0.8, 0.0, 0.5], [3.0, 0.0, 0.0, 1.0]]
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    alpha = np.minimum(1.0, np.linalg.norm(rgb, axis=-1, keepdims=True))
    color = np.divide(rgb, alpha, out=np.zeros_like(rgb), where=alpha > 0)
    return np.concatenate([color, alpha], axis=-1)


def rescale_opacity(
    rgba: np.ndarray,
    min_opacity: float = 15 / 255,
    opaque_frac: float = 0.1,
    max_scale: float = 10.0,
    keep_zeros: bool = False,
) -> np.ndarray:
    """Rescale the alpha of images (..., H, W, 4) so the top ``opaque_frac`` of pixels are
    opaque (at most ``max_scale``-fold gain) with a floor of ``min_opacity`` (the original
    tool's treatment of feature-visualization images).

    >>> img = np.zeros((4, 4, 4)); img[..., 3] = np.linspace(0, 0.5, 16).reshape(4, 4)
    >>> float(rescale_opacity(img)[..., 3].max())
    1.0
    """
    out = np.array(rgba, dtype=np.float32, copy=True)
    a = out[..., 3]
    flat = a.reshape(a.shape[:-2] + (-1,))
    thresh = np.percentile(flat, (1 - opaque_frac) * 100, axis=-1)
    thresh = np.maximum(thresh, flat.max(axis=-1) / max_scale)[..., None, None]
    thresh = np.where(thresh == 0, 1.0, thresh)
    new = np.minimum(1.0, min_opacity + a * (1 - min_opacity) / thresh)
    if keep_zeros:
        new = np.where(a == 0, 0.0, new)
    out[..., 3] = new
    return out


# ----------------------------------------------------------------------------- blurs
def disc_kernel(radius: int = 7) -> np.ndarray:
    """The original tool's unnormalised (2r+1)^2 kernel exp(-d) for centre distance d <= r
    (centre weight 1; 15 x 15 for r = 7).

    >>> k = disc_kernel(7); k.shape, float(k[7, 7]), float(k[0, 0])
    ((15, 15), 1.0, 0.0)
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    y, x = np.indices((2 * radius + 1, 2 * radius + 1)) - radius
    d = np.hypot(y, x)
    k = np.exp(-d)
    bound = math.exp(-radius)
    k = k * ((k >= bound) | np.isclose(k, bound, rtol=1e-7, atol=0))
    return k.astype(np.float32)


def default_blur_radius(layer_size: int) -> float:
    """The overlays' default disc radius for a layer ``layer_size`` positions high: the
    article's radius 7 on its 32 x 32 layer, scaled to the resolution (7 H / 32), so the blur
    covers the same share of the screen on any layer.

    >>> default_blur_radius(32), default_blur_radius(16), default_blur_radius(8)
    (7.0, 3.5, 1.75)
    """
    if (
        isinstance(layer_size, bool)
        or not isinstance(layer_size, (int, np.integer))
        or layer_size < 1
    ):
        raise ValueError(f"layer_size must be a positive integer, got {layer_size!r}")
    return ARTICLE_BLUR_RADIUS * int(layer_size) / ARTICLE_LAYER_SIZE


def scaled_disc_kernel(radius: float) -> np.ndarray:
    """The article's disc stretched to ``radius`` positions (any positive number): the
    unnormalised kernel exp(-7 d / radius) for centre distance d <= radius (centre weight 1).

    With ``radius = 7`` it is :func:`disc_kernel` (7) exactly; with 3.5 it decays twice as fast
    and is half as wide: on a 16 x 16 layer it covers what the article's covers on 32 x 32.
    The widgets' ``blurKernel(b)`` (js/display.ts) is this kernel with ``radius = 7 b``.

    >>> bool(np.array_equal(scaled_disc_kernel(7), disc_kernel(7)))
    True
    >>> k = scaled_disc_kernel(3.5); k.shape, round(float(k[3, 4]), 4)   # d = 1: exp(-2)
    ((7, 7), 0.1353)
    """
    radius = float(radius)
    if not radius > 0 or not math.isfinite(radius):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    R = int(math.floor(radius + 1e-9))
    y, x = np.indices((2 * R + 1, 2 * R + 1)) - R
    d = np.hypot(y, x)
    k = np.exp(-d * (ARTICLE_BLUR_RADIUS / radius))
    return (k * (d <= radius + 1e-9)).astype(np.float32)


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised (sum 1) 2-D Gaussian kernel of standard deviation ``sigma`` (positions).

    >>> round(float(gaussian_kernel(1.0).sum()), 6)
    1.0
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    r = max(1, int(math.ceil(truncate * sigma)))
    y, x = np.indices((2 * r + 1, 2 * r + 1)) - r
    k = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return (k / k.sum()).astype(np.float32)


def blur(maps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel of (..., H, W, C) maps with a 2-D kernel, zero padding, same size.

    >>> blur(np.ones((1, 3, 3, 1)), np.ones((3, 3)))[0, 1, 1, 0]
    9.0
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim < 3:
        raise ValueError(f"maps must be (..., H, W, C), got shape {maps.shape}")
    lead, (h, w, c) = maps.shape[:-3], maps.shape[-3:]
    x = torch.from_numpy(np.ascontiguousarray(maps.reshape(-1, h, w, c))).permute(0, 3, 1, 2)
    x = x.reshape(-1, 1, h, w)
    k = torch.from_numpy(np.ascontiguousarray(kernel, np.float32))[None, None]
    kh, kw = k.shape[-2:]
    with torch.no_grad():
        y = F.conv2d(F.pad(x, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2)), k.flip(-1, -2))
    y = y.reshape(-1, c, h, w).permute(0, 2, 3, 1).numpy()
    return y.reshape(lead + (h, w, c))


def blur_disc(maps: np.ndarray, radius: int = 7) -> np.ndarray:
    """The article's blur: unnormalised exp(-r) disc of radius ``radius`` at layer resolution
    (spreads sparse attribution so area shows strength).

    >>> m = np.zeros((1, 9, 9, 1), np.float32); m[0, 4, 4, 0] = 1
    >>> float(blur_disc(m)[0, 4, 4, 0]), round(float(blur_disc(m)[0, 4, 5, 0]), 4)
    (1.0, 0.3679)
    """
    return blur(maps, disc_kernel(radius))


def _disc_blur(maps: np.ndarray, radius: float) -> np.ndarray:
    """:func:`blur_disc` for the article's radius 7, the stretched disc otherwise, 0: none."""
    if radius == ARTICLE_BLUR_RADIUS:
        return blur_disc(maps, ARTICLE_BLUR_RADIUS)
    if radius == 0:
        return np.asarray(maps, dtype=np.float32)
    if not radius > 0:
        raise ValueError(f"radius must be >= 0 (0 = no blur), got {radius!r}")
    return blur(maps, scaled_disc_kernel(radius))


def blur_gaussian(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (normalised kernel, zero padding) of (..., H, W, C) maps.

    >>> m = np.zeros((1, 9, 9, 1), np.float32); m[0, 4, 4, 0] = 1
    >>> round(float(blur_gaussian(m, 1.0).sum()), 4)
    1.0
    """
    return blur(maps, gaussian_kernel(sigma))


# ----------------------------------------------------------------------------- resize
def upsample(images: np.ndarray, size: int | tuple[int, int], mode: str = "nearest") -> np.ndarray:
    """Resize (..., h, w, C) images to ``size`` (e.g. 64 or 512 px): "nearest" (crisp cells)
    or "bilinear" (smooth, align_corners=False).

    >>> upsample(np.ones((2, 4, 4, 4)), 64).shape
    (2, 64, 64, 4)
    """
    images = np.asarray(images, dtype=np.float32)
    th, tw = (size, size) if isinstance(size, (int, np.integer)) else size
    lead, (h, w, c) = images.shape[:-3], images.shape[-3:]
    if (h, w) == (th, tw):
        return images.copy()
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and th % h == 0 and tw % w == 0:
        out = images.repeat(th // h, axis=-3).repeat(tw // w, axis=-2)
        return out
    x = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, h, w, c))).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = F.interpolate(
            x, size=(th, tw), mode=mode, **({} if mode == "nearest" else {"align_corners": False})
        )
    return y.permute(0, 2, 3, 1).numpy().reshape(lead + (th, tw, c))


# ----------------------------------------------------------------------------- pipeline
def attribution_to_rgba(
    features: np.ndarray,
    colors: np.ndarray | Sequence | None = None,
    scale: float | np.ndarray = 1.0,
    gain: float = 1.0,
    *,
    residual: np.ndarray | None = None,
    sign: str = "positive",
    blur: str | None = "disc",
    radius: float | None = None,
    sigma: float = 1.5,
    size: int | tuple[int, int] | None = None,
    mode: str = "nearest",
) -> np.ndarray:
    """Overlay image(s) for signed feature maps (..., H, W, K): RGBA float32 in [0, 1].

    ``scale``: a number (e.g. :func:`trajectory_scale`) or a broadcastable array
    (:func:`frame_scale`); ``gain`` multiplies brightness after scaling; ``residual``
    (..., H, W) adds the residual in white; ``sign``: "positive", "negative" or "absolute";
    ``blur``: "disc", "gaussian" (``sigma``) or None; ``radius``: the disc's radius in layer
    positions, default :func:`default_blur_radius` of the layer height (7 H / 32: 3.5 on a
    16 x 16 layer); ``radius=7`` is the article's kernel (:func:`blur_disc`), other values
    stretch it (:func:`scaled_disc_kernel`); ``size``: upsample the result (64 / 512 px).
    Brightness becomes opacity: alpha = min(1, ||rgb||).

    >>> f = np.zeros((1, 4, 4, 2), np.float32); f[0, 1, 1, 0] = -1.0
    >>> float(attribution_to_rgba(f, sign="negative", blur=None)[0, 1, 1, 3])
    1.0
    >>> f = np.zeros((1, 16, 16, 1), np.float32); f[0, 8, 8, 0] = 1.0
    >>> spread = lambda rgba: int((rgba[0, ..., 3] > 0).sum())   # positions reached
    >>> spread(attribution_to_rgba(f)), spread(attribution_to_rgba(f, radius=7))
    (37, 149)
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim < 3:
        raise ValueError(f"features must be (..., H, W, K), got shape {features.shape}")
    k = features.shape[-1]
    colors = feature_colors(k) if colors is None else np.asarray(colors, np.float32)
    scale_arr = np.asarray(scale, dtype=np.float32)
    if np.any(scale_arr <= 0):
        raise ValueError(f"scale must be positive, got {scale!r}")
    scaled = features / scale_arr
    part = sign_part(scaled, sign)
    res = None
    if residual is not None:
        rs = np.asarray(residual, np.float32)
        rs = rs / (scale_arr[..., 0] if scale_arr.ndim == features.ndim else scale_arr)
        res = sign_part(rs, sign)
    rgb = channels_to_rgb(part, colors, res) * np.float32(gain)
    if blur == "disc":
        if radius is None:
            radius = default_blur_radius(features.shape[-3])
        rgb = _disc_blur(rgb, radius)
    elif blur == "gaussian":
        rgb = blur_gaussian(rgb, sigma)
    elif blur not in (None, "none"):
        raise ValueError(f"blur must be 'disc', 'gaussian' or None, got {blur!r}")
    rgba = brightness_to_opacity(rgb)
    if size is not None:
        rgba = upsample(rgba, size, mode)
    return rgba
