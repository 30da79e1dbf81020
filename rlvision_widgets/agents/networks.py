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


class L2Pool(nn.Module):
    """L2 pooling with pool size = stride: sqrt(sum of squares over each window + eps)."""

    def __init__(self, size: int, eps: float = 1e-8):
        super().__init__()
        self.size, self.eps = size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.size
        return torch.sqrt(F.avg_pool2d(x * x, k, k) * (k * k) + self.eps)

    def extra_repr(self) -> str:
        return f"size={self.size}"


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

    >>> net = ConvAgent(compact_config())
    >>> obs = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    >>> act = net.forward_to(obs, "2b")                  # post-ReLU activation, NCHW
    >>> tuple(act.shape)
    (2, 32, 16, 16)
    >>> logits, value = net.forward_from("2b", act)      # the rest of the network
    >>> torch.allclose(logits, net(obs)[0])
    True
    """

    def __init__(self, config: NetworkConfig):
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
                self.add_module(f"pool_{spec.name}", L2Pool(spec.pool, config.l2_pool_eps))
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
        """Post-ReLU activation of ``layer`` (N, C, H, W)."""
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
        """Run the network from ``layer``'s post-ReLU activation (N, C, H, W) to (logits, value)."""
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
