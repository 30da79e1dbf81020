"""Optimization-based feature visualization (the article's section "Feature visualization").

Gradient ascent on the input image for any layer and objective of an agent: a channel, a
neuron at a position, an NMF direction, a caricature of a real frame; several objectives in
one batch. The decorrelated Fourier parameterization uses CoinRun's own colour covariance and
amplitude spectrum (:mod:`.statistics`, estimated from frames the shipped agent saw), with
transformation robustness (jitter, scale, rotation; the article's 2 px / 8 px jitter), an
optional L2 penalty on first-layer activations, and MACO (Fel et al. 2023: phase-only
optimization at CoinRun's magnitude spectrum) as the newer method; any method can start from
real frames (feature accentuation). :func:`compare_with_dataset` checks an optimized image
against the best real frame of a corpus; :func:`nearest_real_patches`, :func:`objectness` and
:func:`appearance_statistics` measure how object-like the result is. Modules: statistics,
param, maco, transforms, objectives, network, render (the loop), evaluate, quantify. See
docs/feature-visualization.md.

>>> from rlvision_widgets.agents import load_agent
>>> r = optimize(load_agent("coinrun"), ["2b:0", Neuron("2b", 1)], steps=3, progress=False)
>>> r.labels
['2b:0', '2b:1@centre']
"""

from .evaluate import DatasetComparison, compare_with_dataset, objective_values
from .maco import MacoImage
from .network import ImageNetwork
from .objectives import (
    Caricature,
    Channel,
    Direction,
    Neuron,
    Objective,
    nmf_objectives,
    parse_objective,
)
from .param import FourierImage, PixelImage, frames_to_tensor, images_to_frames
from .quantify import (
    OBJECTS,
    NearestPatches,
    Objectness,
    appearance_statistics,
    frame_class_maps,
    nearest_real_patches,
    objective_maps,
    objectness,
    patch_distances,
)
from .render import METHODS, OptVisResult, make_image, optimize
from .statistics import ImageStatistics, coinrun_statistics, estimate_statistics
from .transforms import (
    Jitter,
    RandomRotate,
    RandomScale,
    Transform,
    Transforms,
    article_transforms,
)

__all__ = [
    "METHODS",
    "OBJECTS",
    "NearestPatches",
    "Objectness",
    "appearance_statistics",
    "frame_class_maps",
    "nearest_real_patches",
    "objective_maps",
    "objectness",
    "patch_distances",
    "Caricature",
    "Channel",
    "DatasetComparison",
    "Direction",
    "FourierImage",
    "ImageNetwork",
    "ImageStatistics",
    "Jitter",
    "MacoImage",
    "Neuron",
    "Objective",
    "OptVisResult",
    "PixelImage",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "Transforms",
    "article_transforms",
    "coinrun_statistics",
    "compare_with_dataset",
    "estimate_statistics",
    "frames_to_tensor",
    "images_to_frames",
    "make_image",
    "nmf_objectives",
    "objective_values",
    "optimize",
    "parse_objective",
]
