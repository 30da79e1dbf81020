"""CounterfactualPanel widget (``js/counterfactual_panel.ts``): edit a frame's game, not the network.

Click an object on a trajectory frame, hide, remove or move it, or place a saw, enemy, crate or
coin from a palette, and see the engine's re-render of the counterfactual beside the original
with the agent's value, policy (KL) and per-feature attribution change
(:func:`~rlvision_widgets.analysis.counterfactual.compare`). Each frame keeps its own history
of edits (:class:`~rlvision_widgets.environment.counterfactual.Counterfactual`), with undo and
reset. :class:`CounterfactualTraits` holds the synced state so that the Explorer can compose the
panel; :class:`CounterfactualPanel` is the standalone widget. See ``docs/counterfactuals.md``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import traitlets as t

from ..agents.registry import resolve_agent
from ..analysis.counterfactual import compare
from ..environment.actions import ACTION_NAMES
from ..environment.counterfactual import (
    ADDABLE_KINDS,
    Counterfactual,
    CounterfactualError,
    frame_state,
    objects,
)
from ..environment.render import Renderer, object_boxes
from ..environment.state import GameState, StateError, parse_state
from ._arrays import Frames, PngFrames
from ._base import RLVisionWidget

__all__ = ["CounterfactualMixin", "CounterfactualPanel", "CounterfactualTraits", "pixel_to_world"]

#: Resolution of the frames the panel shows and of its object boxes and click coordinates.
RESOLUTION = 512
_BOX_KIND = {
    "agent": "agent",
    "saw": "saw",
    "enemy_left": "enemy",
    "enemy_right": "enemy",
    "crate": "crate",
    "coin": "coin",
    "lava": "lava",
}


def pixel_to_world(state: bytes | GameState, col: float, row: float, resolution: int = 512):
    """World position ``(x, y)`` (tile units, ``y = 0`` at the bottom) under pixel ``(col,
    row)`` of the frame of ``state`` drawn at ``resolution`` px: the inverse of
    :func:`~rlvision_widgets.environment.render.object_boxes`' mapping.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> a = parse_state(state).agent
    >>> x, y = pixel_to_world(state, 256, 256)              # the view is centred on the agent
    >>> abs(x - a.x) < 1e-3, abs(y - a.y) < 1e-3
    (True, True)
    """
    st = state if isinstance(state, GameState) else parse_state(state)
    f32 = np.float32
    if st.options["center_agent"]:
        vis = f32(st.visibility)
        cx, cy = f32(st.agent.x), f32(st.agent.y)
    else:
        vis = f32(max(st.main_width, st.main_height))
        cx, cy = f32(st.main_width * 0.5), f32(st.main_height * 0.5)
    unit = float(f32(64) / vis * f32(resolution / 64.0))
    half = float(vis) / 2
    return float(cx) - half + col / unit, float(cy) + half - row / unit


def _ref_json(ref: Any) -> Any:
    return [int(ref[0]), int(ref[1])] if isinstance(ref, (tuple, list)) else int(ref)


def _ref_py(ref: Any) -> Any:
    if isinstance(ref, (list, tuple)):
        return (int(ref[0]), int(ref[1]))
    return ref


class CounterfactualTraits(t.HasTraits):
    """Synced state of the counterfactual panel (a mixin, so the Explorer can compose it).

    ``cf_objects``: the visible objects of the current (edited) frame, each ``{"ref", "kind",
    "box"}`` with ``box`` ``[x0, y0, x1, y1]`` in pixels of the 512-px frame; ``cf_original``
    / ``cf_edited``: the original and counterfactual 512-px frames (one PNG each);
    ``cf_result``: the comparison's numbers; ``cf_mode``: what a click on a frame does
    (``"select"``, ``"move"`` the selected object there, ``"add"`` a ``cf_palette_kind``).

    >>> import traitlets as t
    >>> class P(CounterfactualTraits): pass
    >>> P().cf_mode, P().cf_history
    ('select', [])
    """

    cf_trajectory = t.Int(0).tag(sync=True)
    cf_frame = t.Int(0).tag(sync=True)
    cf_objects = t.List(t.Dict()).tag(sync=True)
    cf_selected = t.Any(None, allow_none=True).tag(sync=True)
    cf_history = t.List(t.Unicode()).tag(sync=True)
    cf_original = PngFrames().tag(sync=True)
    cf_edited = PngFrames().tag(sync=True)
    cf_resolution = t.Int(RESOLUTION).tag(sync=True)
    cf_result = t.Dict().tag(sync=True)
    cf_palette_kind = t.Enum(("", *ADDABLE_KINDS), "").tag(sync=True)
    cf_mode = t.Enum(("select", "move", "add"), "select").tag(sync=True)
    cf_busy = t.Bool(False).tag(sync=True)
    cf_error = t.Unicode("").tag(sync=True)


class CounterfactualMixin(CounterfactualTraits):
    """The counterfactual panel's behaviour on any widget (the standalone
    :class:`CounterfactualPanel`, or the Explorer composing it): call :meth:`setup_counterfactuals`
    once, :meth:`select_frame` when the shown frame changes, and pass the browser's custom
    messages to :meth:`handle_counterfactual_message`.

    >>> class MyWidget(CounterfactualMixin, RLVisionWidget): ...        # doctest: +SKIP
    >>> w.setup_counterfactuals(agent, traj); w.select_frame(0, 10)      # doctest: +SKIP
    """

    def setup_counterfactuals(
        self,
        agent: Any,
        trajectories: Any = None,
        *,
        layer: str = "2b",
        directions: Any = None,
        feature_labels: list[str] | None = None,
    ) -> None:
        """Bind the agent (a module or a name for ``resolve_agent``), the frames' source
        (anything with ``state_at(env, step)``) and the NMF directions at ``layer``; edits
        made so far are dropped.

        >>> w.setup_counterfactuals(load_agent(), traj, directions=analysis)  # doctest: +SKIP
        """
        self._cf_lock = threading.RLock()  # the kernel's messages vs a composing worker thread
        self._cf_agent = resolve_agent(agent)
        self._cf_traj = trajectories
        self._cf_layer = layer
        self._cf_directions = directions
        self._cf_labels = list(feature_labels or [])
        self._cf_renderer: Renderer | None = getattr(self, "_cf_renderer", None)
        self._cf_edits: dict[tuple[int, int], Counterfactual] = {}
        self._cf_original_frames: dict[tuple[int, int], tuple[np.ndarray, Frames]] = {}
        self.timings: dict[str, float] = {}

    def set_directions(
        self, directions: Any, layer: str | None = None, feature_labels: list[str] | None = None
    ) -> None:
        """New NMF directions (e.g. after a new analysis); the shown comparison is redone.

        >>> w.set_directions(analysis.directions, "2b", ["coin", "saw"])   # doctest: +SKIP
        """
        with self._cf_lock:
            self._cf_directions = directions
            if layer is not None:
                self._cf_layer = layer
            if feature_labels is not None:
                self._cf_labels = list(feature_labels)
            if self._cf_key() in getattr(self, "_cf_edits", {}):
                self._cf_refresh()

    def close_counterfactuals(self) -> None:
        """Close the scratch renderer (a composing widget calls this from its ``close``).

        >>> w.close_counterfactuals()                                   # doctest: +SKIP
        """
        renderer = getattr(self, "_cf_renderer", None)  # absent if the constructor failed
        if renderer is not None:
            renderer.close()
            self._cf_renderer = None

    def handle_counterfactual_message(self, content: Any) -> bool:
        """Handle a ``cf_*`` custom message from the browser (True if it was one); an edit
        that cannot be made is reported in ``cf_error``.

        >>> w.handle_counterfactual_message({"type": "cf_undo"})          # doctest: +SKIP
        True
        """
        if not isinstance(content, dict) or not str(content.get("type", "")).startswith("cf_"):
            return False
        with self._cf_lock:
            self._cf_on_msg(self, content, [])
        return True

    # ------------------------------------------------------------------------------ frames
    def _cf_key(self) -> tuple[int, int]:
        return (int(self.cf_trajectory), int(self.cf_frame))

    @property
    def counterfactual(self) -> Counterfactual:
        """The shown frame's :class:`Counterfactual` (original, edits, history)."""
        key = self._cf_key()
        if key not in getattr(self, "_cf_edits", {}):
            raise CounterfactualError("no frame selected yet: call select_frame(e, t) first")
        return self._cf_edits[key]

    def select_frame(self, e: int, step: int) -> None:
        """Show frame ``step`` of trajectory ``e`` (its earlier edits, if any, come back).

        >>> panel.select_frame(0, 40)                                   # doctest: +SKIP
        """
        if getattr(self, "_cf_traj", None) is None:
            raise CounterfactualError(
                "the panel has no trajectories: pass them to the constructor or "
                "setup_counterfactuals"
            )
        e, step = int(e), int(step)
        obs = getattr(self._cf_traj, "obs", None)
        if obs is not None and np.ndim(obs) >= 2:
            E, T = np.shape(obs)[:2]
            if not (0 <= e < E and 0 <= step < T):
                raise CounterfactualError(
                    f"frame ({e}, {step}) is outside the trajectories: e in 0..{E - 1}, "
                    f"step in 0..{T - 1}"
                )
        key = (e, step)
        if key not in self._cf_edits:
            self._cf_edits[key] = Counterfactual(frame_state(self._cf_traj, e, step))
        with self.hold_sync():
            self.cf_trajectory, self.cf_frame = e, step
            self.cf_selected = None
            self.cf_error = ""
            self._cf_refresh()

    def set_state_bytes(self, state: bytes) -> None:
        """Show an engine state that is not from the trajectories (kept under frame (-1, -1)).

        >>> panel.set_state_bytes(CoinRunEnv(num_envs=1).get_state()[0])   # doctest: +SKIP
        """
        self._cf_edits[(-1, -1)] = Counterfactual(frame_state(state))
        self._cf_original_frames.pop((-1, -1), None)
        with self.hold_sync():
            self.cf_trajectory, self.cf_frame = -1, -1
            self.cf_selected = None
            self.cf_error = ""
            self._cf_refresh()

    # ------------------------------------------------------------------------------ edits
    def _cf_edit(self, fn) -> None:
        cf = self.counterfactual
        self._cf_edits[self._cf_key()] = fn(cf)
        with self.hold_sync():
            self.cf_selected = None
            self.cf_error = ""
            self._cf_refresh()

    def hide(self, ref: Any = None) -> None:
        """Hide object ``ref`` (default: the selected one); it stays in the game.

        >>> panel.hide(4)                                                # doctest: +SKIP
        """
        ref = self._cf_ref(ref)
        self._cf_edit(lambda cf: cf.hide(ref))

    def remove(self, ref: Any = None) -> None:
        """Remove object ``ref`` (default: the selected one) from the level."""
        ref = self._cf_ref(ref)
        self._cf_edit(lambda cf: cf.remove(ref))

    def move(self, ref: Any, x: float, y: float) -> None:
        """Move object ``ref`` (None: the selected one) to world position ``(x, y)``.

        >>> panel.move(4, 10.5, 3.5)                                    # doctest: +SKIP
        """
        ref = self._cf_ref(ref)
        self._cf_edit(lambda cf: cf.move(ref, x, y))

    def add(self, kind: str, x: float, y: float) -> None:
        """Place a new ``kind`` (saw, enemy, crate, coin) at world position ``(x, y)``.

        >>> panel.add("saw", 10.5, 3.5)                                 # doctest: +SKIP
        """
        self._cf_edit(lambda cf: cf.add(kind, x, y))

    def undo(self) -> None:
        """Take back the shown frame's last edit."""
        self._cf_edit(lambda cf: cf.undo())

    def reset(self) -> None:
        """Back to the original frame: the shown frame's history is cleared."""
        self._cf_edit(lambda cf: cf.reset())

    def _cf_ref(self, ref: Any) -> Any:
        if ref is None:
            ref = self.cf_selected
            if ref is None:
                raise CounterfactualError("no object selected: click one or pass its ref")
        ref = _ref_py(ref)
        objs = self.counterfactual.objects()
        if not any(o.ref == ref for o in objs):
            refs = ", ".join(f"{o.kind} {_ref_json(o.ref)}" for o in objs[:12])
            raise CounterfactualError(
                f"no object {ref!r} in this frame; refs are those of cf_objects / "
                f"counterfactual.objects(), e.g. {refs}"
            )
        return ref

    # ------------------------------------------------------------------------------ clicks
    def object_at(self, col: float, row: float) -> Any:
        """Ref of the object under pixel ``(col, row)`` of the 512-px frame (None: free).

        >>> panel.object_at(256, 256)                        # the agent  # doctest: +SKIP
        0
        """
        x, y = pixel_to_world(self.counterfactual.state, col, row, RESOLUTION)
        hits = [
            o
            for o in self.counterfactual.objects()
            if o.x - o.rx <= x <= o.x + o.rx and o.y - o.ry <= y <= o.y + o.ry and not o.hidden
        ]
        if not hits:
            return None
        best = min(
            hits, key=lambda o: (o.kind in ("lava", "coin"), (o.x - x) ** 2 + (o.y - y) ** 2)
        )
        return best.ref

    def click(self, col: float, row: float) -> None:
        """A click at pixel ``(col, row)`` of the 512-px frame, as ``cf_mode`` says: select the
        object there, move the selected object there, or add ``cf_palette_kind`` there
        (positions snap to the tile centre, where the level generator puts objects).

        >>> panel.click(300, 250)                                       # doctest: +SKIP
        """
        x, y = pixel_to_world(self.counterfactual.state, col, row, RESOLUTION)
        cx, cy = float(np.floor(x)) + 0.5, float(np.floor(y)) + 0.5
        if self.cf_mode == "move":
            if self.cf_selected is None:
                raise CounterfactualError("select an object before moving it")
            self.move(None, cx, cy)
            self.cf_mode = "select"
        elif self.cf_mode == "add":
            if not self.cf_palette_kind:
                raise CounterfactualError("pick a kind from the palette before adding")
            self.add(self.cf_palette_kind, cx, cy)
        else:
            ref = self.object_at(col, row)
            self.cf_selected = None if ref is None else _ref_json(ref)
            self.cf_error = ""

    def drag(self, ref: Any, col: float, row: float) -> None:
        """Move object ``ref`` to the tile centre under pixel ``(col, row)`` of the 512-px
        frame (the browser's drag and drop).

        >>> panel.drag(4, 300, 250)                                     # doctest: +SKIP
        """
        x, y = pixel_to_world(self.counterfactual.state, col, row, RESOLUTION)
        self.move(ref, float(np.floor(x)) + 0.5, float(np.floor(y)) + 0.5)

    def _cf_on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "cf_click":
                self.click(float(content["x"]), float(content["y"]))
            elif kind == "cf_drag":
                self.drag(content["ref"], float(content["x"]), float(content["y"]))
            elif kind == "cf_hide":
                self.hide(content.get("ref"))
            elif kind == "cf_remove":
                self.remove(content.get("ref"))
            elif kind == "cf_undo":
                self.undo()
            elif kind == "cf_reset":
                self.reset()
            elif kind == "cf_follow":  # a composing widget's shown frame (the explorer's)
                if not (self.has_trait("trajectory") and self.has_trait("frame")):
                    raise ValueError("cf_follow needs a widget with trajectory and frame traits")
                self.select_frame(int(self.trajectory), int(self.frame))
            else:
                known = "cf_click, cf_drag, cf_hide, cf_remove, cf_undo, cf_reset, cf_follow"
                self.cf_error = f"unknown counterfactual message {kind!r}; known: {known}"
        except (CounterfactualError, StateError, KeyError, TypeError, ValueError) as exc:
            self.cf_error = f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------------------ render
    def _cf_rend(self) -> Renderer:
        if getattr(self, "_cf_renderer", None) is None:
            self._cf_renderer = Renderer()  # lazily: its scratch env starts on first use
        return self._cf_renderer

    def _cf_original_frame(self, cf: Counterfactual) -> tuple[np.ndarray, Frames]:
        """The original 512-px frame and its PNG (rendered and encoded once per frame)."""
        key = self._cf_key()
        if key not in self._cf_original_frames:
            frame = self._cf_rend().frames(cf.original)[1]
            self._cf_original_frames[key] = (frame, Frames.encode(frame[None, None]))
        return self._cf_original_frames[key]

    def _cf_refresh(self) -> None:
        cf = self.counterfactual
        self.cf_busy = True
        try:
            t0 = time.perf_counter()
            original, original_png = self._cf_original_frame(cf)
            edited = None if not cf.edits else self._cf_rend().frames(cf.state)[1]
            t1 = time.perf_counter()
            c = compare(
                self._cf_agent, cf.original, cf.state, layer=self._cf_layer, nmf=self._cf_directions
            )
            t2 = time.perf_counter()
            self.cf_original = original_png
            self.cf_edited = original_png if edited is None else edited[None, None]
            self.cf_objects = _objects_json(cf.state)
            self.cf_history = list(cf.edits)
            self.cf_result = self._cf_result_json(c)
            t3 = time.perf_counter()
            self.timings = {
                "render": t1 - t0,
                "compare": t2 - t1,
                "encode": t3 - t2,
                "total": t3 - t0,
            }
        finally:
            self.cf_busy = False

    def _cf_result_json(self, c: Any) -> dict[str, Any]:
        dp = c.policy_change
        top = np.argsort(-np.abs(dp))[:3]
        out: dict[str, Any] = {
            "value": float(c.values[0]),
            "value_edited": float(c.values[1]),
            "value_change": float(c.value_change),
            "kl": float(c.kl),
            "policy_changes": [
                {
                    "action": ACTION_NAMES[int(a)],
                    "p": float(c.probs[0, a]),
                    "p_edited": float(c.probs[1, a]),
                    "change": float(dp[a]),
                }
                for a in top
            ],
        }
        fc = c.feature_change
        if fc is not None:
            k = len(fc)
            given = self._cf_labels[:k] + [""] * max(0, k - len(self._cf_labels))
            labels = [lab or f"feature {i + 1}" for i, lab in enumerate(given)]
            tot = c.feature_totals
            out["features"] = [
                {
                    "label": labels[i],
                    "total": float(tot[0, i]),
                    "total_edited": float(tot[1, i]),
                    "change": float(fc[i]),
                }
                for i in range(k)
            ]
        return out


class CounterfactualPanel(CounterfactualMixin, RLVisionWidget):
    """Counterfactual frames of recorded ``trajectories`` (anything with ``state_at(env,
    step)``, e.g. ``Trajectories``) for ``agent`` (a module or a name for
    :func:`~rlvision_widgets.agents.registry.resolve_agent`). ``directions``: NMF directions
    (an ``Analysis``, a fitted ``AttributionNMF`` or a (K, C) array at ``layer``) for the
    per-feature attribution change. Python methods and the browser's clicks do the same edits;
    an edit the engine cannot take is refused with the reason in ``cf_error`` (browser) or as
    :class:`~rlvision_widgets.environment.counterfactual.CounterfactualError` (Python).

    >>> panel = CounterfactualPanel(load_agent(), traj)                 # doctest: +SKIP
    >>> saw = next(o for o in panel.cf_objects if o["kind"] == "saw")   # doctest: +SKIP
    >>> panel.hide(saw["ref"]); panel.cf_result["value_change"]         # doctest: +SKIP
    """

    _component = "counterfactual_panel"

    def __init__(
        self,
        agent: Any = None,
        trajectories: Any = None,
        *,
        layer: str = "2b",
        directions: Any = None,
        feature_labels: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.setup_counterfactuals(
            agent, trajectories, layer=layer, directions=directions, feature_labels=feature_labels
        )
        self.on_msg(lambda _w, content, _b: self.handle_counterfactual_message(content))
        if trajectories is not None:
            self.select_frame(self.cf_trajectory, self.cf_frame)

    def close(self) -> None:
        """Close the widget and its scratch renderer.

        >>> panel.close()                                               # doctest: +SKIP
        """
        self.close_counterfactuals()
        super().close()


def _objects_json(state: bytes) -> list[dict[str, Any]]:
    """Visible objects of the state's frame with their 512-px boxes (cf_objects)."""
    ann = object_boxes(state, RESOLUTION)
    hidden = {o.ref for o in objects(state) if o.hidden}
    out = []
    for cls, kind in _BOX_KIND.items():
        for box, ref in zip(ann.boxes[cls], ann.ids[cls]):
            r = _ref_json(ref.tolist() if np.ndim(ref) else int(ref))
            if _ref_py(r) in hidden:
                continue
            out.append({"ref": r, "kind": kind, "box": [round(float(v), 2) for v in box]})
    return out
