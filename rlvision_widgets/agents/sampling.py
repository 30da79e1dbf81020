"""Deterministic action sampling shared by trajectory collection and evaluation.

>>> g = torch.Generator().manual_seed(0)
>>> sample_actions(torch.zeros(4, 15), g).shape
(4,)
"""
from __future__ import annotations

import numpy as np
import torch


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    """One action per row from softmax(logits), by inverse CDF of a uniform drawn from
    ``generator`` (deterministic for a seeded generator; avoids torch's multi-threaded
    softmax, which is slow on small batches)."""
    u = torch.rand(logits.shape[0], generator=generator, dtype=torch.float64).numpy()
    lg = logits.detach().float().cpu().numpy().astype(np.float64)
    p = np.exp(lg - lg.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), lg.shape[1] - 1).astype(np.int64)
