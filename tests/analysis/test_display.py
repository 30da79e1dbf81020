"""Display maths: scales, the article's disc blur, hue colours, brightness -> opacity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlvision_widgets.analysis.display import (
    attribution_to_rgba,
    blur_disc,
    blur_gaussian,
    brightness_to_opacity,
    channels_to_rgb,
    disc_kernel,
    feature_colors,
    feature_colors_hex,
    frame_scale,
    hue_to_rgb,
    rescale_opacity,
    sign_part,
    trajectory_scale,
    upsample,
)


def test_trajectory_scale_is_median_of_frame_maxima():
    maps = np.zeros((5, 4, 4, 3), np.float32)
    for i, m in enumerate([1.0, 5.0, 2.0, 9.0, 3.0]):
        maps[i, 1, 2, i % 3] = m
    maps[:, 0, 0, 0] = -20.0  # negative values do not count as the max
    assert trajectory_scale(maps) == 3.0
    assert trajectory_scale(np.zeros((3, 2, 2, 1))) == 1.0  # fallback
    z = np.zeros((3, 2, 2, 1))
    z[0, 0, 0, 0] = 4.0
    assert trajectory_scale(z) == 4.0  # median 0 -> overall max


def test_frame_scale_broadcasts():
    maps = np.zeros((2, 3, 3, 2))
    maps[0, 1, 1, 1] = 2.0
    s = frame_scale(maps)
    assert s.shape == (2, 1, 1, 1) and s.ravel().tolist() == [2.0, 1.0]


def test_disc_kernel_matches_the_original():
    k = disc_kernel(7)
    assert k.shape == (15, 15)
    y, x = np.indices((15, 15)) - 7
    r = np.hypot(y, x)
    np.testing.assert_allclose(k[r <= 7 + 1e-9], np.exp(-r[r <= 7 + 1e-9]), rtol=1e-6)
    assert np.all(k[r > 7 + 1e-9] == 0)
    assert k[7, 7] == 1.0 and k[7, 0] == pytest.approx(math.exp(-7))
    assert k.sum() > 6.0  # unnormalised: brightens sparse attribution


def test_blur_disc_of_impulse_is_the_kernel():
    m = np.zeros((1, 32, 32, 2), np.float32)
    m[0, 16, 16, 1] = 2.0
    out = blur_disc(m)
    np.testing.assert_allclose(out[0, 9:24, 9:24, 1], 2 * disc_kernel(7), rtol=1e-5, atol=1e-7)
    assert np.all(out[..., 0] == 0)
    # zero padding at the border ("SAME" convolution)
    edge = np.zeros((1, 8, 8, 1), np.float32)
    edge[0, 0, 0, 0] = 1
    assert blur_disc(edge).sum() < disc_kernel(7).sum()


def test_gaussian_blur_preserves_mass_inside():
    m = np.zeros((2, 21, 21, 1), np.float32)
    m[:, 10, 10] = 1
    out = blur_gaussian(m, 1.5)
    np.testing.assert_allclose(out.sum((1, 2, 3)), 1.0, rtol=1e-5)
    assert out[0, 10, 10, 0] == out[0].max()


def test_feature_colors_are_unit_hues():
    cols = feature_colors(8)
    np.testing.assert_allclose(np.linalg.norm(cols, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(feature_colors(3), np.eye(3), atol=1e-7)  # red, green, blue
    np.testing.assert_allclose(hue_to_rgb(60.0), np.array([1, 1, 0]) / math.sqrt(2), atol=1e-7)
    assert feature_colors_hex(3) == ["#ff0000", "#00ff00", "#0000ff"]
    assert len(set(feature_colors_hex(12))) == 12
    with pytest.raises(ValueError, match="positive integer"):
        feature_colors(0)


def test_brightness_to_opacity():
    rgb = np.array([[0.0, 0.0, 0.0], [0.3, 0.4, 0.0], [2.0, 0.0, 0.0]], np.float32)
    rgba = brightness_to_opacity(rgb)
    np.testing.assert_allclose(rgba[:, 3], [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(rgba[1, :3], [0.6, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_allclose(rgba[2, :3], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(rgba[0], 0.0)


def test_attribution_to_rgba_pipeline():
    feats = np.zeros((2, 8, 8, 3), np.float32)
    feats[0, 2, 2, 0] = 0.5  # good news, red
    feats[0, 5, 5, 2] = -1.0  # bad news, blue
    out = attribution_to_rgba(feats, scale=0.5, blur=None, sign="positive")
    assert out.shape == (2, 8, 8, 4)
    np.testing.assert_allclose(out[0, 2, 2], [1, 0, 0, 1], atol=1e-6)
    assert out[0, 5, 5, 3] == 0
    neg = attribution_to_rgba(feats, scale=2.0, blur=None, sign="negative")
    np.testing.assert_allclose(neg[0, 5, 5], [0, 0, 1, 0.5], atol=1e-6)
    # gain multiplies brightness; residual is white
    res = np.zeros((2, 8, 8), np.float32)
    res[1, 0, 0] = 0.2
    r = attribution_to_rgba(feats, scale=1.0, gain=2.0, residual=res, blur=None)
    np.testing.assert_allclose(r[1, 0, 0, :3], [1 / math.sqrt(3)] * 3, rtol=1e-5)
    assert r[1, 0, 0, 3] == pytest.approx(min(1.0, 0.4 * math.sqrt(3)), rel=1e-5)
    # blur spreads, upsampling to 64 and 512 px
    blurred = attribution_to_rgba(feats, scale=0.5, size=64)
    assert blurred.shape == (2, 64, 64, 4)
    assert (blurred[0, ..., 3] > 0).sum() > 64
    assert attribution_to_rgba(feats[:1], size=512, mode="bilinear").shape == (1, 512, 512, 4)
    with pytest.raises(ValueError, match="sign"):
        attribution_to_rgba(feats, sign="up")
    with pytest.raises(ValueError, match="scale"):
        attribution_to_rgba(feats, scale=0)


def test_small_helpers():
    assert sign_part(np.array([-2.0, 3.0]), "absolute").tolist() == [2.0, 3.0]
    np.testing.assert_allclose(
        channels_to_rgb(np.array([[2.0, 0.0, 0.0]])), [[2.0, 0, 0]], atol=1e-6
    )
    up = upsample(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1), 4)
    assert up[0, :, :, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    img = np.zeros((5, 5, 4), np.float32)
    img[..., 3] = 0.1
    img[0, 0, 3] = 0.0
    out = rescale_opacity(img, keep_zeros=True)
    assert out[0, 0, 3] == 0 and out[1, 1, 3] == pytest.approx(1.0)
