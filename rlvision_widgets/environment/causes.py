"""Exact cause of every finished CoinRun episode, from the engine.

A :class:`CauseTracker` attached to a :class:`CoinRunEnv` keeps, per env, the state at level
start (one ``get_state`` per level start) and the actions since (one small array write per
step). When an episode fails it finds what ended it without guessing:

1. If the level holds a single kind of hazard (only saws, or only lava) and the episode ended
   before the timeout, only that hazard can have set ``done`` (the engine's only other done
   sources are the coin, which would be a success, and the timeout): no replay is needed.
   ``replay_all=True`` disables this shortcut.
2. Otherwise the state just before the terminal step is needed: for episodes that run into the
   timeout it is snapshotted when the env is one step away from it (one ``get_state`` per such
   episode); for the others the episode is replayed from its level-start state in a 1-env
   scratch env without worker threads (with render-only options patched for speed).
3. That terminal step is re-run from a *harmless* copy of the pre-terminal state (saws and
   enemies cannot collide, lava is space, no timeout: motion is unchanged) and the engine's
   overlap tests are applied to the result: saw, enemy (direction = sign of its ``vx`` before
   the step), lava. No contact and the timeout reached means ``"timeout"``; more than one kind
   of contact means ``"multiple"``.

Cost: one ``get_state`` per level start, one small array write per step, one ``get_state`` per
episode that reaches the timeout, and the replays of step 2 (as expensive as playing those
episodes again: in the random-agent benchmark about 10% of collection time).
``CauseTracker(env, checkpoint_every=64)`` also snapshots every 64 steps in levels that would
need a replay, which bounds replays to 64 steps (about 3%); the labels are the same.

>>> env = CoinRunEnv(EnvOptions(num_envs=8, rand_seed=0))
>>> tracker = CauseTracker(env)
>>> for _ in range(2000):
...     _ = env.step(np.random.randint(0, 15, size=8))
>>> [(r.level_seed, r.cause) for r in tracker.pop_records()][:3]    # doctest: +SKIP
[(566770259, 'timeout'), (1263407424, 'success'), (1116137690, 'saw')]
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .coinrun import CoinRunEnv, EnvOptions, ScratchEnv
from .state import LAVA_TILES, EntityType, GameState, harmless_copy, parse_state

#: Every label a finished episode can get, the one cause list (files store indices into it:
#: append only). "unknown" only appears if the engine did something the analysis does not
#: model (a warning is issued). Episodes still running are "unfinished" in
#: :data:`rlvision_widgets.rollouts.EPISODE_CAUSES`.
CAUSES = ("success", "saw", "enemy_left", "enemy_right", "lava", "multiple", "timeout", "unknown")
#: The failure causes the analysis names: every cause but "success" and "unknown".
FAILURE_CAUSES = tuple(c for c in CAUSES if c not in ("success", "unknown"))

_POS_EPS = np.float32(-0.001)


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode. ``start`` is the tracker step index of its first observation
    (steps counted since the tracker was attached); it took ``length`` actions.

    Records come from :meth:`CauseTracker.pop_records`; ``start_state`` and ``actions`` are
    kept only with ``CauseTracker(env, keep_states=True)``.

    >>> rec = EpisodeRecord(env=0, level_seed=42, start=10, length=25, success=False,
    ...                     cause="saw")
    >>> rec.stop, rec.cause in FAILURE_CAUSES
    (35, True)
    """

    env: int
    level_seed: int
    start: int
    length: int
    success: bool
    cause: str
    start_state: bytes | None = field(default=None, repr=False)
    actions: np.ndarray | None = field(default=None, repr=False)

    @property
    def stop(self) -> int:
        """Step index after the terminal step (the next episode's first observation)."""
        return self.start + self.length


@dataclass(frozen=True)
class OpenEpisode:
    """An episode still running (no cause yet), from :meth:`CauseTracker.open_episodes`.

    >>> env = CoinRunEnv(num_envs=1, rand_seed=0)
    >>> tracker = CauseTracker(env)
    >>> _ = env.step(np.array([7]))
    >>> [(ep.env, ep.start, ep.length, ep.actions.tolist()) for ep in tracker.open_episodes()]
    [(0, 0, 1, [7])]
    >>> env.close()
    """

    env: int
    level_seed: int
    start: int
    length: int
    start_state: bytes = field(repr=False)
    actions: np.ndarray = field(repr=False)


def classify_terminal_step(pre: bytes | GameState, action: int, scratch: ScratchEnv) -> str:
    """Cause of death of the step taking ``action`` from state ``pre`` (which must be the state
    right before a failed terminal step). Uses ``scratch`` (any 1-env :class:`ScratchEnv`)."""
    pre_st = pre if isinstance(pre, GameState) else parse_state(pre)
    scratch.set_state(harmless_copy(pre_st))
    scratch.act(int(action))
    post = parse_state(scratch.get_state())
    if post.cur_time != pre_st.cur_time + 1 or post.level_seed != pre_st.level_seed:
        warnings.warn(
            "harmless replay of a terminal step ended the episode anyway (out of "
            "bounds?); cause recorded as 'unknown'",
            RuntimeWarning,
            stacklevel=2,
        )
        return "unknown"
    ents = post.entities
    agent = ents[post.agent_index]
    ax, ay = np.float32(agent["x"]), np.float32(agent["y"])
    arx, ary = np.float32(agent["rx"]), np.float32(agent["ry"])
    kinds: set[str] = set()

    def touching(post_ents: np.ndarray, pre_ents: np.ndarray) -> np.ndarray:
        margin = pre_ents["collision_margin"].astype(np.float32)  # real margins (harmless: -1000)
        tx = (post_ents["rx"] + arx) + margin
        ty = (post_ents["ry"] + ary) + margin
        return (np.abs(post_ents["x"] - ax) < tx) & (np.abs(post_ents["y"] - ay) < ty)

    pre_types = pre_st.entities["type"]
    post_types = ents["type"]
    pre_saws, post_saws = (
        pre_st.entities[pre_types == EntityType.SAW],
        ents[post_types == EntityType.SAW],
    )
    pre_en, post_en = (
        pre_st.entities[pre_types == EntityType.ENEMY],
        ents[post_types == EntityType.ENEMY],
    )
    if len(pre_saws) != len(post_saws) or len(pre_en) != len(post_en):
        warnings.warn(
            "saw/enemy count changed during a step; cause recorded as 'unknown'",
            RuntimeWarning,
            stacklevel=2,
        )
        return "unknown"
    if len(post_saws) and touching(post_saws, pre_saws).any():
        kinds.add("saw")
    if len(post_en):
        hit = touching(post_en, pre_en)
        if hit.any():
            vx = pre_en["vx"][hit]
            if (vx < 0).any():
                kinds.add("enemy_left")
            if (vx >= 0).any():
                kinds.add("enemy_right")
    # check_grid_collisions(agent): cells under the agent box shrunk by 0.001, int() truncation
    min_x, max_x = int(ax - (arx + _POS_EPS)), int(ax + (arx + _POS_EPS))
    min_y, max_y = int(ay - (ary + _POS_EPS)), int(ay + (ary + _POS_EPS))
    grid = pre_st.grid
    lava = set(int(t) for t in LAVA_TILES)
    for x in range(min_x, max_x + 1):
        for y in range(min_y, max_y + 1):
            if x >= 0 and y >= 0 and grid.tile(x, y, pre_st.out_of_bounds_object) in lava:
                kinds.add("lava")
    if len(kinds) > 1:
        return "multiple"
    if kinds:
        return kinds.pop()
    if pre_st.cur_time + 1 >= pre_st.timeout:
        return "timeout"
    warnings.warn(
        "no lethal contact found for a failed terminal step; cause recorded as 'unknown'",
        RuntimeWarning,
        stacklevel=2,
    )
    return "unknown"


def fast_replay_state(state: bytes) -> bytes:
    """Copy of a level-start state with render-only settings made cheap (monochrome assets, no
    background, no velocity squares, 1-tile view). Dynamics are identical; never show it."""
    ed = parse_state(state).editable()
    ed.set_option("use_monochrome_assets", 1).set_option("use_backgrounds", 0)
    ed.set_option("paint_vel_info", 0).set_visibility(1.0)
    return ed.to_bytes()


class CauseTracker:
    """Labels every episode that finishes in ``env`` with its exact cause (see module doc).

    Finished episodes accumulate in ``records`` (:class:`EpisodeRecord`, in the order they
    finish); ``pop_records()`` hands them over and clears the list. Episodes already running
    when the tracker is attached are not tracked. ``keep_states=True`` stores each episode's
    level-start state and actions in its record (what is needed to re-render any frame).
    ``verify=True`` also replays each replayed terminal step for real and checks that it
    ends the episode (for tests). ``stats`` counts replays and the time spent in them.

    ``checkpoint_every=K`` (off by default) trades the one-snapshot-per-level-start rule for
    speed: in levels whose failures need a replay (enemies, or several kinds of hazard) the
    state is also saved every K steps, so a replay covers at most K steps instead of the whole
    episode. Labels are identical either way.

    >>> env = CoinRunEnv(num_envs=4, rand_seed=0)
    >>> tracker = CauseTracker(env)
    >>> for _ in range(200):
    ...     _ = env.step(np.full(4, 8))                 # hold RIGHT+UP
    >>> records = tracker.pop_records()
    >>> all(r.cause in CAUSES for r in records)
    True
    >>> [(r.env, r.cause, r.length) for r in records if not r.success][:1]
    [(3, 'saw', 31)]
    >>> tracker.detach(); env.close()
    """

    def __init__(
        self,
        env: CoinRunEnv,
        keep_states: bool = False,
        replay_all: bool = False,
        verify: bool = False,
        checkpoint_every: int | None = None,
    ):
        if checkpoint_every is not None and (
            not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1
        ):
            raise ValueError(
                f"checkpoint_every must be None or a positive integer, got {checkpoint_every!r}"
            )
        self.checkpoint_every = int(checkpoint_every) if checkpoint_every else None
        self.env = env
        self.keep_states = keep_states
        self.replay_all = replay_all
        self.verify = verify
        self.records: list[EpisodeRecord] = []
        self.stats = {
            "episodes": 0,
            "failures": 0,
            "replays": 0,
            "replayed_steps": 0,
            "harmless_steps": 0,
            "snapshots": 0,
            "checkpoints": 0,
            "cause_seconds": 0.0,
            "hook_seconds": 0.0,
        }
        n = env.num_envs
        self._t = 0
        self._base = 0
        self._actions = np.zeros((2048, n), dtype=np.int8)
        self._start = np.full(n, -1, dtype=np.int64)  # -1: not tracked
        self._deadline = np.full(n, -1, dtype=np.int64)  # step index of the timeout step
        self._start_state: list[bytes | None] = [None] * n
        self._seed = np.zeros(n, dtype=np.int64)
        self._hazards: list[frozenset] = [frozenset()] * n
        self._pre_timeout: list[bytes | None] = [None] * n
        self._next_ckpt = np.full(n, -1, dtype=np.int64)  # step index of the next checkpoint
        self._ckpt: list[tuple[int, bytes] | None] = [None] * n
        self._next_due = -1  # earliest pending snapshot step
        self._scratch: ScratchEnv | None = None
        env.add_action_hook(self._on_actions)
        env.add_level_start_hook(self._on_level_start)

    # -- hooks ---------------------------------------------------------------------------------
    def _on_actions(self, env: CoinRunEnv, actions: np.ndarray) -> None:
        t0 = time.perf_counter()
        row = self._t - self._base
        if row >= len(self._actions):
            self._compact()
            row = self._t - self._base
        self._actions[row] = actions
        t = self._t
        if t == self._next_due:
            self._snapshots(env, t)
        self._t += 1
        self.stats["hook_seconds"] += time.perf_counter() - t0

    def _snapshots(self, env: CoinRunEnv, t: int) -> None:
        """Pre-timeout snapshots and checkpoints due before the action of step ``t``."""
        due = np.flatnonzero((self._deadline == t) | (self._next_ckpt == t))
        for i in due.tolist():
            state = env.get_state_of(i)
            self.stats["snapshots"] += 1
            if self._deadline[i] == t:  # one step before the timeout
                self._pre_timeout[i] = state
            if self._next_ckpt[i] == t:
                self._ckpt[i] = (t, state)
                self._next_ckpt[i] = t + self.checkpoint_every
                self.stats["checkpoints"] += 1
        self._update_next_due(t + 1)

    def _update_next_due(self, earliest: int) -> None:
        events = np.concatenate([self._deadline, self._next_ckpt])
        events = events[events >= earliest]
        self._next_due = int(events.min()) if len(events) else -1

    def _on_level_start(self, env: CoinRunEnv, mask: np.ndarray) -> None:
        t0 = time.perf_counter()
        idx = np.flatnonzero(mask)
        states = env.level_start_states(mask)
        for i, state in zip(idx.tolist(), states):
            st = parse_state(state)
            if self._start[i] >= 0 and self._t > self._start[i]:
                self._finish(i, success=bool(st.level_complete))
            self._start[i] = self._t
            self._start_state[i] = state
            self._seed[i] = st.level_seed
            self._hazards[i] = st.hazard_kinds
            self._deadline[i] = self._t + (st.timeout - st.cur_time) - 1
            self._pre_timeout[i] = None
            self._ckpt[i] = None
            needs_replay = self.replay_all or "enemy" in st.hazard_kinds or len(st.hazard_kinds) > 1
            self._next_ckpt[i] = (
                self._t + self.checkpoint_every if self.checkpoint_every and needs_replay else -1
            )
        self._update_next_due(self._t)
        self.stats["hook_seconds"] += time.perf_counter() - t0

    # -- bookkeeping ---------------------------------------------------------------------------
    def _compact(self) -> None:
        tracked = self._start[self._start >= 0]
        new_base = int(tracked.min()) if len(tracked) else self._t
        keep = self._t - new_base
        cap = len(self._actions)
        if keep > cap // 2:
            cap *= 2
        buf = np.zeros((cap, self._actions.shape[1]), dtype=np.int8)
        buf[:keep] = self._actions[new_base - self._base : self._t - self._base]
        self._actions, self._base = buf, new_base

    def _episode_actions(self, i: int, start: int, stop: int) -> np.ndarray:
        return self._actions[start - self._base : stop - self._base, i].astype(np.int64)

    def _finish(self, i: int, success: bool) -> None:
        start, stop = int(self._start[i]), self._t
        length = stop - start
        actions = self._episode_actions(i, start, stop)
        self.stats["episodes"] += 1
        if success:
            cause = "success"
        else:
            self.stats["failures"] += 1
            t0 = time.perf_counter()
            cause = self._failure_cause(i, actions)
            self.stats["cause_seconds"] += time.perf_counter() - t0
        self.records.append(
            EpisodeRecord(
                env=i,
                level_seed=int(self._seed[i]),
                start=start,
                length=length,
                success=success,
                cause=cause,
                start_state=self._start_state[i] if self.keep_states else None,
                actions=actions if self.keep_states else None,
            )
        )

    def _scratch_env(self) -> ScratchEnv:
        if self._scratch is None:
            self._scratch = ScratchEnv(self.env.options)
        return self._scratch

    def _failure_cause(self, i: int, actions: np.ndarray) -> str:
        length = len(actions)
        timed_out = self._start[i] + length - 1 == self._deadline[i]
        kinds = self._hazards[i]
        if not self.replay_all:
            if not timed_out and kinds == {"saw"}:
                return "saw"
            if not timed_out and kinds == {"lava"}:
                return "lava"
            if timed_out and not kinds:
                return "timeout"
        scratch = self._scratch_env()
        pre = self._pre_timeout[i] if timed_out else None
        if pre is None:
            start, state = int(self._start[i]), self._start_state[i]
            ckpt = self._ckpt[i]
            if ckpt is not None and ckpt[0] < start + length:
                start, state = ckpt
            frm = start - int(self._start[i])
            scratch.set_state(fast_replay_state(state))
            scratch.replay(actions[frm:-1])
            pre = scratch.get_state()
            self.stats["replays"] += 1
            self.stats["replayed_steps"] += length - 1 - frm
        self.stats["harmless_steps"] += 1
        pre_st = parse_state(pre)
        cause = classify_terminal_step(pre_st, int(actions[-1]), scratch)
        if self.verify:
            scratch.set_state(pre)
            scratch.act(int(actions[-1]))
            after = parse_state(scratch.get_state())
            if not (after.cur_time == 0 and not after.level_complete):
                raise RuntimeError(
                    f"replay of env {i}'s episode (level {self._seed[i]}) did not "
                    "fail at its recorded terminal step: replay is not exact"
                )
        return cause

    # -- public --------------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Steps taken since the tracker was attached."""
        return self._t

    @property
    def current_level_seeds(self) -> np.ndarray:
        """Level seed each env is playing now (0 where not tracked)."""
        return self._seed.copy()

    def pop_records(self) -> list[EpisodeRecord]:
        out, self.records = self.records, []
        return out

    def open_episodes(self) -> list[OpenEpisode]:
        """Episodes still running, per env (those not tracked are left out)."""
        out = []
        for i in range(self.env.num_envs):
            if self._start[i] >= 0:
                start = int(self._start[i])
                out.append(
                    OpenEpisode(
                        i,
                        int(self._seed[i]),
                        start,
                        self._t - start,
                        self._start_state[i],
                        self._episode_actions(i, start, self._t),
                    )
                )
        return out

    def detach(self) -> None:
        """Stop tracking (hooks removed; records kept)."""
        self.env.remove_hook(self._on_actions)
        self.env.remove_hook(self._on_level_start)
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None


def episode_cause(
    start_state: bytes,
    actions: np.ndarray,
    options: EnvOptions | None = None,
    scratch: ScratchEnv | None = None,
) -> str:
    """Cause of one recorded episode, by full replay: ``"success"``, a failure cause from
    :data:`FAILURE_CAUSES`, or ``"unfinished"`` if the actions do not end the episode.

    >>> env = CoinRunEnv(num_envs=4, rand_seed=0)
    >>> tracker = CauseTracker(env, keep_states=True)
    >>> for _ in range(200):
    ...     _ = env.step(np.full(4, 8))                 # hold RIGHT+UP
    >>> rec = next(r for r in tracker.pop_records() if not r.success)
    >>> episode_cause(rec.start_state, rec.actions), rec.cause
    ('saw', 'saw')
    >>> episode_cause(rec.start_state, rec.actions[:10])
    'unfinished'
    >>> env.close()
    """
    actions = np.asarray(actions, dtype=np.int64)
    if len(actions) == 0:
        return "unfinished"
    scratch = scratch or ScratchEnv(options)
    scratch.set_state(fast_replay_state(start_state))
    scratch.replay(actions[:-1])
    pre = scratch.get_state()
    pre_st = parse_state(pre)
    if pre_st.cur_time == 0 and len(actions) > 1:
        raise ValueError("the actions end the episode before their last step")
    scratch.act(int(actions[-1]))
    after = parse_state(scratch.get_state())
    if after.cur_time != 0:
        return "unfinished"
    if after.level_complete:
        return "success"
    return classify_terminal_step(pre_st, int(actions[-1]), scratch)


__all__ = [
    "CAUSES",
    "FAILURE_CAUSES",
    "CauseTracker",
    "EpisodeRecord",
    "OpenEpisode",
    "classify_terminal_step",
    "episode_cause",
    "fast_replay_state",
]
