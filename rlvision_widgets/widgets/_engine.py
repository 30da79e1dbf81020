"""Thin binding from the Explorer to the analysis engines.

Prefers ``rlvision_widgets.analysis`` (integrated gradients, AttributionNMF, featureviz,
bookmarks) and falls back to small local implementations for pieces that are not available,
so the widgets work with any agent module.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

Progress = Callable[[float, str], None]


def _noop(_f: float, _m: str) -> None:
    pass


# ------------------------------------------------------------------------------ agents
def resolve_agent(agent: nn.Module | str | None) -> tuple[nn.Module, str]:
    """(agent, warning) from a module, a name/path, or None (the shipped reference agent, or
    a random-weight compact network with a warning when none is shipped)."""
    if isinstance(agent, nn.Module):
        return agent.eval(), ""
    name = "coinrun" if agent is None else str(agent)
    try:
        from ..agents.registry import load_agent

        return load_agent(name).eval(), ""
    except Exception as exc:  # no shipped agent yet, or no registry
        if agent is not None:
            raise
        from ..agents import build_network

        msg = (f"no reference agent available ({exc}); showing a RANDOM-WEIGHT compact network, "
               "so features and values are meaningless")
        warnings.warn(msg, stacklevel=3)
        return build_network("compact").eval(), msg


def layer_names(agent: nn.Module) -> list[str]:
    from ..analysis.layers import LayerAccess

    return LayerAccess(agent).layer_names


def default_layer(agent: nn.Module) -> str:
    """The object layer (config.object_layer, "2b") when the agent has one, else a middle conv."""
    names = layer_names(agent)
    cfg = getattr(agent, "config", None)
    obj = getattr(cfg, "object_layer", None)
    if obj in names:
        return obj
    convs = [n for n in names if "relu" not in n.lower()] or names
    return convs[len(convs) // 2]


def layer_stride(layer_hw: int, obs_size: int = 64) -> float:
    return obs_size / max(1, layer_hw)


# ------------------------------------------------------------------------ trajectories
def collect(agent: nn.Module, num_envs: int, num_steps: int, seed: int,
            env_options: Any = None) -> Any:
    from ..trajectories import collect_trajectories

    return collect_trajectories(agent, num_envs=num_envs, num_steps=num_steps, seed=seed,
                                env_options=env_options, progress=False)


# ------------------------------------------------------------------------- attribution
def attribute(access: Any, obs: np.ndarray, layer: str, output: str, steps: int,
              progress: Progress = _noop, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of ``output`` at ``layer`` for every frame (N, ...): returns
    (attributions, activations), both (N, H, W, C) float32, reporting progress per chunk."""
    from ..analysis.integrated_gradients import integrated_gradients

    n = obs.shape[0]
    attrs: list[np.ndarray] = []
    acts: list[np.ndarray] = []
    for s in range(0, n, chunk):
        r = integrated_gradients(access, obs[s:s + chunk], layer, output=output, steps=steps)
        attrs.append(r.attributions)
        acts.append(r.activations)
        progress(min(1.0, (s + chunk) / n), f"integrated gradients at {layer}: "
                                            f"{min(n, s + chunk)}/{n} frames")
    return np.concatenate(attrs), np.concatenate(acts)


def fit_nmf(attr: np.ndarray | None, rank: int, seed: int = 0, previous: Any = None) -> Any:
    """AttributionNMF of ``attr`` (N, H, W, C) at ``rank``; refits from ``previous``'s coreset
    when given (interactive rank)."""
    from ..analysis.nmf import AttributionNMF

    if previous is not None and hasattr(previous, "refit"):
        try:
            return previous.refit(rank)
        except RuntimeError:
            if attr is None:
                raise
    # a smaller coreset and iteration cap than the engine's defaults keep rank changes
    # interactive (about a second on 2 busy cores) at a few per mille of extra error
    return AttributionNMF(n_components=rank, seed=seed, coreset_size=8192, max_iter=200,
                          tol=1e-4).fit(attr)


def reduce(nmf: Any, attr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    red = nmf.reduce(attr)
    return red.features, red.residual


# ---------------------------------------------------------------- feature visualization
def feature_scores(acts: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Activation of an NMF direction at every frame and position: (N, H, W)."""
    return np.tensordot(acts, np.asarray(direction, np.float32), axes=([-1], [0]))


def _resize_nearest(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ys = (np.arange(size) * h // size).clip(0, h - 1)
    xs = (np.arange(size) * w // size).clip(0, w - 1)
    return img[ys][:, xs]


def _checker(size: int, cells: int = 4) -> np.ndarray:
    """Grey-white checkerboard (beyond the screen edge)."""
    y, x = np.mgrid[0:size, 0:size] * cells // max(size, 1)
    v = np.where((x + y) % 2 == 0, 200, 245).astype(np.uint8)
    return np.stack([v, v, v], -1)


def _patch(obs: np.ndarray, cy: float, cx: float, half: float) -> np.ndarray:
    """Square crop of ``obs`` centred at (cy, cx) pixels, padded with a checkerboard."""
    S = obs.shape[0]
    side = max(2, int(round(2 * half)))
    y0 = int(round(cy - half))
    x0 = int(round(cx - half))
    out = _checker(side)
    ys0, xs0 = max(0, y0), max(0, x0)
    ys1, xs1 = min(S, y0 + side), min(S, x0 + side)
    if ys1 > ys0 and xs1 > xs0:
        out[ys0 - y0:ys1 - y0, xs0 - x0:xs1 - x0] = obs[ys0:ys1, xs0:xs1]
    return out


def thumbnails(directions: np.ndarray, acts: np.ndarray, obs: np.ndarray, size: int = 64,
               grid: int = 2) -> np.ndarray:
    """Legend thumbnails (K, size, size, 4): for each feature, a grid x grid mosaic of the
    dataset patches (distinct observations) where its direction is most active."""
    try:
        from ..analysis.featureviz import legend_thumbnails
    except ImportError:
        legend_thumbnails = None
    if legend_thumbnails is not None:
        return np.asarray(legend_thumbnails(directions, acts, obs, size=size), np.uint8)
    N, H, W, _ = acts.shape
    S = obs.shape[1]
    stride = S / H
    half = max(4.0, 1.5 * stride)
    cell = size // grid
    out = np.zeros((len(directions), size, size, 4), np.uint8)
    for k, d in enumerate(directions):
        sc = feature_scores(acts, d)                                 # (N, H, W)
        best = sc.reshape(N, -1)
        fmax = best.max(1)
        order = np.argsort(-fmax)[: grid * grid]
        top = float(fmax[order[0]]) if len(order) else 0.0
        for j, f in enumerate(order):
            p = int(best[f].argmax())
            y, x = divmod(p, W)
            crop = _patch(obs[f], (y + 0.5) * stride, (x + 0.5) * stride, half)
            tile = _resize_nearest(crop, cell)
            r, c = divmod(j, grid)
            a = 255 if top <= 0 else int(255 * np.clip(fmax[f] / top, 0.25, 1.0))
            out[k, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell, :3] = tile
            out[k, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell, 3] = a
    return out


def mosaic(direction: np.ndarray, acts: np.ndarray, obs: np.ndarray, density: int,
           cell_px: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spatially-aware dataset-example mosaic of one direction, ``density`` cells per side:
    the engine's :meth:`FeatureVisualizer.mosaic` (density per layer position = cells per side
    / layer width), or the local fallback below. Returns (RGBA image, sources (n, n) frame
    indices into ``obs``, -1 for none)."""
    try:
        from ..analysis.featureviz import FeatureVisualizer, feature_maps
    except ImportError:
        return _mosaic_fallback(direction, acts, obs, density, cell_px)
    maps = feature_maps(acts, directions=np.asarray(direction, np.float32)[None], method="project")
    m = FeatureVisualizer(obs, maps).mosaic(0, density=float(density) / acts.shape[2])
    return m.image, np.asarray(m.obs_indices, np.int64)


def _mosaic_fallback(direction: np.ndarray, acts: np.ndarray, obs: np.ndarray, density: int,
                     cell_px: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spatially-aware dataset-example mosaic of one direction (local fallback).

    For each of density x density cells (a region of the screen), the observation whose
    activation is strongest there (each observation reused at most
    ceil(cells / (0.1 N)) times), showing that region of it; opacity = activation / max.
    Returns (RGBA image (density*cell, density*cell, 4), sources (density, density) frame
    indices into ``obs`` (-1: none)).
    """
    N, H, W, _ = acts.shape
    S = obs.shape[1]
    n = int(density)
    cell = int(cell_px or max(8, min(48, 320 // n)))
    sc = feature_scores(acts, direction)                             # (N, H, W)
    # per cell: max over the layer positions it covers
    ys = [(r * H // n, max(r * H // n + 1, (r + 1) * H // n)) for r in range(n)]
    xs = [(c * W // n, max(c * W // n + 1, (c + 1) * W // n)) for c in range(n)]
    cell_scores = np.empty((n, n, N), np.float32)
    for r, (y0, y1) in enumerate(ys):
        for c, (x0, x1) in enumerate(xs):
            cell_scores[r, c] = sc[:, y0:y1, x0:x1].reshape(N, -1).max(1)
    cap = max(1, math.ceil(n * n / max(1e-9, 0.1 * N)))
    uses = np.zeros(N, np.int64)
    sources = np.full((n, n), -1, np.int64)
    chosen = np.zeros((n, n), np.float32)
    order = np.argsort(-cell_scores.max(-1), axis=None)
    for flat in order:
        r, c = divmod(int(flat), n)
        cand = np.argsort(-cell_scores[r, c])
        for f in cand:
            if uses[f] < cap:
                sources[r, c] = f
                chosen[r, c] = cell_scores[r, c, f]
                uses[f] += 1
                break
    top = float(chosen.max()) if chosen.size else 0.0
    img = np.zeros((n * cell, n * cell, 4), np.uint8)
    for r in range(n):
        for c in range(n):
            f = sources[r, c]
            if f < 0 or chosen[r, c] <= 0:
                continue
            py0, py1 = r * S // n, max(r * S // n + 1, (r + 1) * S // n)
            px0, px1 = c * S // n, max(c * S // n + 1, (c + 1) * S // n)
            tile = _resize_nearest(obs[f, py0:py1, px0:px1], cell)
            a = int(255 * np.clip(chosen[r, c] / top, 0.0, 1.0)) if top > 0 else 0
            img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell, :3] = tile
            img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell, 3] = a
    return img, sources


# ---------------------------------------------------------------------------- bookmarks
def bookmarks(values: np.ndarray, advantages: np.ndarray, firsts: np.ndarray,
              episodes: np.ndarray | None = None, k: int = 6,
              before_failure: int = 8) -> list[dict[str, Any]]:
    """Bookmarks for the Controls list: advantage extremes (one per episode), single-step
    value spikes, and the frames before each failed episode (with its cause); from
    :mod:`rlvision_widgets.analysis.bookmarks` when available."""
    try:
        from ..analysis import bookmarks as bm
    except ImportError:
        return _bookmarks_fallback(values, advantages, firsts, episodes, k, before_failure)
    out: list[dict[str, Any]] = []
    names = {"high": "high advantage", "low": "low advantage", "spike": "value spike"}
    marks = (bm.advantage_bookmarks(advantages, firsts, k=k, sign="high")
             + bm.advantage_bookmarks(advantages, firsts, k=k, sign="low"))
    spikes = bm.value_spikes(values, firsts, k=2 * k, kind="spike")
    if spikes:   # keep spikes well above the typical step-to-step change
        typical = float(np.median(np.abs(np.diff(values, axis=1)))) if values.shape[1] > 1 else 0
        marks += [b for b in spikes if abs(b.score) > 3 * typical][:k]
    for b in marks:
        out.append({"kind": b.kind, "trajectory": int(b.env), "frame": int(b.step),
                    "score": float(b.score), "label": f"T{b.env + 1}·{b.step}",
                    "detail": f"{names.get(b.kind, b.kind)} {b.score:+.3f} "
                              f"(trajectory {b.env + 1}, step {b.step})"})
    if episodes is not None and len(episodes):
        for f in bm.failed_episodes(episodes, before=before_failure)[: 4 * k]:
            t = int(f.frames[0]) if len(f.frames) else int(f.start)
            out.append({"kind": "failure", "trajectory": int(f.env), "frame": t, "score": 0.0,
                        "label": f"{f.cause} T{f.env + 1}·{f.stop}",
                        "detail": f"failure ({f.cause}) at step {f.stop} of trajectory "
                                  f"{f.env + 1} (level {f.level_seed}); bookmark "
                                  f"{before_failure} steps before"})
    return out


def _bookmarks_fallback(values: np.ndarray, advantages: np.ndarray, firsts: np.ndarray,
                        episodes: np.ndarray | None = None, k: int = 6,
                        before_failure: int = 8) -> list[dict[str, Any]]:
    """Local fallback of :func:`bookmarks`."""
    E, T = values.shape
    out: list[dict[str, Any]] = []
    # episodes as (env, start, stop) from firsts when no table is given
    spans: list[tuple[int, int, int]] = []
    for e in range(E):
        starts = [0] + [t for t in range(1, T) if firsts[e, t]]
        for i, s in enumerate(starts):
            spans.append((e, s, starts[i + 1] if i + 1 < len(starts) else T))
    for sign, kind, name in ((1, "high", "high advantage"), (-1, "low", "low advantage")):
        best = []
        for e, s, stop in spans:
            seg = sign * advantages[e, s:stop]
            if seg.size == 0:
                continue
            j = int(seg.argmax())
            if seg[j] > 0:
                best.append((float(seg[j]), e, s + j))
        best.sort(reverse=True)
        for score, e, t in best[:k]:
            out.append({"kind": kind, "trajectory": e, "frame": t, "score": sign * score,
                        "label": f"T{e + 1}·{t}",
                        "detail": f"{name} {sign * score:+.3f} (trajectory {e + 1}, step {t})"})
    # value spikes: V jumps for one step and comes back
    spikes = []
    for e in range(E):
        v = values[e]
        for t in range(1, T - 1):
            if firsts[e, t] or firsts[e, t + 1]:
                continue
            up, down = v[t] - v[t - 1], v[t] - v[t + 1]
            if up * down > 0:
                spikes.append((float(min(abs(up), abs(down))), e, t, float(up)))
    spikes.sort(reverse=True)
    if spikes:
        thresh = max(1e-6, 3.0 * float(np.median(np.abs(np.diff(values, axis=1)))))
        for score, e, t, up in [s for s in spikes if s[0] > thresh][:k]:
            out.append({"kind": "spike", "trajectory": e, "frame": t, "score": score,
                        "label": f"T{e + 1}·{t}",
                        "detail": f"value {'spike' if up > 0 else 'dip'} of {score:.3f} for one "
                                  f"step (trajectory {e + 1}, step {t})"})
    if episodes is not None and len(episodes):
        fail = episodes[episodes["finished"] & ~episodes["success"]]
        for row in fail[: 4 * k]:
            e, stop = int(row["env"]), int(row["stop"])
            t = max(int(row["start"]), min(T - 1, stop - 1) - before_failure)
            cause = str(row["cause"])
            out.append({"kind": "failure", "trajectory": e, "frame": t, "score": 0.0,
                        "label": f"{cause} T{e + 1}·{stop}",
                        "detail": f"failure ({cause}) at step {stop} of trajectory {e + 1}; "
                                  f"bookmark {before_failure} steps before"})
    return out


def edit_fn(directions: np.ndarray, strengths: np.ndarray) -> Callable[[torch.Tensor],
                                                                        torch.Tensor] | None:
    """The activation edit (NCHW -> NCHW) projecting out each direction with its strength,
    P = prod_k (I - s_k v_k v_k^T / |v_k|^2); None when no strength is positive."""
    from ..agents.editing import projection

    P = None
    for v, s in zip(directions, strengths):
        if s <= 0:
            continue
        Pk = projection(v, float(min(1.0, s)))
        P = Pk if P is None else Pk @ P
    if P is None:
        return None
    return lambda a, P=P: torch.einsum("nchw,dc->ndhw", a, P.to(a.dtype))
