"""Integrated gradients from a hidden layer (the article's Appendix B), and input gradients.

For an output F of the network run *from* a layer, and the layer's activation a = A(x), the
attribution of frame x is

    IG(x) = a * (1/n) * sum_{k=1..n} grad F(k/n * a)        (zero baseline, straight path,
                                                              right Riemann sum)

whose components sum to F(a) - F(0) as n grows (``delta`` measures the gap). ``steps=1`` is
gradient x activation. All frames and all alphas of a chunk go through the network as one
batch; the result is identical (to float rounding) to Captum's
``IntegratedGradients(f, ...).attribute(a, baselines=0, n_steps=n, method="riemann_right")``
on ``f = lambda a: F(forward_from(layer, a))``.

>>> from rlvision_widgets.agents import build_network
>>> net = build_network("compact")
>>> obs = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
>>> attr = integrated_gradients(net, obs, "2b", output="value", steps=10)
>>> attr.attributions.shape
(4, 16, 16, 32)
>>> bool(np.allclose(attr.attributions.sum((1, 2, 3)) - attr.delta,
...                  attr.outputs - attr.baseline_outputs, atol=1e-4))
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .layers import LayerAccess, check_observations
from .outputs import OutputLike, parse_output

__all__ = ["Attribution", "default_batch_size", "input_gradients", "integrated_gradients"]

#: Rows (frame x alpha pairs) per forward pass are chosen so one chunk's layer input holds
#: about this many floats (compact 2b: 25 frames x 10 steps); measured best on a 2-core CPU.
TARGET_CHUNK_FLOATS = 1 << 21


@dataclass
class Attribution:
    """Result of :func:`integrated_gradients`. Arrays are numpy, frames first, channels last.

    ``attributions`` (F, H, W, C) float32; ``activations`` (F, H, W, C); ``outputs`` F(a) and
    ``baseline_outputs`` F(0) per frame (F,); ``delta`` = sum(attributions) - (F(a) - F(0))
    per frame; ``layer``, ``output`` (canonical spec), ``steps``, ``method``.

    >>> a = Attribution(np.ones((1, 2, 2, 1), np.float32), np.ones((1, 2, 2, 1), np.float32),
    ...                 np.array([4.5], np.float32), np.array([0.5], np.float32),
    ...                 np.array([0.0], np.float32), "2b", "value", 10)
    >>> a.total().shape, float(a.relative_delta()[0])
    ((1, 2, 2), 0.0)
    """

    attributions: np.ndarray
    activations: np.ndarray
    outputs: np.ndarray
    baseline_outputs: np.ndarray
    delta: np.ndarray
    layer: str
    output: str
    steps: int
    method: str = "integrated_gradients"
    meta: dict[str, Any] = field(default_factory=dict)

    def total(self) -> np.ndarray:
        """Attribution summed over channels, (F, H, W)."""
        return self.attributions.sum(-1)

    def relative_delta(self) -> np.ndarray:
        """|delta| / |F(a) - F(0)| per frame (completeness error)."""
        diff = np.abs(self.outputs - self.baseline_outputs)
        return np.abs(self.delta) / np.maximum(diff, 1e-12)

    def __len__(self) -> int:
        return self.attributions.shape[0]

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON metadata for :mod:`~rlvision_widgets.analysis.cache` (no pickle)."""
        arrays = {
            k: getattr(self, k)
            for k in ("attributions", "activations", "outputs", "baseline_outputs", "delta")
        }
        meta = {
            "layer": self.layer,
            "output": self.output,
            "steps": self.steps,
            "method": self.method,
            "meta": self.meta,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Attribution:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            **{
                k: np.asarray(arrays[k])
                for k in ("attributions", "activations", "outputs", "baseline_outputs", "delta")
            },
            layer=meta["layer"],
            output=meta["output"],
            steps=int(meta["steps"]),
            method=meta.get("method", "integrated_gradients"),
            meta=meta.get("meta", {}),
        )


def default_batch_size(layer_shape: tuple[int, int, int], steps: int) -> int:
    """Rows (frame x alpha pairs) per forward pass for a layer of shape (H, W, C): a multiple
    of ``steps`` holding about :data:`TARGET_CHUNK_FLOATS` floats of layer input.

    >>> default_batch_size((32, 32, 32), 10)
    60
    """
    per_row = max(1, int(np.prod(layer_shape)))
    frames = max(1, TARGET_CHUNK_FLOATS // (per_row * steps))
    return frames * steps


def _access(agent: nn.Module | LayerAccess) -> LayerAccess:
    if isinstance(agent, LayerAccess):
        return agent
    if not isinstance(agent, nn.Module):
        raise TypeError(
            f"agent must be a torch nn.Module or a LayerAccess, got {type(agent).__name__}"
        )
    return LayerAccess(agent)


def _scaled_batch(a: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """(steps * b, C, H, W): row k * b + i is alphas[k] * a[i], written in one pass, in
    ``a``'s memory format (channels_last stays channels_last)."""
    steps = alphas.numel()
    b, c, h, w = a.shape
    if a.permute(0, 2, 3, 1).is_contiguous():  # channels_last (or 1x1 spatial)
        out = torch.empty(steps, b, h, w, c, dtype=a.dtype)
        torch.mul(a.permute(0, 2, 3, 1).unsqueeze(0), alphas.view(steps, 1, 1, 1, 1), out=out)
        return out.view(steps * b, h, w, c).permute(0, 3, 1, 2)
    out = torch.empty(steps, b, c, h, w, dtype=a.dtype)
    torch.mul(a.unsqueeze(0), alphas.view(steps, 1, 1, 1, 1), out=out)
    return out.view(steps * b, c, h, w)


def _chunk_ig(
    access: LayerAccess, layer: str, spec: Any, a: torch.Tensor, alphas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over alphas of dF/dz at z = alpha * a, NHWC; F(a)) for one chunk of frames."""
    steps = alphas.numel()
    b, c, h, w = a.shape
    with torch.enable_grad():
        scaled = _scaled_batch(a, alphas).requires_grad_(True)
        logits, value = access.forward_from(layer, scaled)
        y = spec(logits, value)
        (grad,) = torch.autograd.grad(y.sum(), scaled)
    with torch.no_grad():
        gsum = grad.permute(0, 2, 3, 1).reshape(steps, b, h, w, c).sum(0)
    return gsum, y.detach().view(steps, b)[-1]


def integrated_gradients(
    agent: nn.Module | LayerAccess,
    obs: Any,
    layer: str,
    output: OutputLike = "value",
    steps: int = 10,
    batch_size: int | None = None,
    *,
    share_next_conv: bool = False,
) -> Attribution:
    """Integrated gradients of ``output`` at ``layer`` for each frame of ``obs``.

    ``agent``: any agent module (uint8 frames -> ``(logits, value)``) or a
    :class:`LayerAccess` (to keep its edits). ``layer``: a layer name or any dotted module
    path; the network is reached through :class:`LayerAccess` (the network's own
    ``forward_to`` / ``forward_from`` where it offers them, temporary forward hooks otherwise,
    removed before returning). ``obs``: uint8 ``(N, H, W, 3)``. ``output``: ``"value"``,
    ``"logit:<a>"``, ``"group:<g>"``, ``"logprob:<a>"``. ``steps``: right-Riemann steps
    (alpha = 1/n ... 1); 1 gives gradient x activation. ``batch_size``: rows (frame x alpha
    pairs) per forward pass, rounded down to whole frames (default:
    :func:`default_batch_size`). ``share_next_conv`` is no longer used (network-specific
    paths belong to the network); passing True warns.

    Speed-ups are IG-level only: the forward to the layer runs once per frame for all steps,
    all frames and alphas of a chunk go through ``forward_from`` as one batch, and the last
    right-Riemann step (alpha = 1) gives F(a) without another pass.

    >>> from rlvision_widgets.agents import build_network
    >>> obs = np.zeros((2, 64, 64, 3), np.uint8)
    >>> integrated_gradients(build_network("compact"), obs, "4a", "logit:RIGHT").output
    'logit:7'
    """
    if share_next_conv:
        warnings.warn(
            "integrated_gradients(share_next_conv=True) is no longer applied: IG is generic "
            "and network-specific fast paths live in the network (ConvAgent.forward_from, "
            "fused_l2pool); drop the argument",
            FutureWarning,
            stacklevel=2,
        )
    access = _access(agent)
    spec = parse_output(output)
    layer = access.check_layer(layer)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    steps = int(steps)
    x = check_observations(obs, access._obs_size if access.fast else None)
    n = x.shape[0]
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    # k / n rounded once to float32 (as Captum's riemann_right alphas), the last exactly 1
    alphas = torch.tensor([k / steps for k in range(1, steps + 1)], dtype=torch.float32)
    access.input_shape = tuple(x.shape[1:])  # for the hook path's dummy forward passes
    h, w, c = access.layer_shape(layer)
    if batch_size is None:
        batch_size = default_batch_size((h, w, c), steps)
    frames_per_chunk = max(1, int(batch_size) // steps)
    attributions = np.empty((n, h, w, c), np.float32)
    activations = np.empty((n, h, w, c), np.float32)
    outputs = np.empty(n, np.float32)
    for start in range(0, n, frames_per_chunk):
        a = access.activations_nchw(x[start : start + frames_per_chunk], layer)  # (b, C, H, W)
        b = a.shape[0]
        gsum, out = _chunk_ig(access, layer, spec, a, alphas)
        with torch.no_grad():
            a_nhwc = a.permute(0, 2, 3, 1)
            dst = torch.from_numpy(attributions[start : start + b])
            torch.mul(gsum, a_nhwc, out=dst).div_(steps)
            activations[start : start + b] = a_nhwc.numpy()
            outputs[start : start + b] = out.numpy()

    with torch.no_grad():
        zero = torch.zeros(1, c, h, w).contiguous(memory_format=torch.channels_last)
        baseline = float(spec(*access.forward_from(layer, zero))[0])
    baseline_outputs = np.full(n, baseline, np.float32)
    delta = (
        attributions.sum((1, 2, 3), dtype=np.float64) - (outputs.astype(np.float64) - baseline)
    ).astype(np.float32)
    return Attribution(
        attributions,
        activations,
        outputs,
        baseline_outputs,
        delta,
        layer,
        spec.name,
        steps,
        meta={
            "batch_size": int(batch_size),
            "network_forward_from": access.uses_network_paths(layer),
        },
    )


def input_gradients(agent: nn.Module, obs: Any, output: OutputLike = "value") -> np.ndarray:
    """Plain gradient of ``output`` with respect to the input pixels (scaled to [0, 1]),
    ``(N, H, W, 3)`` float32, taken at the input of the network's first conv layer.

    >>> from rlvision_widgets.agents import build_network
    >>> g = input_gradients(build_network("compact"), np.zeros((2, 64, 64, 3), np.uint8))
    >>> g.shape
    (2, 64, 64, 3)
    """
    model = agent.model if isinstance(agent, LayerAccess) else agent
    spec = parse_output(output)
    x = check_observations(obs, None)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("input_gradients needs a model with a Conv2d layer")
    box: list[torch.Tensor] = []

    def pre_hook(_m: nn.Module, args: tuple) -> tuple | None:
        if box:  # only the first conv the forward pass reaches
            return None
        leaf = args[0].detach().requires_grad_(True)
        box.append(leaf)
        return (leaf, *args[1:])

    handles = [m.register_forward_pre_hook(pre_hook) for m in convs]
    try:
        with torch.enable_grad():
            logits, value = model(x)
            y = spec(logits, value.reshape(-1))
            (grad,) = torch.autograd.grad(y.sum(), box[0])
    finally:
        for h in handles:
            h.remove()
    if grad.dim() == 4 and grad.shape[1] == 3:
        grad = grad.permute(0, 2, 3, 1)
    return grad.contiguous().numpy().astype(np.float32)
