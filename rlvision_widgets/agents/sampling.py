"""The one action sampler: seeded draws from a policy's softmax, for every rollout loop
(trajectory collection, evaluation, the corpus, PPO).

One generator drives a whole batch; a sequence of generators gives each row its own stream
(evaluation: one stream per level), drawing for row i exactly what a one-row call with
generator i draws, in one batched pass.

>>> g = torch.Generator().manual_seed(0)
>>> sample_actions(torch.zeros(4, 15), g).shape
(4,)
>>> streams = [torch.Generator().manual_seed(s) for s in (1, 2)]
>>> sample_actions(torch.zeros(2, 15), streams).shape
(2,)
>>> actions, log_probs = sample_with_log_probs(torch.zeros(2, 15), g)
>>> [round(float(x), 4) for x in log_probs]             # log(1/15)
[-2.7081, -2.7081]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# One generator for the whole batch (None: torch's global one), or one per row.
Generators = torch.Generator | Sequence[torch.Generator] | None

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


def _uniforms(rows: int, generator: Generators) -> np.ndarray:
    """One float64 uniform per row: ``rows`` from one stream, or one from each row's stream
    (the same number a one-row call on that stream draws)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(rows, generator=generator, dtype=torch.float64).numpy()
    if isinstance(generator, (str, bytes)) or not isinstance(generator, Sequence):
        raise TypeError(
            "generator must be a torch.Generator, None, or a sequence of one torch.Generator "
            f"per row, got {type(generator).__name__}"
        )
    if len(generator) != rows:
        raise ValueError(
            f"got {len(generator)} generators for {rows} rows of logits; pass one "
            "torch.Generator per row (or a single generator for the whole batch)"
        )
    u = np.empty(rows, np.float64)
    for i, g in enumerate(generator):
        if not isinstance(g, torch.Generator):
            raise TypeError(f"generator[{i}] must be a torch.Generator, got {type(g).__name__}")
        u[i] = torch.rand(1, generator=g, dtype=torch.float64).item()
    return u


def _draw(shifted: np.ndarray, generator: Generators) -> np.ndarray:
    u = _uniforms(shifted.shape[0], generator)
    cdf = np.cumsum(np.exp(shifted), axis=1)
    cdf /= cdf[:, -1:]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), shifted.shape[1] - 1).astype(np.int64)


def sample_actions(logits: torch.Tensor, generator: Generators) -> np.ndarray:
    """One action per row of ``logits`` (N, A) from softmax(logits), as int64 (N,).

    Inverse CDF of one float64 uniform per row drawn from ``generator`` (None: torch's global
    generator), so a seeded generator gives the same actions on every machine; the
    distribution is exactly ``torch.distributions.Categorical(logits=logits)``'s. Runs in
    numpy: torch's multi-threaded softmax is slow on small batches.

    ``generator`` may also be a sequence of N generators, one per row: row i then gets exactly
    the action ``sample_actions(logits[i : i + 1], generator[i])`` would give, and depends
    only on its own row and stream (how rows are batched never changes a draw).

    >>> g = torch.Generator().manual_seed(0)
    >>> sample_actions(torch.tensor([[0.0, -float("inf"), 5.0]]), g).tolist()
    [2]
    >>> logits = torch.randn(3, 15)
    >>> per_row = sample_actions(logits, [torch.Generator().manual_seed(s) for s in range(3)])
    >>> one_by_one = [
    ...     int(sample_actions(logits[s : s + 1], torch.Generator().manual_seed(s))[0])
    ...     for s in range(3)
    ... ]
    >>> per_row.tolist() == one_by_one
    True
    """
    return _draw(_shifted_logits(logits), generator)


def sample_with_log_probs(
    logits: torch.Tensor, generator: Generators
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_actions` plus each sampled action's log-probability (float32), what a
    policy-gradient rollout stores (the same draws as :func:`sample_actions`, including with
    one generator per row).

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
