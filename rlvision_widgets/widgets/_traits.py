"""Synced trait groups shared by the component widgets and the Explorer.

Each component's JS reads traits by these names, so a component rendered alone (on its own
model) and inside the Explorer (on the shared model) behave the same. Each logical array is one
typed trait (``_arrays.py``) that validates and serializes itself (raw websocket buffers); its
type in JS is in ``js/model_state.ts``.
"""

from __future__ import annotations

import traitlets as t

from ..environment.actions import ACTION_GLYPHS, ACTION_GROUPS, ACTION_NAMES, NOOP_BUTTONS
from ._arrays import ArrayTrait, AttributionMaps, MosaicTrait, PngFrames, PngTiles

_TS = ("trajectory", "step")


class NavTraits(t.HasTraits):
    """Which trajectory and step are shown."""

    trajectory = t.Int(0).tag(sync=True)
    frame = t.Int(0).tag(sync=True)

    @t.validate("trajectory")
    def _valid_trajectory(self, proposal: t.Bunch) -> int:
        v = int(proposal["value"])
        n = getattr(self, "n_trajectories", 0) or 0
        if v < 0 or (n and v >= n):
            raise t.TraitError(f"trajectory must be in [0, {max(n - 1, 0)}], got {v}")
        return v

    @t.validate("frame")
    def _valid_frame(self, proposal: t.Bunch) -> int:
        v = int(proposal["value"])
        n = getattr(self, "n_steps", 0) or 0
        if v < 0 or (n and v >= n):
            raise t.TraitError(f"frame must be in [0, {max(n - 1, 0)}], got {v}")
        return v


class TrajectoryTraits(t.HasTraits):
    """Observations and per-step series of E trajectories of T steps."""

    title = t.Unicode("").tag(sync=True)
    n_trajectories = t.Int(0).tag(sync=True)
    n_steps = t.Int(0).tag(sync=True)
    observations = PngFrames(help="observations (E, T, S, S, 3): a PNG strip per trajectory")
    values = ArrayTrait("float32", _TS, help="value estimates (E, T)")
    advantages = ArrayTrait("float32", _TS, help="advantages (E, T)")
    rewards = ArrayTrait("float32", _TS, help="rewards (E, T)")
    actions = ArrayTrait("uint8", _TS, help="actions taken (E, T)")
    firsts = ArrayTrait("uint8", _TS, help="1 where an episode starts (E, T)")
    logits = ArrayTrait("float32", (*_TS, "action"), help="policy logits (E, T, A)")
    action_names = t.List(t.Unicode(), default_value=list(ACTION_NAMES)).tag(sync=True)
    action_glyphs = t.List(t.Unicode(), default_value=list(ACTION_GLYPHS)).tag(sync=True)
    action_groups = t.Dict(default_value={k: list(v) for k, v in ACTION_GROUPS.items()}).tag(
        sync=True
    )
    trajectory_labels = t.List(t.Unicode()).tag(sync=True)
    screen_size = t.Int(232).tag(sync=True)
    # actions that do nothing in CoinRun (D A W S Q E): one "no-op keys" bar in the policy and
    # hidden from the Output menu unless show_all_actions
    noop_actions = t.List(t.Int(), default_value=list(NOOP_BUTTONS)).tag(sync=True)
    show_all_actions = t.Bool(False).tag(sync=True)


class OutputTraits(t.HasTraits):
    """The network output being attributed (spec as in ``analysis.outputs``) and bookmarks."""

    output = t.Unicode("value").tag(sync=True)
    output_label = t.Unicode("value").tag(sync=True)
    bookmarks = t.List(t.Dict()).tag(sync=True)


class DisplayTraits(t.HasTraits):
    """Display settings applied in the browser (no kernel round trip).

    ``blur`` is the blur length b of the overlays' disc exp(-r / b), radius 7 b, at layer
    resolution: ``None`` (default) scales it to the shown layer, b = H / 32 (radius 3.5 on a
    16 x 16 layer, the article's radius 7 on its 32 x 32 layer 2b); ``1`` is the article's
    radius 7 on any layer; ``0`` turns blurring off. :meth:`blur_radius` gives the radius in use.
    """

    gain = t.Float(1.0).tag(sync=True)
    blur = t.Float(None, allow_none=True).tag(sync=True)
    scale_mode = t.Enum(["trajectory", "frame"], "trajectory").tag(sync=True)
    show_residual = t.Bool(False).tag(sync=True)
    overlay_mode = t.Enum(["split", "combined"], "split").tag(sync=True)
    grey_underlay = t.Bool(False).tag(sync=True)
    full_res = t.Bool(False).tag(sync=True)

    @t.validate("gain")
    def _valid_gain(self, proposal: t.Bunch) -> float:
        v = float(proposal["value"])
        if not 0 < v <= 1000:
            raise t.TraitError(f"gain must be in (0, 1000], got {v}")
        return v

    @t.validate("blur")
    def _valid_blur(self, proposal: t.Bunch) -> float | None:
        if proposal["value"] is None:
            return None
        v = float(proposal["value"])
        if not 0 <= v <= 4:
            raise t.TraitError(
                f"blur must be None (scaled to the layer: radius 7·H/32) or in "
                f"[0, 4] (1 = the article's radius 7, 0 = off), got {v}"
            )
        return v

    def blur_radius(self) -> float | None:
        """Radius (layer positions) of the blur the overlays use now: 7 x ``blur``, or with
        ``blur=None`` 7 H / 32 for the shown attribution's height H (None before any).

        >>> from rlvision_widgets.widgets import TrajectoryViewer
        >>> import numpy as np
        >>> v = TrajectoryViewer(np.zeros((1, 2, 64, 64, 3), np.uint8),
        ...                      features=np.zeros((1, 2, 16, 16, 3), np.float32))
        >>> v.blur is None, v.blur_radius()          # scaled to the 16 x 16 layer
        (True, 3.5)
        >>> v.blur = 1.0; v.blur_radius()             # the article's radius, explicitly
        7.0
        """
        if self.blur is not None:
            return 7.0 * float(self.blur)
        maps = getattr(self, "attributions", None)
        shape = list(maps.shape) if maps is not None else []
        if len(shape) < 3 or shape[2] < 1:
            return None
        from ..analysis.display import default_blur_radius

        return default_blur_radius(int(shape[2]))


class FeatureTraits(t.HasTraits):
    """NMF features: count, labels, isolation."""

    n_features = t.Int(0).tag(sync=True)
    feature_labels = t.List(t.Unicode()).tag(sync=True)
    suggested_labels = t.List(t.Unicode()).tag(sync=True)
    # per feature {label, confirmed, duplicate, share, ...}: the evidence behind each
    # suggestion (empty: plain suggested_labels)
    label_evidence = t.List(t.Dict()).tag(sync=True)
    isolated_feature = t.Int(-1).tag(sync=True)


class AttributionTraits(t.HasTraits):
    """Per-feature attribution maps of every frame (see ``_arrays.AttributionMaps``)."""

    attributions = AttributionMaps(help="K signed features + residual (E, T, H, W, K+1)")
    attr_layer = t.Unicode("").tag(sync=True)


class EditedTraits(t.HasTraits):
    """The shown trajectory under the current edits, and a re-run of the edited agent."""

    edited_trajectory = t.Int(-1).tag(sync=True)
    edited_values = ArrayTrait("float32", ("step",), help="edited agent's values (T,)")
    edited_logits = ArrayTrait("float32", ("step", "action"), help="edited logits (T, A)")
    edited_attributions = AttributionMaps(help="edited attribution (1, T, H, W, K+1)")
    rerun_frames = PngFrames(help="re-run observations (1, T, S, S, 3)")
    rerun_values = ArrayTrait("float32", ("step",), help="re-run values (T,)")
    rerun_actions = ArrayTrait("uint8", ("step",), help="re-run actions (T,)")
    rerun_rewards = ArrayTrait("float32", ("step",), help="re-run rewards (T,)")
    rerun_firsts = ArrayTrait("uint8", ("step",), help="re-run episode starts (T,)")
    rerun_info = t.Dict().tag(sync=True)


class EditTraits(t.HasTraits):
    """Per-feature edit strength (0..1) and switch-off toggles."""

    edit_strengths = t.List(t.Float()).tag(sync=True)
    edit_off = t.List(t.Bool()).tag(sync=True)

    @t.validate("edit_strengths")
    def _valid_strengths(self, proposal: t.Bunch) -> list[float]:
        v = [float(x) for x in proposal["value"]]
        if any(not 0.0 <= x <= 1.0 for x in v):
            raise t.TraitError(f"edit strengths must lie in [0, 1], got {v}")
        return v


class LegendTraits(t.HasTraits):
    """Legend thumbnails (K square RGBA thumbnails side by side in one PNG)."""

    thumbnails = PngTiles(help="dataset-example thumbnails (K, s, s, 4)")
    # per feature its strongest dataset examples: {trajectory, frame, y, x, value, box}
    feature_examples = t.List(t.List(t.Dict())).tag(sync=True)


class GridTraits(t.HasTraits):
    """The spatially-aware feature visualization of one feature."""

    grid_feature = t.Int(-1).tag(sync=True)
    grid_density = t.Int(8).tag(sync=True)
    grid_zoom = t.Float(1.0).tag(sync=True)
    grid = MosaicTrait(help="the mosaic of grid_feature computed on request (K = 1)")
    grid_source_frames = PngFrames(help="observations (1, N, S, S, 3) cells point into")
    grid_busy = t.Bool(False).tag(sync=True)
    # the mosaic of every feature at one density (static exports; instant switching)
    mosaics = MosaicTrait(help="every feature's mosaic at one density (K, rows, cols, cell)")
    # the optimized image of one feature's NMF direction, computed on request (issue 15)
    optvis_image = PngTiles(help="optimized image of a feature's NMF direction (1, S, S, 3)")
    # {state: "computing"|"ready"|"error", feature, layer, rank, value, best_real, ratio, ...}
    optvis_info = t.Dict().tag(sync=True)
    optvis_enabled = t.Bool(False).tag(sync=True)  # a live explorer answers "optimize"

    @t.validate("grid_density")
    def _valid_density(self, proposal: t.Bunch) -> int:
        v = int(proposal["value"])
        if not 1 <= v <= 64:
            raise t.TraitError(f"grid_density must be in [1, 64] cells per side, got {v}")
        return v


class ControlTraits(t.HasTraits):
    """Analysis settings (recomputed in Python)."""

    layers = t.List(t.Unicode()).tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    outputs = t.List().tag(sync=True)  # [spec, label, group]
    rank = t.Int(8).tag(sync=True)
    rank_max = t.Int(16).tag(sync=True)


class StatusTraits(t.HasTraits):
    """Progress of long Python work, shown in the widget."""

    busy = t.Bool(False).tag(sync=True)
    progress = t.Float(0.0).tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
