"""Vectorized CoinRun over procgen's gym3 API, with validated options.

>>> env = CoinRunEnv(EnvOptions(num_envs=2, rand_seed=0))
>>> obs, rew, first = env.observe()
>>> obs.shape, obs.dtype
((2, 64, 64, 3), dtype('uint8'))
>>> obs, rew, first = env.step(np.zeros(2, dtype=np.int32))
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .actions import NUM_ACTIONS
from .state import HIDDEN_RENDER_Z, EntityType, parse_state

DISTRIBUTION_MODES = ("easy", "hard")


@dataclass(frozen=True)
class EnvOptions:
    """CoinRun options. Defaults follow the article: easy mode, unbounded levels, velocity info
    painted, agent-centred view.

    Options are validated on construction; ``replace`` returns a validated copy.

    >>> opts = EnvOptions(num_envs=4, distribution_mode="hard", rand_seed=0)
    >>> opts.replace(invisible_saws=True).invisible_saws
    True
    >>> EnvOptions.from_dict(opts.to_dict()) == opts
    True
    >>> EnvOptions(num_envs=0)
    Traceback (most recent call last):
    ...
    ValueError: invalid CoinRun option: num_envs must be a positive integer, got 0
    """

    num_envs: int = 64
    distribution_mode: str = "easy"
    num_levels: int = 0
    start_level: int = 0
    rand_seed: int | None = None
    paint_vel_info: bool = True
    use_backgrounds: bool = True
    restrict_themes: bool = False
    use_monochrome_assets: bool = False
    center_agent: bool = True
    invisible_saws: bool = False

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"invalid CoinRun option: {msg}")

        if not isinstance(self.num_envs, (int, np.integer)) or self.num_envs < 1:
            bad(f"num_envs must be a positive integer, got {self.num_envs!r}")
        if self.distribution_mode not in DISTRIBUTION_MODES:
            bad(
                f"distribution_mode must be one of {DISTRIBUTION_MODES}, got {self.distribution_mode!r}"
            )
        if not isinstance(self.num_levels, (int, np.integer)) or self.num_levels < 0:
            bad(f"num_levels must be an integer >= 0 (0 = unbounded), got {self.num_levels!r}")
        if not isinstance(self.start_level, (int, np.integer)) or not 0 <= self.start_level < 2**31:
            bad(f"start_level must be an integer in [0, 2**31), got {self.start_level!r}")
        if self.rand_seed is not None and (
            not isinstance(self.rand_seed, (int, np.integer)) or not 0 <= self.rand_seed < 2**31
        ):
            bad(f"rand_seed must be None or an integer in [0, 2**31), got {self.rand_seed!r}")
        for f in (
            "paint_vel_info",
            "use_backgrounds",
            "restrict_themes",
            "use_monochrome_assets",
            "center_agent",
            "invisible_saws",
        ):
            if not isinstance(getattr(self, f), (bool, np.bool_)):
                bad(f"{f} must be True or False, got {getattr(self, f)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CoinRun option(s) {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> EnvOptions:
        return EnvOptions.from_dict({**self.to_dict(), **changes})

    def procgen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``procgen.ProcgenGym3Env`` (less num/env_name)."""
        kw = dict(
            distribution_mode=self.distribution_mode,
            num_levels=int(self.num_levels),
            start_level=int(self.start_level),
            paint_vel_info=bool(self.paint_vel_info),
            use_backgrounds=bool(self.use_backgrounds),
            restrict_themes=bool(self.restrict_themes),
            use_monochrome_assets=bool(self.use_monochrome_assets),
            center_agent=bool(self.center_agent),
        )
        if self.rand_seed is not None:
            kw["rand_seed"] = int(self.rand_seed)
        return kw


def _gym_notice() -> str | None:
    """The deprecation notice the imported ``gym`` printed for its version, if any (never
    imports gym itself: that would print it)."""
    gym = sys.modules.get("gym")
    notices = sys.modules.get("gym_notices.notices")
    if gym is None or notices is None:
        return None
    table = getattr(notices, "notices", None)
    if not isinstance(table, dict):
        return None
    return table.get(getattr(gym, "__version__", None)) or None


def _import_procgen() -> Any:
    """Import procgen without gym's deprecation banner.

    procgen registers gym environments, so ``import procgen`` imports ``gym``, whose
    ``__init__`` *prints* (it is not a warning) the notice from ``gym_notices`` to stderr. That
    exact text is dropped; anything else written to stderr during the import is passed on, and
    warnings keep their usual filters (only procgen's unclosed ``version.txt`` ResourceWarning is
    ignored).
    """
    if "procgen" in sys.modules:
        return sys.modules["procgen"]
    captured = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
        warnings.filterwarnings(
            "ignore", message=r"unclosed file .*procgen.*version\.txt", category=ResourceWarning
        )
        import procgen
    text = captured.getvalue()
    notice = _gym_notice()
    if notice:
        text = text.replace(notice + "\n", "", 1)
    if text:
        sys.stderr.write(text)
    return procgen


def make_procgen(options: EnvOptions, num: int | None = None, **extra: Any):
    """Create the raw ``ProcgenGym3Env`` for ``options`` (gym's deprecation banner dropped)."""
    ProcgenGym3Env = _import_procgen().ProcgenGym3Env
    env = ProcgenGym3Env(
        num=num or options.num_envs, env_name="coinrun", **options.procgen_kwargs(), **extra
    )
    # gym3's CEnv.__del__ calls libenv_close through cffi's lazy accessor, which takes the
    # FFI lock shared by every env. If the garbage collector finalizes an env while another
    # env is resolving an accessor (holding that lock), the process deadlocks. Resolving the
    # accessor now makes __del__ lock-free.
    try:
        _ = env._c_lib.libenv_close
    except AttributeError:
        pass
    return env


class CoinRunEnv:
    """A batch of CoinRun games.

    gym3 semantics: ``observe()`` gives (obs, reward of the last step, first); ``first`` marks the
    first observation of an episode. The engine resets inside the step, so after a terminal step
    the observation already belongs to the next level. A finished episode succeeded when its
    last reward is positive. ``info`` holds per-env ``level_seed``, ``prev_level_seed`` and
    ``prev_level_complete``.

    With ``invisible_saws=True`` every level start hides the buzzsaws (``render_z`` 7, one
    ``set_state`` per started env): they are drawn in no observation or frame but still kill.

    Hooks: ``add_level_start_hook(hook)`` calls ``hook(env, mask)`` after each step in which
    envs began a level (and at registration); ``add_action_hook(hook)`` calls
    ``hook(env, actions)`` before each step. ``level_start_states(mask)`` gives the states at
    those level starts (fetched once per step and shared by all hooks).

    >>> env = CoinRunEnv(num_envs=2, rand_seed=0)         # or CoinRunEnv(EnvOptions(...))
    >>> obs, rew, first = env.step(np.full(2, 7))          # action 7: RIGHT
    >>> obs.shape, rew.dtype, first.dtype
    ((2, 64, 64, 3), dtype('float32'), dtype('bool'))
    >>> len(env.get_state()), env.level_seeds().shape
    (2, (2,))
    >>> env.close()
    """

    def __init__(self, options: EnvOptions | None = None, **kwargs: Any):
        if options is None:
            options = EnvOptions(**kwargs)
        elif kwargs:
            options = options.replace(**kwargs)
        self.options = options
        self.num_envs = options.num_envs
        self.env = make_procgen(options)
        self._hooks: list = []
        self._action_hooks: list = []
        self._state_buf = None
        self._start_states: dict[int, bytes] = {}
        if options.invisible_saws:
            self._hide_saws(np.ones(self.num_envs, dtype=bool))

    def add_level_start_hook(self, hook) -> None:
        """Call ``hook(env, mask)`` whenever envs (bool mask) begin a new level, incl. now."""
        self._hooks.append(hook)
        _, _, first = self.env.observe()
        hook(self, np.asarray(first, dtype=bool))

    def add_action_hook(self, hook) -> None:
        """Call ``hook(env, actions)`` with the validated int32 actions before each step."""
        self._action_hooks.append(hook)

    def remove_hook(self, hook) -> None:
        """Detach a hook added with either method (no error if absent)."""
        for lst in (self._hooks, self._action_hooks):
            while hook in lst:
                lst.remove(hook)

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rew, ob, first = self.env.observe()
        return ob["rgb"], rew.astype(np.float32), np.asarray(first, dtype=bool)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Act, then return (obs, reward, first) for the new observation."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= NUM_ACTIONS):
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got {actions}")
        actions = actions.astype(np.int32)
        for hook in self._action_hooks:
            hook(self, actions)
        self.env.act(actions)
        obs, rew, first = self.observe()
        self._start_states = {}
        if first.any():
            if self.options.invisible_saws:
                self._hide_saws(first)
                obs = self.env.observe()[1]["rgb"]  # re-rendered by set_state
            for hook in self._hooks:
                hook(self, first)
        return obs, rew, first

    def _hide_saws(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            i = int(i)
            state = self.get_state_of(i)
            st = parse_state(state)
            saws = st.entities["type"] == EntityType.SAW
            if saws.any():
                ed = st.editable().set_entity_field(saws, "render_z", HIDDEN_RENDER_Z)
                state = ed.to_bytes()
                self.env.call_c_func("set_state", i, state, len(state))
            self._start_states[i] = state

    @property
    def info(self) -> list[dict[str, Any]]:
        return self.env.get_info()

    def level_seeds(self) -> np.ndarray:
        return np.array([i["level_seed"] for i in self.env.get_info()], dtype=np.int64)

    def get_state(self) -> list[bytes]:
        """Engine state of every env (see :mod:`rlvision_widgets.environment.state`)."""
        return [self.get_state_of(i) for i in range(self.num_envs)]

    def set_state(self, states: list[bytes]) -> None:
        """Restore every env; its observation is re-rendered (read it with ``observe()``)."""
        if len(states) != self.num_envs:
            raise ValueError(f"set_state needs {self.num_envs} states, got {len(states)}")
        for i, s in enumerate(states):
            self.set_state_of(i, s)

    def get_state_of(self, index: int) -> bytes:
        """Engine state of env ``index`` (one copy; no other env is touched)."""
        if self._state_buf is None:
            from procgen.env import MAX_STATE_SIZE

            self._state_buf = self.env._ffi.new(f"char[{MAX_STATE_SIZE}]")
        n = self.env.call_c_func("get_state", int(index), self._state_buf, len(self._state_buf))
        return bytes(self.env._ffi.buffer(self._state_buf, n))

    def set_state_of(self, index: int, state: bytes) -> None:
        """Restore env ``index`` from ``state`` (validated first: bad bytes raise StateError
        instead of aborting the process)."""
        if not 0 <= index < self.num_envs:
            raise IndexError(f"env index {index} out of range for {self.num_envs} envs")
        st = parse_state(state)
        if st.options.get("use_generated_assets"):
            raise ValueError("states with use_generated_assets cannot be restored")
        state = bytes(state)
        self.env.call_c_func("set_state", int(index), state, len(state))
        self._start_states.pop(int(index), None)

    def level_start_states(self, mask: np.ndarray) -> list[bytes]:
        """States of the envs in ``mask`` at their level start (valid inside a level-start
        hook; shared between hooks so each is fetched once)."""
        out = []
        for i in np.flatnonzero(mask):
            i = int(i)
            s = self._start_states.get(i)
            if s is None:
                s = self._start_states[i] = self.get_state_of(i)
            out.append(s)
        return out

    def close(self) -> None:
        self.env.close()


class ScratchEnv:
    """One CoinRun game without worker threads, for replays and re-renders from states.

    ``render=True`` adds the 512x512 frame (``render_mode="rgb_array"``); only use it here,
    never on a collection env (it renders every env on every observe).

    >>> scratch = ScratchEnv()
    >>> scratch.set_state(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0])
    >>> scratch.replay([7, 7, 7])              # hold RIGHT for three steps
    >>> obs64 = scratch.observation()
    """

    def __init__(self, options: EnvOptions | None = None, render: bool = False):
        opts = (options or EnvOptions()).replace(num_envs=1)
        self.render = render
        self.env = make_procgen(
            opts, num=1, num_threads=0, render_mode="rgb_array" if render else None
        )
        from procgen.env import MAX_STATE_SIZE

        self._buf = self.env._ffi.new(f"char[{MAX_STATE_SIZE}]")
        # gym3's act() validates and copies a dict per call; replays write the action buffer
        # and call libenv_act directly when these gym3 internals are present
        try:
            self._ac = self.env._ac["action"]
            self._act_fn = self.env._c_lib.libenv_act
            self._c_env = self.env._c_env
        except (AttributeError, KeyError, TypeError):
            self._ac = None

    def set_state(self, state: bytes) -> None:
        parse_state(state)  # never hand invalid bytes to the engine
        state = bytes(state)
        self.env.call_c_func("set_state", 0, state, len(state))

    def get_state(self) -> bytes:
        n = self.env.call_c_func("get_state", 0, self._buf, len(self._buf))
        return bytes(self.env._ffi.buffer(self._buf, n))

    def act(self, action: int) -> None:
        if self._ac is not None:
            self._ac[0] = action
            self._act_fn(self._c_env)
        else:
            self.env.act(np.array([action], dtype=np.int32))

    def replay(self, actions) -> None:
        """Apply ``actions`` in order (no observation is read in between)."""
        if self._ac is None:
            for a in actions:
                self.act(int(a))
            return
        ac, fn, ce = self._ac, self._act_fn, self._c_env
        for a in np.asarray(actions, dtype=np.int32).tolist():
            ac[0] = a
            fn(ce)

    def observe(self) -> tuple[np.ndarray, float, bool]:
        """(64x64x3 observation copy, last reward, first)."""
        rew, ob, first = self.env.observe()
        return ob["rgb"][0].copy(), float(rew[0]), bool(first[0])

    def observation(self) -> np.ndarray:
        return self.observe()[0]

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(64x64x3 observation, 512x512x3 frame) of the current state (``render=True``)."""
        if not self.render:
            raise RuntimeError(
                "this ScratchEnv was created with render=False; "
                "use ScratchEnv(render=True) for 512x512 frames"
            )
        rew, ob, first = self.env.observe()
        info = getattr(self.env, "_info", None)
        if isinstance(info, dict) and "rgb" in info:
            frame = np.array(info["rgb"][0], copy=True)
        else:
            frame = np.asarray(self.env.get_info()[0]["rgb"]).copy()
        return ob["rgb"][0].copy(), frame

    def close(self) -> None:
        self.env.close()
