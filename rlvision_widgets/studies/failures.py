"""Dissecting failure and searching for hallucinations, as explorer bookmarks.

* **Failures** (the article's "Dissecting failure"): every failed episode of a rollout with its
  exact cause from the engine, the frames leading up to it, the value over those frames and
  which hazards were visible in each (:func:`list_failures`, :func:`failure_bookmarks`).
* **Hallucinations** (the article's "Hallucinations"): frames where the value jumps for a
  single step and comes back, and frames with extreme advantage (GAE), ranked together by how
  exceptional they are (:func:`hallucination_search`).

Both build on :mod:`rlvision_widgets.analysis.bookmarks` (``failed_episodes``,
``value_spikes``, ``advantage_bookmarks``) and add the engine's view (hazards in sight), the
values, a common ranking and the explorer's record format.

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

from ..analysis import bookmarks as bm
from ..analysis.labels import HAZARD_CLASSES, label
from ..environment.render import object_boxes
from ..rollouts import EPISODE_CAUSES

if TYPE_CHECKING:  # pragma: no cover
    from ..rollouts import Trajectories

__all__ = [
    "BOOKMARK_KINDS",
    "FailureRecord",
    "bookmark",
    "failure_bookmarks",
    "failure_frames",
    "hallucination_search",
    "list_failures",
]

#: Bookmark kinds the explorer groups by.
BOOKMARK_KINDS = ("high", "low", "spike", "failure")


def bookmark(
    env: int, step: int, kind: str, score: float, label: str, detail: str = "", **extra: Any
) -> dict[str, Any]:
    """One bookmark record (see the module doc).

    >>> bookmark(0, 12, "spike", 0.03, "T1·12")["frame"]
    12
    """
    if kind not in BOOKMARK_KINDS:
        raise ValueError(f"bookmark kind must be one of {BOOKMARK_KINDS}, got {kind!r}")
    return {
        "env": int(env),
        "step": int(step),
        "trajectory": int(env),
        "frame": int(step),
        "kind": kind,
        "score": float(score),
        "label": label,
        "detail": detail or label,
        **extra,
    }


# ------------------------------------------------------------------------------- failures
@dataclass
class FailureRecord:
    """One failed episode: row ``episode`` of ``traj.episodes``, ``env``, steps
    ``start``..``stop`` (exclusive; the fatal action was taken at ``stop - 1``), ``level_seed``,
    ``cause``; ``steps`` the frames leading up to it (the last ``frames_before`` + 1),
    ``values`` there, and ``visible`` per frame: hazard class -> number of objects in view
    (from the engine state; filled by ``list_failures(..., visibility=True)``).

    >>> rec = FailureRecord(0, 3, 120, 188, 4412, "saw", [186, 187], [8.1, 2.3])
    >>> rec.last_step, rec.length
    (187, 68)
    >>> rec.summary()
    'env 3, steps 120–187 (level 4412): buzzsaw; value 8.10 → 2.30 over the last 2 frames'
    """

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
        v = (
            f"; value {self.values[0]:.2f} → {self.values[-1]:.2f} over the last "
            f"{len(self.values)} frames"
            if self.values
            else ""
        )
        hidden = ""
        if self.visible and self.cause in HAZARD_CLASSES:
            seen = [d.get(self.cause, 0) > 0 for d in self.visible]
            if not all(seen):
                hidden = (
                    f"; the {label(self.cause)} was out of view in "
                    f"{seen.count(False)} of the {len(seen)} frames before"
                )
        return (
            f"env {self.env}, steps {self.start}–{self.last_step} (level {self.level_seed}):"
            f" {label(self.cause)}{v}{hidden}"
        )

    def to_bookmark(self) -> dict[str, Any]:
        """Explorer bookmark at the first frame leading up to the failure."""
        return bookmark(
            self.env,
            self.steps[0],
            "failure",
            float(self.length),
            f"{self.cause} T{self.env + 1}·{self.last_step}",
            self.summary(),
            cause=self.cause,
            stop=self.stop,
            last_step=self.last_step,
            level_seed=self.level_seed,
            episode=self.episode,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_step"] = self.last_step
        return d


def list_failures(
    traj: Trajectories, cause: str | None = None, frames_before: int = 8, visibility: bool = False
) -> list[FailureRecord]:
    """Failed (finished) episodes of a rollout, in order of env then start.

    ``cause``: only this failure cause (one of ``EPISODE_CAUSES``); ``frames_before``: how
    many frames before the last one to include in ``steps``; ``visibility``: also record, per
    frame, which hazards were in view (replays each episode from its level start: a few ms
    per frame).

    >>> traj = collect_trajectories("random", num_envs=2, num_steps=256, seed=0)   # doctest: +SKIP
    >>> list_failures(traj)[0].summary()                                         # doctest: +SKIP
    'env 0, steps 0–45 (level 1263407424): buzzsaw; value ...'
    """
    if (
        isinstance(frames_before, bool)
        or not isinstance(frames_before, (int, np.integer))
        or frames_before < 0
    ):
        raise ValueError(f"frames_before must be an integer >= 0, got {frames_before!r}")
    if cause is not None and cause not in EPISODE_CAUSES:
        raise ValueError(f"unknown cause {cause!r}; one of {EPISODE_CAUSES}")
    index = {(int(r["env"]), int(r["start"])): k for k, r in enumerate(traj.episodes)}
    out = []
    for fe in bm.failed_episodes(
        traj.episodes, before=int(frames_before) + 1, causes=None if cause is None else [cause]
    ):
        steps = [int(t) for t in fe.frames]
        rec = FailureRecord(
            index[(fe.env, fe.start)],
            fe.env,
            fe.start,
            fe.stop,
            int(fe.level_seed),
            fe.cause,
            steps,
            [float(x) for x in traj.values[fe.env, steps]],
        )
        if visibility:
            rec.visible = [_visible_hazards(traj, fe.env, t) for t in steps]
        out.append(rec)
    return out


def _visible_hazards(traj: Trajectories, env: int, step: int) -> dict[str, int]:
    ann = object_boxes(traj.state_at(env, step), 64)
    return {c: int(len(ann.boxes[c])) for c in HAZARD_CLASSES}


def failure_frames(traj: Trajectories, record: FailureRecord, full_res: bool = False) -> np.ndarray:
    """The frames of ``record.steps``: (n, 64, 64, 3) observations, or (n, 512, 512, 3)
    re-rendered from the engine with ``full_res``.

    >>> frames = failure_frames(traj, list_failures(traj)[0])                     # doctest: +SKIP
    """
    if not full_res:
        return traj.obs[record.env, record.steps]
    return np.stack([traj.render_full(record.env, t) for t in record.steps])


def failure_bookmarks(
    traj: Trajectories,
    frames_before: int = 8,
    cause: str | None = None,
    limit: int | None = None,
    visibility: bool = False,
) -> list[dict[str, Any]]:
    """Bookmarks at the frames before each failure (kind ``"failure"``).

    >>> bms = failure_bookmarks(traj, frames_before=8)                             # doctest: +SKIP
    >>> bms[0]["kind"], bms[0]["cause"]                                            # doctest: +SKIP
    ('failure', 'saw')
    """
    recs = list_failures(traj, cause, frames_before, visibility)
    return [r.to_bookmark() for r in recs[:limit]]


# -------------------------------------------------------------------------- hallucinations
def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be (envs, steps) or (steps,), got shape {a.shape}")
    return a


def _suppress(marks: list[Any], sep: int) -> list[Any]:
    """Keep the strongest of bookmarks closer than ``sep`` steps in the same env (marks are
    sorted strongest first)."""
    kept, taken = [], {}
    for b in marks:
        if any(abs(b.step - u) <= sep for u in taken.get(b.env, [])):
            continue
        taken.setdefault(b.env, []).append(b.step)
        kept.append(b)
    return kept


def hallucination_search(
    traj: Trajectories | None = None,
    values: np.ndarray | None = None,
    advantages: np.ndarray | None = None,
    firsts: np.ndarray | None = None,
    top: int = 20,
    kinds: tuple[str, ...] = ("spike", "high", "low"),
    min_ratio: float = 3.0,
    min_z: float = 3.0,
    exclude_terminal: bool = True,
    min_separation: int = 2,
) -> list[dict[str, Any]]:
    """Candidate hallucinations, ranked: single-step value spikes and extreme advantages.

    Built on :mod:`rlvision_widgets.analysis.bookmarks` (``value_spikes(kind="spike")`` and
    ``advantage_bookmarks``). Each candidate is scored by how exceptional it is, so both kinds
    rank together: a spike by ``ratio`` = its size over the median one-step change of the
    value within episodes (kept if ``>= min_ratio``; spikes closer than ``min_separation``
    steps are merged); an advantage by its robust z-score ``(A - median) / (1.4826 MAD)``
    (kept if ``|z| >= min_z``, at most one high and one low per episode).
    ``exclude_terminal`` ignores advantages at an episode's last step (a death or the coin is
    unexpected by nature, not a hallucination). Pass recorded trajectories or the (envs,
    steps) arrays. Returns explorer bookmark dicts with ``rank`` (1 = most exceptional),
    ``strength`` (the ratio or |z|) and, for spikes, ``direction`` (+1 up, e.g. the article's
    coin hallucination; -1 down, its buzzsaw hallucination) and the three ``values``.

    >>> v = np.linspace(0, 1, 50)[None].repeat(2, 0); v[1, 30] += 0.5
    >>> hits = hallucination_search(values=v, advantages=np.zeros_like(v))
    >>> [(h["kind"], h["env"], h["step"], h["rank"]) for h in hits]
    [('spike', 1, 30, 1)]
    """
    bad = [k for k in kinds if k not in ("spike", "high", "low")]
    if bad:
        raise ValueError(f"unknown kinds {bad}; valid kinds: spike, high, low")
    if traj is not None:
        values = traj.values if values is None else values
        advantages = traj.advantages if advantages is None else advantages
        firsts = traj.firsts if firsts is None else firsts
    if values is None:
        raise ValueError("hallucination_search needs trajectories or a values array")
    v = _as_2d(values, "values").astype(np.float64)
    E, T = v.shape
    f = np.zeros((E, T), bool) if firsts is None else _as_2d(firsts, "firsts").astype(bool)
    if f.shape != v.shape:
        raise ValueError(f"firsts {f.shape} must match values {v.shape}")
    found: list[tuple[float, dict[str, Any]]] = []
    if "spike" in kinds and T >= 3:
        cont = ~f[:, 1:]  # step t+1 continues t's episode
        steps = np.abs(np.diff(v, axis=1))[cont]
        typical = max(float(np.median(steps)) if steps.size else 0.0, 1e-12)
        spikes = bm.value_spikes(
            v, f, k=E * T, kind="spike", one_per_episode=False, min_size=min_ratio * typical
        )
        for b in _suppress(spikes, min_separation):
            e, t = b.env, b.step
            ratio = abs(b.score) / typical
            up = b.score > 0
            found.append(
                (
                    ratio,
                    bookmark(
                        e,
                        t,
                        "spike",
                        b.score,
                        f"V{'↑' if up else '↓'} T{e + 1}·{t}",
                        f"value {'spike' if up else 'dip'} for one step: {v[e, t - 1]:.3f} → "
                        f"{v[e, t]:.3f} → {v[e, t + 1]:.3f} ({ratio:.1f}× the typical one-step change;"
                        f" trajectory {e + 1}, step {t})",
                        direction=1 if up else -1,
                        strength=float(ratio),
                        episode=b.episode,
                        values=[float(v[e, t - 1]), float(v[e, t]), float(v[e, t + 1])],
                    ),
                )
            )
    want_adv = [k for k in ("high", "low") if k in kinds]
    if want_adv and advantages is not None:
        a = _as_2d(advantages, "advantages").astype(np.float64)
        if a.shape != v.shape:
            raise ValueError(f"advantages {a.shape} must match values {v.shape}")
        terminal = np.zeros((E, T), bool)
        terminal[:, :-1] = f[:, 1:]  # last step of an episode
        med = float(np.median(a))
        mad = 1.4826 * float(np.median(np.abs(a - med)))
        scale = mad if mad > 0 else (float(np.std(a)) or 1.0)
        z = (a - med) / scale
        zz = np.where(terminal, 0.0, z) if exclude_terminal else z
        for kind in want_adv:
            for b in bm.advantage_bookmarks(zz, f, k=E * T, sign=kind):
                e, t = b.env, b.step
                if abs(z[e, t]) < min_z:
                    continue
                found.append(
                    (
                        abs(float(z[e, t])),
                        bookmark(
                            e,
                            t,
                            kind,
                            float(a[e, t]),
                            f"A{'+' if kind == 'high' else '−'} T{e + 1}·{t}",
                            f"{kind} advantage {a[e, t]:+.3f} (robust z {z[e, t]:+.1f}"
                            + (", the episode's last step" if terminal[e, t] else "")
                            + f"; trajectory {e + 1}, step {t})",
                            zscore=float(z[e, t]),
                            strength=abs(float(z[e, t])),
                            terminal=bool(terminal[e, t]),
                            episode=b.episode,
                        ),
                    )
                )
    found.sort(key=lambda x: -x[0])
    out = [b for _, b in found[:top]]
    for i, b in enumerate(out, 1):
        b["rank"] = i
    return out
