"""Recorded trajectories: arrays, episode outcomes, re-rendering, and one-file storage.

Layout is envs first: ``obs[e, t]`` is the observation env ``e`` saw at step ``t``;
``actions[e, t]``, ``logits[e, t]``, ``values[e, t]`` are what the agent did and predicted there;
``rewards[e, t]`` is the reward for that action; ``firsts[e, t]`` marks an episode start.

>>> import os, tempfile
>>> from rlvision_widgets.rollouts import collect_trajectories
>>> traj = collect_trajectories("random", num_envs=2, num_steps=64, seed=0, progress=False)
>>> traj.obs.shape, traj.episodes.dtype.names[:3]
((2, 64, 64, 64, 3), ('env', 'start', 'stop'))
>>> frame = traj.render_full(0, 10)               # 512x512x3 by replay from the level start
>>> path = traj.save(os.path.join(tempfile.mkdtemp(), "traj.npz"))
>>> again = Trajectories.load(path)

Files are a single ``np.savez_compressed`` archive read with ``allow_pickle=False``; engine
states are stored as one uint8 array plus offsets, metadata as a JSON string.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..environment.actions import NUM_ACTIONS
from ..environment.causes import CAUSES
from ..environment.coinrun import EnvOptions, ScratchEnv
from ..environment.render import ObjectAnnotations, Renderer
from ..environment.state import StateError, parse_state
from ..files import atomic_open
from .gae import gae_advantages

FORMAT_NAME = "rlvision_widgets.trajectories"  # the file format's name (stable across layouts)
FORMAT_VERSION = 1
#: Episode causes in files (index = stored code): derived from the one cause list
#: :data:`~rlvision_widgets.environment.causes.CAUSES`, plus "unfinished" for episodes still
#: running at the end. Stored codes index this tuple, so new causes may only be appended.
EPISODE_CAUSES = CAUSES + ("unfinished",)
EPISODE_DTYPE = np.dtype(
    [
        ("env", "<i4"),
        ("start", "<i4"),
        ("stop", "<i4"),
        ("length", "<i4"),
        ("level_seed", "<i8"),
        ("finished", "?"),
        ("success", "?"),
        ("cause", "<U12"),
    ]
)
_ARRAYS = (
    "obs",
    "actions",
    "logits",
    "values",
    "rewards",
    "firsts",
    "level_seeds",
    "advantages",
    "returns",
)
_KEYS = _ARRAYS + (
    "last_values",
    "last_firsts",
    "ep_env",
    "ep_start",
    "ep_stop",
    "ep_level_seed",
    "ep_finished",
    "ep_success",
    "ep_cause",
    "states_data",
    "states_offsets",
    "metadata",
)


class TrajectoryFileError(ValueError):
    """A file is not a readable trajectory file written by :meth:`Trajectories.save`."""


def make_episodes(rows: list[tuple]) -> np.ndarray:
    """Episode table from (env, start, stop, level_seed, finished, success, cause) rows."""
    out = np.zeros(len(rows), dtype=EPISODE_DTYPE)
    for k, (env, start, stop, seed, finished, success, cause) in enumerate(rows):
        out[k] = (env, start, stop, stop - start, seed, finished, success, cause)
    return out


@dataclass(eq=False)
class Trajectories:
    """Trajectories of ``num_envs`` envs over ``num_steps`` steps (see module doc).

    ``episodes`` is a structured array (one row per episode, sorted by env then start) with
    fields env, start, stop (exclusive step index), length, level_seed, finished, success and
    cause (one of :data:`EPISODE_CAUSES`); ``start_states[k]`` is episode ``k``'s level-start
    engine state, which with ``actions`` lets any step be re-rendered.

    Made by :func:`~rlvision_widgets.rollouts.collect_trajectories`; saved and loaded as
    one ``.npz`` file.

    >>> import os, tempfile
    >>> from rlvision_widgets.rollouts import collect_trajectories
    >>> traj = collect_trajectories("random", num_envs=2, num_steps=32, seed=0, progress=False)
    >>> traj.num_envs, traj.num_steps, traj.logits.shape
    (2, 32, (2, 32, 15))
    >>> int(traj.episodes["env"][0]), int(traj.episodes["start"][0])
    (0, 0)
    >>> traj.game_state_at(0, 5).cur_time                  # engine state by replay
    5
    >>> tmp = tempfile.TemporaryDirectory()
    >>> again = Trajectories.load(traj.save(os.path.join(tmp.name, "traj.npz")))
    >>> bool((again.actions == traj.actions).all()), len(again.episodes) == len(traj.episodes)
    (True, True)
    >>> traj.close(); again.close(); tmp.cleanup()
    """

    obs: np.ndarray
    actions: np.ndarray
    logits: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    firsts: np.ndarray
    level_seeds: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    last_values: np.ndarray
    last_firsts: np.ndarray
    episodes: np.ndarray
    start_states: list[bytes] = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate()
        self._replayer: ScratchEnv | None = None
        self._renderer: Renderer | None = None
        self._cursor: tuple[int, int] | None = None  # (episode, step) the replayer is at
        self._index = {}
        for k, ep in enumerate(self.episodes):
            self._index.setdefault(int(ep["env"]), []).append((int(ep["start"]), k))

    def _validate(self) -> None:
        def bad(msg: str) -> TrajectoryFileError:
            return TrajectoryFileError(f"inconsistent trajectories: {msg}")

        if self.obs.ndim != 5 or self.obs.shape[2:] != (64, 64, 3) or self.obs.dtype != np.uint8:
            raise bad(
                f"obs must be uint8 (envs, steps, 64, 64, 3), got {self.obs.dtype} {self.obs.shape}"
            )
        e, t = self.obs.shape[:2]
        for name in (
            "actions",
            "values",
            "rewards",
            "firsts",
            "level_seeds",
            "advantages",
            "returns",
        ):
            if getattr(self, name).shape != (e, t):
                raise bad(f"{name} has shape {getattr(self, name).shape}, expected {(e, t)}")
        if self.logits.shape != (e, t, NUM_ACTIONS):
            raise bad(f"logits has shape {self.logits.shape}, expected {(e, t, NUM_ACTIONS)}")
        if self.last_values.shape != (e,) or self.last_firsts.shape != (e,):
            raise bad("last_values / last_firsts must have one entry per env")
        if self.episodes.dtype != EPISODE_DTYPE:
            raise bad("episodes table has the wrong fields")
        if len(self.start_states) != len(self.episodes):
            raise bad(f"{len(self.start_states)} start states for {len(self.episodes)} episodes")
        ep = self.episodes
        if len(ep) and (
            ep["env"].min() < 0
            or ep["env"].max() >= e
            or ep["start"].min() < 0
            or ep["stop"].max() > t
            or (ep["stop"] <= ep["start"]).any()
        ):
            raise bad("episode rows point outside the arrays")
        if not np.isin(ep["cause"], EPISODE_CAUSES).all():
            raise bad(f"unknown episode causes {sorted(set(ep['cause']) - set(EPISODE_CAUSES))}")
        # actions and level-start states reach the engine on every re-render: validate them
        # here, before any engine call (an out-of-range field aborts the process there)
        acts = self.actions
        if acts.dtype.kind not in "iu" or (
            acts.size and (int(acts.min()) < 0 or int(acts.max()) >= NUM_ACTIONS)
        ):
            raise bad(
                f"actions must be integers in [0, {NUM_ACTIONS}), got dtype {acts.dtype} "
                f"with range [{acts.min() if acts.size else '-'}, "
                f"{acts.max() if acts.size else '-'}]"
            )
        for k, state in enumerate(self.start_states):
            try:
                parse_state(state)
            except StateError as e:
                raise TrajectoryFileError(
                    f"the level-start state of episode {k} (env {int(ep['env'][k])}, steps "
                    f"{int(ep['start'][k])}-{int(ep['stop'][k])}) is corrupted or crafted: {e}"
                ) from None

    # -- shape ---------------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.obs.shape[1])

    def __repr__(self) -> str:
        fin = self.episodes["finished"]
        return (
            f"Trajectories(num_envs={self.num_envs}, num_steps={self.num_steps}, "
            f"episodes={len(self.episodes)} ({int(fin.sum())} finished, "
            f"{int(self.episodes['success'].sum())} successes))"
        )

    # -- episodes ------------------------------------------------------------------------------
    def failed_episodes(self, cause: str | None = None) -> np.ndarray:
        """Rows of finished, failed episodes (optionally of one cause)."""
        ep = self.episodes
        sel = ep["finished"] & ~ep["success"]
        if cause is not None:
            if cause not in EPISODE_CAUSES:
                raise ValueError(f"unknown cause {cause!r}; one of {EPISODE_CAUSES}")
            sel &= ep["cause"] == cause
        return ep[sel]

    def cause_counts(self) -> dict[str, int]:
        """Number of episodes per cause (finished episodes only)."""
        ep = self.episodes[self.episodes["finished"]]
        return {c: int((ep["cause"] == c).sum()) for c in CAUSES if (ep["cause"] == c).any()}

    def episode_index(self, env: int, step: int) -> int:
        """Row of ``episodes`` holding step ``step`` of env ``env``."""
        self._check(env, step)
        rows = self._index.get(int(env), [])
        k = None
        for start, row in rows:
            if start <= step:
                k = row
            else:
                break
        if k is None or not self.episodes[k]["start"] <= step < self.episodes[k]["stop"]:
            raise KeyError(f"no recorded episode holds env {env}, step {step}")
        return k

    def _check(self, env: int, step: int) -> None:
        if not 0 <= env < self.num_envs:
            raise IndexError(
                f"env {env} out of range: these trajectories have {self.num_envs} envs"
            )
        if not 0 <= step < self.num_steps:
            raise IndexError(
                f"step {step} out of range: these trajectories have {self.num_steps} steps"
            )

    # -- re-rendering --------------------------------------------------------------------------
    def state_at(self, env: int, step: int) -> bytes:
        """Engine state behind ``obs[env, step]``, by replaying the episode's actions from its
        level-start state (sequential requests continue from the previous one)."""
        k = self.episode_index(env, step)
        start = int(self.episodes[k]["start"])
        if self._replayer is None:
            self._replayer = ScratchEnv(self._env_options())
        if self._cursor is not None and self._cursor[0] == k and self._cursor[1] <= step:
            frm = self._cursor[1]
        else:
            self._replayer.set_state(self.start_states[k])
            frm = start
        self._replayer.replay(self.actions[env, frm:step])
        self._cursor = (k, step)
        return self._replayer.get_state()

    def render_full(self, env: int, step: int) -> np.ndarray:
        """512x512x3 uint8 frame of ``obs[env, step]``, re-rendered from the engine state."""
        return self.renderer.frames(self.state_at(env, step))[1]

    def objects_at(self, env: int, step: int, masks: bool = True) -> dict[int, ObjectAnnotations]:
        """Ground-truth boxes (and masks) of every object class at step ``step``, keyed by
        resolution (64 and 512); see :class:`ObjectAnnotations`."""
        return self.renderer.objects(self.state_at(env, step), masks=masks)

    def game_state_at(self, env: int, step: int):
        """Parsed :class:`~rlvision_widgets.environment.state.GameState` at a step."""
        return parse_state(self.state_at(env, step))

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self._env_options())
        return self._renderer

    def _env_options(self) -> EnvOptions:
        opts = dict(self.metadata.get("env_options") or {})
        opts["num_envs"] = 1
        try:
            return EnvOptions.from_dict(opts)
        except (TypeError, ValueError):
            return EnvOptions(num_envs=1)

    def close(self) -> None:
        """Release the scratch engines (they are re-created on demand)."""
        if self._replayer is not None:
            self._replayer.close()
            self._replayer = None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._cursor = None

    # -- advantages ----------------------------------------------------------------------------
    def compute_advantages(self, gamma: float = 0.999, lam: float = 0.95) -> None:
        """Recompute ``advantages`` and ``returns`` (GAE) with other discounting."""
        adv = gae_advantages(
            self.rewards,
            self.values,
            self.firsts,
            last_values=self.last_values,
            last_firsts=self.last_firsts,
            gamma=gamma,
            lam=lam,
        )
        self.advantages, self.returns = adv, (adv + self.values).astype(np.float32)
        self.metadata["gamma"], self.metadata["lam"] = float(gamma), float(lam)

    # -- storage -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write one compressed ``.npz`` file at exactly ``path`` (atomically)."""
        path = Path(path)
        lengths = np.array([len(s) for s in self.start_states], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = (
            np.frombuffer(b"".join(self.start_states), dtype=np.uint8)
            if self.start_states
            else np.zeros(0, np.uint8)
        )
        meta = {**self.metadata, "format": FORMAT_NAME, "format_version": FORMAT_VERSION}
        ep = self.episodes
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update(
            last_values=self.last_values,
            last_firsts=self.last_firsts,
            ep_env=ep["env"],
            ep_start=ep["start"],
            ep_stop=ep["stop"],
            ep_level_seed=ep["level_seed"],
            ep_finished=ep["finished"],
            ep_success=ep["success"],
            ep_cause=np.array([EPISODE_CAUSES.index(c) for c in ep["cause"]], dtype=np.int8),
            states_data=data,
            states_offsets=offsets,
            metadata=np.array([json.dumps(meta, sort_keys=True)]),
        )
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectories:
        """Read a file written by :meth:`save`. Raises ``FileNotFoundError`` if it is missing
        and :class:`TrajectoryFileError` if it is not a valid trajectory file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trajectory file at {path}")
        where = f"{path} is not a valid trajectory file"
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise TrajectoryFileError(
                f"{where}: cannot read it as a .npz archive ({e}). Write "
                "trajectory files with Trajectories.save()."
            ) from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise TrajectoryFileError(
                f"{where}: it holds a single array, not a trajectory "
                "archive. Write trajectory files with Trajectories.save()."
            )
        with npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if "metadata" in missing:
                raise TrajectoryFileError(
                    f"{where}: it has no 'metadata' entry (keys: "
                    f"{sorted(npz.files)[:8]}). Write trajectory files "
                    "with Trajectories.save()."
                )
            try:
                arrays = {k: npz[k] for k in _KEYS if k in npz.files}
            except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as e:
                raise TrajectoryFileError(
                    f"{where}: the archive is corrupted ({e}); re-collect "
                    "or restore the file from a copy"
                ) from None
        try:
            meta = json.loads(str(arrays["metadata"].reshape(-1)[0]))
        except (ValueError, IndexError, TypeError) as e:
            raise TrajectoryFileError(f"{where}: its metadata is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise TrajectoryFileError(
                f"{where}: metadata format is "
                f"{meta.get('format') if isinstance(meta, dict) else meta!r}"
                f", expected {FORMAT_NAME!r}"
            )
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise TrajectoryFileError(
                f"{path} uses trajectory format version "
                f"{meta['format_version']}; this rlvision_widgets reads up "
                f"to version {FORMAT_VERSION}: upgrade the package"
            )
        if missing:
            raise TrajectoryFileError(f"{where}: missing arrays {missing}")
        offsets, data = arrays["states_offsets"], arrays["states_data"]
        n_ep = len(arrays["ep_env"])
        if (
            offsets.dtype.kind not in "iu"
            or offsets.ndim != 1
            or len(offsets) != n_ep + 1
            or (len(offsets) and offsets[0] != 0)
            or (np.diff(offsets) <= 0).any()
            or offsets[-1] != len(data)
        ):
            raise TrajectoryFileError(
                f"{where}: state offsets do not match the state data "
                f"({n_ep} episodes, {len(data)} bytes)"
            )
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TrajectoryFileError(f"{where}: states_data must be 1-d uint8, got {data.dtype}")
        raw = data.tobytes()
        states = [raw[offsets[k] : offsets[k + 1]] for k in range(n_ep)]
        codes = arrays["ep_cause"].astype(np.int64)
        if len(codes) and (codes.min() < 0 or codes.max() >= len(EPISODE_CAUSES)):
            raise TrajectoryFileError(f"{where}: episode cause codes out of range")
        try:
            rows = [
                (
                    int(arrays["ep_env"][k]),
                    int(arrays["ep_start"][k]),
                    int(arrays["ep_stop"][k]),
                    int(arrays["ep_level_seed"][k]),
                    bool(arrays["ep_finished"][k]),
                    bool(arrays["ep_success"][k]),
                    EPISODE_CAUSES[codes[k]],
                )
                for k in range(n_ep)
            ]
            return cls(
                **{k: arrays[k] for k in _ARRAYS},
                last_values=arrays["last_values"],
                last_firsts=arrays["last_firsts"],
                episodes=make_episodes(rows),
                start_states=states,
                metadata=meta,
            )
        except (TrajectoryFileError, IndexError, ValueError, TypeError) as e:
            raise TrajectoryFileError(f"{where}: {e}") from None
