"""Agent networks: the article's architecture (Appendix C) and a CPU-sized variant.

Both are instances of :class:`ConvAgent`, a plain stack of conv layers (each followed by ReLU),
optional L2 pooling with pool size equal to stride, and dense layers, with a policy head over
procgen's 15 actions and a value head. No residual connections, so information flows through
every layer. Each conv block is a direct child module named after the article's layer
("1a", "2a", ...), so ``model.get_submodule("2b")`` returns the block whose output is that
layer's post-ReLU activation, and :meth:`ConvAgent.forward_from` runs the rest of the network
from it.

>>> net = build_network("article")
>>> logits, value = net(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))
>>> logits.shape, value.shape
(torch.Size([2, 15]), torch.Size([2]))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..environment.actions import NUM_ACTIONS


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer: ``name`` (e.g. "2b"), output channels, kernel, stride, and the L2 pool
    (size = stride) applied after it (1 = none)."""

    name: str
    channels: int
    kernel: int
    stride: int = 1
    pool: int = 1


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild a :class:`ConvAgent` (stored in checkpoint JSON).

    >>> cfg = compact_config()
    >>> [c.name for c in cfg.convs], cfg.object_layer
    (['1a', '2a', '2b', '3a', '4a'], '2b')
    >>> NetworkConfig.from_dict(cfg.to_dict()) == cfg     # JSON round trip
    True
    """

    name: str
    convs: tuple[ConvSpec, ...]
    dense: tuple[int, ...] = (256, 512)
    num_actions: int = NUM_ACTIONS
    input_size: int = 64
    object_layer: str = "2b"
    l2_pool_eps: float = 1e-8

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["convs"] = [asdict(c) for c in self.convs]
        d["dense"] = list(self.dense)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        try:
            convs = tuple(ConvSpec(**c) for c in d["convs"])
            rest = {k: v for k, v in d.items() if k != "convs"}
            rest["dense"] = tuple(rest.get("dense", (256, 512)))
            return cls(convs=convs, **rest)
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"invalid network config {d!r}: {exc}. Expected keys name, convs "
                "(list of {name, channels, kernel, stride, pool}), dense, num_actions."
            ) from exc


def article_config(
    widths: tuple[int, ...] = (16, 32, 32, 32, 32), kernels: tuple[int, ...] = (7, 5, 5, 5, 5)
) -> NetworkConfig:
    """Appendix C: 1a (7x7, 16) pool, 2a, 2b (5x5, 32) pool, 3a pool, 4a pool, dense 256, 512.

    >>> cfg = article_config()
    >>> [(c.name, c.channels, c.kernel) for c in cfg.convs][:3]
    [('1a', 16, 7), ('2a', 32, 5), ('2b', 32, 5)]
    >>> build_network(cfg).layer_shapes["2b"]          # (H, W, C) of the object layer
    (32, 32, 32)
    """
    names, pools = ("1a", "2a", "2b", "3a", "4a"), (2, 1, 2, 2, 2)
    return NetworkConfig(
        name="article",
        convs=tuple(ConvSpec(n, w, k, 1, p) for n, w, k, p in zip(names, widths, kernels, pools)),
    )


def compact_config(width: int = 32) -> NetworkConfig:
    """CPU-sized network with the article's principles (see docs/networks.md).

    1a: 4x4 conv, stride 4 (64 -> 16x16, patch = one quarter tile); 2a, 2b: 3x3 convs at 16x16
    (the object layer); L2 pool -> 8x8; 3a: 3x3 conv; L2 pool -> 4x4; 4a: 3x3 conv; dense 256, 512.

    >>> compact_config().convs[0]
    ConvSpec(name='1a', channels=32, kernel=4, stride=4, pool=1)
    >>> build_network(compact_config(width=16)).layer_shapes["2b"]
    (16, 16, 16)
    """
    return NetworkConfig(
        name="compact",
        convs=(
            ConvSpec("1a", width, 4, 4, 1),
            ConvSpec("2a", width, 3, 1, 1),
            ConvSpec("2b", width, 3, 1, 2),
            ConvSpec("3a", width, 3, 1, 2),
            ConvSpec("4a", width, 3, 1, 1),
        ),
    )


NETWORKS = {"article": article_config, "compact": compact_config}


class _FusedL2PoolFunction(torch.autograd.Function):
    """sqrt(avg_pool(x^2) * k^2 + eps) with a fused backward.

    The forward runs :class:`L2Pool`'s exact ops. The backward computes (g / p) * x, spread over
    each window, in two passes over the input instead of autograd's six (and a zero fill).
    Autograd's chain computes 2 * ((g / (2 p)) * x); scaling by 2 commutes with float rounding
    (outside the subnormal range), so for pool sizes that are powers of two the two agree
    bit for bit, and to float rounding otherwise.
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
        d = g / p
        n, c, h, w = x.shape
        ho, wo = d.shape[2], d.shape[3]
        xp, dp = x.permute(0, 2, 3, 1), d.permute(0, 2, 3, 1)
        if (ho * k, wo * k) == (h, w) and xp.is_contiguous() and dp.is_contiguous():
            # channels_last: broadcast each pooled gradient over its k x k window in one pass
            r = dp[:, :, None, :, None, :] * xp.view(n, ho, k, wo, k, c)
            return r.view(n, h, w, c).permute(0, 3, 1, 2), None, None
        up = d.repeat_interleave(k, 2).repeat_interleave(k, 3)
        r = torch.zeros_like(x)
        r[:, :, : ho * k, : wo * k] = up * x[:, :, : ho * k, : wo * k]
        return r, None, None


class L2Pool(nn.Module):
    """L2 pooling with pool size = stride: sqrt(sum of squares over each window + eps).

    ``fused``: when a gradient is needed (float32, no autocast), use a fused backward that
    gives the same gradient as autograd's chain in two passes instead of six.

    >>> pool = L2Pool(2)
    >>> pool(torch.full((1, 1, 2, 2), 3.0)).item()
    6.0
    """

    def __init__(self, size: int, eps: float = 1e-8, fused: bool = False):
        super().__init__()
        self.size, self.eps, self.fused = size, eps, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.size
        if (
            self.fused
            and x.requires_grad
            and torch.is_grad_enabled()
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled(x.device.type)
        ):
            return _FusedL2PoolFunction.apply(x, k, self.eps)
        return torch.sqrt(F.avg_pool2d(x * x, k, k) * (k * k) + self.eps)

    def extra_repr(self) -> str:
        return f"size={self.size}, fused={self.fused}"


class ConvBlock(nn.Sequential):
    """Conv + ReLU; the block's output is the layer's post-ReLU activation."""

    def __init__(self, cin: int, spec: ConvSpec):
        pad = (spec.kernel - 1) // 2 if spec.stride == 1 else 0
        super().__init__(nn.Conv2d(cin, spec.channels, spec.kernel, spec.stride, pad), nn.ReLU())

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]


class ConvAgent(nn.Module):
    """Maps a uint8 observation batch (N, 64, 64, 3) to (policy logits (N, A), value (N,)).

    Children, in order: conv blocks named by layer ("1a", ...), each optionally followed by an
    L2 pool named "pool_<layer>", then "dense" and the heads "policy" and "value".

    The network owns its fast paths: :meth:`forward_to` / :meth:`forward_from` run it up to /
    on from a named layer (NCHW activations, channels_last memory), so analysis code never
    rebuilds its layer order; ``fused_l2pool`` (default True, settable) makes each L2 pool use
    a fused backward (same gradients, fewer passes; see :class:`L2Pool`). Every child is
    called as a module, so forward hooks on any of them apply on every path.

    >>> net = ConvAgent(compact_config())
    >>> obs = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    >>> act = net.forward_to(obs, "2b")                  # post-ReLU activation, NCHW
    >>> tuple(act.shape)
    (2, 32, 16, 16)
    >>> logits, value = net.forward_from("2b", act)      # the rest of the network
    >>> torch.allclose(logits, net(obs)[0])
    True
    """

    def __init__(self, config: NetworkConfig, *, fused_l2pool: bool = True):
        super().__init__()
        self.config = config
        cin, size = 3, config.input_size
        self._order: list[str] = []
        self.layer_shapes: dict[str, tuple[int, int, int]] = {}
        for spec in config.convs:
            self.add_module(spec.name, ConvBlock(cin, spec))
            self._order.append(spec.name)
            if spec.stride > 1:
                if (size - spec.kernel) % spec.stride:
                    raise ValueError(f"layer {spec.name}: kernel/stride do not tile {size}px input")
                size = (size - spec.kernel) // spec.stride + 1
            self.layer_shapes[spec.name] = (size, size, spec.channels)
            if spec.pool > 1:
                pool = L2Pool(spec.pool, config.l2_pool_eps, fused=bool(fused_l2pool))
                self.add_module(f"pool_{spec.name}", pool)
                self._order.append(f"pool_{spec.name}")
                size //= spec.pool
            cin = spec.channels
        dense: list[nn.Module] = [nn.Flatten()]
        din = cin * size * size
        for width in config.dense:
            dense += [nn.Linear(din, width), nn.ReLU()]
            din = width
        self.dense = nn.Sequential(*dense)
        self.policy = nn.Linear(din, config.num_actions)
        self.value = nn.Linear(din, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight, gain=2**0.5)
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)
        nn.init.orthogonal_(self.value.weight, gain=1.0)

    @property
    def fused_l2pool(self) -> bool:
        """Whether the L2 pools use their fused backward (set to switch every pool)."""
        return all(m.fused for m in self.modules() if isinstance(m, L2Pool))

    @fused_l2pool.setter
    def fused_l2pool(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, L2Pool):
                m.fused = bool(value)

    @property
    def layer_names(self) -> list[str]:
        """Names of the conv layers whose post-ReLU activations can be analysed."""
        return [s.name for s in self.config.convs]

    @staticmethod
    def preprocess(obs: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in [0, 1] (channels_last memory)."""
        if obs.dtype != torch.uint8:
            raise TypeError(f"observations must be uint8 (N, 64, 64, 3), got dtype {obs.dtype}")
        if obs.dim() != 4 or obs.shape[-1] != 3:
            raise ValueError(f"observations must have shape (N, H, W, 3), got {tuple(obs.shape)}")
        return (
            obs.permute(0, 3, 1, 2)
            .float()
            .div_(255.0)
            .contiguous(memory_format=torch.channels_last)
        )

    def _run(self, x: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        for name in self._order[start:]:
            x = getattr(self, name)(x)
        h = self.dense(x)
        return self.policy(h), self.value(h).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(self.preprocess(obs), 0)

    def forward_to(self, obs: torch.Tensor, layer: str) -> torch.Tensor:
        """Post-ReLU activation of ``layer`` (N, C, H, W) for uint8 observations (N, 64, 64, 3);
        the rest of the network is not run."""
        self._check_layer(layer)
        x = self.preprocess(obs)
        for name in self._order:
            x = getattr(self, name)(x)
            if name == layer:
                return x
        raise AssertionError("unreachable")

    def forward_from(
        self, layer: str, activation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network from ``layer``'s post-ReLU activation (N, C, H, W) to (logits, value).

        Gradients flow back to ``activation`` (channels_last memory is fastest on the CPU).
        """
        self._check_layer(layer)
        return self._run(activation, self._order.index(layer) + 1)

    def _check_layer(self, layer: str) -> None:
        if layer not in self.layer_names:
            raise KeyError(f"unknown layer {layer!r}; valid layers: {self.layer_names}")

    def next_conv(self, layer: str) -> nn.Conv2d | None:
        """The conv that consumes ``layer``'s activation (through any pool), or None if dense."""
        names = self.layer_names
        self._check_layer(layer)
        i = names.index(layer)
        return getattr(self, names[i + 1]).conv if i + 1 < len(names) else None


def build_network(name: str | NetworkConfig = "compact", **kwargs: Any) -> ConvAgent:
    """Build a fresh network by name ("article", "compact") or from a :class:`NetworkConfig`.

    Keyword arguments go to the config function (:func:`compact_config`, :func:`article_config`).

    >>> build_network("compact").layer_names
    ['1a', '2a', '2b', '3a', '4a']
    >>> build_network("compact", width=16).layer_shapes["1a"]
    (16, 16, 16)
    """
    if isinstance(name, NetworkConfig):
        return ConvAgent(name)
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return ConvAgent(NETWORKS[name](**kwargs))


def multiply_adds(config: NetworkConfig) -> int:
    """Multiply-accumulates per 64x64 frame for one forward pass (convs + dense + heads)."""
    total, cin, size = 0, 3, config.input_size
    for s in config.convs:
        if s.stride > 1:
            size = (size - s.kernel) // s.stride + 1
        total += size * size * s.channels * s.kernel * s.kernel * cin
        size //= s.pool
        cin = s.channels
    din = cin * size * size
    for w in config.dense:
        total += din * w
        din = w
    return total + din * (config.num_actions + 1)
