"""Generalised advantage estimation (Schulman et al., 2016), the one implementation.

The trainer calls :func:`gae` on its (T, N) buffers in gym3 layout; trajectories, bookmarks and
the explorer call :func:`gae_advantages` on (envs, steps) arrays. The article uses
gamma = 0.999 and lambda = 0.95 (the defaults).

>>> r = np.array([[0, 0, 10.0]]); v = np.array([[5.0, 5, 5]]); f = np.zeros((1, 3), bool)
>>> gae_advantages(r, v, f, last_values=np.zeros(1), last_firsts=np.ones(1, bool)).round(2)
array([[4.49, 4.74, 5.  ]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GAMMA", "LAMBDA", "check_envs_steps", "gae", "gae_advantages"]

GAMMA = 0.999
LAMBDA = 0.95


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    firsts: np.ndarray,
    last_value: np.ndarray,
    last_first: np.ndarray,
    gamma: float = GAMMA,
    lam: float = LAMBDA,
) -> np.ndarray:
    """Advantages for (T, N) arrays in gym3 layout.

    ``rewards[t]`` is the reward received for the action at ``t``; ``firsts[t]`` marks that
    observation ``t`` starts an episode, so ``firsts[t + 1]`` (or ``last_first``) ends the
    bootstrapping of step ``t``.

    >>> rewards = np.array([[0.0], [0.0], [1.0]], np.float32)     # (T=3, N=1)
    >>> values = np.zeros((3, 1), np.float32)
    >>> firsts = np.zeros((3, 1), bool)
    >>> adv = gae(rewards, values, firsts, last_value=np.zeros(1, np.float32),
    ...           last_first=np.ones(1, bool), gamma=0.5, lam=1.0)
    >>> adv.ravel().tolist()
    [0.25, 0.5, 1.0]
    """
    T = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1:], dtype=np.float32)
    for t in reversed(range(T)):
        next_first = last_first if t == T - 1 else firsts[t + 1]
        next_value = last_value if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - next_first.astype(np.float32)
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv


def check_envs_steps(name: str, a: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``a`` as a 2-D (envs, steps) array; a clear error naming ``name`` otherwise.

    >>> check_envs_steps("values", np.zeros(3))
    Traceback (most recent call last):
    ValueError: values must be 2-D (envs, steps), got shape (3,)
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (envs, steps), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape} (envs, steps)")
    return a


def gae_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    firsts: np.ndarray,
    *,
    last_values: np.ndarray | None = None,
    last_firsts: np.ndarray | None = None,
    gamma: float = GAMMA,
    lam: float = LAMBDA,
) -> np.ndarray:
    """Advantages (float32) for (envs, steps) arrays; returns are ``advantages + values``.

    ``last_values`` / ``last_firsts`` (one per env) are the value and ``first`` flag of the
    observation after the final step. Without ``last_values`` the final step cannot be
    bootstrapped: it is evaluated from the other steps and its advantage is 0 (as in the
    original tool).

    >>> r = np.array([[0, 0, 10.0]]); v = np.array([[5.0, 5, 5]]); f = np.zeros((1, 3), bool)
    >>> gae_advantages(r, v, f).round(2)          # the last step is not bootstrapped
    array([[-0.01, -0.01,  0.  ]], dtype=float32)
    """
    rewards = check_envs_steps("rewards", rewards).astype(np.float32)
    values = check_envs_steps("values", values, rewards.shape).astype(np.float32)
    firsts = check_envs_steps("firsts", firsts, rewards.shape).astype(bool)
    e, t = rewards.shape
    if last_values is None:
        if t < 2:
            return np.zeros((e, t), np.float32)
        adv = gae(
            rewards[:, :-1].T,
            values[:, :-1].T,
            firsts[:, :-1].T,
            values[:, -1],
            firsts[:, -1],
            gamma,
            lam,
        ).T
        return np.concatenate([adv, np.zeros((e, 1), np.float32)], axis=1).astype(np.float32)
    last_values = np.asarray(last_values, np.float32).reshape(e)
    last_firsts = (
        np.zeros(e, bool) if last_firsts is None else np.asarray(last_firsts, bool).reshape(e)
    )
    adv = gae(rewards.T, values.T, firsts.T, last_values, last_firsts, gamma, lam).T
    return np.ascontiguousarray(adv, np.float32)
