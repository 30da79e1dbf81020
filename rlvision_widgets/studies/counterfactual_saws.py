"""Saw counterfactual study (issue 17, requirement 4): does the saw feature's attribution at a saw
predict what the agent loses when the engine stops drawing that saw?

For every saw in view over corpus frames, the saw is hidden in the engine state
(:func:`~rlvision_widgets.environment.counterfactual.hide_object`: still in the game, not drawn),
the frame is re-rendered, and the agent's value change and policy change (KL(original ||
hidden)) are recorded beside the saw feature's value attribution at that saw: the
:class:`~rlvision_widgets.analysis.pipeline.Analysis`'s feature map summed over the layer cells
the saw's 64-px box touches (:func:`~rlvision_widgets.environment.render.object_boxes`,
:func:`~rlvision_widgets.analysis.features.coverage`). The saw feature(s) are the ones the
analysis's ``suggested_labels`` call buzzsaw; without one, the feature with the largest
|attribution| mass inside saw boxes (said so in ``feature_source``).

"In view" is checked against the engine: a saw whose box is in the 64-px view but whose hiding
changes no pixel (covered, or a sliver at the border) stays in the table with
``pixels_changed == 0`` and is left out of the summary; a saw outside the view is never hidden.
Value and policy come from one batched forward pass of the agent on the original and
re-rendered frames; ``tests/studies/test_counterfactual_saws.py`` checks rows against
independent :func:`~rlvision_widgets.analysis.counterfactual.compare` calls.

Agreement is Spearman's rank correlation (:func:`spearman`) with a percentile bootstrap CI
that resamples whole episodes (:func:`bootstrap_spearman`; rows of one episode are the same
saws in consecutive frames, not independent). See ``docs/counterfactual-study.md``.

>>> study = saw_counterfactual_study(agent, traj, analysis)            # doctest: +SKIP
>>> study.summary()["value_change"]["spearman"]                        # doctest: +SKIP
-0.62
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..agents.registry import resolve_agent
from ..analysis.counterfactual import policy_kl
from ..analysis.features import coverage, resolve_class
from ..environment.counterfactual import hide_object
from ..environment.render import object_boxes
from ..environment.state import parse_state
from ..files import load_arrays, save_arrays

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "SawStudy",
    "bootstrap_spearman",
    "rank_data",
    "saw_counterfactual_study",
    "saw_features",
    "spearman",
]

STUDY_FORMAT = "rlvision-saw-counterfactual-study"
STUDY_VERSION = 1
#: per-row columns (one row per saw in view of a studied frame)
COLUMNS = (
    "env",
    "step",
    "saw",
    "episode",
    "x",
    "y",
    "box",
    "cells",
    "pixels_changed",
    "value",
    "value_hidden",
    "value_change",
    "kl",
    "feature_box",
    "feature_near",
    "feature_frame",
)


# ------------------------------------------------------------------------------ statistics
def rank_data(x: Any) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given their average rank (as ``scipy.stats.rankdata``).

    >>> rank_data([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    a = np.asarray(x, np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    n = len(a)
    # start index of each run of equal values, and the average rank over the run
    new = np.r_[True, s[1:] != s[:-1]] if n else np.zeros(0, bool)
    run = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n]
    avg = (starts + ends + 1) / 2.0
    out = np.empty(n, np.float64)
    out[order] = avg[run]
    return out


def _spearman_ranks(x: Any, y: Any) -> float:
    """Spearman's rho as the Pearson correlation of average ranks (numpy only)."""
    rx, ry = rank_data(x), rank_data(y)
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation of two equal-length 1-D samples (``scipy.stats.spearmanr``
    when scipy is installed, else the Pearson correlation of :func:`rank_data` ranks); NaN
    for fewer than 3 values or a constant sample.

    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 6)
    0.8
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs samples of equal length, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman needs finite values; drop NaN/inf rows first")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    try:
        from scipy.stats import spearmanr
    except ImportError:  # pragma: no cover - scipy is a dependency where it is installed
        return _spearman_ranks(x, y)
    return float(spearmanr(x, y).statistic)


def bootstrap_spearman(
    x: Any,
    y: Any,
    groups: Any = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI ``(low, high)`` of :func:`spearman`. ``groups``: a cluster id
    per row (e.g. the episode); whole clusters are resampled, as rows of one cluster are not
    independent. None: rows are resampled. Resamples with a constant sample are skipped.

    >>> x = np.arange(50.0); y = x + np.random.default_rng(0).normal(0, 10, 50)
    >>> lo, hi = bootstrap_spearman(x, y)
    >>> bool(lo < spearman(x, y) < hi)
    True
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have equal length, got {len(x)} and {len(y)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if groups is None:
        members = [np.array([i]) for i in range(len(x))]
    else:
        g = np.asarray(groups).ravel()
        if len(g) != len(x):
            raise ValueError(f"groups must have one id per row ({len(x)}), got {len(g)}")
        _, inv = np.unique(g, return_inverse=True)
        members = [np.flatnonzero(inv == k) for k in range(inv.max() + 1)] if len(g) else []
    if len(x) < 3 or len(members) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[k] for k in pick])
        bx, by = x[idx], y[idx]
        if np.ptp(bx) == 0 or np.ptp(by) == 0:
            continue
        stats.append(_spearman_ranks(bx, by))
    if not stats:
        return float("nan"), float("nan")
    a = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------- features
def _label_classes(text: str) -> list[str]:
    """Object classes named by a suggested label, e.g. "buzzsaw (27/32 on, ...)" -> ["saw"]."""
    out = []
    for part in str(text).split(" (", 1)[0].split(" / "):
        try:
            out.append(resolve_class(part))
        except ValueError:
            continue
    return out


def saw_features(analysis: Any) -> list[int]:
    """Features whose suggested label (``analysis.suggested_labels``) names saws ([] if none).

    >>> from types import SimpleNamespace
    >>> saw_features(SimpleNamespace(suggested_labels=["", "buzzsaw (20/32 on)", "crate"]))
    [1]
    """
    labels = getattr(analysis, "suggested_labels", None) or []
    return [k for k, lab in enumerate(labels) if "saw" in _label_classes(lab)]


def _part(dv: np.ndarray, sel: np.ndarray) -> dict[str, Any]:
    """Count and mean value change of the rows ``sel``."""
    return {"n": int(sel.sum()), "mean_value_change": float(dv[sel].mean()) if sel.any() else None}


# ---------------------------------------------------------------------------------- result
@dataclass
class SawStudy:
    """Result of :func:`saw_counterfactual_study`: ``columns`` (one entry per saw row, see
    :data:`COLUMNS`; ``feature_box`` / ``feature_near`` / ``feature_frame`` are (n, K): every
    feature's attribution in the saw's box cells, in them plus a 1-cell ring, and over the whole
    frame), ``features`` the saw feature(s), ``feature_source`` how they were chosen,
    ``settings``.

    >>> study.summary()["value_change"]                                    # doctest: +SKIP
    {'spearman': -0.6, 'ci': [-0.7, -0.5], 'sign_agreement': 0.8, ...}
    >>> study.table[0]                                                     # doctest: +SKIP
    {'env': 4, 'step': 1, 'saw': 3, 'attribution': -0.21, 'value_change': 0.3, 'kl': 0.01, ...}
    """

    columns: dict[str, np.ndarray]
    features: list[int]
    feature_source: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.columns["env"]))

    def _sum(self, name: str) -> np.ndarray:
        a = np.asarray(self.columns[name], np.float64)
        return a[:, self.features].sum(1) if len(a) else np.zeros(0)

    @property
    def attribution(self) -> np.ndarray:
        """(n,) the saw feature(s)' attribution summed over the cells of the saw's box."""
        return self._sum("feature_box")

    @property
    def attribution_near(self) -> np.ndarray:
        """(n,) the same over the box's cells and a 1-cell ring around them."""
        return self._sum("feature_near")

    @property
    def attribution_frame(self) -> np.ndarray:
        """(n,) the saw feature(s)' attribution over the whole frame (no localisation)."""
        return self._sum("feature_frame")

    @property
    def visible(self) -> np.ndarray:
        """(n,) bool: hiding the saw changed the observation (the rows the summary uses)."""
        return np.asarray(self.columns["pixels_changed"]) > 0

    @property
    def table(self) -> list[dict[str, Any]]:
        """One dict per saw: env, step, saw (entity index), episode, x, y (world), pixels
        changed, attribution (box, near, frame), value, value when hidden, value change, KL."""
        c = self.columns
        att, near, frame = self.attribution, self.attribution_near, self.attribution_frame
        rows = []
        for i in range(len(self)):
            rows.append(
                {
                    "env": int(c["env"][i]),
                    "step": int(c["step"][i]),
                    "saw": int(c["saw"][i]),
                    "episode": int(c["episode"][i]),
                    "x": float(c["x"][i]),
                    "y": float(c["y"][i]),
                    "pixels_changed": int(c["pixels_changed"][i]),
                    "attribution": float(att[i]),
                    "attribution_near": float(near[i]),
                    "attribution_frame": float(frame[i]),
                    "value": float(c["value"][i]),
                    "value_hidden": float(c["value_hidden"][i]),
                    "value_change": float(c["value_change"][i]),
                    "kl": float(c["kl"][i]),
                }
            )
        return rows

    def summary(
        self, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
    ) -> dict[str, Any]:
        """Agreement of attribution and counterfactual over the visible rows: ``n`` (saws),
        ``frames``, ``episodes`` (bootstrap clusters); ``value_change``: Spearman of the
        attribution at the saw with the value change when it is hidden, its CI, the share of
        saws where the value change has the opposite sign of the attribution
        (``sign_agreement``: a saw that lowers the value raises it when hidden) and the
        least-squares ``slope`` (-1: hiding removes exactly the attributed value); ``kl``:
        Spearman of |attribution| with the KL, its CI; ``alternatives``: the same value
        Spearman for the near and whole-frame attribution and for every feature's box
        attribution (is the saw feature the best predictor?).

        >>> study.summary()["n"], study.summary()["kl"]["spearman"]        # doctest: +SKIP
        (512, 0.41)
        """
        v = self.visible
        c = self.columns
        att = self.attribution[v]
        dv = np.asarray(c["value_change"], np.float64)[v]
        kl = np.asarray(c["kl"], np.float64)[v]
        groups = np.asarray(c["env"])[v] * 1_000_000 + np.asarray(c["episode"])[v]
        boot = dict(n_boot=n_boot, confidence=confidence, seed=seed)
        frames = {(int(e), int(t)) for e, t in zip(c["env"][v], c["step"][v])}
        nz = (att != 0) & (dv != 0)
        slope = float(np.polyfit(att, dv, 1)[0]) if len(att) > 2 and np.ptp(att) > 0 else None
        fb = np.asarray(c["feature_box"], np.float64)[v]
        return {
            "n": int(v.sum()),
            "n_excluded_unchanged": int((~v).sum()),
            "frames": len(frames),
            "episodes": int(len(np.unique(groups))),
            "features": list(self.features),
            "feature_source": self.feature_source,
            "value_change": {
                "spearman": spearman(att, dv),
                "ci": list(bootstrap_spearman(att, dv, groups, **boot)),
                "sign_agreement": float(np.mean(np.sign(dv[nz]) == -np.sign(att[nz])))
                if nz.any()
                else None,
                "slope": slope,
                "mean_value_change": float(dv.mean()) if len(dv) else None,
                "mean_attribution": float(att.mean()) if len(att) else None,
                "share_value_rises": float((dv > 0).mean()) if len(dv) else None,
                "negative_attribution": _part(dv, att < 0),
                "positive_attribution": _part(dv, att > 0),
            },
            "kl": {
                "spearman": spearman(np.abs(att), kl),
                "ci": list(bootstrap_spearman(np.abs(att), kl, groups, **boot)),
                "mean_kl": float(kl.mean()) if len(kl) else None,
                "median_kl": float(np.median(kl)) if len(kl) else None,
                "share_above_0.1": float((kl > 0.1).mean()) if len(kl) else None,
            },
            "median_pixels_changed": float(np.median(np.asarray(c["pixels_changed"])[v]))
            if v.any()
            else None,
            "alternatives": {
                "near_value_spearman": spearman(self.attribution_near[v], dv),
                "frame_value_spearman": spearman(self.attribution_frame[v], dv),
                "per_feature_value_spearman": [spearman(fb[:, k], dv) for k in range(fb.shape[1])]
                if len(fb)
                else [],
            },
            "confidence": confidence,
            "n_boot": n_boot,
            "bootstrap": "percentile, episodes resampled",
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.npz`` (the columns) and ``path.json`` (features, settings, summary);
        no pickle. Returns the stem; :meth:`load` reads it back.

        >>> stem = study.save("saw_study")                                # doctest: +SKIP
        >>> SawStudy.load(stem).features == study.features                # doctest: +SKIP
        True
        """
        meta = {
            "format": STUDY_FORMAT,
            "version": STUDY_VERSION,
            "features": list(self.features),
            "feature_source": self.feature_source,
            "settings": self.settings,
            "summary": self.summary(),
        }
        return save_arrays(path, self.columns, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SawStudy:
        """Read what :meth:`save` wrote (strict: format, version and columns checked).

        >>> SawStudy.load("saw_study")                                     # doctest: +SKIP
        """
        arrays, meta = load_arrays(path)
        if meta.get("format") != STUDY_FORMAT:
            raise ValueError(f"{path} is not a saw study (format {meta.get('format')!r})")
        if meta.get("version") != STUDY_VERSION:
            raise ValueError(
                f"{path} is saw-study version {meta.get('version')}, this package reads "
                f"{STUDY_VERSION}; re-run saw_counterfactual_study"
            )
        missing = sorted(set(COLUMNS) - set(arrays))
        if missing:
            raise ValueError(f"{path} lacks columns {missing}; re-run saw_counterfactual_study")
        return cls(
            arrays,
            [int(k) for k in meta["features"]],
            meta["feature_source"],
            dict(meta.get("settings") or {}),
        )

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Scatter plots: attribution at the saw vs value change when hidden, and |attribution|
        vs KL, with Spearman's rho and its CI in the titles; saved when given a path.

        >>> fig = study.plot("docs/images/counterfactual-saws.png")       # doctest: +SKIP
        """
        from matplotlib.figure import Figure  # matplotlib only when drawing

        s = self.summary()
        v = self.visible
        att = self.attribution[v]
        dv = np.asarray(self.columns["value_change"], np.float64)[v]
        kl = np.asarray(self.columns["kl"], np.float64)[v]
        fig = Figure(figsize=(10, 4.2), dpi=110)
        ax1, ax2 = fig.subplots(1, 2)
        ax1.scatter(att, dv, s=9, alpha=0.5, color="#c44e52", edgecolors="none")
        ax1.axhline(0, color="0.7", lw=0.8)
        ax1.axvline(0, color="0.7", lw=0.8)
        if len(att):
            lim = np.abs(att).max()
            ax1.plot(
                [-lim, lim],
                [lim, -lim],
                color="0.4",
                lw=0.8,
                ls="--",
                label="value change = -attribution",
            )
            ax1.legend(loc="upper right", fontsize=8, frameon=False)

        def title(d: dict[str, Any], what: str) -> str:
            lo, hi = d["ci"]
            return f"{what}\nSpearman {d['spearman']:.2f} (95% CI {lo:.2f} to {hi:.2f}), n={s['n']}"

        ax1.set_xscale("symlog", linthresh=0.1)
        ax1.set_yscale("symlog", linthresh=0.1)
        ax1.set_xlabel("saw feature attribution at the saw (value; symlog)")
        ax1.set_ylabel("value change when the saw is hidden (symlog)")
        ax1.set_title(title(s["value_change"], "value"), fontsize=9)
        ax2.scatter(np.abs(att), kl, s=9, alpha=0.5, color="#4c72b0", edgecolors="none")
        ax2.set_xscale("symlog", linthresh=0.1)
        ax2.set_yscale("symlog", linthresh=1e-3)
        ax2.set_xlabel("|saw feature attribution at the saw| (symlog)")
        ax2.set_ylabel("KL(original || saw hidden), nats")
        ax2.set_title(title(s["kl"], "policy"), fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


# ----------------------------------------------------------------------------------- study
def _cells(box: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) bool masks of the layer cells a 64-px pixel box touches, and those plus a ring."""
    x0, y0, x1, y1 = (int(v) for v in box)
    m = np.zeros((64, 64), bool)
    m[y0:y1, x0:x1] = True
    cells = coverage(m, hw) > 0
    p = np.pad(cells, 1)
    near = np.zeros_like(cells)
    for dy in range(3):
        for dx in range(3):
            near |= p[dy : dy + hw[0], dx : dx + hw[1]]
    return cells, near


def _forward(model: nn.Module, obs: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    logits, values = [], []
    with torch.no_grad():
        for s in range(0, len(obs), batch):
            lg, v = model(torch.from_numpy(np.ascontiguousarray(obs[s : s + batch])))
            logits.append(lg.double().numpy())
            values.append(v.reshape(-1).double().numpy())
    if not logits:
        return np.zeros((0, 15)), np.zeros(0)
    return np.concatenate(logits), np.concatenate(values)


def _check_inputs(trajectories: Any, analysis: Any) -> None:
    if not all(hasattr(trajectories, a) for a in ("state_at", "obs", "renderer", "num_envs")):
        raise ValueError(
            "trajectories must be recorded Trajectories with engine states (from "
            f"collect_trajectories), got {type(trajectories).__name__}"
        )
    for a in ("features", "observations", "values", "settings"):
        if not hasattr(analysis, a):
            raise ValueError(
                f"analysis must be an Analysis (rlvision_widgets.analyze(agent, trajectories, "
                f"layer='2b', rank=8)); got {type(analysis).__name__} without {a!r}"
            )
    if analysis.settings.get("output", "value") != "value":
        raise ValueError(
            f"the analysis attributes {analysis.settings.get('output')!r}; the study compares "
            "value attributions with value changes: analyze(..., output='value')"
        )
    obs = np.asarray(trajectories.obs)
    if analysis.observations.shape != obs.shape or not np.array_equal(analysis.observations, obs):
        raise ValueError(
            f"the analysis (frames {analysis.observations.shape[:2]}) was not made on these "
            f"trajectories (frames {obs.shape[:2]}); run analyze(agent, trajectories) on them"
        )


def saw_counterfactual_study(
    agent: nn.Module | str | None,
    trajectories: Any,
    analysis: Any,
    *,
    features: list[int] | None = None,
    max_frames: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> SawStudy:
    """Hide every saw in view, one at a time, on frames of ``trajectories`` and record the
    value change and KL against the saw feature's attribution at that saw (see the module doc).

    ``agent``: the agent ``analysis`` was made with (module, name or path; checked against the
    analysis's values). ``trajectories``: recorded
    :class:`~rlvision_widgets.rollouts.Trajectories` (engine states); ``analysis``: an
    :class:`~rlvision_widgets.analysis.pipeline.Analysis` of them with ``output="value"``
    (the issue uses layer 2b, rank 8). ``features``: the saw feature(s); default: those
    labelled buzzsaw, else the feature with the largest |attribution| in saw boxes.
    ``max_frames``: study at most this many frames with a saw in view, drawn with ``seed``
    (None: all). ``progress``: a progress bar.

    >>> agent = load_agent()                                               # doctest: +SKIP
    >>> traj = collect_trajectories(agent, num_envs=8, num_steps=128)      # doctest: +SKIP
    >>> analysis = rv.analyze(agent, traj, layer="2b", rank=8)             # doctest: +SKIP
    >>> study = saw_counterfactual_study(agent, traj, analysis)            # doctest: +SKIP
    >>> study.summary()["n"] == sum(study.visible)                         # doctest: +SKIP
    True
    """
    _check_inputs(trajectories, analysis)
    if max_frames is not None and (
        isinstance(max_frames, bool)
        or not isinstance(max_frames, (int, np.integer))
        or max_frames < 1
    ):
        raise ValueError(f"max_frames must be None or a positive integer, got {max_frames!r}")
    model = resolve_agent(agent)
    model.eval()
    E, T = np.asarray(trajectories.obs).shape[:2]
    feats_all = np.asarray(analysis.features)
    h, w, K = feats_all.shape[2:]
    if features is not None:
        features = [int(k) for k in features]
        if not features or any(not 0 <= k < K for k in features):
            raise ValueError(f"features must be feature indices in 0..{K - 1}, got {features}")

    # 1. frames with a saw in view (geometry; cheap)
    candidates = []
    for e in range(E):
        for t in range(T):
            try:
                st = parse_state(trajectories.state_at(e, t))
            except (KeyError, IndexError):
                continue
            if len(object_boxes(st, 64).ids["saw"]):
                candidates.append((e, t))
    n_candidates = len(candidates)
    if max_frames is not None and len(candidates) > max_frames:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(candidates), int(max_frames), replace=False))
        candidates = [candidates[i] for i in pick]

    # 2. hide each saw in view, re-render, collect rows
    renderer = trajectories.renderer
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    hidden_obs, frame_of_row = [], []
    frames = sorted(candidates)
    for fi, (e, t) in enumerate(tqdm(frames, disable=not progress, desc="hiding saws")):
        state = trajectories.state_at(e, t)
        st = parse_state(state)
        ann = object_boxes(st, 64)
        original = np.asarray(trajectories.obs[e, t])
        episode = int(trajectories.episode_index(e, t))
        f = feats_all[e, t].astype(np.float64)
        frame_total = f.sum((0, 1))
        for ref, box in zip(ann.ids["saw"].tolist(), ann.pixel_boxes("saw")):
            obs_h = renderer.frames(hide_object(state, int(ref)))[0]
            cells, near = _cells(box, (h, w))
            ent = st.entities[int(ref)]
            rows["env"].append(e)
            rows["step"].append(t)
            rows["saw"].append(int(ref))
            rows["episode"].append(episode)
            rows["x"].append(float(ent["x"]))
            rows["y"].append(float(ent["y"]))
            rows["box"].append(box)
            rows["cells"].append(int(cells.sum()))
            rows["pixels_changed"].append(int((obs_h != original).any(-1).sum()))
            rows["feature_box"].append(f[cells].sum(0))
            rows["feature_near"].append(f[near].sum(0))
            rows["feature_frame"].append(frame_total)
            hidden_obs.append(obs_h)
            frame_of_row.append(fi)

    # 3. the agent on the original frames and the hidden variants, batched
    if frames:
        idx = np.asarray(frames)
        orig_obs = np.asarray(trajectories.obs)[idx[:, 0], idx[:, 1]]
    else:
        orig_obs = np.zeros((0, 64, 64, 3), np.uint8)
    lg0, v0 = _forward(model, orig_obs, batch_size)
    if frames:
        expected = np.asarray(analysis.values, np.float64)[idx[:, 0], idx[:, 1]]
        diff = np.abs(v0 - expected)
        if diff.max() > 1e-3 * (1 + np.abs(expected).max()):
            raise ValueError(
                f"the agent's values differ from the analysis's by up to {diff.max():.3g}: pass "
                "the agent the analysis was made with"
            )
    lgh, vh = _forward(model, np.asarray(hidden_obs, np.uint8).reshape(-1, 64, 64, 3), batch_size)
    fr = np.asarray(frame_of_row, np.int64)
    n = len(fr)
    rows["value"] = list(v0[fr]) if n else []
    rows["value_hidden"] = list(vh)
    rows["value_change"] = list(vh - v0[fr]) if n else []
    rows["kl"] = list(policy_kl(lg0[fr], lgh)) if n else []

    dtypes = {
        "env": np.int32,
        "step": np.int32,
        "saw": np.int32,
        "episode": np.int32,
        "cells": np.int32,
        "pixels_changed": np.int32,
        "box": np.int32,
    }
    columns: dict[str, np.ndarray] = {}
    for c in COLUMNS:
        a = np.asarray(rows[c], dtypes.get(c, np.float64))
        if c == "box":
            a = a.reshape(-1, 4)
        elif c.startswith("feature_"):
            a = a.reshape(-1, K)
        columns[c] = a

    # 4. the saw feature(s)
    if features is not None:
        source = f"given: features {features}"
    else:
        features = saw_features(analysis)
        if features:
            source = f"suggested label: features {features} are labelled buzzsaw"
        else:
            mass = np.abs(columns["feature_box"][columns["pixels_changed"] > 0]).sum(0)
            if not mass.any():
                raise ValueError(
                    "no feature is labelled saw and no saw was in view of the studied frames; "
                    "pass features=[k] or trajectories where saws are in view"
                )
            features = [int(np.argmax(mass))]
            source = (
                f"fallback: no feature is labelled saw; feature {features[0]} has the largest "
                f"|attribution| mass inside saw boxes ({mass[features[0]]:.3g} of "
                f"{mass.sum():.3g})"
            )
    settings = {
        "layer": analysis.settings.get("layer"),
        "rank": int(K),
        "output": "value",
        "ig_steps": analysis.settings.get("ig_steps"),
        "frames_with_saws": n_candidates,
        "max_frames": max_frames,
        "seed": int(seed),
        "corpus": [int(E), int(T)],
        "suggested_labels": list(getattr(analysis, "suggested_labels", []) or []),
        "hide": "render_z = 7 (hide_object): still in the game, not drawn",
        "cells": "layer cells the saw's 64-px box touches (coverage > 0)",
    }
    return SawStudy(columns, list(features), source, settings)
