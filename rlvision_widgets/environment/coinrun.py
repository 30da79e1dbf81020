"""Vectorized CoinRun over procgen's gym3 API, with validated options.

>>> env = CoinRunEnv(EnvOptions(num_envs=2, rand_seed=0))
>>> obs, rew, first = env.observe()
>>> obs.shape, obs.dtype
((2, 64, 64, 3), dtype('uint8'))
>>> obs, rew, first = env.step(np.zeros(2, dtype=np.int32))
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

DISTRIBUTION_MODES = ("easy", "hard")

# procgen's 15 actions (procgen.env.ProcgenGym3Env.get_combos); the article relabels the
# do-nothing actions. Glyphs are used by the widgets.
ACTION_NAMES = (
    "LEFT+DOWN", "LEFT", "LEFT+UP", "DOWN", "NOOP", "UP", "RIGHT+DOWN", "RIGHT", "RIGHT+UP",
    "D", "A", "W", "S", "Q", "E",
)
ACTION_GLYPHS = ("↙", "←", "↖", "↓", "·", "↑", "↘", "→", "↗", "D", "A", "W", "S", "Q", "E")
ACTION_GROUPS = {
    "left": (0, 1, 2),
    "right": (6, 7, 8),
    "up": (2, 5, 8),
    "down": (0, 3, 6),
    "noop": (3, 4, 9, 10, 11, 12, 13, 14),
}


@dataclass(frozen=True)
class EnvOptions:
    """CoinRun options. Defaults follow the article: easy mode, unbounded levels, velocity info
    painted, agent-centred view."""

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
            bad(f"distribution_mode must be one of {DISTRIBUTION_MODES}, got {self.distribution_mode!r}")
        if not isinstance(self.num_levels, (int, np.integer)) or self.num_levels < 0:
            bad(f"num_levels must be an integer >= 0 (0 = unbounded), got {self.num_levels!r}")
        if not isinstance(self.start_level, (int, np.integer)) or not 0 <= self.start_level < 2**31:
            bad(f"start_level must be an integer in [0, 2**31), got {self.start_level!r}")
        if self.rand_seed is not None and (
                not isinstance(self.rand_seed, (int, np.integer)) or not 0 <= self.rand_seed < 2**31):
            bad(f"rand_seed must be None or an integer in [0, 2**31), got {self.rand_seed!r}")
        for f in ("paint_vel_info", "use_backgrounds", "restrict_themes",
                  "use_monochrome_assets", "center_agent", "invisible_saws"):
            if not isinstance(getattr(self, f), (bool, np.bool_)):
                bad(f"{f} must be True or False, got {getattr(self, f)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvOptions":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CoinRun option(s) {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "EnvOptions":
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


def make_procgen(options: EnvOptions, num: int | None = None, **extra: Any):
    """Create the raw ``ProcgenGym3Env`` for ``options`` (gym's deprecation banner silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from procgen import ProcgenGym3Env
    return ProcgenGym3Env(num=num or options.num_envs, env_name="coinrun",
                          **options.procgen_kwargs(), **extra)


class CoinRunEnv:
    """A batch of CoinRun games.

    gym3 semantics: ``observe()`` gives (obs, reward of the last step, first); ``first`` marks the
    first observation of an episode. The engine resets inside the step, so after a terminal step
    the observation already belongs to the next level. A finished episode succeeded when its
    last reward is positive. ``info`` holds per-env ``level_seed``, ``prev_level_seed`` and
    ``prev_level_complete``.
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

    def add_level_start_hook(self, hook) -> None:
        """Call ``hook(env, mask)`` whenever envs (bool mask) begin a new level, incl. now."""
        self._hooks.append(hook)
        _, _, first = self.env.observe()
        hook(self, np.asarray(first, dtype=bool))

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rew, ob, first = self.env.observe()
        return ob["rgb"], rew.astype(np.float32), np.asarray(first, dtype=bool)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Act, then return (obs, reward, first) for the new observation."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= len(ACTION_NAMES)):
            raise ValueError(f"actions must be in [0, {len(ACTION_NAMES)}), got {actions}")
        self.env.act(actions.astype(np.int32))
        obs, rew, first = self.observe()
        if self._hooks and first.any():
            for hook in self._hooks:
                hook(self, first)
        return obs, rew, first

    @property
    def info(self) -> list[dict[str, Any]]:
        return self.env.get_info()

    def level_seeds(self) -> np.ndarray:
        return np.array([i["level_seed"] for i in self.env.get_info()], dtype=np.int64)

    def get_state(self) -> list[bytes]:
        return self.env.get_state()

    def set_state(self, states: list[bytes]) -> None:
        self.env.set_state(states)
