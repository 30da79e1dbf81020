"""Base class of the component widgets: bundle location, data setters, static HTML export."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import anywidget
import numpy as np
import traitlets as t

from ._arrays import Frames, encode_attribution
from .export import STATIC, save_html

log = logging.getLogger(__name__)

_MISSING_BUNDLE = """
export default { render({ el }) {
  el.innerHTML = '<div style="color:#b91c1c;font:13px system-ui;padding:8px;border:1px solid #fca5a5">'
    + 'rlvision_widgets: the JavaScript bundle %s is missing. Build it with '
    + '<code>npm ci &amp;&amp; npm run build</code> in the repository (or reinstall the package).</div>';
} };
"""


def bundle(name: str) -> pathlib.Path | str:
    """Path of a built ESM bundle, or a tiny module that explains how to build it."""
    p = STATIC / f"{name}.js"
    return p if p.is_file() else _MISSING_BUNDLE % f"{name}.js"


def _as_5d_obs(obs: Any) -> np.ndarray:
    o = np.asarray(obs)
    if o.dtype != np.uint8:
        raise TypeError(f"observations must be uint8, got {o.dtype}")
    if o.ndim == 4:
        o = o[None]
    if o.ndim != 5 or o.shape[-1] != 3 or o.shape[2] != o.shape[3]:
        raise ValueError(
            f"observations must be (T, S, S, 3) or (E, T, S, S, 3) uint8, got shape {o.shape}"
        )
    return o


def _series(x: Any, E: int, T: int, name: str, extra: tuple[int, ...] = ()) -> np.ndarray | None:
    if x is None:
        return None
    a = np.asarray(x)
    if a.shape == (T, *extra) and E == 1:
        a = a[None]
    if a.shape != (E, T, *extra):
        raise ValueError(
            f"{name} must have shape {(E, T, *extra)} (or {(T, *extra)} for one "
            f"trajectory), got {a.shape}"
        )
    return a


class RLVisionWidget(anywidget.AnyWidget):
    """Common base: the component's bundle and kernel-less HTML export."""

    _component: ClassVar[str] = "explorer"

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(k for k in kwargs if not self.has_trait(k))
        if unknown:
            import difflib

            names = sorted(self.trait_names())
            hints = [
                f"{k!r} (did you mean {m[0]!r}?)"
                if (m := difflib.get_close_matches(k, names, 1))
                else repr(k)
                for k in unknown
            ]
            raise TypeError(
                f"{type(self).__name__}() got unknown keyword argument(s) {', '.join(hints)}; "
                f"its settings are its traits: {', '.join(n for n in names if not n.startswith('_'))}"
            )
        super().__init__(**kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "_component" in cls.__dict__:  # not for ipywidgets' add_traits subclasses
            cls._esm = bundle(cls._component)  # before anywidget makes it watched FileContents
        super().__init_subclass__(**kwargs)

    def save_html(
        self, path: str | pathlib.Path, title: str | None = None, progress: Any = None
    ) -> pathlib.Path:
        """Write one self-contained HTML file (scripts and data inlined, nothing fetched) that
        renders this widget without a kernel at its current settings; ``progress(fraction,
        message)`` is told about each stage.

        >>> viewer.save_html("trajectory.html")          # doctest: +SKIP
        """

        return save_html(self, path, title=title, progress=progress)

    # ------------------------------------------------------------------ browser -> kernel
    def _check_field(self, name: str, value: Any) -> str | None:
        """Why the browser's ``value`` for trait ``name`` is refused (None: valid)."""
        from_json = self.trait_metadata(name, "from_json", self._trait_from_json)
        try:
            self.traits()[name]._validate(self, from_json(value, self))
        except (t.TraitError, TypeError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return None

    def set_state(self, sync_data: Mapping[str, Any]) -> None:
        """Apply a state update from the browser field by field: valid fields are applied (as
        ipywidgets does: echoed, property-locked, notifications held), an invalid one keeps
        its old valid value and the kernel sends that value back, so the browser's state is
        corrected instead of silently diverging.

        >>> import numpy as np
        >>> from rlvision_widgets.widgets import TrajectoryViewer
        >>> v = TrajectoryViewer(np.zeros((1, 4, 64, 64, 3), np.uint8))
        >>> v.set_state({"frame": -1, "gain": 2.0})   # frame refused (and re-sent), gain applied
        >>> v.frame, v.gain
        (0, 2.0)
        """
        data = dict(sync_data)
        refused: dict[str, str] = {}
        for name in [k for k in data if k in self.keys]:
            why = self._check_field(name, data[name])
            if why is not None:
                refused[name] = why
                del data[name]
        if data:
            try:
                super().set_state(data)  # atomically, ipywidgets' way
            except t.TraitError:  # valid alone, not together (rolled back): one by one
                for name, value in data.items():
                    try:
                        super().set_state({name: value})
                    except t.TraitError as exc:
                        refused[name] = str(exc)
        if refused:
            for name, why in refused.items():
                log.warning(
                    "%s: refused %s=%r from the browser: %s",
                    type(self).__name__,
                    name,
                    sync_data.get(name),
                    why,
                )
            self.send_state(sorted(refused))  # the kept values: the browser corrects back


class TrajectoryDataMixin(t.HasTraits):
    """``set_trajectories`` / ``set_attribution`` for widgets that show trajectories."""

    def set_trajectories(
        self,
        obs: Any,
        values: Any = None,
        advantages: Any = None,
        rewards: Any = None,
        actions: Any = None,
        firsts: Any = None,
        logits: Any = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        """Load observations (E, T, S, S, 3) or (T, S, S, 3) uint8 and per-step series
        (E, T) — logits (E, T, A) — as compact binary buffers (one typed trait each).

        >>> from rlvision_widgets.widgets import TrajectoryViewer
        >>> v = TrajectoryViewer()
        >>> v.set_trajectories(np.zeros((4, 64, 64, 3), np.uint8), values=np.arange(4.0))
        >>> v.observations.shape, v.values.shape, v.logits is None
        ((1, 4, 64, 64, 3), (1, 4), True)
        """
        o = _as_5d_obs(obs)
        E, T = o.shape[:2]
        frames = Frames.encode(o)
        vals = _series(values, E, T, "values")
        adv = _series(advantages, E, T, "advantages")
        rew = _series(rewards, E, T, "rewards")
        act = _series(actions, E, T, "actions")
        fir = _series(firsts, E, T, "firsts")
        lg = None
        if logits is not None:
            la = np.asarray(logits)
            lg = _series(la, E, T, "logits", (la.shape[-1],))
        with self.hold_sync():
            self.frame = 0
            self.trajectory = 0
            self.n_trajectories = int(E)
            self.n_steps = int(T)
            self.observations = frames
            self.values = vals if vals is not None else np.zeros((E, T), np.float32)
            self.advantages = adv
            self.rewards = rew
            self.actions = act
            self.firsts = fir
            self.logits = lg
            self.trajectory_labels = list(labels) if labels else []

    def set_attribution(self, features: Any, residual: Any = None, layer: str = "") -> None:
        """Load signed per-feature attribution maps (E, T, H, W, K) (or (T, H, W, K)) and the
        residual (E, T, H, W); colouring, blur, gain and isolation then happen in the browser."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim == 4:
            f = f[None]
            residual = None if residual is None else np.asarray(residual)[None]
        maps = encode_attribution(f, residual)
        shape = maps.shape
        with self.hold_sync():
            self.attributions = maps
            if hasattr(self, "n_features"):
                k = shape[-1] - 1
                self.n_features = k
                labels = list(getattr(self, "feature_labels", []))[:k]
                self.feature_labels = labels + [""] * (k - len(labels))
            if layer and hasattr(self, "attr_layer"):
                self.attr_layer = layer
