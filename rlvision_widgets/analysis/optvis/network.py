"""Run an agent's network on float images, with gradients, up to the layers an objective needs.

Agents take uint8 observations, which carry no gradient. :class:`ImageNetwork` feeds float
images ``(N, 3, S, S)`` in [0, 1] to the agent's first layer instead (a temporary forward
pre-hook replaces that layer's input, the agent's own preprocessing output, so ``x / 255``
of a uint8 frame gives exactly the activations the agent computes for the frame), captures
the requested layers with temporary forward hooks, and stops the pass after the deepest one.
Hooks are removed in ``finally``; the agent is never modified, and any activation edit
registered through :class:`~rlvision_widgets.analysis.layers.LayerAccess` applies.

>>> from rlvision_widgets.agents import build_network
>>> net = ImageNetwork(build_network("compact"))
>>> acts = net.run(torch.rand(2, 3, 64, 64), ["1a", "2b"])
>>> tuple(acts["2b"].shape), net.first_layer
((2, 32, 16, 16), '1a')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..layers import LayerAccess, get_layer

__all__ = ["ImageNetwork"]


class _RedirectedReLU(torch.autograd.Function):
    """ReLU whose backward, for an image whose ReLU gradient is all zero (a dead unit, e.g. on
    the uniform start image), passes the gradient through wherever it would raise the
    pre-activation (Lucid's "redirected ReLU"); otherwise the plain ReLU gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        plain = g * (x > 0)
        redirected = torch.where((x < 0) & (g > 0), torch.zeros_like(g), g)
        dead = (plain == 0).flatten(1).all(1).view(-1, *([1] * (g.dim() - 1)))
        return torch.where(dead, redirected, plain)


class _Stop(Exception):
    """Raised once every requested layer is captured (skips the rest of the network)."""


class ImageNetwork:
    """Float-image access to ``model``'s layers (see module docstring).

    ``first_layer``: the layer that receives the image (the network's first named layer, or
    its first ``Conv2d``); the L2 penalty of the article is taken on its activations.

    >>> from rlvision_widgets.agents import build_network
    >>> ImageNetwork(build_network("compact")).layer_shape("2b")
    (32, 16, 16)
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.access = LayerAccess(model)
        if self.access.fast:
            self.first_layer = self.access.layer_names[0]
        else:
            convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise ValueError(
                    f"{type(model).__name__} has no Conv2d layer to feed images to; "
                    "feature visualization needs a convolutional agent"
                )
            self.first_layer = convs[0]
        self.input_shape = tuple(self.access.input_shape)

    def check_layer(self, layer: str) -> str:
        """``layer`` if the agent has it, else ``KeyError`` listing valid layers.

        >>> from rlvision_widgets.agents import build_network
        >>> ImageNetwork(build_network("compact")).check_layer("2b")
        '2b'
        """
        return self.access.check_layer(layer)

    def layer_shape(self, layer: str) -> tuple[int, int, int]:
        """``(C, H, W)`` of ``layer``'s activations."""
        h, w, c = self.access.layer_shape(self.check_layer(layer))
        return (c, h, w)

    def run(
        self, images: torch.Tensor, layers: Sequence[str], *, redirect_relu: bool = False
    ) -> dict[str, torch.Tensor]:
        """Activations ``{layer: (N, C, H, W)}`` for float ``images`` (N, 3, S, S), with grad.

        ``redirect_relu``: every ``nn.ReLU`` module of the agent back-propagates Lucid's
        redirected gradient (values unchanged; see :class:`_RedirectedReLU`), so a unit dead
        on the start image still gets a gradient.

        >>> from rlvision_widgets.agents import build_network
        >>> net = ImageNetwork(build_network("compact"))
        >>> x = torch.rand(1, 3, 64, 64)
        >>> a = net.run(x, ["2b"])["2b"]
        >>> bool(torch.equal(a, net.run(x, ["2b"], redirect_relu=True)["2b"]))
        True
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) floats, got {tuple(images.shape)}")
        wanted = list(dict.fromkeys(self.check_layer(name) for name in layers))
        box: dict[str, torch.Tensor] = {}
        fed: list[bool] = []

        def feed(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            if not fed:
                if tuple(x.shape) != tuple(images.shape):
                    raise ValueError(
                        f"the first layer {self.first_layer!r} takes inputs of shape "
                        f"{tuple(x.shape)}, not images of shape {tuple(images.shape)}"
                    )
                fed.append(True)
                return (images.to(x.dtype), *args[1:])
            return args

        def capture(name: str) -> Any:
            def hook(_m: nn.Module, _i: Any, out: Any) -> None:
                box[name] = out if isinstance(out, torch.Tensor) else out[0]
                if len(box) == len(wanted):
                    raise _Stop

            return hook

        def redirect(_m: nn.Module, args: tuple[Any, ...], _out: Any) -> torch.Tensor:
            return _RedirectedReLU.apply(args[0])

        handles = [get_layer(self.model, self.first_layer).register_forward_pre_hook(feed)]
        try:
            if redirect_relu:
                for m in self.model.modules():
                    if isinstance(m, nn.ReLU):
                        handles.append(m.register_forward_hook(redirect))
            for name in wanted:
                handles.append(get_layer(self.model, name).register_forward_hook(capture(name)))
            dummy = torch.zeros((images.shape[0], *self.input_shape), dtype=torch.uint8)
            try:
                self.model(dummy)
            except _Stop:
                pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in wanted if n not in box]
        if missing:
            raise RuntimeError(f"layers {missing} were not reached by the forward pass")
        return {n: _nchw(box[n]) for n in wanted}


def _nchw(t: torch.Tensor) -> torch.Tensor:
    return t if t.dim() == 4 else t.reshape(t.shape[0], -1, 1, 1)
