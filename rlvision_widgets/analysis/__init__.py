"""Analysis engines: layer access, hidden-layer integrated gradients, attribution NMF,
dataset-example feature visualization, display maths, bookmarks, caching and the corpus.

Everything works on plain numpy arrays and any torch agent (no Jupyter):

>>> import numpy as np
>>> from rlvision_widgets.agents import build_network
>>> from rlvision_widgets.analysis import AttributionNMF, integrated_gradients
>>> net = build_network("compact")
>>> obs = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
>>> attr = integrated_gradients(net, obs, "2b", output="value", steps=10)
>>> nmf = AttributionNMF(n_components=4, seed=0).fit(attr.attributions)
>>> reduction = nmf.reduce(attr.attributions)
>>> reduction.features.shape
(8, 16, 16, 4)

Modules (one method per module, as in Captum): :mod:`.layers`, :mod:`.outputs`,
:mod:`.integrated_gradients`, :mod:`.nmf`, :mod:`.featureviz`, :mod:`.display`,
:mod:`.bookmarks`, :mod:`.cache`, :mod:`.corpus`.
"""
from .bookmarks import (Bookmark, FailedEpisode, advantage_bookmarks, episode_ids,
                        failed_episodes, gae_advantages, value_spikes)
from .cache import AnalysisCache, array_hash, cached_attribution, model_hash
from .corpus import Corpus, collect_corpus, corpus_from_trajectories
from .display import (attribution_to_rgba, blur_disc, blur_gaussian, brightness_to_opacity,
                      feature_colors, feature_colors_hex, frame_scale, trajectory_scale, upsample)
from .featureviz import (FeatureVisualizer, Mosaic, ReceptiveField, Thumbnail, feature_maps,
                         legend_thumbnails, receptive_field, reuse_cap)
from .integrated_gradients import Attribution, input_gradients, integrated_gradients
from .layers import EditHandle, LayerAccess, get_layer
from .nmf import AttributionNMF, Reduction
from .outputs import OutputSpec, parse_output, valid_outputs

__all__ = [
    "AnalysisCache", "Attribution", "AttributionNMF", "Bookmark", "Corpus", "EditHandle",
    "FailedEpisode", "FeatureVisualizer", "LayerAccess", "Mosaic", "OutputSpec", "ReceptiveField",
    "Reduction", "Thumbnail", "advantage_bookmarks", "array_hash", "attribution_to_rgba",
    "blur_disc", "blur_gaussian", "brightness_to_opacity", "cached_attribution",
    "collect_corpus", "corpus_from_trajectories", "episode_ids", "failed_episodes",
    "feature_colors", "feature_colors_hex", "feature_maps", "frame_scale", "gae_advantages",
    "get_layer", "input_gradients", "integrated_gradients", "legend_thumbnails", "model_hash",
    "parse_output", "receptive_field", "reuse_cap", "trajectory_scale", "upsample",
    "valid_outputs", "value_spikes",
]
