"""Bookmarks: frames worth looking at in a batch of trajectories.

* :func:`advantage_bookmarks` - the k highest (or lowest) advantage frames, at most one per
  episode (the original tool's bookmarks);
* :func:`value_spikes` - single-step value jumps ranked by size; ``kind="spike"`` keeps only
  one-frame blips (the value jumps and comes straight back: the article's hallucinations);
* :func:`failed_episodes` - failed episodes with their cause and the frames before the failure;
* :func:`bookmark_list` - all three as JSON-ready dicts: what the analysis and the explorer show.

Arrays are (envs, steps) as in :class:`~rlvision_widgets.rollouts.Trajectories`:
``rewards[e, t]`` is the reward for the action at step t, ``firsts[e, t]`` marks an episode
start.

>>> values = np.array([[0.5, 0.5, 0.9, 0.5, 0.5]], np.float32)
>>> firsts = np.array([[True, False, False, False, False]])
>>> [(b.env, b.step, round(b.score, 2)) for b in value_spikes(values, firsts, k=1)]
[(0, 2, 0.4)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..rollouts.gae import check_envs_steps

__all__ = [
    "Bookmark",
    "FailedEpisode",
    "advantage_bookmarks",
    "bookmark_list",
    "episode_ids",
    "failed_episodes",
    "value_spikes",
]

_NOT_FINISHED = ("unfinished", "incomplete", "running", "")


@dataclass(frozen=True)
class Bookmark:
    """One bookmarked frame: ``env``, ``step``, ``score`` (signed), ``kind`` ("high", "low",
    "spike", "jump", "failure"), ``episode`` (per-batch episode id) and a ``label``.

    Made by :func:`advantage_bookmarks` and :func:`value_spikes`, or by hand:

    >>> values = np.array([[0.5, 0.5, 0.9, 0.5, 0.5]], np.float32)
    >>> b = value_spikes(values, np.zeros((1, 5), bool), k=1)[0]
    >>> b.env, b.step, b.kind, b.label
    (0, 2, 'spike', 'value spike +0.400')
    >>> Bookmark(env=1, step=7, score=-0.8, kind="low")
    Bookmark(env=1, step=7, score=-0.8, kind='low', episode=-1, label='')
    """

    env: int
    step: int
    score: float
    kind: str
    episode: int = -1
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict.

        >>> Bookmark(0, 5, 0.3, "high").to_dict()["step"]
        5
        """
        return asdict(self)


@dataclass
class FailedEpisode:
    """A failed episode: ``env``, ``start``, ``stop`` (exclusive), ``cause``, ``level_seed``,
    and ``frames`` - the steps shown before the failure (the last ``before`` steps).

    Made by :func:`failed_episodes` from a trajectory episode table:

    >>> eps = [dict(env=0, start=0, stop=40, cause="saw", level_seed=7)]
    >>> fe = failed_episodes(eps, before=4)[0]
    >>> fe.env, fe.cause, fe.level_seed, fe.frames.tolist()
    (0, 'saw', 7, [36, 37, 38, 39])
    >>> fe.to_dict()["frames"]
    [36, 37, 38, 39]
    """

    env: int
    start: int
    stop: int
    cause: str
    level_seed: int = -1
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``frames`` as a list)."""
        d = asdict(self)
        d["frames"] = self.frames.tolist()
        return d


def episode_ids(firsts: np.ndarray) -> np.ndarray:
    """Episode id (unique across the batch) of every (env, step), from ``firsts``.

    >>> episode_ids(np.array([[1, 0, 1], [0, 1, 0]], bool)).tolist()
    [[0, 0, 1], [2, 3, 3]]
    """
    firsts = check_envs_steps("firsts", firsts).astype(bool)
    starts = firsts.copy()
    starts[:, 0] = True
    ids = np.cumsum(starts.reshape(-1)).reshape(starts.shape) - 1
    return ids.astype(np.int64)


def advantage_bookmarks(
    advantages: np.ndarray, firsts: np.ndarray, k: int = 16, sign: str = "high"
) -> list[Bookmark]:
    """The ``k`` frames with the highest (``sign="high"``) or lowest (``"low"``) advantage,
    at most one per episode (each episode's extreme, if of that sign), strongest first.

    >>> adv = np.array([[0.1, 0.9, 0.3, -0.5]]); f = np.array([[1, 0, 1, 0]], bool)
    >>> [(b.step, b.score) for b in advantage_bookmarks(adv, f, k=5)]
    [(1, 0.9), (2, 0.3)]
    """
    if sign not in ("high", "low"):
        raise ValueError(f"sign must be 'high' or 'low', got {sign!r}")
    adv = check_envs_steps("advantages", advantages).astype(np.float64)
    ids = episode_ids(check_envs_steps("firsts", firsts, adv.shape))
    s = adv if sign == "high" else -adv
    flat_s, flat_id = s.reshape(-1), ids.reshape(-1)
    # per episode argmax: sort by (episode, -score) and take the first of each episode
    order = np.lexsort((-flat_s, flat_id))
    first = np.ones(order.size, bool)
    first[1:] = flat_id[order][1:] != flat_id[order][:-1]
    best = order[first]
    best = best[flat_s[best] > 0]
    best = best[np.argsort(-flat_s[best], kind="stable")][: max(0, int(k))]
    t = adv.shape[1]
    return [
        Bookmark(
            int(i // t),
            int(i % t),
            float(adv.reshape(-1)[i]),
            sign,
            int(flat_id[i]),
            f"{sign} advantage {adv.reshape(-1)[i]:+.3f}",
        )
        for i in best
    ]


def value_spikes(
    values: np.ndarray,
    firsts: np.ndarray,
    k: int = 16,
    *,
    kind: str = "spike",
    direction: str = "both",
    one_per_episode: bool = True,
    min_size: float = 0.0,
) -> list[Bookmark]:
    """Single-step value changes within episodes, ranked by size.

    ``kind="jump"``: score = v[t] - v[t-1]. ``kind="spike"``: a one-frame blip, v[t] differs from
    both neighbours in the same direction; score = the smaller of the two changes, signed
    (positive = spike up, e.g. a hallucinated coin; negative = dip, e.g. a hallucinated saw).
    ``direction``: "both", "up" or "down". ``min_size``: ignore smaller changes.

    >>> v = np.array([[0.2, 0.2, 0.6, 0.6, 0.1, 0.6]]); f = np.zeros((1, 6), bool)
    >>> [(b.step, round(b.score, 2)) for b in value_spikes(v, f, kind="jump",
    ...                                                   one_per_episode=False)][:2]
    [(4, -0.5), (5, 0.5)]
    """
    if kind not in ("spike", "jump"):
        raise ValueError(f"kind must be 'spike' or 'jump', got {kind!r}")
    if direction not in ("both", "up", "down"):
        raise ValueError(f"direction must be 'both', 'up' or 'down', got {direction!r}")
    v = check_envs_steps("values", values).astype(np.float64)
    f = check_envs_steps("firsts", firsts, v.shape).astype(bool)
    ids = episode_ids(f)
    e, t = v.shape
    score = np.zeros((e, t))
    valid = np.zeros((e, t), bool)
    if t >= 2:
        up = np.zeros((e, t))
        up[:, 1:] = v[:, 1:] - v[:, :-1]
        same_ep_prev = np.zeros((e, t), bool)
        same_ep_prev[:, 1:] = ~f[:, 1:]
        if kind == "jump":
            score, valid = up, same_ep_prev
        else:
            down = np.zeros((e, t))
            down[:, :-1] = v[:, :-1] - v[:, 1:]
            same_ep_next = np.zeros((e, t), bool)
            same_ep_next[:, :-1] = ~f[:, 1:]
            valid = same_ep_prev & same_ep_next & (up * down > 0)
            score = np.sign(up) * np.minimum(np.abs(up), np.abs(down))
    if direction == "up":
        valid &= score > 0
    elif direction == "down":
        valid &= score < 0
    valid &= np.abs(score) > min_size
    idx = np.flatnonzero(valid.reshape(-1))
    mag = np.abs(score.reshape(-1)[idx])
    idx = idx[np.argsort(-mag, kind="stable")]
    out: list[Bookmark] = []
    seen: set[int] = set()
    for i in idx:
        ep = int(ids.reshape(-1)[i])
        if one_per_episode and ep in seen:
            continue
        seen.add(ep)
        s = float(score.reshape(-1)[i])
        word = ("spike" if s > 0 else "dip") if kind == "spike" else ("jump" if s > 0 else "drop")
        out.append(Bookmark(int(i // t), int(i % t), s, kind, ep, f"value {word} {s:+.3f}"))
        if len(out) >= k:
            break
    return out


def _records(episodes: Any) -> list[dict[str, Any]]:
    if episodes is None:
        return []
    if isinstance(episodes, np.ndarray) and episodes.dtype.names:
        names = episodes.dtype.names
        return [
            {n: row[n].item() if hasattr(row[n], "item") else row[n] for n in names}
            for row in episodes
        ]
    if isinstance(episodes, Mapping):
        keys = list(episodes)
        n = len(np.asarray(episodes[keys[0]])) if keys else 0
        return [{k: np.asarray(episodes[k])[i].item() for k in keys} for i in range(n)]
    if hasattr(episodes, "to_dict") and hasattr(episodes, "columns"):  # a DataFrame
        return list(episodes.to_dict("records"))
    return [dict(r) for r in episodes]


def failed_episodes(
    episodes: Any, before: int = 16, causes: Iterable[str] | None = None
) -> list[FailedEpisode]:
    """Failed episodes (finished, not successful) with their cause and the ``before`` frames
    leading up to the failure (``frames`` = the last ``before`` steps, ending at the last
    frame of the episode).

    ``episodes``: the trajectory episode table (structured array, dict of arrays, list of
    dicts or DataFrame) with fields env, start, stop (exclusive) and cause, optionally
    finished / success / level_seed. ``causes``: keep only these causes.

    >>> eps = [dict(env=0, start=0, stop=40, cause="saw"), dict(env=0, start=40, stop=90,
    ...        cause="success"), dict(env=1, start=0, stop=64, cause="unfinished")]
    >>> [(f.env, f.cause, f.frames[[0, -1]].tolist()) for f in failed_episodes(eps, before=8)]
    [(0, 'saw', [32, 39])]
    """
    if isinstance(before, bool) or not isinstance(before, (int, np.integer)) or before < 1:
        raise ValueError(f"before must be a positive integer, got {before!r}")
    wanted = None if causes is None else {str(c) for c in causes}
    out = []
    for r in _records(episodes):
        missing = {"env", "start", "stop", "cause"} - set(r)
        if missing:
            raise ValueError(
                f"episode table needs fields env, start, stop, cause; missing {sorted(missing)}"
            )
        cause = str(r["cause"])
        finished = bool(r.get("finished", cause not in _NOT_FINISHED))
        success = bool(r.get("success", cause == "success"))
        if not finished or success or cause in _NOT_FINISHED or cause == "success":
            continue
        if wanted is not None and cause not in wanted:
            continue
        start, stop = int(r["start"]), int(r["stop"])
        frames = np.arange(max(start, stop - int(before)), stop, dtype=np.int64)
        out.append(
            FailedEpisode(int(r["env"]), start, stop, cause, int(r.get("level_seed", -1)), frames)
        )
    return out


_KIND_NAMES = {"high": "high advantage", "low": "low advantage", "spike": "value spike"}


def bookmark_list(
    values: np.ndarray,
    advantages: np.ndarray | None,
    firsts: np.ndarray | None,
    episodes: Any = None,
    k: int = 6,
    before_failure: int = 8,
) -> list[dict[str, Any]]:
    """The bookmarks of a batch, as JSON-ready dicts: the ``k`` highest and lowest advantage
    frames (one per episode; none without ``advantages``), single-step value spikes well above
    the typical step-to-step change (at most ``k``), and ``before_failure`` steps before each
    failed episode's last frame (at most ``4 k``).

    Each dict: ``env``, ``step`` (the frame it shows), ``score``, ``kind``, ``episode``,
    ``label`` (short: where it goes, e.g. "T2·40" or "saw T1·31"), ``detail`` (one sentence);
    failures add ``cause``, ``level_seed`` and ``last_step`` (the episode's last frame).

    >>> values = np.array([[0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5]], np.float32)
    >>> eps = [dict(env=0, start=0, stop=5, cause="saw")]
    >>> [(b["kind"], b["step"], b["label"]) for b in bookmark_list(values, None, None, eps, k=1,
    ...                                                          before_failure=2)]
    [('spike', 2, 'T1·2'), ('failure', 3, 'saw T1·3')]
    """
    values = check_envs_steps("values", values).astype(np.float32)
    E, T = values.shape
    f = np.zeros((E, T), bool) if firsts is None else np.asarray(firsts).astype(bool)
    marks: list[Bookmark] = []
    if advantages is not None:
        marks += advantage_bookmarks(advantages, f, k=k, sign="high")
        marks += advantage_bookmarks(advantages, f, k=k, sign="low")
    spikes = value_spikes(values, f, k=2 * k, kind="spike")
    typical = float(np.median(np.abs(np.diff(values, axis=1)))) if T > 1 else 0.0
    marks += [b for b in spikes if abs(b.score) > 3 * typical][:k]
    out: list[dict[str, Any]] = []
    for b in marks:
        name = _KIND_NAMES.get(b.kind, b.kind)
        out.append(
            dict(
                b.to_dict(),
                label=f"T{b.env + 1}·{b.step}",
                detail=f"{name} {b.score:+.3f} (trajectory {b.env + 1}, step {b.step})",
            )
        )
    if episodes is not None and len(episodes):
        for fe in failed_episodes(episodes, before=before_failure)[: 4 * k]:
            step = int(fe.frames[0]) if len(fe.frames) else int(fe.start)
            last = int(fe.stop) - 1
            level = f" (level {fe.level_seed})" if fe.level_seed >= 0 else ""
            out.append(
                {
                    "env": int(fe.env),
                    "step": step,
                    "score": 0.0,
                    "kind": "failure",
                    "episode": -1,
                    "label": f"{fe.cause} T{fe.env + 1}·{step}",
                    "detail": f"failure ({fe.cause}) at step {last} of trajectory "
                    f"{fe.env + 1}{level}; shown from step {step}, {last - step} steps before",
                    "cause": fe.cause,
                    "level_seed": int(fe.level_seed),
                    "last_step": last,
                }
            )
    return out


def __getattr__(name: str) -> object:
    from .._compat import moved_names

    return moved_names(
        __name__,
        {
            "gae_advantages": "rollouts.gae:gae_advantages",
            "FAILURE_CAUSES": "environment.causes:FAILURE_CAUSES",
        },
    )(name)
