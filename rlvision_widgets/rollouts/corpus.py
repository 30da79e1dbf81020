"""The dataset corpus: observations sampled infrequently from an agent playing CoinRun.

The standard corpus (the original tool's) is 4,096 observations, each env contributing one
observation every 128 steps. Envs are staggered (a random phase per env) so the corpus does not
come in synchronised bursts. Actions are sampled from the agent's policy with the one sampler
(:func:`~rlvision_widgets.agents.sampling.sample_actions`), or drawn uniformly at random without
running any network when ``agent`` is None (equivalent for a random-weight network, whose
policy is near uniform, and much faster).

>>> corpus = collect_corpus(None, num_obs=16, interval=4, num_envs=4, seed=0)
>>> corpus.obs.shape, corpus.obs.dtype
((16, 64, 64, 3), dtype('uint8'))
>>> len(corpus.hash)
64
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..agents.registry import resolve_agent
from ..agents.sampling import sample_actions
from ..environment.actions import NUM_ACTIONS
from ..environment.coinrun import CoinRunEnv, EnvOptions
from ..files import array_hash, load_arrays, save_arrays

__all__ = ["Corpus", "collect_corpus", "corpus_from_trajectories"]

STANDARD_SIZE = 4096
STANDARD_INTERVAL = 128


@dataclass
class Corpus:
    """Observations ``obs`` (N, 64, 64, 3) uint8 with where they came from: ``env``, ``step``
    (env step counter) and ``level_seed`` per observation (-1 when unknown), plus ``meta``.

    >>> c = Corpus(np.zeros((2, 64, 64, 3), np.uint8))
    >>> len(c), c.env.tolist()
    (2, [-1, -1])
    """

    obs: np.ndarray
    env: np.ndarray | None = None
    step: np.ndarray | None = None
    level_seed: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        obs = np.asarray(self.obs)
        if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[-1] != 3:
            raise ValueError(
                f"corpus observations must be uint8 (N, H, W, 3), got {obs.dtype} {obs.shape}"
            )
        self.obs = obs
        n = obs.shape[0]
        for name in ("env", "step", "level_seed"):
            v = getattr(self, name)
            v = np.full(n, -1, np.int64) if v is None else np.asarray(v, np.int64)
            if v.shape != (n,):
                raise ValueError(f"{name} must have one entry per observation ({n}), got {v.shape}")
            setattr(self, name, v)
        self._hash: str | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def hash(self) -> str:
        """sha256 of the observations (the cache's corpus key)."""
        if self._hash is None:
            self._hash = array_hash(self.obs)
        return self._hash

    def save(self, path: str | os.PathLike) -> Path:
        """Save as ``path.npz`` + ``path.json`` (no pickle).

        >>> import tempfile, os
        >>> p = Corpus(np.zeros((2, 64, 64, 3), np.uint8)).save(os.path.join(tempfile.mkdtemp(), "c"))
        >>> len(Corpus.load(p))
        2
        """
        return save_arrays(
            path,
            {"obs": self.obs, "env": self.env, "step": self.step, "level_seed": self.level_seed},
            {"corpus": self.meta, "hash": self.hash},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Corpus:
        """Load a corpus written by :meth:`save`."""
        arrays, meta = load_arrays(path)
        return cls(
            arrays["obs"],
            arrays["env"],
            arrays["step"],
            arrays["level_seed"],
            meta.get("corpus", {}),
        )


def corpus_from_trajectories(
    obs: np.ndarray,
    every: int = STANDARD_INTERVAL,
    level_seeds: np.ndarray | None = None,
    offset: int = 0,
) -> Corpus:
    """A corpus from recorded trajectory frames (envs, steps, 64, 64, 3): every ``every``-th
    step of each env, starting at ``offset``.

    >>> c = corpus_from_trajectories(np.zeros((2, 10, 64, 64, 3), np.uint8), every=5)
    >>> c.env.tolist(), c.step.tolist()
    ([0, 0, 1, 1], [0, 5, 0, 5])
    """
    obs = np.asarray(obs)
    if obs.ndim != 5:
        raise ValueError(f"trajectory frames must be (envs, steps, H, W, 3), got {obs.shape}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every!r}")
    e, t = obs.shape[:2]
    steps = np.arange(offset, t, every)
    env = np.repeat(np.arange(e), steps.size)
    step = np.tile(steps, e)
    seeds = None if level_seeds is None else np.asarray(level_seeds)[env, step]
    return Corpus(obs[env, step], env, step, seeds, {"source": "trajectories", "every": every})


@torch.no_grad()
def collect_corpus(
    agent: nn.Module | str | os.PathLike | None = None,
    num_obs: int = STANDARD_SIZE,
    interval: int = STANDARD_INTERVAL,
    num_envs: int = 64,
    seed: int = 0,
    env_options: EnvOptions | None = None,
    progress: bool = False,
) -> Corpus:
    """Play CoinRun with ``agent`` and keep one observation per env every ``interval`` steps
    (random phase per env) until ``num_obs`` are collected.

    ``agent``: a module, or a name or path (through
    :func:`~rlvision_widgets.agents.registry.resolve_agent`); None plays uniformly random
    actions without a network. ``env_options``: an
    :class:`~rlvision_widgets.environment.EnvOptions` (its ``num_envs`` and ``rand_seed`` are
    replaced by ``num_envs`` and ``seed``). Total env steps are about ``num_obs * interval``.

    >>> c = collect_corpus(None, num_obs=8, interval=2, num_envs=4, seed=1)
    >>> len(c), int(c.step.min()) >= 0
    (8, True)
    """
    for name, v in (("num_obs", num_obs), ("interval", interval), ("num_envs", num_envs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    model = None if agent is None else resolve_agent(agent)
    options = env_options or EnvOptions()
    options = options.replace(num_envs=int(num_envs), rand_seed=int(seed))
    env = CoinRunEnv(options)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    phase = rng.integers(0, interval, size=num_envs)
    obs_out = np.empty((num_obs, *env.observe()[0].shape[1:]), np.uint8)
    env_out = np.empty(num_obs, np.int64)
    step_out = np.empty(num_obs, np.int64)
    seed_out = np.empty(num_obs, np.int64)
    count, t = 0, 0
    bar = tqdm(total=num_obs, desc="corpus") if progress else None
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    try:
        obs, _, _ = env.observe()
        while count < num_obs:
            take = np.flatnonzero((t + phase) % interval == interval - 1)
            if take.size:
                take = take[: num_obs - count]
                seeds = env.level_seeds()
                obs_out[count : count + take.size] = obs[take]
                env_out[count : count + take.size] = take
                step_out[count : count + take.size] = t
                seed_out[count : count + take.size] = seeds[take]
                count += take.size
                if bar is not None:
                    bar.update(take.size)
            if count >= num_obs:
                break
            if model is None:
                actions = rng.integers(0, NUM_ACTIONS, size=num_envs).astype(np.int32)
            else:
                actions = sample_actions(model(torch.from_numpy(obs))[0], gen)
            obs, _, _ = env.step(actions)
            t += 1
    finally:
        if bar is not None:
            bar.close()
        env.close()
        if model is not None:
            model.train(was_training)
    meta = {
        "source": "collect_corpus",
        "num_obs": int(num_obs),
        "interval": int(interval),
        "num_envs": int(num_envs),
        "seed": int(seed),
        "env_steps": int(t * num_envs),
        "policy": "uniform random" if model is None else type(model).__name__,
        "env_options": options.to_dict(),
    }
    return Corpus(obs_out, env_out, step_out, seed_out, meta)
