"""The one action sampler: seeded draws from a policy's softmax, for every rollout loop
(trajectory collection, evaluation, the corpus, PPO).

>>> g = torch.Generator().manual_seed(0)
>>> sample_actions(torch.zeros(4, 15), g).shape
(4,)
>>> actions, log_probs = sample_with_log_probs(torch.zeros(2, 15), g)
>>> [round(float(x), 4) for x in log_probs]             # log(1/15)
[-2.7081, -2.7081]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_actions", "sample_with_log_probs"]


def _shifted_logits(logits: torch.Tensor) -> np.ndarray:
    """(N, A) float64 logits minus each row's max; a clear error for NaN or all -inf rows."""
    lg = logits.detach().float().cpu().numpy().astype(np.float64)
    if lg.ndim != 2 or lg.shape[1] < 1:
        raise ValueError(f"logits must be (N, actions), got shape {tuple(lg.shape)}")
    top = lg.max(axis=1, keepdims=True) if lg.shape[0] else np.zeros((0, 1))
    if np.isnan(lg).any() or not np.isfinite(top).all():
        raise ValueError(
            "cannot sample from logits with NaN entries or rows without a finite "
            "entry (did training diverge?)"
        )
    return lg - top


def _draw(shifted: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
    u = torch.rand(shifted.shape[0], generator=generator, dtype=torch.float64).numpy()
    cdf = np.cumsum(np.exp(shifted), axis=1)
    cdf /= cdf[:, -1:]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), shifted.shape[1] - 1).astype(np.int64)


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None) -> np.ndarray:
    """One action per row of ``logits`` (N, A) from softmax(logits), as int64 (N,).

    Inverse CDF of one float64 uniform per row drawn from ``generator`` (None: torch's global
    generator), so a seeded generator gives the same actions on every machine; the
    distribution is exactly ``torch.distributions.Categorical(logits=logits)``'s. Runs in
    numpy: torch's multi-threaded softmax is slow on small batches.

    >>> g = torch.Generator().manual_seed(0)
    >>> sample_actions(torch.tensor([[0.0, -float("inf"), 5.0]]), g).tolist()
    [2]
    """
    return _draw(_shifted_logits(logits), generator)


def sample_with_log_probs(
    logits: torch.Tensor, generator: torch.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_actions` plus each sampled action's log-probability (float32), what a
    policy-gradient rollout stores (the same draws as :func:`sample_actions`).

    >>> g = torch.Generator().manual_seed(0)
    >>> actions, log_probs = sample_with_log_probs(torch.tensor([[0.0, 0.0]]), g)
    >>> actions.shape, round(float(log_probs[0]), 4)            # log(1/2)
    ((1,), -0.6931)
    """
    shifted = _shifted_logits(logits)
    actions = _draw(shifted, generator)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    log_probs = shifted[np.arange(len(actions)), actions] - log_norm
    return actions, log_probs.astype(np.float32)
