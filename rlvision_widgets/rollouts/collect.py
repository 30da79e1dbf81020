"""Collect trajectories of an agent in CoinRun, with exact episode outcomes.

>>> traj = collect_trajectories("random", num_envs=8, num_steps=512, seed=0)
>>> traj.failed_episodes("saw")[:3]                                # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import platform
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..agents.registry import resolve_agent
from ..agents.sampling import sample_actions
from ..environment.actions import NUM_ACTIONS
from ..environment.causes import CauseTracker
from ..environment.coinrun import CoinRunEnv, EnvOptions
from .gae import gae_advantages
from .storage import Trajectories, make_episodes


@torch.no_grad()
def collect_trajectories(
    agent: nn.Module | str,
    num_envs: int = 8,
    num_steps: int = 512,
    seed: int = 0,
    env_options: EnvOptions | None = None,
    gamma: float = 0.999,
    lam: float = 0.95,
    sample: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Trajectories:
    """Run ``agent`` in ``num_envs`` CoinRun envs for ``num_steps`` steps.

    ``agent``: any ``torch.nn.Module`` mapping a uint8 batch (N, 64, 64, 3) to (logits (N, 15),
    value (N,)), or ``"random"``. It is put in eval mode for the run (and moved to ``device``).
    ``env_options`` sets the game (distribution mode, invisible saws, ...); its ``num_envs``
    and ``rand_seed`` are replaced by ``num_envs`` and ``seed``. Actions are sampled from the
    policy with a torch generator seeded by ``seed`` (``sample=False``: greedy), so the same
    seed gives identical trajectories. Advantages use GAE(``gamma``, ``lam``).

    >>> traj = collect_trajectories("random", num_envs=2, num_steps=32, progress=False)
    >>> traj.obs.shape
    (2, 32, 64, 64, 3)
    """
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if not 0 <= gamma <= 1 or not 0 <= lam <= 1:
        raise ValueError(f"gamma and lam must lie in [0, 1], got gamma={gamma}, lam={lam}")
    model = resolve_agent(agent)
    device = torch.device(device)
    options = (env_options or EnvOptions()).replace(num_envs=int(num_envs), rand_seed=int(seed))
    was_training = model.training
    model.to(device).eval()
    env = CoinRunEnv(options)
    tracker = CauseTracker(env, keep_states=True)
    gen = torch.Generator().manual_seed(int(seed))
    E, T = int(num_envs), int(num_steps)
    obs_buf = np.zeros((E, T, 64, 64, 3), np.uint8)
    actions = np.zeros((E, T), np.int64)
    logits_buf = np.zeros((E, T, NUM_ACTIONS), np.float32)
    values = np.zeros((E, T), np.float32)
    rewards = np.zeros((E, T), np.float32)
    firsts = np.zeros((E, T), bool)
    seeds = np.zeros((E, T), np.int64)

    def policy(obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = model(torch.from_numpy(obs).to(device))
        logits = logits.float().cpu()
        if logits.shape != (E, NUM_ACTIONS) or value.shape != (E,):
            raise ValueError(
                f"the agent must return logits (N, {NUM_ACTIONS}) and value (N,), "
                f"got {tuple(logits.shape)} and {tuple(value.shape)}"
            )
        return logits, value.float().cpu()

    try:
        obs, _, first = env.observe()
        for t in tqdm(range(T), disable=not progress, desc="collecting", unit="step"):
            obs_buf[:, t], firsts[:, t] = obs, first
            seeds[:, t] = tracker.current_level_seeds
            logits, value = policy(obs)
            act = sample_actions(logits, gen) if sample else logits.argmax(-1).numpy()
            obs, rew, first = env.step(act)
            actions[:, t], logits_buf[:, t], values[:, t], rewards[:, t] = act, logits, value, rew
        _, last_value = policy(obs)
        last_first = first.copy()
    finally:
        model.train(was_training)
    records = tracker.pop_records()
    rows, states = [], []
    for r in records:
        rows.append((r.env, r.start, r.stop, r.level_seed, True, r.success, r.cause))
        states.append(r.start_state)
    for o in tracker.open_episodes():
        if o.length > 0:
            rows.append(
                (o.env, o.start, o.start + o.length, o.level_seed, False, False, "unfinished")
            )
            states.append(o.start_state)
    stats = dict(tracker.stats)
    tracker.detach()
    env.close()
    order = sorted(range(len(rows)), key=lambda k: (rows[k][0], rows[k][1]))
    episodes = make_episodes([rows[k] for k in order])
    states = [states[k] for k in order]
    adv = gae_advantages(
        rewards,
        values,
        firsts,
        last_values=last_value.numpy(),
        last_firsts=last_first,
        gamma=gamma,
        lam=lam,
    )
    ret = (adv + values).astype(np.float32)
    metadata: dict[str, Any] = {
        "env_options": options.to_dict(),
        "seed": int(seed),
        "num_envs": E,
        "num_steps": T,
        "gamma": float(gamma),
        "lam": float(lam),
        "sample": bool(sample),
        "agent": type(model).__name__,
        "agent_name": agent if isinstance(agent, str) else None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rlvision_widgets": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cause_tracking": stats,
    }
    return Trajectories(
        obs=obs_buf,
        actions=actions,
        logits=logits_buf,
        values=values,
        rewards=rewards,
        firsts=firsts,
        level_seeds=seeds,
        advantages=adv,
        returns=ret,
        last_values=last_value.numpy().astype(np.float32),
        last_firsts=last_first,
        episodes=episodes,
        start_states=states,
        metadata=metadata,
    )
