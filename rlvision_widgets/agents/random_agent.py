"""The built-in uniform random agent (name ``"random"``).

>>> agent = RandomAgent()
>>> logits, value = agent(torch.zeros(4, 64, 64, 3, dtype=torch.uint8))
>>> logits.shape, value.shape
(torch.Size([4, 15]), torch.Size([4]))
"""

from __future__ import annotations

import torch
from torch import nn

from ..environment.actions import NUM_ACTIONS


class RandomAgent(nn.Module):
    """Uniform over the actions: zero logits ``(N, NUM_ACTIONS)`` and zero value ``(N,)`` for a
    uint8 observation batch ``(N, 64, 64, 3)``. Has no parameters.

    >>> RandomAgent()(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))[0].shape
    torch.Size([2, 15])
    """

    num_actions = NUM_ACTIONS

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if obs.dim() != 4 or obs.shape[-1] != 3:
            raise ValueError(
                f"expected a uint8 observation batch (N, 64, 64, 3), got shape {tuple(obs.shape)}"
            )
        n = obs.shape[0]
        return (torch.zeros(n, NUM_ACTIONS, device=obs.device), torch.zeros(n, device=obs.device))

    def extra_repr(self) -> str:
        return f"uniform over {NUM_ACTIONS} actions"
