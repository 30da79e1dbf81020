"""Model editing: project an NMF direction out of a layer (the article's Appendix A).

With ``v`` a direction in the layer's channel space and strength ``s`` in [0, 1],
``P = I - s * v v^T / ||v||^2``; ``s = 1`` removes the direction entirely.

Two ways to apply it:

* ``mode="weight"`` (the article's): left-multiply every ``c x d`` slice of the *following*
  conv kernel by ``P``. On both shipped networks an L2 pool sits between the edited layer and
  that conv (2b -> pool -> 3a), so this projects the direction out of the *pooled* activations:
  ``conv(P pool(a))``. Because L2 pooling is nonlinear, that is not the same as pooling the
  projected activations; the two agree exactly when ``v`` is one-hot (pooling is per channel).
* ``mode="activation"``: a forward hook replaces the layer's output ``a`` by ``P a`` at every
  position, so everything downstream (pooling included) sees exactly the projected activation.

Edits are reversible (:meth:`EditedAgent.remove`) and recorded in the agent's checkpoint config.

>>> edited = EditedAgent(agent).add("2b", direction, strength=1.0)   # doctest: +SKIP
>>> logits, value = edited(obs)                                       # doctest: +SKIP
>>> edited.save("runs/saw-blind")                                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint

EDIT_MODES = ("activation", "weight")


def projection(direction: np.ndarray | torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """``I - strength * v v^T / ||v||^2`` as a float32 (C, C) tensor."""
    v = torch.as_tensor(np.asarray(direction, dtype=np.float32)).flatten()
    norm2 = float(v @ v)
    if not np.isfinite(norm2) or norm2 == 0.0:
        raise ValueError("edit direction must be a non-zero finite vector")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"edit strength must be in [0, 1], got {strength}")
    return torch.eye(v.numel()) - strength * torch.outer(v, v) / norm2


@dataclass(frozen=True)
class Edit:
    """One projection edit: ``layer``, channel ``direction``, ``strength``, ``mode``, ``label``."""

    layer: str
    direction: tuple[float, ...]
    strength: float = 1.0
    mode: str = "activation"
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "direction": list(self.direction)}


def _layer_module(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError as exc:
        names = getattr(model, "layer_names", None) or [n for n, _ in model.named_modules() if n]
        raise KeyError(f"unknown layer {layer!r}; valid layers: {names}") from exc


def _next_conv(model: nn.Module, layer: str) -> nn.Conv2d:
    if not hasattr(model, "next_conv"):
        raise ValueError(
            "mode='weight' needs a ConvAgent (it edits the following conv kernel); "
            "use mode='activation' for other models"
        )
    conv = model.next_conv(layer)
    if conv is None:
        raise ValueError(f"layer {layer!r} feeds a dense layer, not a conv: use mode='activation'")
    return conv


class EditedAgent(nn.Module):
    """Wraps an agent; edits are added/removed without touching the original's weights.

    The wrapped module is deep-copied, so the original agent is never modified.

    >>> from rlvision_widgets.agents import build_network
    >>> agent = build_network("compact")
    >>> direction = np.eye(32)[5]                    # channel 5 of layer 2b
    >>> edited = EditedAgent(agent).add("2b", direction, strength=1.0, label="ch5")
    >>> g = torch.Generator().manual_seed(0)
    >>> obs = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8, generator=g)
    >>> logits, value = edited(obs)
    >>> bool((edited.forward_to(obs, "2b")[:, 5] == 0).all())     # direction projected out
    True
    >>> bool((agent.forward_to(obs, "2b")[:, 5] == 0).all())      # the original is untouched
    False
    >>> [(e.layer, e.mode, e.label) for e in edited.edits]
    [('2b', 'activation', 'ch5')]
    >>> edited.remove().edits                        # back to the original behaviour
    []
    >>> edited.add("2b", direction).save("runs/blind-ch5")          # doctest: +SKIP
    """

    def __init__(self, agent: nn.Module, edits: Sequence[Edit] = ()):
        super().__init__()
        self.original = agent
        self.agent = copy.deepcopy(agent).eval()
        self._pristine = {k: v.clone() for k, v in self.agent.state_dict().items()}
        self._hooks: list = []
        self.edits: list[Edit] = []
        for e in edits:
            self.add(e.layer, e.direction, e.strength, e.mode, e.label)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["agent"], name)

    def add(
        self,
        layer: str,
        direction: Sequence[float] | np.ndarray,
        strength: float = 1.0,
        mode: str = "activation",
        label: str = "",
    ) -> EditedAgent:
        """Project ``direction`` out of ``layer`` (returns self for chaining)."""
        if mode not in EDIT_MODES:
            raise ValueError(f"edit mode must be one of {EDIT_MODES}, got {mode!r}")
        module = _layer_module(self.agent, layer)
        P = projection(direction, strength)
        if mode == "activation":

            def hook(_m, _inp, out, P=P):
                if out.shape[1] != P.shape[0]:
                    raise ValueError(
                        f"edit direction has {P.shape[0]} channels but layer "
                        f"{layer!r} has {out.shape[1]}"
                    )
                return torch.einsum("nchw,dc->ndhw", out, P.to(out.dtype))

            self._hooks.append(module.register_forward_hook(hook))
        else:
            conv = _next_conv(self.agent, layer)
            if conv.weight.shape[1] != P.shape[0]:
                raise ValueError(
                    f"edit direction has {P.shape[0]} channels but the conv after "
                    f"{layer!r} takes {conv.weight.shape[1]}"
                )
            with torch.no_grad():  # W[d, c, i, j] <- sum_c' P[c, c'] W[d, c', i, j]
                conv.weight.copy_(torch.einsum("dcij,ec->deij", conv.weight, P))
        self.edits.append(
            Edit(layer, tuple(float(x) for x in np.ravel(direction)), float(strength), mode, label)
        )
        return self

    def remove(self) -> EditedAgent:
        """Undo every edit (restores the original weights, removes hooks)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self.agent.load_state_dict(self._pristine)
        self.edits.clear()
        return self

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.agent(obs)

    def save(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Save as a checkpoint whose config records the edits (``config["edits"]``).

        Weight edits are baked into the saved weights; activation edits are re-applied by
        :func:`rlvision_widgets.load_agent` from the config.
        """
        base = dict(getattr(self.original, "checkpoint_config", {}) or {})
        for k in ("format", "version", "network", "files", "edits"):
            base.pop(k, None)
        weights_only = EditedAgent(
            self.original, [e for e in self.edits if e.mode == "weight"]
        ).agent
        return save_checkpoint(
            folder,
            weights_only,
            {**base, **(meta or {}), "edits": [e.to_dict() for e in self.edits]},
        )


def apply_recorded_edits(agent: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Re-apply the activation edits a checkpoint config records (weight edits are baked in)."""
    edits = [Edit(**{**e, "direction": tuple(e["direction"])}) for e in config.get("edits", [])]
    acts = [e for e in edits if e.mode == "activation"]
    if not acts:
        return agent
    wrapped = EditedAgent(agent, acts)
    wrapped.edits = edits
    return wrapped
