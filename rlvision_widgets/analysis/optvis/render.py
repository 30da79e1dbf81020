"""The optimization loop: several objectives, one image each, optimized in one batch.

Each step: the parameterization makes the images, the transforms jitter / scale / rotate them
(different draws per image; the last ``steps // 8`` "polishing" steps skip them, so the
final image is tuned to the exact input the agent will see), the agent runs on them up to
the deepest layer needed, and Adam ascends the sum of the objectives (minus the optional L2
penalty on the first layer's activations, the article's remedy for extremal colours).
Seeded: the start and every transform draw come from ``seed``, so a run repeats exactly on
the same machine.

>>> from rlvision_widgets.agents import load_agent
>>> r = optimize(load_agent("coinrun"), ["2b:0", "2b:1"], steps=4, progress=False)
>>> r.images.shape, r.values.shape, r.history.shape
((2, 64, 64, 3), (2,), (4, 2))
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ...agents.registry import resolve_agent
from .evaluate import DatasetComparison, compare_with_dataset, objective_values
from .maco import MacoImage
from .network import ImageNetwork
from .objectives import Caricature, Objective, parse_objective
from .param import FourierImage, PixelImage, images_to_frames
from .statistics import ImageStatistics, coinrun_statistics
from .transforms import Transform, Transforms, article_transforms

__all__ = ["METHODS", "OptVisResult", "make_image", "optimize"]

METHODS = ("fourier", "pixel", "maco")


@dataclass
class OptVisResult:
    """What :func:`optimize` returns.

    ``images`` (K, 64, 64, 3) uint8, one per objective; ``values`` (K,): each objective on its
    image shown to the agent as an observation (uint8, no transforms); ``history`` (steps, K):
    the objective on the images the network saw at every step (transformed, except in the
    polishing steps); ``labels``; ``settings`` (method,
    steps, seed, lr, transforms, l2_penalty, ...); ``seconds`` of optimization.

    >>> r = OptVisResult(np.zeros((1, 64, 64, 3), np.uint8), np.ones(1), np.ones((2, 1)), ["x"])
    >>> r.labels, r.history.shape
    (['x'], (2, 1))
    """

    images: np.ndarray
    values: np.ndarray
    history: np.ndarray
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    objectives: list[Objective] = field(default_factory=list, repr=False)

    def compare(self, agent: nn.Module | str | None, frames: Any) -> DatasetComparison:
        """Compare each image with the best of ``frames`` for its objective (requirement: the
        optimized image reaches at least the best real frame's value).

        >>> from rlvision_widgets.agents import load_agent
        >>> agent = load_agent("coinrun")
        >>> r = optimize(agent, ["2b:0"], steps=2, progress=False)
        >>> r.compare(agent, np.zeros((2, 64, 64, 3), np.uint8)).labels
        ['2b:0']
        """
        return compare_with_dataset(resolve_agent(agent), self.objectives, self.images, frames)


def make_image(
    method: str,
    n: int,
    *,
    seed: int = 0,
    init: Any = None,
    stats: ImageStatistics | None = None,
) -> nn.Module:
    """The parameterization ``method`` ("fourier", "pixel", "maco") for ``n`` images, from
    random (seeded) or from real frames ``init`` (N, 64, 64, 3) uint8 (feature accentuation).

    >>> type(make_image("maco", 2)).__name__
    'MacoImage'
    """
    stats = stats or coinrun_statistics()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    cls = {"fourier": FourierImage, "pixel": PixelImage, "maco": MacoImage}[method]
    if init is not None:
        frames = np.asarray(init)
        if frames.ndim == 3:
            frames = np.repeat(frames[None], n, 0)
        if frames.shape[0] != n:
            raise ValueError(f"init needs one frame per objective ({n}), got {frames.shape[0]}")
        return cls.from_frames(frames, stats=stats)
    return cls(n, stats=stats, seed=seed)


def _transforms(spec: Any, layers: list[str], first: str) -> Transforms:
    if spec is None or spec == "none":
        return Transforms([])
    if spec == "article":  # 2 px when every objective is at the first layer, else 8 px
        deeper = [layer for layer in layers if layer != first]
        return article_transforms(deeper[0] if deeper else first, first_layer=first)
    if isinstance(spec, Transforms):
        return spec
    if isinstance(spec, Transform):
        return Transforms([spec])
    if isinstance(spec, (list, tuple)):
        return Transforms(list(spec))
    raise ValueError(
        f"transforms must be 'article', 'none'/None, a Transforms or a list of Transform, "
        f"got {spec!r}"
    )


def optimize(
    agent: nn.Module | str | os.PathLike | None,
    objectives: Objective | str | Sequence[Objective | str],
    *,
    steps: int = 256,
    seed: int = 0,
    size: int = 64,
    lr: float = 0.05,
    method: str = "fourier",
    transforms: Any = "article",
    l2_penalty: float = 0.0,
    init: Any = None,
    redirect_relu: bool = True,
    polish_steps: int | None = None,
    progress: bool = True,
) -> OptVisResult:
    """Optimize one image per objective, all in one batch; see the module docstring.

    ``agent``: a module, shipped agent name or checkpoint path (None: the shipped "coinrun").
    ``objectives``: :class:`~.objectives.Objective` s or strings such as ``"2b:5"``.
    ``method``: "fourier" (decorrelated, CoinRun colour and spectrum), "pixel", or "maco"
    (phase only, CoinRun magnitude). ``transforms``: "article" (jitter 2 px at the first
    layer, 8 px deeper), None, or a list of transforms. ``l2_penalty``: weight of the mean
    squared first-layer activation. ``init``: start from real frames (one, or one per
    objective) instead of noise. ``redirect_relu``: Lucid's redirected ReLU gradient on the
    steps where some objective is zero (a unit dead on the start image still gets a
    gradient; values are unchanged). ``polish_steps``: the last steps run without
    transforms, so the final image (shown to the agent as it is) is tuned to the exact
    input; default ``steps // 8``, 0 for transforms throughout (Lucid's and the article's
    loop). ``size``: the agent's input size. Returns an :class:`OptVisResult`.

    >>> from rlvision_widgets.agents import load_agent
    >>> from rlvision_widgets.analysis.optvis import Channel
    >>> r = optimize(load_agent("coinrun"), [Channel("2b", 3)], steps=256)  # doctest: +SKIP
    >>> r.values                                                           # doctest: +SKIP
    """
    model = resolve_agent(agent)
    net = ImageNetwork(model)
    objs = [
        parse_objective(o)
        for o in ([objectives] if isinstance(objectives, (str, Objective)) else list(objectives))
    ]
    if not objs:
        raise ValueError("give at least one objective, e.g. optimize(agent, ['2b:0'])")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not float(lr) > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if float(l2_penalty) < 0:
        raise ValueError(f"l2_penalty must be >= 0, got {l2_penalty!r}")
    if net.input_shape[:2] != (size, size):
        raise ValueError(
            f"size {size} does not match the agent's {net.input_shape[0]}x{net.input_shape[1]} "
            "observations; feature visualization runs at the agent's input size"
        )
    stats = coinrun_statistics()
    if stats.size != size:
        raise ValueError(f"the shipped image statistics are for {stats.size}px images, not {size}")
    for o in objs:
        try:
            net.check_layer(o.layer)
        except KeyError as e:
            raise ValueError(f"objective {o!r}: {e.args[0]}") from None
        if isinstance(o, Caricature):  # the reference frame's activations on this agent
            o.bind(net.access.activations_nchw(o.frame[None], o.layer))
        o.check(net.layer_shape(o.layer))
    layers = list(dict.fromkeys(o.layer for o in objs))
    penalty = float(l2_penalty)
    run_layers = layers + ([net.first_layer] if penalty > 0 else [])
    tf = _transforms(transforms, layers, net.first_layer)
    polish = int(steps) // 8 if polish_steps is None else int(polish_steps)
    if not 0 <= polish <= int(steps):
        raise ValueError(f"polish_steps must be in 0..steps ({steps}), got {polish_steps!r}")
    linear = None
    if len(layers) == 1:
        ws = [o.weights(net.layer_shape(o.layer)) for o in objs]
        if all(w is not None for w in ws):
            linear = torch.stack(ws)

    image = make_image(method, len(objs), seed=seed, init=init, stats=stats)
    params = [p for p in image.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(lr))
    gen = torch.Generator().manual_seed(int(seed) + 1)
    history = np.empty((int(steps), len(objs)), np.float64)
    bar = tqdm(total=int(steps), desc="optvis", disable=not progress, leave=False)
    t0 = time.perf_counter()
    try:
        for step in range(int(steps)):
            x = image() if step >= int(steps) - polish else tf(image(), gen)
            # redirected ReLU only while some objective is zero (a dead unit, e.g. at start)
            redirect = redirect_relu and (step == 0 or bool((history[step - 1] <= 0).any()))
            acts = net.run(x, run_layers, redirect_relu=redirect)
            if linear is not None:  # every objective linear in one layer: one product
                vals = (acts[layers[0]] * linear).sum(dim=(1, 2, 3))
            else:
                vals = torch.stack([o(acts[o.layer][k : k + 1])[0] for k, o in enumerate(objs)])
            loss = -vals.sum()
            if penalty > 0:
                loss = loss + penalty * acts[net.first_layer].pow(2).mean(dim=(1, 2, 3)).sum()
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
            history[step] = vals.detach().double().numpy()
            bar.update(1)
            if step % 16 == 0 or step == steps - 1:
                bar.set_postfix(mean_objective=f"{history[step].mean():.3f}")
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        frames = images_to_frames(image())
    values = np.diag(objective_values(model, objs, frames)).copy()
    settings = {
        "method": method,
        "steps": int(steps),
        "seed": int(seed),
        "lr": float(lr),
        "size": int(size),
        "transforms": repr(tf),
        "l2_penalty": penalty,
        "redirect_relu": bool(redirect_relu),
        "polish_steps": polish,
        "init": None if init is None else "frames",
        "statistics": dict(stats.meta),
    }
    return OptVisResult(frames, values, history, [o.label for o in objs], settings, seconds, objs)
