"""Thin binding from the Explorer to the analysis engines (``rlvision_widgets.analysis``:
AttributionNMF, featureviz, bookmarks, editing); works with any agent module."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn


# ------------------------------------------------------------------------------ layers
# ------------------------------------------------------------------------ trajectories
def collect(
    agent: nn.Module, num_envs: int, num_steps: int, seed: int, env_options: Any = None
) -> Any:
    from ..rollouts import collect_trajectories

    return collect_trajectories(
        agent,
        num_envs=num_envs,
        num_steps=num_steps,
        seed=seed,
        env_options=env_options,
        progress=False,
    )


def fit_nmf(attr: np.ndarray | None, rank: int, seed: int = 0, previous: Any = None) -> Any:
    """AttributionNMF of ``attr`` (N, H, W, C) at ``rank``; refits from ``previous``'s coreset
    when given (interactive rank)."""
    from ..analysis.settings import make_nmf

    if previous is not None:
        return previous.refit(rank)
    # the package's one NMF_SETTINGS (as analyze and identify_features): chosen so a rank
    # change refits well under a second within 1% of a full fit's error (docs/analysis.md).
    # One thread: the explorer's choice. The coreset matrices are small; on a busy machine a
    # refit took at most 0.04 s with one thread and up to 1.98 s with torch's default two
    # (benchmarks/bench_nmf_settings.py, docs/analysis.md)
    return make_nmf(rank, seed, n_threads=1).fit(attr)


def reduce(nmf: Any, attr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    red = nmf.reduce(attr)
    return red.features, red.residual


# ---------------------------------------------------------------- feature visualization
def layer_rf(agent: nn.Module, layer: str) -> Any:
    """The receptive field (:class:`~rlvision_widgets.analysis.featureviz.ReceptiveField`) of
    ``layer`` of a ConvAgent, or None for other models (crops are then 5 x the layer's stride:
    the compact network's 20 px at 2b)."""
    from ..analysis.featureviz import receptive_field

    try:
        return receptive_field(agent, layer)
    except (TypeError, KeyError):
        return None


def crop_px(rf: Any, obs_size: int, layer_h: int) -> int:
    """Side in observation pixels of the receptive-field crop around one layer position:
    ``rf.size``, or 5 x stride without a receptive field.

    >>> crop_px(None, 64, 16)
    20
    """
    if rf is not None:
        return int(rf.size)
    return max(1, int(round(5 * obs_size / layer_h)))


def mosaic(
    direction: np.ndarray, acts: np.ndarray, obs: np.ndarray, density: int, rf: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spatially-aware dataset-example mosaic of one direction, ``density`` cells per side
    (:meth:`rlvision_widgets.analysis.featureviz.FeatureVisualizer.mosaic`): each cell is the
    crop of its receptive field (``rf``; 5 x stride without) from the observation that
    activates the direction most there. ``acts`` (N, H, W, C), ``obs`` (N, S, S, 3). Returns
    (RGBA image, sources (n, n) frame indices into ``obs``, -1 for none)."""
    images, sources = feature_mosaics(
        np.asarray(direction, np.float32)[None], acts[None], obs[None], density, rf
    )
    return images[0], sources[0, ..., 1]


def feature_mosaics(
    directions: np.ndarray, acts: np.ndarray, obs: np.ndarray, density: int, rf: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The mosaic of every direction (for ``set_mosaics``: the feature grid shows any feature
    at once, also in a static export). ``acts`` (E, T, H, W, C) and ``obs`` (E, T, S, S, 3) are
    the trajectories' activations and frames. Returns RGBA images (K, n*p, n*p, 4) of n = density
    cells of p = :func:`crop_px` pixels, and sources (K, n, n, 2): per cell the (trajectory,
    step) it shows, (-1, -1) for none."""
    from ..analysis.featureviz import FeatureVisualizer, feature_maps

    E, T = acts.shape[:2]
    flat_acts = acts.reshape(E * T, *acts.shape[2:])
    flat_obs = obs.reshape(E * T, *obs.shape[2:])
    d = np.asarray(directions, np.float32)
    maps = feature_maps(flat_acts, directions=d, method="project")
    patch = crop_px(rf, flat_obs.shape[1], flat_acts.shape[1])
    vis = FeatureVisualizer(flat_obs, maps, rf=rf)
    images, sources = [], []
    for k in range(d.shape[0]):
        m = vis.mosaic(k, density=float(density) / flat_acts.shape[2], patch=patch)
        src = np.asarray(m.obs_indices, np.int64)
        images.append(m.image)
        sources.append(
            np.stack([np.where(src >= 0, src // T, -1), np.where(src >= 0, src % T, -1)], -1)
        )
    if not images:
        return np.zeros((0, 1, 1, 4), np.uint8), np.zeros((0, 1, 1, 2), np.int64)
    return np.stack(images), np.stack(sources)


def examples_from_frames(
    frames: np.ndarray,
    strengths: np.ndarray,
    rf: Any = None,
    obs_size: int = 64,
    layer_h: int = 16,
) -> list[list[dict[str, Any]]]:
    """The feature grid's gallery (``set_examples``) from an Analysis' dataset examples:
    ``frames`` (K, n, 4) (env, step, y, x; -1 for none) and ``strengths`` (K, n), strongest
    first, each with ``box`` [top, left, side]: the receptive-field crop around (y, x) in
    observation pixels.

    >>> ex = examples_from_frames(np.array([[[0, 5, 3, 4], [1, 2, 0, 0]]]), np.array([[1., 2.]]))
    >>> [(e["trajectory"], e["frame"], e["box"]) for e in ex[0]]
    [(1, 2, [-8, -8, 20]), (0, 5, [4, 8, 20])]
    """
    f = np.asarray(frames)
    st = np.asarray(strengths, np.float64)
    if f.ndim != 3 or f.shape[-1] != 4 or st.shape != f.shape[:2]:
        raise ValueError(
            f"frames must be (K, n, 4) (env, step, y, x) and strengths (K, n), got "
            f"{f.shape} and {st.shape}"
        )
    stride = obs_size / layer_h
    c0 = rf.center0 if rf is not None and rf.stride == stride else stride / 2
    side = crop_px(rf, obs_size, layer_h)
    out: list[list[dict[str, Any]]] = []
    for k in range(f.shape[0]):
        items = []
        for i in np.argsort(-st[k], kind="stable").tolist():
            e, t, y, x = (int(v) for v in f[k, i])
            if e < 0 or t < 0:
                continue
            cy, cx = c0 + y * stride, c0 + x * stride
            items.append(
                {
                    "trajectory": e,
                    "frame": t,
                    "y": y,
                    "x": x,
                    "value": round(float(st[k, i]), 5),
                    "box": [int(round(cy - side / 2)), int(round(cx - side / 2)), side],
                }
            )
        out.append(items)
    return out


def edits_for(layer: str, directions: np.ndarray, strengths: np.ndarray) -> list[Any]:
    """The explorer's edit settings as values of the one editing mechanism
    (:func:`rlvision_widgets.agents.editing.apply_edit`): the features switched off (strength 1)
    projected out together as one subspace, each partial feature as its own edit. Empty when
    nothing is edited. The mode is the mechanism's default (the article's weight edit where the
    next layer is a convolution, the activation edit elsewhere)."""
    from ..agents.editing import Edit

    off = [k for k, s in enumerate(strengths) if s >= 1]
    edits = [Edit(layer, np.asarray(directions)[off], 1.0, label="off")] if off else []
    edits += [
        Edit(layer, np.asarray(directions)[k], float(s), label=f"feature {k + 1}")
        for k, s in enumerate(strengths)
        if 0 < s < 1
    ]
    return edits
