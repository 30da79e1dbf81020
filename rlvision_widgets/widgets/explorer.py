"""The Explorer: every component on one model, bound to the analysis engines.

Python does what needs the network (trajectory collection, integrated gradients, NMF, feature
visualizations, edits, re-runs) in a background thread with progress shown in the widget; the
browser does everything else (colouring, blur, gain, isolation, scrubbing, playback) without a
kernel round trip.

>>> import rlvision_widgets as rv
>>> explorer = rv.explore()              # doctest: +SKIP
>>> explorer.frame = 10                  # doctest: +SKIP
>>> explorer.observe(lambda ch: print(ch["new"]), "frame")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets as t
from torch import nn

from . import _encode as enc
from . import _engine as eng
from ._arrays import AttributionPayload, wire_bytes
from ._base import RLVisionWidget, TrajectoryDataMixin
from ._data import _Data
from ._traits import (
    AttributionTraits,
    ControlTraits,
    DisplayTraits,
    EditedTraits,
    EditTraits,
    NavTraits,
    OutputTraits,
    StatusTraits,
    TrajectoryTraits,
)
from ._worker import _LIVE, _in_kernel, _Superseded, _Worker
from .controls import output_label, output_options
from .counterfactual_panel import CounterfactualMixin
from .feature_grid import GridMixin
from .legend import LegendMixin

log = logging.getLogger(__name__)

__all__ = ["OPTVIS_STEPS", "Explorer", "explore"]

#: Optimization steps of the feature grid's "optimize" (a few seconds on two CPU cores).
OPTVIS_STEPS = 128


class Explorer(
    TrajectoryDataMixin,
    LegendMixin,
    GridMixin,
    TrajectoryTraits,
    OutputTraits,
    AttributionTraits,
    DisplayTraits,
    EditedTraits,
    EditTraits,
    ControlTraits,
    StatusTraits,
    NavTraits,
    CounterfactualMixin,
    RLVisionWidget,
):
    """The live explorer: trajectory viewer, attribution legend, feature grid, controls and
    model editing, composed on one widget and bound to the analysis engines.

    ``agent``: a torch module mapping uint8 (N, 64, 64, 3) to (logits, value), a name/path for
    :func:`rlvision_widgets.agents.registry.load_agent`, or None for the shipped reference
    agent. ``trajectories``: a :class:`~rlvision_widgets.rollouts.Trajectories` (default:
    collect ``num_envs`` x ``num_steps`` with ``seed``). ``layer`` (default: the object layer),
    ``output`` ("value", "logit:<a>", "group:<g>", "logprob:<a>"), ``rank`` (NMF features),
    ``ig_steps`` (integrated-gradient steps). ``background``: run Python work in a thread
    (default: inside a Jupyter kernel); :meth:`wait` blocks until it is done. ``prefetch``:
    fit the neighbouring NMF ranks while idle so the rank slider answers at once (default:
    when in the background). ``suggest_labels``: suggest legend labels from the engine's
    ground-truth objects (needs recorded Trajectories). ``on_progress``: also called as
    ``on_progress(fraction, message)`` whenever a job reports (``progress``/``status`` traits).

    An unknown agent name or a broken checkpoint raises (``ValueError`` / ``CheckpointError``
    from :func:`~rlvision_widgets.agents.registry.resolve_agent`); the explorer never stands in
    a random network. Torch's thread count is the caller's: set it with
    ``torch.set_num_threads`` (the explorer leaves it as it is).

    Every setting is a trait, observable and settable from Python::

        explorer = Explorer(agent)
        explorer.frame = 10
        explorer.observe(lambda ch: print(ch["new"]), "frame")
        explorer.rank = 6; explorer.wait()
        explorer.save_html("explorer.html")

    >>> from rlvision_widgets.agents import build_network
    >>> ex = Explorer(build_network("compact"), num_envs=1, num_steps=8, rank=3,
    ...               background=False)                        # doctest: +SKIP
    >>> ex.n_features                                          # doctest: +SKIP
    3
    """

    _component = "explorer"

    def __init__(
        self,
        agent: nn.Module | str | os.PathLike | None = None,
        trajectories: Any = None,
        *,
        layer: str | None = None,
        output: str = "value",
        rank: int = 8,
        num_envs: int = 8,
        num_steps: int = 256,
        seed: int = 0,
        ig_steps: int = 10,
        env_options: Any = None,
        background: bool | None = None,
        title: str | None = None,
        suggest_labels: bool = True,
        prefetch: bool | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        from ..agents.registry import resolve_agent
        from ..analysis.layers import LayerAccess
        from ..analysis.outputs import parse_output

        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable(fraction, message), got {on_progress!r}")
        model = resolve_agent(agent).eval()  # raises before any widget state exists
        super().__init__(**kwargs)
        self._agent = model
        self._edited_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # edits -> access
        self._access = LayerAccess(self._agent)
        self._seed = int(seed)
        self._ig_steps = int(ig_steps)
        self._env_options = env_options
        self._suggest = bool(suggest_labels)
        self._on_progress = on_progress
        self._traj: Any = None
        self._data = _Data({})  # trajectories + caches, replaced by load_trajectories
        self._current: dict[str, Any] = {}  # the shown analysis; replaced, never mutated
        self._summary = ""  # status line of the last finished analysis
        self._resetting_edits = False  # new features reset the edits: no edit job
        self._worker = _Worker(self, _in_kernel() if background is None else bool(background))
        self._prefetch = self._worker.background if prefetch is None else bool(prefetch)
        _LIVE.add(self)  # closed (worker joined) at interpreter exit

        names = self._access.layer_names
        from ..analysis.features import object_layer

        chosen = layer or object_layer(self._agent)
        self._access.check_layer(chosen)
        spec = parse_output(output).name
        cfg = getattr(self._agent, "config", None)
        net = f"{cfg.name} network" if getattr(cfg, "name", None) else type(self._agent).__name__
        if agent is None or isinstance(agent, (str, os.PathLike)):
            agent_name = f"{'coinrun' if agent is None else agent} agent ({net})"
        else:
            agent_name = net
        with self.hold_sync():
            self.layers = names if chosen in names else names + [chosen]
            self.layer = chosen
            self.outputs = output_options()
            self.output = spec
            self.output_label = output_label(spec)
            self.rank_max = int(min(16, self._access.layer_shape(chosen)[2]))
            if (
                isinstance(rank, bool)
                or not isinstance(rank, (int, np.integer))
                or not 1 <= rank <= self.rank_max
            ):
                raise ValueError(
                    f"rank must be an integer in [1, {self.rank_max}] at layer {chosen!r} "
                    f"(the number of NMF features; at most 16 and the layer's channels), "
                    f"got {rank!r}"
                )
            self.rank = int(rank)
            self.title = title or f"Understanding RL Vision · {agent_name}"

        self.observe(self._on_analysis_change, names=["layer", "output", "rank"])
        self.observe(self._on_grid_change, names=["grid_feature", "grid_density"])
        self.observe(self._on_edit_change, names=["edit_strengths", "edit_off"])
        self.observe(self._on_trajectory_change, names=["trajectory"])
        self.on_msg(self._on_msg)
        self.optvis_enabled = True  # the grid's "optimize" button asks this explorer

        if trajectories is None:
            self._worker.submit("collect", lambda rep: self._job_collect(rep, num_envs, num_steps))
        else:
            self.load_trajectories(trajectories)

    # ---------------------------------------------------------------------------- public API
    def wait(self, timeout: float | None = None) -> bool:
        """Block until background work (analysis, edits, grid, re-runs) is done: True, or
        False after ``timeout`` seconds. A failed job does not block it: its message is in
        ``error`` and ``status``, and later changes are analysed."""
        return self._worker.wait(timeout)

    # cache views (the current _Data); jobs hold their own _Data for their whole run
    @property
    def _arrays(self) -> dict[str, np.ndarray]:
        return self._data.arrays

    @property
    def _ig(self) -> OrderedDict[tuple[str, str, int], np.ndarray]:
        return self._data.ig

    @property
    def _acts(self) -> OrderedDict[tuple[str, int], np.ndarray]:
        return self._data.acts

    @property
    def _nmf(self) -> dict[tuple[str, int], Any]:
        return self._data.nmf

    @property
    def agent(self) -> nn.Module:
        """The explored agent (unedited)."""
        return self._agent

    @property
    def trajectories(self) -> Any:
        """The explored :class:`~rlvision_widgets.rollouts.Trajectories` (or None)."""
        return self._traj

    @property
    def directions(self) -> np.ndarray | None:
        """The current NMF directions (K, C) in the layer's channel space."""
        return self._current.get("directions")

    @property
    def analysis(self) -> Any:
        """The :class:`~rlvision_widgets.analysis.Analysis` on screen (what ``rv.analyze`` gives
        for the same agent, trajectories and settings), or None before the first analysis
        finishes. ``explorer.analysis.save(path)`` keeps it."""
        return self._current.get("analysis")

    def features(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Current per-feature attribution (E, T, H, W, K) and residual (E, T, H, W)."""
        cur = self._current
        if "features" not in cur:
            return None
        return cur["features"], cur["residual"]

    def load_trajectories(self, trajectories: Any) -> None:
        """Show new trajectories (a Trajectories object, or a dict with ``obs``, ``values``,
        ``advantages``, ``rewards``, ``actions``, ``firsts``, ``logits``) and re-analyse."""
        if isinstance(trajectories, dict):
            arrays = {k: np.asarray(v) for k, v in trajectories.items()}
            self._traj = None
        else:
            self._traj = trajectories
            arrays = {
                k: np.asarray(getattr(trajectories, k))
                for k in ("obs", "values", "advantages", "rewards", "actions", "firsts", "logits")
            }
        # counterfactual frames need engine states; they run on their own copy of the agent
        # (attribution hooks must never meet the worker's on one module)
        import copy

        self.setup_counterfactuals(
            copy.deepcopy(self._agent),
            self._traj if hasattr(self._traj, "state_at") else None,
            layer=self.layer,
        )
        obs = arrays["obs"]
        if obs.ndim == 4:
            arrays = {k: v[None] for k, v in arrays.items()}
        E, T = arrays["obs"].shape[:2]
        # value and policy of the *explored* agent (the trajectories may come from another)
        logits, values = self._forward(arrays["obs"].reshape(E * T, *arrays["obs"].shape[2:]))
        values = values.reshape(E, T)
        changed = "values" not in arrays or not np.allclose(arrays["values"], values, atol=1e-4)
        arrays["values"], arrays["logits"] = values, logits.reshape(E, T, -1)
        if (changed or "advantages" not in arrays) and "rewards" in arrays and "firsts" in arrays:
            from ..rollouts import gae_advantages

            # bootstrap from the last recorded frame's value (the next observation is unknown)
            last_firsts = np.asarray(getattr(trajectories, "last_firsts", np.zeros(E, bool)))
            adv = gae_advantages(
                arrays["rewards"],
                values,
                np.asarray(arrays["firsts"]),
                last_values=values[:, -1].copy(),
                last_firsts=last_firsts,
            )
            arrays["advantages"] = adv
        # new data, new caches: a running job keeps its own (and is superseded)
        from ..analysis.bookmarks import bookmark_list

        self._data = _Data(
            arrays,
            bookmark_list(
                arrays["values"],
                arrays.get("advantages"),
                arrays.get("firsts"),
                getattr(self._traj, "episodes", None),
            ),
        )
        self._current = {}
        labels = []
        episodes = getattr(self._traj, "episodes", None)
        for e in range(E):
            n = int((np.asarray(arrays.get("firsts", np.zeros((E, T))))[e][1:] != 0).sum()) + 1
            fails = ""
            if episodes is not None and len(episodes):
                ep = episodes[episodes["env"] == e]
                nf = int((ep["finished"] & ~ep["success"]).sum())
                ns = int(ep["success"].sum())
                fails = f", {ns}✓ {nf}✗"
            labels.append(f"{e + 1} of {E} ({n} ep{fails})")
        self.set_trajectories(
            arrays["obs"],
            arrays.get("values"),
            arrays.get("advantages"),
            arrays.get("rewards"),
            arrays.get("actions"),
            arrays.get("firsts"),
            arrays.get("logits"),
            labels,
        )
        self.bookmarks = [
            {"trajectory": b["env"], "frame": b["step"], **b} for b in self._data.bookmarks
        ]
        self._clear_edited()
        self._worker.submit("analysis", self._job_analysis)

    def rerun(self) -> None:
        """Re-run the agent with the current edits on the shown trajectory's level (from the
        start of the shown episode); the new trajectory appears beside the old one."""
        self._worker.submit("rerun", self._job_rerun)

    def optimize_feature(self, feature: int | None = None, steps: int = OPTVIS_STEPS) -> None:
        """Optimize an input image for ``feature``'s NMF direction at the analysed layer (default:
        the feature in the grid), on demand, in the worker (progress in the widget; a newer
        request supersedes it): the decorrelated Fourier parameterization of
        :func:`rlvision_widgets.analysis.optvis.optimize` (``steps``, the explorer's seed).
        The image and its objective value against the best real frame go to ``optvis_image`` /
        ``optvis_info`` and are shown beside the feature's dataset examples; results are
        cached per (layer, rank, feature, steps). The browser's "optimize" button calls it.

        >>> explorer.optimize_feature(2); explorer.wait()      # doctest: +SKIP
        >>> explorer.optvis_info["ratio"]                      # doctest: +SKIP
        4.2
        """
        directions = self._current.get("directions")
        if directions is None:
            raise ValueError("no features yet: wait for the analysis (explorer.wait())")
        k = int(self.grid_feature) if feature is None else feature
        K = len(directions)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < K:
            raise ValueError(
                f"feature must be an integer in [0, {K - 1}] (or None for grid_feature), "
                f"got {feature if feature is not None else k!r}"
            )
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        k, steps = int(k), int(steps)
        cur = self._current
        self.optvis_info = {
            "state": "computing",
            "feature": k,
            "layer": cur["layer"],
            "rank": int(cur["rank"]),
            "steps": steps,
        }
        self._worker.submit("optvis", lambda rep: self._job_optvis(rep, k, steps))

    def payload_bytes(self) -> dict[str, int]:
        """Bytes of the binary buffers sent to the browser, per trait and in total (every
        buffer the typed array traits serialize to; JSON metadata not counted).

        >>> explorer.payload_bytes()["total"]          # doctest: +SKIP
        2721460
        """
        sizes = {}
        for name in self.trait_names(sync=True):
            to_json = self.trait_metadata(name, "to_json", None)
            if to_json is None or name in ("_esm", "_css"):
                continue
            n = wire_bytes(to_json(getattr(self, name), self))
            if n:
                sizes[name] = n
        sizes["total"] = sum(sizes.values())
        return sizes

    def close(self, timeout: float | None = None) -> None:
        """Stop background work (pending jobs dropped, the running one stopped at its next
        step), join the worker thread (at most ``timeout`` seconds) and close the widget."""
        worker = getattr(self, "_worker", None)
        if worker is not None and not worker.close(timeout):
            log.warning("the explorer's worker is still running after %s s", timeout)
        _LIVE.discard(self)
        self.close_counterfactuals()
        super().close()

    # ----------------------------------------------------------------------- validation
    @t.validate("output")
    def _valid_output(self, proposal: t.Bunch) -> str:
        from ..analysis.outputs import parse_output

        try:
            return parse_output(proposal["value"]).name  # canonical, e.g. "logit:7"
        except (ValueError, TypeError) as exc:
            raise t.TraitError(str(exc)) from None

    @t.validate("layer")
    def _valid_layer(self, proposal: t.Bunch) -> str:
        access = getattr(self, "_access", None)
        if access is not None:
            try:
                access.check_layer(proposal["value"])
            except KeyError as exc:
                raise t.TraitError(exc.args[0]) from None
        return proposal["value"]

    @t.validate("rank")
    def _valid_rank(self, proposal: t.Bunch) -> int:
        v, hi = proposal["value"], int(self.rank_max or 16)
        if not 1 <= v <= hi:
            raise t.TraitError(
                f"rank must be in [1, {hi}] (rank_max at layer {self.layer!r}), got {v}"
            )
        return int(v)

    # ------------------------------------------------------------------------ observers
    def _on_analysis_change(self, change: dict) -> None:
        if change["name"] == "output":
            self.output_label = output_label(change["new"])
        if change["name"] == "layer":
            self.rank_max = int(min(16, self._access.layer_shape(change["new"])[2]))
            if self.rank > self.rank_max:
                self.rank = self.rank_max
        if self._arrays:
            self._worker.submit("analysis", self._job_analysis)

    def _on_grid_change(self, change: dict) -> None:
        if self.grid_feature >= 0 and "directions" in self._current:
            self.grid_busy = True
            self._worker.submit("grid", self._job_grid)

    def _edits_active(self) -> bool:
        return any(s > 0 for s in self.edit_strengths) or any(self.edit_off)

    def _on_edit_change(self, change: dict) -> None:
        if self._resetting_edits:  # the analysis that reset them clears the edited view
            return
        if "directions" in self._current:
            self._worker.submit("edit", self._job_edit)

    def _on_trajectory_change(self, change: dict) -> None:
        if self._edits_active() and "directions" in self._current:
            self._worker.submit("edit", self._job_edit)

    def _on_msg(self, _widget: Any, content: dict, buffers: list) -> None:
        """Custom messages from the browser; a malformed one is refused with a status line."""
        if self.handle_counterfactual_message(content):  # cf_*: the counterfactual panel
            return
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "full_frame":
            e, f = content.get("trajectory", 0), content.get("frame", 0)
            ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (e, f))
            if not ok or not (0 <= e < self.n_trajectories and 0 <= f < self.n_steps):
                self.status = (
                    f"full_frame refused: trajectory {e!r} / frame {f!r} must be integers in "
                    f"[0, {self.n_trajectories - 1}] / [0, {self.n_steps - 1}]"
                )
                return
            self._send_full_frame(e, f)
        elif kind == "rerun":
            self.rerun()
        elif kind == "optvis":
            k = content.get("feature")
            n = len(self.directions) if self.directions is not None else 0
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
                self.status = (
                    f"optvis refused: feature {k!r} must be an integer in [0, {n - 1}]"
                    if n
                    else "optvis refused: no features yet (the analysis is still running)"
                )
                return
            self.optimize_feature(k)
        else:
            log.warning("Explorer: unknown message from the browser: %r", kind)

    def _send_full_frame(self, e: int, t: int) -> None:
        if self._traj is None or not hasattr(self._traj, "render_full"):
            self.status = "full-resolution frames need recorded Trajectories (engine states)"
            return
        try:
            img = self._traj.render_full(e, t)
        except Exception as exc:
            self.status = f"cannot render the full-resolution frame: {exc}"
            return
        self.send(
            {"type": "full_frame", "trajectory": e, "frame": t},
            buffers=[enc.encode_png(np.asarray(img, np.uint8), compress_level=1)],
        )

    # ----------------------------------------------------------------------------- helpers
    def _edited_access(self, edits: list[Any]) -> Any:
        """LayerAccess on a copy of the agent with ``edits`` applied by the one editing mechanism
        (``apply_edit``); the last few edited copies are kept."""
        from ..agents.editing import apply_edit
        from ..analysis.layers import LayerAccess

        key = tuple(edits)
        cache = self._edited_cache
        if key not in cache:
            cache[key] = LayerAccess(apply_edit(self._agent, edits))
            while len(cache) > 4:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

    def _forward(
        self, obs: np.ndarray, access: Any = None, batch: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        access = self._access if access is None else access
        logits, values = [], []
        for s in range(0, len(obs), batch):
            lg, v = access.outputs(obs[s : s + batch])
            logits.append(lg.float().numpy())
            values.append(v.float().numpy())
        return np.concatenate(logits), np.concatenate(values)

    def _obs(self, e: int, data: _Data | None = None) -> np.ndarray:
        return (data or self._data).arrays["obs"][e]

    def _order(self, data: _Data | None = None) -> list[int]:
        E = (data or self._data).n_trajectories
        cur = min(self.trajectory, E - 1)
        return [cur] + [e for e in range(E) if e != cur]

    def _ig_traj(self, layer: str, output: str, e: int, data: _Data | None = None) -> np.ndarray:
        """Attribution of ``output`` at ``layer`` for trajectory ``e`` of ``data``: cached, or
        computed on a miss. The caller holds the returned array (eviction cannot take it)."""
        d = data or self._data
        hit = d.get_ig((layer, output, e))
        if hit is not None:
            return hit
        from ..analysis.integrated_gradients import integrated_gradients

        r = integrated_gradients(
            self._access, d.arrays["obs"][e], layer, output=output, steps=self._ig_steps
        )
        d.put_ig((layer, output, e), r.attributions, np.asarray(r.activations))
        return r.attributions

    def _acts_all(self, layer: str, data: _Data | None = None) -> np.ndarray:
        d = data or self._data
        out = []
        for e in range(d.n_trajectories):
            with d.lock:
                a = d.acts.get((layer, e))
            if a is None:  # computed on a miss, held here
                a = self._access.activations(d.arrays["obs"][e], layer).numpy()
                with d.lock:
                    d.acts[(layer, e)] = a
            out.append(a)
        return np.stack(out)

    def _clear_edited(self) -> None:
        with self.hold_sync():
            self.edited_trajectory = -1
            self.edited_values = None
            self.edited_logits = None
            self.edited_attributions = None

    def _push_attr(self, payload: AttributionPayload, prefix: str = "") -> None:
        setattr(self, f"{prefix}attributions", payload.value())

    # -------------------------------------------------------------------------------- jobs
    def _job_collect(self, report: Callable, num_envs: int, num_steps: int) -> None:
        report(0.0, f"collecting {num_envs} × {num_steps} steps of CoinRun…")
        traj = eng.collect(self._agent, num_envs, num_steps, self._seed, self._env_options)
        report(1.0, "trajectories collected")
        self.load_trajectories(traj)

    def _job_analysis(self, report: Callable) -> None:
        d = self._data  # this job's trajectories and caches, whatever loads meanwhile
        layer, output, rank = self.layer, self.output, int(self.rank)

        def publish(frac: float, msg: str = "") -> None:
            """Newest request wins: stop before showing anything a newer request replaced."""
            report(frac, msg)
            if d is not self._data or (layer, output, rank) != (
                self.layer,
                self.output,
                int(self.rank),
            ):
                raise _Superseded

        obs = d.arrays["obs"]
        E, T = obs.shape[:2]
        order = self._order(d)
        # 1. value attributions of every frame (the NMF is fitted on them, as the article);
        # held by this job whatever the cache evicts meanwhile
        values: dict[int, np.ndarray] = {}
        need_v = [e for e in order if d.get_ig((layer, "value", e)) is None]
        for i, e in enumerate(need_v):
            report(
                0.6 * i / max(1, len(need_v)),
                f"integrated gradients of the value at {layer}: trajectory {i + 1}/{len(need_v)}",
            )
            values[e] = self._ig_traj(layer, "value", e, d)
        for e in order:
            if e not in values:
                values[e] = self._ig_traj(layer, "value", e, d)
        report(0.6, f"NMF (rank {rank}) of the value attribution at {layer}…")
        nmf = self._nmf_for(layer, rank, d, values)
        directions = np.asarray(nmf.components_, np.float32)
        K = directions.shape[0]
        H, W = values[order[0]].shape[1:3]
        features = np.zeros((E, T, H, W, K), np.float32)
        residual = np.zeros((E, T, H, W), np.float32)
        payload = AttributionPayload(E, T, H, W, K + 1)
        # the frames around the shown one first (fast feedback), then its trajectory, then
        # the other trajectories
        e0, t0 = order[0], min(int(self.frame), T - 1)
        window = np.arange(max(0, t0 - 16), min(T, t0 + 16))
        attr0 = values[e0] if output == "value" else self._ig_traj(layer, output, e0, d)
        f, r = eng.reduce(nmf, attr0[window])
        features[e0, window], residual[e0, window] = f, r
        payload.set(e0, enc.stack_features(features[e0], residual[e0]), frames=window)
        publish(0.62)
        with self.hold_sync():
            self._apply_features(layer, output, directions, K)
            self._push_attr(payload)
        last_push = time.monotonic()
        attrs: dict[int, np.ndarray] = {}  # the output's attributions, held for the Analysis
        for i, e in enumerate(order):
            report(
                0.65 + 0.3 * i / E,
                f"attributing {output_label(output)}: trajectory {i + 1}/{E}"
                if output != "value"
                else f"reducing trajectory {i + 1}/{E} onto {K} features",
            )
            attrs[e] = attr = values[e] if output == "value" else self._ig_traj(layer, output, e, d)
            f, r = eng.reduce(nmf, attr)
            features[e], residual[e] = f, r
            payload.set(e, enc.stack_features(f, r))
            if i == 0 or time.monotonic() - last_push > 1.5 or i == E - 1:
                publish(0.65 + 0.3 * (i + 1) / E)
                self._push_attr(payload)
                last_push = time.monotonic()
        publish(0.95)
        report(0.96, "dataset examples and labels…")
        analysis = self._assemble(d, layer, output, rank, nmf, values, attrs, (features, residual))
        publish(0.99)
        self._current = dict(
            layer=layer,
            output=output,
            rank=rank,
            directions=directions,
            features=features,
            residual=residual,
            nmf=nmf,
            analysis=analysis,
        )
        report(0.995, "feature mosaics…")
        rf = eng.layer_rf(self._agent, layer)
        acts = analysis.activations
        density = int(self.grid_density)
        images, sources = eng.feature_mosaics(directions, acts, obs, density, rf)
        examples = eng.examples_from_frames(
            analysis.example_frames, analysis.example_strengths, rf, obs.shape[2], acts.shape[2]
        )
        publish(0.999)
        with self.hold_sync():
            self.set_thumbnails(analysis.example_thumbnails)
            self.set_examples(examples)
            self.set_mosaics(images, sources, density)  # every feature: the static export too
            if self._suggest:
                self.set_label_suggestions(_suggestions(analysis))
        summary = (
            f"{K} features at {layer} · {output_label(output)} · "
            f"residual share {getattr(nmf, 'residual_share_', float('nan')):.0%}"
        )
        publish(1.0, summary)
        self.set_directions(directions, layer, list(self.feature_labels))  # the panel's features
        self._summary = summary
        if self.grid_feature >= 0:
            self.grid_feature = min(self.grid_feature, K - 1)
            self._on_grid_change({})
        if self._edits_active():  # re-apply the edits to the new attribution
            self._worker.submit("edit", lambda rep: self._job_edit(rep, summary))
        if self._prefetch:
            self._worker.submit("prefetch", self._job_prefetch)

    def _assemble(
        self,
        d: _Data,
        layer: str,
        output: str,
        rank: int,
        nmf: Any,
        values: dict[int, np.ndarray],
        attrs: dict[int, np.ndarray],
        reduced: tuple[np.ndarray, np.ndarray],
    ) -> Any:
        """The :class:`~rlvision_widgets.analysis.Analysis` on screen, by the headless
        pipeline's own last step (:func:`~rlvision_widgets.analysis.pipeline.assemble`: dataset
        examples, labels, bookmarks) from what this job computed (nothing computed twice)."""
        import torch

        from ..analysis.outputs import parse_output
        from ..analysis.pipeline import THUMBNAIL_SIZE, analysis_settings, assemble

        obs = d.arrays["obs"]
        E = obs.shape[0]
        logits, vals = d.arrays["logits"], d.arrays["values"]
        spec = parse_output(output)
        with torch.no_grad():
            flat = torch.from_numpy(logits.reshape(-1, logits.shape[-1]))
            outputs = spec(flat, torch.from_numpy(vals.reshape(-1))).float().reshape(-1).numpy()
        value_attr = np.stack([values[e] for e in range(E)])
        attr = value_attr if output == "value" else np.stack([attrs[e] for e in range(E)])
        labelled = self._suggest and self._traj is not None and hasattr(self._traj, "state_at")
        settings = analysis_settings(
            self._agent,
            obs,
            layer=layer,
            output=spec.name,
            rank=rank,
            seed=self._seed,
            ig_steps=self._ig_steps,
            thumbnail_size=THUMBNAIL_SIZE,
            suggest_labels=labelled,
        )
        data = {
            "observations": obs,
            "values": vals,
            "logits": logits,
            "outputs": outputs.reshape(vals.shape),
            "activations": self._acts_all(layer, d),
            "attributions": attr,
            "advantages": d.arrays.get("advantages"),
            "value_attributions": None if output == "value" else value_attr,
        }
        args = (nmf, data, settings)
        kw = dict(firsts=d.arrays.get("firsts"), bookmarks=d.bookmarks, reduced=reduced)
        episodes = getattr(self._traj, "episodes", None)
        try:
            return assemble(*args, self._traj if labelled else None, episodes, **kw)
        except Exception as exc:  # labels are optional: never block the explorer on them
            if not labelled:
                raise
            log.info("label suggestion unavailable: %s", exc)
            return assemble(*args, None, episodes, **kw)

    def _nmf_for(
        self,
        layer: str,
        rank: int,
        data: _Data | None = None,
        values: dict[int, np.ndarray] | None = None,
    ) -> Any:
        """The NMF of the value attribution at ``layer`` with ``rank`` components (fitted once
        per layer on ``values`` or the cached/computed value attributions; other ranks refit
        from its coreset and are cached)."""
        import copy

        d = data or self._data
        key = (layer, rank)
        with d.lock:
            nmf = d.nmf.get(key)
            base = next((m for (l, _), m in d.nmf.items() if l == layer), None)
        if nmf is not None:
            return nmf
        if base is None:
            v_all = np.concatenate(
                [
                    values[e] if values and e in values else self._ig_traj(layer, "value", e, d)
                    for e in range(d.n_trajectories)
                ]
            )
            nmf = eng.fit_nmf(v_all, rank, self._seed)
        else:
            nmf = eng.fit_nmf(None, rank, self._seed, previous=copy.deepcopy(base))
        with d.lock:
            d.nmf[key] = nmf
        return nmf

    def _job_prefetch(self, report: Callable) -> None:
        """While idle, fit the neighbouring ranks so the rank slider answers at once."""
        d, cur = self._data, self._current
        layer, rank = cur.get("layer"), cur.get("rank")
        if layer is None or rank is None:
            return
        for r in (rank + 1, rank - 1, rank + 2, rank - 2):
            if 1 <= r <= self.rank_max and (layer, r) not in d.nmf:
                report(0.0)  # yields to any other request
                self._nmf_for(layer, r, d)

    def _apply_features(self, layer: str, output: str, directions: np.ndarray, K: int) -> None:
        """New features: reset labels/edits when their meaning changed."""
        prev = self._current.get("directions")
        same = (
            prev is not None
            and prev.shape == directions.shape
            and self._current.get("layer") == layer
            and np.allclose(prev, directions)
        )
        with self.hold_sync():
            self.attr_layer = layer
            self.n_features = K
            if not same:
                self.feature_labels = [""] * K
                self.suggested_labels = []
                self._resetting_edits = True
                try:
                    self.edit_strengths = [0.0] * K
                    self.edit_off = [False] * K
                finally:
                    self._resetting_edits = False
                self.isolated_feature = -1
                self._clear_edited()
                self.thumbnails = None
                self.feature_examples = []
                self.label_evidence = []
                self.mosaics = None
                self.set_optvis(None)

    def _edit_strengths(self) -> np.ndarray:
        K = int(self.n_features)
        s = np.zeros(K, np.float32)
        for i, v in enumerate(self.edit_strengths[:K]):
            s[i] = v
        for i, off in enumerate(self.edit_off[:K]):
            if off:
                s[i] = 1.0
        return s

    def _job_edit(self, report: Callable, summary: str = "") -> None:
        """Attribute the shown trajectory under the current edits. ``summary``: the analysis
        status this job follows up (kept in front of the edit status)."""
        d, cur = self._data, self._current  # held for the whole job
        directions = cur.get("directions")
        if directions is None:
            return
        layer, output, nmf = cur["layer"], cur["output"], cur["nmf"]
        s = self._edit_strengths()
        edits = eng.edits_for(layer, directions, s)
        if not edits:
            was_edited = self.edited_trajectory >= 0
            self._clear_edited()
            # nothing was shown edited (e.g. a stale request): keep the analysis summary
            report(1.0, "edits cleared" if was_edited else summary or self._summary)
            return
        e = int(self.trajectory)
        obs = self._obs(e, d)
        T = obs.shape[0]
        from ..analysis.integrated_gradients import integrated_gradients

        access = self._edited_access(edits)
        # the edited copy of the agent (apply_edit): the caller's module is never touched
        report(0.05, "edited agent: value and policy…")
        logits, values = self._forward(obs, access)
        H, W = cur["features"].shape[2:4]
        K = directions.shape[0]
        maps = np.zeros((T, H, W, K + 1), np.float32)
        payload = AttributionPayload(1, T, H, W, K + 1)
        with self.hold_sync():
            self.edited_trajectory = e
            self.edited_values = np.asarray(values).reshape(T)
            self.edited_logits = np.asarray(logits).reshape(T, -1)
            self.edited_attributions = payload.value()  # nothing ready yet
        done: list[int] = []
        t0 = int(self.frame)
        order = sorted(range(T), key=lambda u: (abs(u - t0), u))
        chunks = [order[:8]] + [order[i : i + 128] for i in range(8, T, 128)]
        for i, idx in enumerate(chunks):
            report(0.1 + 0.9 * i / len(chunks), f"edited attribution: {len(done)}/{T} frames")
            idx = sorted(idx)
            attr = integrated_gradients(
                access, obs[idx], layer, output=output, steps=self._ig_steps
            ).attributions
            f, r = eng.reduce(nmf, attr)
            maps[idx] = enc.stack_features(f, r)
            done.extend(idx)
            payload.set(0, maps, frames=done)
            self._push_attr(payload, "edited_")
        n_off = int((s >= 1).sum())
        modes = sorted({edit.mode for edit in access.model.edits})
        msg = (
            f"edited agent ({'/'.join(modes)} edit): {n_off} feature(s) off, "
            f"{int(((s > 0) & (s < 1)).sum())} partial"
        )
        report(1.0, f"{summary} · {msg}" if summary else msg)

    def _job_grid(self, report: Callable) -> None:
        k, density = int(self.grid_feature), int(self.grid_density)
        d, cur = self._data, self._current  # held for the whole job
        directions = cur.get("directions")
        if k < 0 or directions is None or k >= len(directions):
            self.grid_busy = False
            return
        layer = cur["layer"]
        report(0.2, f"spatially-aware feature visualization of feature {k + 1}…")
        acts = self._acts_all(layer, d)
        E, T = acts.shape[:2]
        obs = d.arrays["obs"].reshape(E * T, *d.arrays["obs"].shape[2:])
        rf = eng.layer_rf(self._agent, layer)
        img, src = eng.mosaic(directions[k], acts.reshape(E * T, *acts.shape[2:]), obs, density, rf)
        report(0.9)  # a newer request replaced this one: show nothing
        sources = np.stack([np.where(src >= 0, src // T, -1), np.where(src >= 0, src % T, -1)], -1)
        with self.hold_sync():
            self.set_mosaic(img, sources)
            self.grid_busy = False
        report(1.0, f"feature {k + 1}: {density}×{density} mosaic")

    def _job_optvis(self, report: Callable, k: int, steps: int) -> None:
        """The grid's "optimize": an image for feature ``k``'s NMF direction (see
        :meth:`optimize_feature`), compared with the best real frame of the explorer's data."""
        d, cur = self._data, self._current  # held for the whole job
        directions = cur.get("directions")
        if directions is None or k >= len(directions):
            return
        layer, rank = cur["layer"], int(cur["rank"])
        key = (layer, rank, k, steps)
        base = {"feature": k, "layer": layer, "rank": rank, "steps": steps}
        try:
            with d.lock:
                hit = d.optvis.get(key)
            if hit is None:
                image, info = self._optimize_direction(report, d, layer, directions[k], steps)
                info = {**base, **info}
                with d.lock:
                    d.optvis[key] = (image, info)
                cached = False
            else:
                (image, info), cached = hit, True
            report(0.99)  # a newer request replaced this one: show nothing
            self.set_optvis(image, {**info, "cached": cached})
        except _Superseded:
            raise
        except Exception as exc:
            self.optvis_info = {**base, "state": "error", "message": f"{type(exc).__name__}: {exc}"}
            raise
        ratio = info["ratio"]
        vs = f"{ratio:.2f}× the best real frame" if ratio is not None else "no real frame responds"
        when = " (cached)" if cached else f" ({info['seconds']:.1f} s)"
        report(1.0, f"feature {k + 1}: optimized image, {vs}{when}")

    def _optimize_direction(
        self, report: Callable, d: _Data, layer: str, direction: np.ndarray, steps: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Optimize one image for ``direction`` at ``layer`` and measure it against ``d``'s
        frames (the objective: the projection on the direction, mean over positions)."""
        import copy

        from ..analysis import optvis
        from ..analysis.layers import get_layer

        # a private copy of the agent: the step-counting hook and optvis' own temporary hooks
        # never touch the module other threads may run
        model = copy.deepcopy(self._agent)
        step = [0]

        def on_step(*_: Any) -> None:  # one forward of the layer per optimization step
            step[0] += 1
            if step[0] <= steps and (step[0] % 4 == 0 or step[0] == 1):
                msg = f"optimizing an image for the feature at {layer}: step {step[0]}/{steps}"
                report(0.95 * step[0] / steps, msg)

        report(0.0, f"optimizing an image for the feature at {layer} ({steps} steps)…")
        hook = get_layer(model, layer).register_forward_hook(on_step)
        t0 = time.perf_counter()
        try:
            r = optvis.optimize(
                model,
                [optvis.Direction(layer, direction)],
                steps=steps,
                seed=self._seed,
                method="fourier",
                progress=False,
            )
        finally:
            hook.remove()
        seconds = time.perf_counter() - t0
        report(0.96, "comparing with the real frames…")
        v = np.asarray(direction, np.float32)
        real = self._acts_all(layer, d) @ v  # (E, T, H, W) projections of every real frame
        E, T = real.shape[:2]
        per_frame = real.mean(axis=(2, 3))
        best = np.unravel_index(int(np.argmax(per_frame)), per_frame.shape)
        img_proj = self._access.activations(r.images, layer).numpy()[0] @ v  # (H, W)
        value, best_real = float(r.values[0]), float(per_frame[best])
        cell, best_cell = float(img_proj.max()), float(real.max())
        info = {
            "state": "ready",
            "method": "fourier",
            "seed": self._seed,
            "value": value,
            "best_real": best_real,
            "best_frame": [int(best[0]), int(best[1])],
            "ratio": value / best_real if best_real > 0 else None,  # None: no real response
            "cell_value": cell,
            "best_cell": best_cell,
            "cell_ratio": cell / best_cell if best_cell > 0 else None,
            "n_frames": int(E * T),
            "seconds": seconds,
            "caption": (
                f"An input image optimized ({steps} steps, decorrelated Fourier "
                f"parameterization) to raise this feature's NMF direction at {layer}: what "
                "gradient ascent finds, not a real frame"
            ),
        }
        return r.images[0], info

    def _job_rerun(self, report: Callable) -> None:
        cur = self._current  # held for the whole job
        directions = cur.get("directions")
        if self._traj is None or directions is None:
            self.rerun_info = {"message": "re-running needs recorded Trajectories (level seeds)"}
            return
        from ..environment.coinrun import EnvOptions
        from ..rollouts import collect_trajectories

        e, t = int(self.trajectory), int(self.frame)
        traj = self._traj
        k = traj.episode_index(e, t)
        ep = traj.episodes[k]
        start, seed = int(ep["start"]), int(ep["level_seed"])
        steps = int(traj.num_steps - start)
        opts = dict(traj.metadata.get("env_options") or {})
        opts.update(num_envs=1, num_levels=1, start_level=seed)
        options = EnvOptions.from_dict(opts)
        s = self._edit_strengths()
        layer = cur["layer"]
        edits = eng.edits_for(layer, directions, s)
        report(0.1, f"re-running the {'edited' if edits else 'unedited'} agent on level {seed}…")
        self.rerun_info = {"message": "Re-running…"}
        agent = self._edited_access(edits).model if edits else self._agent
        new = collect_trajectories(
            agent, 1, steps, seed=self._seed + 1, env_options=options, progress=False
        )

        def outcome(episodes: np.ndarray, env: int, after: int) -> str:
            rows = episodes[(episodes["env"] == env) & (episodes["start"] >= after)]
            if not len(rows):
                return ""
            r = rows[0]
            if not r["finished"]:
                return f"still running after {int(r['length'])} steps"
            if r["success"]:
                return f"success in {int(r['length'])} steps"
            return f"failed ({r['cause']}) after {int(r['length'])} steps"

        info = {
            "trajectory": e,
            "start": start,
            "level_seed": seed,
            "steps": steps,
            "edits": [float(x) for x in s],
            "outcome": outcome(new.episodes, 0, 0),
            "original_outcome": outcome(traj.episodes[k : k + 1], e, start),
            "message": f"Re-ran level {seed} from step {start} with "
            f"{'the edits' if edits else 'no edits'} (sampled actions, new seed).",
        }
        with self.hold_sync():
            self.rerun_frames = new.obs[0][None]
            self.rerun_values = new.values[0]
            self.rerun_actions = new.actions[0]
            self.rerun_rewards = new.rewards[0]
            self.rerun_firsts = new.firsts[0]
            self.rerun_info = info
        report(1.0, info["message"])


def _suggestions(analysis: Any) -> list[Any]:
    """The legend's label suggestions from an Analysis: per feature its identified class with
    the evidence (``describe``: one line for the tooltip); a weak match is offered marked as
    weak (never as an identification); an unidentified feature gets none."""
    from ..analysis.labels import CLASS_LABELS

    if not analysis.label_evidence:
        return list(analysis.suggested_labels)
    out: list[Any] = []
    for name, e in zip(analysis.suggested_labels, analysis.label_evidence):
        weak = e.get("status") == "weak"
        best = str(e.get("best_class") or "")
        label = name or (CLASS_LABELS.get(best, best) if weak else "")
        out.append(dict(e, label=label, duplicate=bool(e.get("duplicates"))))
    return out


def explore(
    agent: nn.Module | str | os.PathLike | None = None, trajectories: Any = None, **kwargs: Any
) -> Explorer:
    """Open the explorer (in one line) on ``agent`` (default: the shipped reference agent).

    >>> import rlvision_widgets as rv
    >>> rv.explore()                                           # doctest: +SKIP
    """
    return Explorer(agent, trajectories, **kwargs)


def export_explorer(
    path: str | pathlib.Path,
    agent: Any = None,
    trajectories: Any = None,
    title: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    **explorer_kwargs: Any,
) -> pathlib.Path:
    """Analyse ``agent`` (default: the shipped reference agent) synchronously and write the
    explorer as one self-contained HTML file; what ``rlvision export`` runs.

    ``progress``: called as ``progress(fraction, message)`` for each job (collection, analysis,
    feature grid; each job's fraction runs 0 to 1, its message starts with the job's name).
    ``explorer_kwargs`` go to :class:`~rlvision_widgets.widgets.Explorer` (``num_envs``,
    ``num_steps``, ``seed``, ``layer``, ``output``, ``rank``, ...).

    >>> export_explorer("explorer.html", num_envs=8, num_steps=256)   # doctest: +SKIP
    """
    ex = Explorer(agent, trajectories, background=False, on_progress=progress, **explorer_kwargs)
    try:
        return ex.save_html(path, title=title, progress=progress)
    finally:
        ex.close()
