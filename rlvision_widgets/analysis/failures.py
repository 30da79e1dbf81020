"""Dissecting failure and searching for hallucinations, as explorer bookmarks.

* **Failures** (the article's "Dissecting failure"): every failed episode of a rollout with its
  exact cause from the engine, the frames leading up to it, the value over those frames and
  which hazards were visible in each (:func:`list_failures`, :func:`failure_bookmarks`).
* **Hallucinations** (the article's "Hallucinations"): frames where the value jumps for a
  single step and comes back (:func:`value_spikes`), and frames with extreme advantage
  (GAE, :func:`advantage_extremes`); :func:`hallucination_search` ranks both together.

Every finder returns bookmark records, plain dicts the explorer shows and navigates to::

    {"env": e, "step": t, "trajectory": e, "frame": t, "kind": "failure" | "spike" | "high" |
     "low", "score": float, "label": str, "detail": str, ...}

(``trajectory``/``frame`` are the explorer's names for ``env``/``step``.)

>>> traj = collect_trajectories(load_agent("coinrun"), num_envs=8, num_steps=512)  # doctest: +SKIP
>>> [f.cause for f in list_failures(traj)][:3]                                    # doctest: +SKIP
['saw', 'saw', 'enemy_left']
>>> explorer.bookmarks = failure_bookmarks(traj) + hallucination_search(traj)     # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..trajectories import Trajectories

__all__ = ["BOOKMARK_KINDS", "FailureRecord", "advantage_extremes", "bookmark",
           "failure_bookmarks", "failure_frames", "hallucination_search", "list_failures",
           "value_spikes"]

#: Bookmark kinds the explorer groups by.
BOOKMARK_KINDS = ("high", "low", "spike", "failure")
_HAZARD_CLASSES = ("saw", "enemy_left", "enemy_right", "lava")
_CAUSE_NAMES = {"saw": "buzzsaw", "enemy_left": "enemy moving left",
                "enemy_right": "enemy moving right", "lava": "lava",
                "multiple": "several hazards", "timeout": "timeout", "unknown": "unknown"}


def bookmark(env: int, step: int, kind: str, score: float, label: str, detail: str = "",
             **extra: Any) -> dict[str, Any]:
    """One bookmark record (see the module doc).

    >>> bookmark(0, 12, "spike", 0.03, "T1·12")["frame"]
    12
    """
    if kind not in BOOKMARK_KINDS:
        raise ValueError(f"bookmark kind must be one of {BOOKMARK_KINDS}, got {kind!r}")
    return {"env": int(env), "step": int(step), "trajectory": int(env), "frame": int(step),
            "kind": kind, "score": float(score), "label": label, "detail": detail or label,
            **extra}


# ------------------------------------------------------------------------------- failures
@dataclass
class FailureRecord:
    """One failed episode: row ``episode`` of ``traj.episodes``, ``env``, steps
    ``start``..``stop`` (exclusive; the fatal action was taken at ``stop - 1``), ``level_seed``,
    ``cause``; ``steps`` the frames leading up to it (the last ``frames_before`` + 1),
    ``values`` there, and ``visible`` per frame: hazard class -> number of objects in view
    (from the engine state; filled by ``list_failures(..., visibility=True)``)."""

    episode: int
    env: int
    start: int
    stop: int
    level_seed: int
    cause: str
    steps: list[int]
    values: list[float]
    visible: list[dict[str, int]] = field(default_factory=list)

    @property
    def last_step(self) -> int:
        """Step of the last frame (where the fatal action was taken)."""
        return self.stop - 1

    @property
    def length(self) -> int:
        return self.stop - self.start

    def summary(self) -> str:
        """One line, e.g. ``"env 3, steps 120-187 (level 4412): buzzsaw; value 8.1 -> 2.3"``."""
        v = (f"; value {self.values[0]:.2f} → {self.values[-1]:.2f} over the last "
             f"{len(self.values)} frames" if self.values else "")
        hidden = ""
        if self.visible and self.cause in _HAZARD_CLASSES:
            seen = [d.get(self.cause, 0) > 0 for d in self.visible]
            if not all(seen):
                hidden = (f"; the {_CAUSE_NAMES[self.cause]} was out of view in "
                          f"{seen.count(False)} of the {len(seen)} frames before")
        return (f"env {self.env}, steps {self.start}–{self.last_step} (level {self.level_seed}):"
                f" {_CAUSE_NAMES.get(self.cause, self.cause)}{v}{hidden}")

    def to_bookmark(self) -> dict[str, Any]:
        """Explorer bookmark at the first frame leading up to the failure."""
        return bookmark(self.env, self.steps[0], "failure", float(self.length),
                        f"{self.cause} T{self.env + 1}·{self.last_step}", self.summary(),
                        cause=self.cause, stop=self.stop, last_step=self.last_step,
                        level_seed=self.level_seed, episode=self.episode)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_step"] = self.last_step
        return d


def list_failures(traj: "Trajectories", cause: str | None = None, frames_before: int = 8,
                  visibility: bool = False) -> list[FailureRecord]:
    """Failed (finished) episodes of a rollout, in order of env then start.

    ``cause``: only this failure cause (one of ``EPISODE_CAUSES``); ``frames_before``: how
    many frames before the last one to include in ``steps``; ``visibility``: also record, per
    frame, which hazards were in view (replays each episode from its level start: a few ms
    per frame).

    >>> traj = collect_trajectories("random", num_envs=2, num_steps=256, seed=0)   # doctest: +SKIP
    >>> list_failures(traj)[0].summary()                                         # doctest: +SKIP
    'env 0, steps 0–45 (level 1263407424): buzzsaw; value ...'
    """
    if not isinstance(frames_before, (int, np.integer)) or frames_before < 0:
        raise ValueError(f"frames_before must be an integer >= 0, got {frames_before!r}")
    rows = traj.failed_episodes(cause)
    index = {(int(r["env"]), int(r["start"])): k for k, r in enumerate(traj.episodes)}
    out = []
    for r in rows:
        env, start, stop = int(r["env"]), int(r["start"]), int(r["stop"])
        first = max(start, stop - 1 - int(frames_before))
        steps = list(range(first, stop))
        rec = FailureRecord(index[(env, start)], env, start, stop, int(r["level_seed"]),
                            str(r["cause"]), steps,
                            [float(x) for x in traj.values[env, first:stop]])
        if visibility:
            rec.visible = [_visible_hazards(traj, env, t) for t in steps]
        out.append(rec)
    return out


def _visible_hazards(traj: "Trajectories", env: int, step: int) -> dict[str, int]:
    from ..environment.render import object_boxes
    ann = object_boxes(traj.state_at(env, step), 64)
    return {c: int(len(ann.boxes[c])) for c in _HAZARD_CLASSES}


def failure_frames(traj: "Trajectories", record: FailureRecord, full_res: bool = False
                   ) -> np.ndarray:
    """The frames of ``record.steps``: (n, 64, 64, 3) observations, or (n, 512, 512, 3)
    re-rendered from the engine with ``full_res``.

    >>> frames = failure_frames(traj, list_failures(traj)[0])                     # doctest: +SKIP
    """
    if not full_res:
        return traj.obs[record.env, record.steps]
    return np.stack([traj.render_full(record.env, t) for t in record.steps])


def failure_bookmarks(traj: "Trajectories", frames_before: int = 8, cause: str | None = None,
                      limit: int | None = None, visibility: bool = False) -> list[dict[str, Any]]:
    """Bookmarks at the frames before each failure (kind ``"failure"``).

    >>> bms = failure_bookmarks(traj, frames_before=8)                             # doctest: +SKIP
    >>> bms[0]["kind"], bms[0]["cause"]                                            # doctest: +SKIP
    ('failure', 'saw')
    """
    recs = list_failures(traj, cause, frames_before, visibility)
    return [r.to_bookmark() for r in recs[:limit]]


# -------------------------------------------------------------------------- hallucinations
def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be (envs, steps) or (steps,), got shape {a.shape}")
    return a


def _same_episode_next(firsts: np.ndarray) -> np.ndarray:
    """(E, T) True where step t+1 exists and continues the episode of step t."""
    nxt = np.zeros(firsts.shape, bool)
    nxt[:, :-1] = ~firsts[:, 1:]
    return nxt


def _suppress(cands: list[tuple[float, int, int, Any]], sep: int) -> list[tuple[float, int, int, Any]]:
    """Keep the best candidate within ``sep`` steps of each other in the same env."""
    kept: list[tuple[float, int, int, Any]] = []
    taken: dict[int, list[int]] = {}
    for c in sorted(cands, key=lambda c: -c[0]):
        _, e, t, _ = c
        if any(abs(t - u) <= sep for u in taken.get(e, [])):
            continue
        taken.setdefault(e, []).append(t)
        kept.append(c)
    return kept


def value_spikes(values: np.ndarray, firsts: np.ndarray | None = None, top: int | None = 20,
                 min_ratio: float = 3.0, min_separation: int = 2) -> list[dict[str, Any]]:
    """Frames where the value jumps for a single step and comes back (kind ``"spike"``).

    At step t (with t-1 and t+1 in the same episode) the excursion is
    ``min(|v[t] - v[t-1]|, |v[t] - v[t+1]|)`` when both differences have the same sign
    (up then down: ``direction`` +1, the article's coin hallucination; down then up: -1, its
    buzzsaw hallucination). ``ratio`` is the excursion over the median one-step change of the
    value within episodes; only ``ratio >= min_ratio`` is kept, spikes closer than
    ``min_separation`` steps are merged, and the ``top`` largest are returned, largest first.

    >>> v = np.full(20, 5.0); v[7] = 8.0; v[12] = 4.0; v += np.linspace(0, 0.1, 20)
    >>> [(b["step"], b["direction"]) for b in value_spikes(v)]
    [(7, 1), (12, -1)]
    """
    v = _as_2d(values, "values").astype(np.float64)
    E, T = v.shape
    f = np.zeros((E, T), bool) if firsts is None else _as_2d(firsts, "firsts").astype(bool)
    if f.shape != v.shape:
        raise ValueError(f"firsts {f.shape} must match values {v.shape}")
    if T < 3:
        return []
    nxt = _same_episode_next(f)
    diffs = np.abs(np.diff(v, axis=1))[nxt[:, :-1]]
    scale = float(np.median(diffs)) if diffs.size else 0.0
    up = v[:, 1:-1] - v[:, :-2]
    down = v[:, 1:-1] - v[:, 2:]
    ok = nxt[:, :-2] & nxt[:, 1:-1] & (up * down > 0)
    exc = np.minimum(np.abs(up), np.abs(down))
    tiny = 1e-12
    cands = []
    for e, t0 in zip(*np.nonzero(ok)):
        score = float(exc[e, t0])
        ratio = score / max(scale, tiny)
        if ratio >= min_ratio and score > tiny:
            cands.append((score, int(e), int(t0) + 1, (ratio, 1 if up[e, t0] > 0 else -1)))
    out = []
    for score, e, t, (ratio, direction) in _suppress(cands, min_separation)[:top]:
        word = "spike" if direction > 0 else "dip"
        out.append(bookmark(
            e, t, "spike", score, f"V{'↑' if direction > 0 else '↓'} T{e + 1}·{t}",
            f"value {word} for one step: {v[e, t - 1]:.3f} → {v[e, t]:.3f} → {v[e, t + 1]:.3f}"
            f" ({ratio:.1f}× the typical one-step change; trajectory {e + 1}, step {t})",
            direction=direction, ratio=float(ratio),
            values=[float(v[e, t - 1]), float(v[e, t]), float(v[e, t + 1])]))
    return out


def advantage_extremes(advantages: np.ndarray, firsts: np.ndarray | None = None,
                       top: int | None = 10, per_episode: bool = True,
                       min_z: float = 3.0) -> list[dict[str, Any]]:
    """Frames with extreme advantage (kinds ``"high"`` and ``"low"``), ranked by robust
    z-score ``(A - median) / (1.4826 * MAD)`` over all steps; at most one high and one low
    per episode with ``per_episode``; ``terminal`` marks an episode's last step (a death or a
    coin is unexpected by nature).

    >>> a = np.zeros((1, 30)); a[0, 5] = 4.0; a[0, 20] = -6.0; a += 0.01 * np.sin(np.arange(30))
    >>> [(b["kind"], b["step"]) for b in advantage_extremes(a)]
    [('low', 20), ('high', 5)]
    """
    a = _as_2d(advantages, "advantages").astype(np.float64)
    E, T = a.shape
    f = np.zeros((E, T), bool) if firsts is None else _as_2d(firsts, "firsts").astype(bool)
    if f.shape != a.shape:
        raise ValueError(f"firsts {f.shape} must match advantages {a.shape}")
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med))) * 1.4826
    scale = mad if mad > 0 else (float(np.std(a)) or 1.0)
    z = (a - med) / scale
    nxt = _same_episode_next(f)
    episode_id = np.cumsum(f, axis=1)
    cands = []
    for sign, kind in ((1, "high"), (-1, "low")):
        zz = sign * z
        for e in range(E):
            if per_episode:
                for ep in np.unique(episode_id[e]):
                    idx = np.flatnonzero(episode_id[e] == ep)
                    t = int(idx[np.argmax(zz[e, idx])])
                    if zz[e, t] >= min_z:
                        cands.append((float(zz[e, t]), e, t, kind))
            else:
                for t in np.flatnonzero(zz[e] >= min_z):
                    cands.append((float(zz[e, t]), e, int(t), kind))
    cands.sort(key=lambda c: -c[0])
    out = []
    for zabs, e, t, kind in cands[:top]:
        terminal = bool(t < T - 1 and not nxt[e, t])
        out.append(bookmark(
            e, t, kind, float(a[e, t]),
            f"A{'+' if kind == 'high' else '−'} T{e + 1}·{t}",
            f"{kind} advantage {a[e, t]:+.3f} (robust z {_sign(kind) * zabs:+.1f})"
            + (" at the episode's last step" if terminal else "")
            + f" (trajectory {e + 1}, step {t})", zscore=float(_sign(kind) * zabs),
            terminal=terminal))
    return out


def _sign(kind: str) -> int:
    return 1 if kind == "high" else -1


def hallucination_search(traj: "Trajectories | None" = None, values: np.ndarray | None = None,
                         advantages: np.ndarray | None = None,
                         firsts: np.ndarray | None = None, top: int = 20,
                         exclude_terminal: bool = True, min_ratio: float = 3.0,
                         min_z: float = 3.0) -> list[dict[str, Any]]:
    """Candidate hallucinations, ranked: single-step value spikes and extreme advantages.

    Pass recorded trajectories, or the (envs, steps) arrays. Records are ranked together by
    how exceptional they are (a spike's ``ratio`` to the typical one-step value change, an
    advantage's |robust z|); ``exclude_terminal`` drops advantage extremes at an episode's
    last step (deaths and coins, explained by the outcome rather than a hallucination).
    ``rank`` (1 = most exceptional) is added to each record.

    >>> v = np.linspace(0, 1, 50)[None].repeat(2, 0); v[1, 30] += 0.5
    >>> hits = hallucination_search(values=v, advantages=np.zeros_like(v))
    >>> [(h["kind"], h["env"], h["step"], h["rank"]) for h in hits]
    [('spike', 1, 30, 1)]
    """
    if traj is not None:
        values = traj.values if values is None else values
        advantages = traj.advantages if advantages is None else advantages
        firsts = traj.firsts if firsts is None else firsts
    if values is None:
        raise ValueError("hallucination_search needs trajectories or a values array")
    found = value_spikes(values, firsts, top=None, min_ratio=min_ratio)
    if advantages is not None:
        adv = advantage_extremes(advantages, firsts, top=None, min_z=min_z)
        if exclude_terminal:
            adv = [b for b in adv if not b["terminal"]]
        found += adv
    found.sort(key=lambda b: -(b["ratio"] if b["kind"] == "spike" else abs(b["zscore"])))
    found = found[:top]
    for i, b in enumerate(found, 1):
        b["rank"] = i
    return found

