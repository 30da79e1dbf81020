"""Analysis engines: layer access, hidden-layer integrated gradients, attribution NMF,
dataset-example feature visualization, display maths, bookmarks, feature identification, display
labels and caching.

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
:mod:`.bookmarks`, :mod:`.features`, :mod:`.labels`, :mod:`.cache`; :mod:`.settings` (the one
set of NMF settings), :mod:`.pipeline` (:func:`analyze`: the whole analysis -> ``Analysis``) and
:mod:`.interpretability` (an automatic interpretability score against the engine's objects).
"""

from .._compat import moved_names
from .bookmarks import (
    Bookmark,
    FailedEpisode,
    advantage_bookmarks,
    episode_ids,
    failed_episodes,
    value_spikes,
)
from .cache import AnalysisCache, CacheEntryError, cached_attribution, model_hash
from .counterfactual import Comparison, Rollout, compare, policy_kl, rollout
from .display import (
    attribution_to_rgba,
    blur_disc,
    blur_gaussian,
    brightness_to_opacity,
    feature_colors,
    feature_colors_hex,
    frame_scale,
    trajectory_scale,
    upsample,
)
from .featureviz import (
    FeatureVisualizer,
    Mosaic,
    ReceptiveField,
    Thumbnail,
    feature_maps,
    legend_thumbnails,
    receptive_field,
    reuse_cap,
)
from .integrated_gradients import Attribution, input_gradients, integrated_gradients
from .interpretability import InterpretabilityScore, interpretability_score
from .labels import CAUSE_LABELS, CLASS_LABELS, HAZARD_CLASSES, LABELS, label
from .layers import EditHandle, LayerAccess, get_layer
from .nmf import AttributionNMF, NMFFileError, Reduction
from .outputs import OutputSpec, parse_output, valid_outputs
from .pipeline import Analysis, AnalysisFileError, analyze
from .settings import IG_STEPS, NMF_SETTINGS, make_nmf

__all__ = [
    "IG_STEPS",
    "NMF_SETTINGS",
    "Analysis",
    "AnalysisFileError",
    "CAUSE_LABELS",
    "CLASS_LABELS",
    "HAZARD_CLASSES",
    "LABELS",
    "AnalysisCache",
    "Attribution",
    "AttributionNMF",
    "CacheEntryError",
    "Bookmark",
    "Comparison",
    "Rollout",
    "EditHandle",
    "FailedEpisode",
    "FeatureVisualizer",
    "InterpretabilityScore",
    "LayerAccess",
    "Mosaic",
    "NMFFileError",
    "OutputSpec",
    "ReceptiveField",
    "Reduction",
    "Thumbnail",
    "advantage_bookmarks",
    "analyze",
    "attribution_to_rgba",
    "blur_disc",
    "blur_gaussian",
    "brightness_to_opacity",
    "cached_attribution",
    "compare",
    "policy_kl",
    "rollout",
    "episode_ids",
    "failed_episodes",
    "feature_colors",
    "feature_colors_hex",
    "feature_maps",
    "frame_scale",
    "get_layer",
    "input_gradients",
    "integrated_gradients",
    "interpretability_score",
    "label",
    "legend_thumbnails",
    "make_nmf",
    "model_hash",
    "parse_output",
    "receptive_field",
    "reuse_cap",
    "trajectory_scale",
    "upsample",
    "valid_outputs",
    "value_spikes",
]

__getattr__ = moved_names(
    __name__,
    {
        "Corpus": "rollouts.corpus:Corpus",
        "array_hash": "files:array_hash",
        "collect_corpus": "rollouts.corpus:collect_corpus",
        "corpus_from_trajectories": "rollouts.corpus:corpus_from_trajectories",
        "gae_advantages": "rollouts.gae:gae_advantages",
    },
)
