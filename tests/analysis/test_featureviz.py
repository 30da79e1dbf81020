"""Dataset-example feature visualization: thumbnails, the spatially-aware mosaic, patches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlvision_widgets.agents.networks import article_config, compact_config
from rlvision_widgets.analysis.featureviz import (
    CHECK_DARK,
    CHECK_LIGHT,
    FeatureVisualizer,
    ReceptiveField,
    checkerboard,
    feature_maps,
    legend_thumbnails,
    receptive_field,
    reuse_cap,
)


def _obs(n: int, seed: int = 0) -> np.ndarray:
    """Observations whose pixels encode their own index (so patches can be traced)."""
    obs = np.zeros((n, 64, 64, 3), np.uint8)
    obs[..., 0] = np.arange(n, dtype=np.uint8)[:, None, None]
    obs[..., 1] = 7
    return obs


def test_reuse_cap_formula():
    assert reuse_cap(1024, 4096) == math.ceil(1024 / 409.6) == 3
    assert reuse_cap(16, 10) == 16
    assert reuse_cap(256, 2560) == 1
    with pytest.raises(ValueError):
        reuse_cap(10, 0)


def test_mosaic_picks_strongest_within_reuse_cap():
    rng = np.random.default_rng(0)
    n, h = 30, 8
    maps = rng.random((n, h, h, 1)).astype(np.float32) * 0.1
    maps[7] += 5.0  # observation 7 is best everywhere
    vis = FeatureVisualizer(_obs(n), maps)
    m = vis.mosaic(0, density=1.0)
    cap = reuse_cap(h * h, n)
    assert m.reuse_cap == cap == math.ceil(64 / 3)
    counts = np.bincount(m.obs_indices.ravel(), minlength=n)
    assert counts.max() <= cap and counts[7] == cap
    # cells holding observation 7 are the ones where it is strongest
    strength = maps[7, ..., 0]
    assert strength[m.obs_indices == 7].min() >= np.sort(strength.ravel())[-cap]
    # every other cell holds its best remaining observation
    for r, c in zip(*np.nonzero(m.obs_indices != 7)):
        col = maps[:, r, c, 0].copy()
        col[7] = -1
        full = np.bincount(m.obs_indices.ravel(), minlength=n) >= cap
        col[full & (np.arange(n) != m.obs_indices[r, c])] = -1
        assert m.obs_indices[r, c] == int(np.argmax(col))
    # the patch at each cell comes from its observation, opacity follows activation
    p = m.patch_px
    assert m.image.shape == (h * p, h * p, 4) and p == 8
    assert m.image[3 * p + 1, 2 * p + 1, 0] == m.obs_indices[3, 2]
    assert m.opacity.max() == pytest.approx(1.0)


@pytest.mark.parametrize("density", [0.5, 2.0, 3.0])
def test_mosaic_any_density(density):
    rng = np.random.default_rng(1)
    vis = FeatureVisualizer(_obs(40), rng.random((40, 8, 8, 2)).astype(np.float32))
    m = vis.mosaic(1, density=density, expand=2)
    cells = int(round(8 * density))
    assert m.obs_indices.shape == (cells, cells)
    assert np.bincount(m.obs_indices.ravel()).max() <= reuse_cap(cells * cells, 40)
    assert m.image.shape == (cells * 16, cells * 16, 4)


def test_checkerboard_beyond_the_screen_edge():
    maps = np.zeros((4, 8, 8, 1), np.float32)
    maps[2, 0, 0, 0] = 1.0  # strongest at the top-left corner
    vis = FeatureVisualizer(_obs(4), maps)
    t = vis.thumbnail(0, grid=1, expand=4)  # 32-px patch centred on (4, 4) px
    img = t.image
    assert img.shape == (32, 32, 4) and t.obs_indices[0, 0] == 2
    outside = img[:8, :8, :3]
    assert set(np.unique(outside)) <= {CHECK_LIGHT, CHECK_DARK}
    assert len(np.unique(outside)) == 2
    assert img[20, 20, 0] == 2 and img[20, 20, 1] == 7  # inside: the observation
    cb = checkerboard(2, 3)
    assert cb.shape == (2, 3, 3) and cb[0, 0, 0] == CHECK_LIGHT and cb[0, 1, 0] == CHECK_DARK


def test_thumbnail_limits_per_position_and_distinct_observations():
    rng = np.random.default_rng(2)
    n = 50
    maps = rng.random((n, 6, 6, 1)).astype(np.float32) * 0.01
    maps[:, 3, 3, 0] = np.linspace(1, 2, n)  # one hot spot shared by everyone
    t = FeatureVisualizer(_obs(n), maps).thumbnail(0, grid=4, max_per_position=4)
    pos = [tuple(p) for p in t.positions.reshape(-1, 2)]
    assert pos.count((3, 3)) == 4
    assert all(pos.count(p) <= 4 for p in set(pos))
    assert len(set(t.obs_indices.ravel().tolist())) == 16
    # the four at the hot spot are the four strongest there
    hot = sorted(int(o) for o, p in zip(t.obs_indices.ravel(), pos) if p == (3, 3))
    assert hot == [46, 47, 48, 49]
    # rows sorted by position
    rows = t.positions[..., 0]
    assert np.all(np.diff(rows.max(1)) >= 0)


def test_receptive_field_and_full_resolution_patches():
    assert receptive_field(article_config(), "2b") == ReceptiveField(24, 2, 1.0)
    assert receptive_field(compact_config(), "1a") == ReceptiveField(4, 4, 2.0)
    with pytest.raises(KeyError, match="valid layers"):
        receptive_field(compact_config(), "9z")
    rng = np.random.default_rng(3)
    maps = rng.random((20, 16, 16, 1)).astype(np.float32)
    full = np.repeat(np.repeat(_obs(20), 8, axis=1), 8, axis=2)  # 512 px renders
    vis = FeatureVisualizer(
        _obs(20), maps, full_images=full, rf=receptive_field(compact_config(), "2b")
    )
    assert vis.thumbnail(0, expand=1).patch_px == 4 * 8  # stride 4 px x 8
    t = vis.thumbnail(0, patch="receptive_field", expand=1)
    assert t.patch_px == 20 * 8
    assert vis.mosaic(0, patch=12).patch_px == 12 * 8
    with pytest.raises(ValueError, match="receptive_field"):
        FeatureVisualizer(_obs(20), maps).thumbnail(0, patch="receptive_field")


def test_trajectory_frames_and_feature_maps():
    rng = np.random.default_rng(4)
    obs = np.zeros((2, 10, 64, 64, 3), np.uint8)  # (envs, steps, ...)
    acts = rng.random((2, 10, 8, 8, 6)).astype(np.float32)
    dirs = np.abs(rng.normal(size=(3, 6))).astype(np.float32)
    maps = feature_maps(acts.reshape(20, 8, 8, 6), directions=dirs)
    assert maps.shape == (20, 8, 8, 3) and maps.min() >= 0
    proj = feature_maps(acts.reshape(20, 8, 8, 6), directions=dirs, method="project")
    assert proj.shape == (20, 8, 8, 3)
    vis = FeatureVisualizer(obs, maps.reshape(2, 10, 8, 8, 3))
    assert vis.images.shape[0] == 20 and vis.mosaic(2).obs_indices.max() < 20
    thumbs = legend_thumbnails(dirs, acts.reshape(20, 8, 8, 6), obs.reshape(20, 64, 64, 3))
    assert thumbs.shape == (3, 64, 64, 4) and thumbs.dtype == np.uint8


def test_errors():
    vis = FeatureVisualizer(_obs(5), np.ones((5, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="valid features: 0..1"):
        vis.mosaic(2)
    with pytest.raises(ValueError, match="density"):
        vis.mosaic(0, density=0)
    with pytest.raises(ValueError, match="frames"):
        FeatureVisualizer(_obs(5), np.ones((4, 4, 4, 2), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        FeatureVisualizer(_obs(5).astype(np.float32), np.ones((5, 4, 4, 2), np.float32))


def test_legend_thumbnails_of_receptive_field_crops():
    """Legend icons as the explorer draws them: 3 x 3 crops of the receptive field (20 px at 2b
    on the compact network) centred on each example's strongest position, resized to 120 px."""
    rng = np.random.default_rng(3)
    obs = rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8)
    rf = receptive_field(compact_config(), "2b")
    maps = np.zeros((30, 16, 16, 1), np.float32)
    for i in range(9):  # nine planted examples, each strongest at a different interior position
        maps[i, 3 + i, 4 + i % 5, 0] = 10 - i
    vis = FeatureVisualizer(obs, maps, rf=rf)
    th = vis.thumbnail(0, grid=3, patch=rf.size, expand=1.0)
    assert th.patch_px == 20 and th.image.shape == (60, 60, 4)
    assert sorted(th.obs_indices.ravel().tolist()) == list(range(9))
    for r in range(3):
        for c in range(3):
            o = th.obs_indices[r, c]
            y, x = th.positions[r, c]
            cy, cx = rf.center0 + y * rf.stride, rf.center0 + x * rf.stride
            y0, x0 = int(round(cy - 10)), int(round(cx - 10))
            tile = th.image[r * 20 : (r + 1) * 20, c * 20 : (c + 1) * 20, :3]
            ya, xa = max(0, y0), max(0, x0)
            crop = obs[o, ya : y0 + 20, xa : x0 + 20]
            assert np.array_equal(
                tile[ya - y0 :, xa - x0 :][: crop.shape[0], : crop.shape[1]], crop
            )
    # legend_thumbnails (one unit direction: the maps themselves) is that image at 120 px
    icons = legend_thumbnails(
        np.ones((1, 1)), maps, obs, size=120, grid=3, patch=rf.size, expand=1.0, rf=rf
    )
    assert icons.shape == (1, 120, 120, 4)
    assert np.array_equal(icons[0], th.image.repeat(2, 0).repeat(2, 1))
