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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..agents.networks import L2Pool
from .layers import LayerAccess, check_observations
from .outputs import OutputLike, parse_output

__all__ = ["Attribution", "default_batch_size", "input_gradients", "integrated_gradients"]

#: Rows (frame x alpha pairs) per forward pass are chosen so one chunk's layer input holds
#: about this many floats; measured best on a 2-core CPU for both networks.
TARGET_CHUNK_FLOATS = 1 << 22


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
    120
    """
    per_row = max(1, int(np.prod(layer_shape)))
    frames = max(1, TARGET_CHUNK_FLOATS // (per_row * steps))
    return frames * steps


class _L2PoolFunction(torch.autograd.Function):
    """ConvAgent's L2 pool, sqrt(avg_pool(x^2) * k^2 + eps), with a fused backward.

    The forward runs the module's exact ops. The backward computes 2 * (g / (2 p)) * x in two
    passes instead of autograd's six (and a zero fill); every rounding step is the same as
    autograd's chain (division by 2p, exact scalings by 4 and 1/4, one rounded product, an
    exact doubling), so gradients are bit-identical, only faster.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: int, eps: float) -> torch.Tensor:
        p = torch.sqrt(F.avg_pool2d(x * x, k, k) * (k * k) + eps)
        ctx.save_for_backward(x, p)
        ctx.k = k
        return p

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, p = ctx.saved_tensors
        k = ctx.k
        d = g / (2 * p)
        n, c, h, w = x.shape
        ho, wo = d.shape[2], d.shape[3]
        xp, dp = x.permute(0, 2, 3, 1), d.permute(0, 2, 3, 1)
        if (ho * k, wo * k) == (h, w) and xp.is_contiguous() and dp.is_contiguous():
            r = dp[:, :, None, :, None, :] * xp.view(n, ho, k, wo, k, c)
            r = r.view(n, h, w, c).permute(0, 3, 1, 2)
        else:
            up = d.repeat_interleave(k, 2).repeat_interleave(k, 3)
            r = torch.zeros_like(x)
            r[:, :, : ho * k, : wo * k] = up * x[:, :, : ho * k, : wo * k]
        return r.mul_(2), None, None


#: Use the fused L2-pool backward on ConvAgents without hooks (bit-identical, faster).
FUSED_L2POOL = True


def _fused_forward_from(access: LayerAccess, layer: str) -> Any:
    """A ``forward_from(layer, act)`` for hook-free ConvAgents that runs each L2 pool through
    :class:`_L2PoolFunction`; None when it does not apply (then the model's own is used)."""
    model = access.model
    if not FUSED_L2POOL or not access._fast_layer(layer) or not hasattr(model, "config"):
        return None
    order: list[str] = []
    for spec in model.config.convs:
        order.append(spec.name)
        if spec.pool > 1:
            order.append(f"pool_{spec.name}")
    names = list(model.layer_names)
    if layer not in order or [o for o in order if not o.startswith("pool_")] != names:
        return None
    rest = order[order.index(layer) + 1 :]
    try:
        modules = [getattr(model, name) for name in rest]
        dense, policy, value = model.dense, model.policy, model.value
    except AttributeError:
        return None
    from torch.nn.modules import module as _module

    if any(
        getattr(_module, g, None) for g in ("_global_forward_hooks", "_global_forward_pre_hooks")
    ):
        return None
    for top in (*modules, dense, policy, value):
        for m in top.modules():
            if m._forward_hooks or m._forward_pre_hooks:
                return None

    def forward_from(from_layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = rest.index(from_layer) + 1 if from_layer in rest else 0
        for m in modules[start:]:
            x = _L2PoolFunction.apply(x, m.size, m.eps) if type(m) is L2Pool else m(x)
        h = dense(x)
        return policy(h), value(h).squeeze(-1)

    return forward_from


def _access(agent: nn.Module | LayerAccess) -> LayerAccess:
    return agent if isinstance(agent, LayerAccess) else LayerAccess(agent)


def _shared_conv_plan(access: LayerAccess, layer: str) -> tuple[str, nn.Conv2d] | None:
    """(next layer, its conv) when ``layer``'s activation feeds a ConvAgent conv block
    directly (no pool in between, no hooks on the block), else None.

    Then conv(alpha * a) = alpha * conv(a) exactly, so one conv per frame serves every alpha
    forward, and one transposed conv of the alpha-summed gradient serves them backward.
    """
    model = access.model
    if not access._fast_layer(layer) or not hasattr(model, "config"):
        return None
    names = list(model.layer_names)
    i = names.index(layer)
    if i + 1 >= len(names) or model.config.convs[i].pool > 1:
        return None
    nxt = names[i + 1]
    block = getattr(model, nxt, None)
    if (
        not isinstance(block, nn.Sequential)
        or len(block) != 2
        or not isinstance(block[0], nn.Conv2d)
        or not isinstance(block[1], nn.ReLU)
    ):
        return None
    from torch.nn.modules import module as _module

    if any(
        getattr(_module, g, None) for g in ("_global_forward_hooks", "_global_forward_pre_hooks")
    ):
        return None
    for m in block.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return None
    return nxt, block[0]


def _chunk_gradients(
    access: LayerAccess,
    layer: str,
    spec: Any,
    a: torch.Tensor,
    alphas: torch.Tensor,
    plan: tuple[str, nn.Conv2d] | None,
    fused: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over alphas of dF/da at alpha * a, and F(a), for one chunk of frames."""
    forward_from = fused or access.forward_from
    steps = alphas.shape[0]
    b, c, h, w = a.shape
    with torch.enable_grad():
        if plan is None:
            scaled = (alphas * a.unsqueeze(0)).reshape(steps * b, c, h, w)
            scaled = scaled.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            logits, value = forward_from(layer, scaled)
            y = spec(logits, value)
            (grad,) = torch.autograd.grad(y.sum(), scaled)
            gsum = grad.view(steps, b, c, h, w).sum(0)
        else:
            nxt, conv = plan
            with torch.no_grad():
                u = F.conv2d(
                    a, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups
                )
                bias = conv.bias if conv.bias is not None else torch.zeros(u.shape[1])
                pre = alphas * u.unsqueeze(0) + bias.view(1, 1, -1, 1, 1)
            pre = (
                pre.reshape(steps * b, *u.shape[1:])
                .contiguous(memory_format=torch.channels_last)
                .requires_grad_(True)
            )
            logits, value = forward_from(nxt, torch.relu(pre))
            y = spec(logits, value)
            (grad,) = torch.autograd.grad(y.sum(), pre)
            with torch.no_grad():
                g = grad.view(steps, b, *u.shape[1:]).sum(0)
                gsum = torch.nn.grad.conv2d_input(
                    a.shape, conv.weight, g, conv.stride, conv.padding, conv.dilation, conv.groups
                )
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

    ``agent``: a ConvAgent, any agent module, or a :class:`LayerAccess` (to keep edits).
    ``obs``: uint8 ``(N, 64, 64, 3)``. ``output``: ``"value"``, ``"logit:<a>"``,
    ``"group:<g>"``, ``"logprob:<a>"``. ``steps``: right-Riemann steps (alpha = 1/n ... 1);
    1 gives gradient x activation. ``batch_size``: rows (frame x alpha pairs) per forward pass,
    rounded down to whole frames (default: :func:`default_batch_size`).
    ``share_next_conv``: when the layer feeds the next conv directly (no pool: 2a of the
    article network; 1a, 2a of the compact one), run that conv once per frame for all alphas
    and back through it once for the alpha-summed gradient (conv(alpha a) = alpha conv(a)).
    The maths is identical and up to ~3x faster, but float32 rounding differs from Captum's
    arithmetic (agreement with a float64 reference is as good as the default path's, ~1e-5 to
    1e-4 of the largest attribution); the default (False) matches Captum to ~1e-7.

    >>> from rlvision_widgets.agents import build_network
    >>> obs = np.zeros((2, 64, 64, 3), np.uint8)
    >>> integrated_gradients(build_network("compact"), obs, "4a", "logit:RIGHT").output
    'logit:7'
    """
    access = _access(agent)
    spec = parse_output(output)
    layer = access.check_layer(layer)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    steps = int(steps)
    x = check_observations(obs, access._obs_size if access.fast else None)
    n = x.shape[0]
    shape = access.layer_shape(layer)
    if batch_size is None:
        batch_size = default_batch_size(shape, steps)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    frames_per_chunk = max(1, int(batch_size) // steps)

    h, w, c = shape
    attributions = np.empty((n, h, w, c), np.float32)
    activations = np.empty((n, h, w, c), np.float32)
    outputs = np.empty(n, np.float32)
    alphas = torch.linspace(1.0 / steps, 1.0, steps) if steps > 1 else torch.ones(1)
    alphas = alphas.view(steps, 1, 1, 1, 1)

    with torch.no_grad():
        zero = torch.zeros(1, c, h, w).contiguous(memory_format=torch.channels_last)
        baseline = float(spec(*access.forward_from(layer, zero))[0])

    plan = _shared_conv_plan(access, layer) if share_next_conv else None
    fused = _fused_forward_from(access, layer)
    for start in range(0, n, frames_per_chunk):
        xb = x[start : start + frames_per_chunk]
        a = access.activations_nchw(xb, layer)  # (b, C, H, W)
        b = a.shape[0]
        gsum, out = _chunk_gradients(access, layer, spec, a, alphas, plan, fused)
        with torch.no_grad():
            attr = gsum.mul_(a).div_(steps)
            attributions[start : start + b] = attr.permute(0, 2, 3, 1).numpy()
            activations[start : start + b] = a.permute(0, 2, 3, 1).numpy()
            outputs[start : start + b] = out.numpy()

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
            "shared_next_conv": plan is not None,
            "fused_l2pool": fused is not None,
            "batch_size": int(batch_size),
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
