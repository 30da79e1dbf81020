"""Score images with objectives, and compare optimized images with the best real frames.

Images are shown to the agent exactly as observations are (uint8, no transforms), through
:class:`~rlvision_widgets.analysis.layers.LayerAccess`.

>>> from rlvision_widgets.agents import build_network
>>> from rlvision_widgets.analysis.optvis.objectives import Channel
>>> frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
>>> objective_values(build_network("compact"), [Channel("2b", 0), Channel("2b", 1)], frames).shape
(2, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layers import LayerAccess
from .objectives import Caricature, Objective

__all__ = ["DatasetComparison", "compare_with_dataset", "objective_values"]


def objective_values(
    agent: nn.Module, objectives: Sequence[Objective], frames: Any, *, batch: int = 256
) -> np.ndarray:
    """``(K, N)``: objective ``k``'s value (mean over the positions it covers) on frame ``n``.

    >>> from rlvision_widgets.agents import build_network
    >>> from rlvision_widgets.analysis.optvis.objectives import Neuron
    >>> v = objective_values(build_network("compact"), [Neuron("2b", 0)],
    ...                      np.zeros((3, 64, 64, 3), np.uint8))
    >>> v.shape
    (1, 3)
    """
    access = LayerAccess(agent)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"frames must be uint8 (N, 64, 64, 3), got {frames.dtype} {frames.shape}")
    _bind_caricatures(access, objectives)
    layers = list(dict.fromkeys(o.layer for o in objectives))
    out = np.empty((len(objectives), len(frames)), np.float64)
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        acts = {layer: access.activations_nchw(chunk, layer) for layer in layers}
        with torch.no_grad():
            for k, o in enumerate(objectives):
                out[k, start : start + len(chunk)] = o(acts[o.layer]).double().numpy()
    return out


def _bind_caricatures(access: LayerAccess, objectives: Sequence[Objective]) -> None:
    for o in objectives:
        if isinstance(o, Caricature):  # always this agent's activations of the frame
            o.bind(access.activations_nchw(o.frame[None], o.layer))


@dataclass
class DatasetComparison:
    """Per objective: ``optimized`` value of the optimized image, ``best_real`` value over the
    frames, ``best_index`` (which frame), ``ratio`` = optimized / best_real (``inf`` when the
    best real value is <= 0 and the optimized one is positive, else ``nan``), ``labels``.

    >>> c = DatasetComparison(["a"], np.array([2.0]), np.array([1.0]), np.array([7]))
    >>> c.ratio.tolist(), c.all_reached
    ([2.0], True)
    """

    labels: list[str]
    optimized: np.ndarray
    best_real: np.ndarray
    best_index: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """optimized / best_real per objective."""
        best, opt = self.best_real, self.optimized
        safe = np.where(best > 0, best, 1.0)
        return np.where(best > 0, opt / safe, np.where(opt > 0, np.inf, np.nan))

    @property
    def all_reached(self) -> bool:
        """True when every optimized value is at least the best real frame's."""
        return bool((self.optimized >= self.best_real).all())

    def table(self) -> str:
        """A markdown table: objective, optimized, best real frame, ratio.

        >>> print(DatasetComparison(["a"], np.array([2.0]), np.array([1.0]),
        ...                         np.array([3])).table().splitlines()[2])
        | a | 2.000 | 1.000 (frame 3) | 2.00 |
        """
        rows = ["| objective | optimized | best real frame | ratio |", "| --- | --- | --- | --- |"]
        for lab, o, b, i, r in zip(
            self.labels, self.optimized, self.best_real, self.best_index, self.ratio
        ):
            rows.append(f"| {lab} | {o:.3f} | {b:.3f} (frame {int(i)}) | {r:.2f} |")
        return "\n".join(rows)


def compare_with_dataset(
    agent: nn.Module, objectives: Sequence[Objective], images: Any, frames: Any
) -> DatasetComparison:
    """Value of each optimized image (``images[k]`` for ``objectives[k]``, uint8) against the
    best of ``frames`` for that objective.

    >>> from rlvision_widgets.agents import build_network
    >>> from rlvision_widgets.analysis.optvis.objectives import Channel
    >>> frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    >>> net = build_network("compact")
    >>> c = compare_with_dataset(net, [Channel("2b", 0)], frames[:1], frames)
    >>> bool(c.best_real[0] >= c.optimized[0])         # a frame of the corpus: ratio <= 1
    True
    """
    images = np.asarray(images)
    if len(images) != len(objectives):
        raise ValueError(
            f"need one image per objective: {len(images)} images, {len(objectives)} objectives"
        )
    opt = objective_values(agent, objectives, images)
    real = objective_values(agent, objectives, frames)
    return DatasetComparison(
        labels=[o.label for o in objectives],
        optimized=np.diag(opt).copy(),
        best_real=real.max(1),
        best_index=real.argmax(1),
    )
