"""Thin binding from the Explorer to the analysis engines (``rlvision_widgets.analysis``:
AttributionNMF, featureviz, bookmarks, editing); works with any agent module."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn


# ------------------------------------------------------------------------------ layers
def default_layer(agent: nn.Module) -> str:
    """The object layer (config.object_layer, "2b") when the agent has one, else a middle conv."""
    from ..analysis.layers import LayerAccess

    names = LayerAccess(agent).layer_names
    cfg = getattr(agent, "config", None)
    obj = getattr(cfg, "object_layer", None)
    if obj in names:
        return obj
    convs = [n for n in names if "relu" not in n.lower()] or names
    return convs[len(convs) // 2]


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


def thumbnails(
    directions: np.ndarray, acts: np.ndarray, obs: np.ndarray, size: int = 64
) -> np.ndarray:
    """Legend thumbnails (K, size, size, 4) from the dataset examples where each direction is
    most active (:func:`rlvision_widgets.analysis.featureviz.legend_thumbnails`)."""
    from ..analysis.featureviz import legend_thumbnails

    return np.asarray(legend_thumbnails(directions, acts, obs, size=size), np.uint8)


def mosaic(
    direction: np.ndarray, acts: np.ndarray, obs: np.ndarray, density: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spatially-aware dataset-example mosaic of one direction, ``density`` cells per side
    (:meth:`rlvision_widgets.analysis.featureviz.FeatureVisualizer.mosaic`). Returns (RGBA
    image, sources (n, n) frame indices into ``obs``, -1 for none)."""
    from ..analysis.featureviz import FeatureVisualizer, feature_maps

    maps = feature_maps(acts, directions=np.asarray(direction, np.float32)[None], method="project")
    m = FeatureVisualizer(obs, maps).mosaic(0, density=float(density) / acts.shape[2])
    return m.image, np.asarray(m.obs_indices, np.int64)


# ---------------------------------------------------------------------------- bookmarks
def bookmarks(
    values: np.ndarray,
    advantages: np.ndarray,
    firsts: np.ndarray,
    episodes: np.ndarray | None = None,
    k: int = 6,
    before_failure: int = 8,
) -> list[dict[str, Any]]:
    """Bookmarks for the Controls list: advantage extremes (one per episode), single-step
    value spikes, and the frames before each failed episode (with its cause), from
    :mod:`rlvision_widgets.analysis.bookmarks`."""
    from ..analysis import bookmarks as bm

    out: list[dict[str, Any]] = []
    names = {"high": "high advantage", "low": "low advantage", "spike": "value spike"}
    marks = bm.advantage_bookmarks(advantages, firsts, k=k, sign="high") + bm.advantage_bookmarks(
        advantages, firsts, k=k, sign="low"
    )
    spikes = bm.value_spikes(values, firsts, k=2 * k, kind="spike")
    if spikes:  # keep spikes well above the typical step-to-step change
        typical = float(np.median(np.abs(np.diff(values, axis=1)))) if values.shape[1] > 1 else 0
        marks += [b for b in spikes if abs(b.score) > 3 * typical][:k]
    for b in marks:
        out.append(
            {
                "kind": b.kind,
                "trajectory": int(b.env),
                "frame": int(b.step),
                "score": float(b.score),
                "label": f"T{b.env + 1}·{b.step}",
                "detail": f"{names.get(b.kind, b.kind)} {b.score:+.3f} "
                f"(trajectory {b.env + 1}, step {b.step})",
            }
        )
    if episodes is not None and len(episodes):
        for f in bm.failed_episodes(episodes, before=before_failure)[: 4 * k]:
            t = int(f.frames[0]) if len(f.frames) else int(f.start)
            out.append(
                {
                    "kind": "failure",
                    "trajectory": int(f.env),
                    "frame": t,
                    "score": 0.0,
                    "label": f"{f.cause} T{f.env + 1}·{f.stop}",
                    "detail": f"failure ({f.cause}) at step {f.stop} of trajectory "
                    f"{f.env + 1} (level {f.level_seed}); bookmark "
                    f"{before_failure} steps before",
                }
            )
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
