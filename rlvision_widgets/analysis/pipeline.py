"""The article's analysis, headless: :func:`analyze` an agent on trajectories -> :class:`Analysis`.

One function runs what the article's interface shows for one setting (layer, output, rank),
in plain torch/numpy (no Jupyter, no threads of its own):

1. integrated gradients of the **value** at the layer (default: the network's object layer)
   for every frame of every trajectory;
2. NMF of those value attributions (the article fits NMF on value attributions), with the one
   set of settings :data:`~rlvision_widgets.analysis.settings.NMF_SETTINGS`;
3. attribution of ``output`` (the value again by default) for every frame, reduced onto the NMF
   directions: per-feature maps + residual, ``features.sum(-1) + residual ==
   attributions.sum(-1)`` at every position;
4. dataset examples per feature (the legend thumbnails and where they come from);
5. suggested labels from the engine's ground-truth objects (when the trajectories carry
   engine states);
6. bookmarks: advantage extremes, value spikes, frames before failures.

>>> import rlvision_widgets as rv
>>> traj = rv.collect_trajectories("coinrun", num_envs=2, num_steps=32)   # doctest: +SKIP
>>> a = rv.analyze("coinrun", traj, rank=8)                             # doctest: +SKIP
>>> a.features.shape                                                     # doctest: +SKIP
(2, 32, 16, 16, 8)
>>> a6 = a.with_rank(6)                  # refit from the coreset        # doctest: +SKIP
>>> a.save("analysis"); rv.Analysis.load("analysis")                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import array_hash, atomic_open, json_safe, sha256_file, write_json_atomic
from .settings import IG_STEPS, NMF_SETTINGS, make_nmf

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Analysis",
    "AnalysisFileError",
    "analysis_settings",
    "analyze",
    "assemble",
]

FORMAT = "rlvision-analysis"
FORMAT_VERSION = 1

Progress = Callable[[float, str], None]

#: the arrays an Analysis always holds, with their axes (checked on load)
_ARRAYS = {
    "observations": "E T S S 3",
    "values": "E T",
    "logits": "E T A",
    "outputs": "E T",
    "activations": "E T h w C",
    "attributions": "E T h w C",
    "directions": "K C",
    "features": "E T h w K",
    "residual": "E T h w",
    "example_thumbnails": "K s s 4",
    "example_frames": "K n 4",
    "example_strengths": "K n",
}
#: arrays only some analyses hold
_OPTIONAL = {"advantages": "E T", "value_attributions": "E T h w C"}

#: legend icons: the 3 x 3 strongest examples, each the crop of one layer position's receptive
#: field (20 px at 2b on the compact network), at most 4 from one position
_THUMB = {"grid": 3, "max_per_position": 4, "expand": 1.0}
#: legend icon side in pixels (3 x 20 px crops drawn at 2x)
THUMBNAIL_SIZE = 120


class AnalysisFileError(ValueError):
    """A saved analysis that cannot be read: wrong format, newer version, corrupted, or
    incomplete. The message names the file and what to do."""


class Analysis:
    """What the article's interface shows for one setting of one agent on trajectories.

    Arrays (numpy, trajectories ``E`` x steps ``T`` first, channels last):
    ``attributions`` (E, T, h, w, C) of ``settings["output"]`` at the layer; ``directions``
    (K, C) the NMF directions (unit norm, most attribution mass first); ``features``
    (E, T, h, w, K) and ``residual`` (E, T, h, w) with ``features.sum(-1) + residual ==
    attributions.sum(-1)``; ``activations`` (E, T, h, w, C); ``observations`` (E, T, 64, 64, 3);
    ``values``, ``outputs`` (E, T) and ``logits`` (E, T, 15) of the analysed agent;
    ``advantages`` (E, T) or None; ``value_attributions`` (what the NMF was fitted on) when the
    output is not the value (else it is ``attributions``). Dataset examples:
    ``example_thumbnails`` (K, s, s, 4) RGBA legend icons, ``example_frames`` (K, n, 4) the
    (env, step, y, x) of each example (-1: none), ``example_strengths`` (K, n).
    ``suggested_labels`` (K class names, "" for an unidentified feature; empty when no engine
    states) from :func:`~rlvision_widgets.analysis.features.identify_labels` (a feature's
    strongest examples against the engine's objects), ``label_evidence`` (per feature: status
    identified / duplicate / weak / unidentified, share, base rate, lift, p-value, and
    ``describe``, one line of evidence),
    ``bookmarks`` (dicts: kind, env, step, score, episode, label; failures add cause,
    level_seed, stop), ``settings`` (everything that made it).

    Made by :func:`analyze`; :meth:`with_rank` re-runs the NMF part at another rank,
    :meth:`save` / :meth:`load` keep it on disk (npz + JSON, never pickle).

    >>> a = analyze(build_network("compact"), np.zeros((1, 4, 64, 64, 3), np.uint8),
    ...             rank=2)                                          # doctest: +SKIP
    >>> a.features.shape                                             # doctest: +SKIP
    (1, 4, 16, 16, 2)
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray | None],
        suggested_labels: list[str],
        bookmarks: list[dict[str, Any]],
        settings: dict[str, Any],
        *,
        nmf: Any = None,
        trajectories: Any = None,
        label_evidence: list[dict[str, Any]] | None = None,
    ):
        for name in _ARRAYS:
            setattr(self, name, np.asarray(arrays[name]))
        for name in _OPTIONAL:
            v = arrays.get(name)
            setattr(self, name, None if v is None else np.asarray(v))
        self.suggested_labels = list(suggested_labels)
        self.label_evidence = list(label_evidence or [])
        self.bookmarks = list(bookmarks)
        self.settings = dict(settings)
        self._nmf = nmf  # the fitted NMF with its coreset (None after load)
        self._trajectories = trajectories  # engine states for labels (None after load)

    # ------------------------------------------------------------------------ shape
    @property
    def n_features(self) -> int:
        """Number of NMF features K."""
        return int(self.directions.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(trajectories E, steps T, layer height h, layer width w)."""
        return tuple(int(x) for x in self.residual.shape)  # type: ignore[return-value]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array this analysis holds, by name (optional ones only when present)."""
        out = {k: getattr(self, k) for k in _ARRAYS}
        out.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        return out

    def __repr__(self) -> str:
        s = self.settings
        E, T, h, w = self.shape
        share = s.get("nmf_fit", {}).get("residual_share")
        labels = [x for x in self.suggested_labels if x]
        return (
            f"Analysis({E} trajectories x {T} steps; layer {s.get('layer')!r} ({h}x{w}x"
            f"{self.directions.shape[1]}), output {s.get('output')!r}, rank {self.n_features}"
            + (f", NMF residual share {share:.0%}" if isinstance(share, float) else "")
            + f"; {len(labels)}/{self.n_features} features labelled; "
            f"{len(self.bookmarks)} bookmarks; agent {str(s.get('agent_hash', ''))[:12]})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Analysis):
            return NotImplemented
        a, b = self.arrays(), other.arrays()
        return (
            a.keys() == b.keys()
            and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
            and self.suggested_labels == other.suggested_labels
            and self.label_evidence == other.label_evidence
            and json_safe(self.bookmarks) == json_safe(other.bookmarks)
            and json_safe(self.settings) == json_safe(other.settings)
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------- rank change
    def with_rank(self, rank: int, *, progress: Progress | None = None) -> Analysis:
        """The same analysis at another NMF rank: refits from the coreset of the first fit (no
        pass over the data; identical to a fresh :func:`analyze` at ``rank`` with the same
        seed), then reduces, dataset examples, labels. A loaded analysis has no coreset: it
        refits from its value attributions (same result, one pass more).

        >>> a4 = analysis.with_rank(4)                                   # doctest: +SKIP
        >>> a4.directions.shape                                          # doctest: +SKIP
        (4, 32)
        """
        C = self.attributions.shape[-1]
        _check_rank(rank, C)
        s = self.settings
        has_states = self._trajectories is not None  # labels need engine states (not saved)
        if self._nmf is not None:
            nmf = copy.deepcopy(self._nmf).refit(int(rank))
        else:
            nmf = make_nmf(int(rank), int(s["seed"]), **s["nmf"]).fit(
                _flat(
                    self.value_attributions
                    if self.value_attributions is not None
                    else self.attributions
                )
            )
        return assemble(
            nmf,
            {
                k: getattr(self, k)
                for k in (
                    "observations",
                    "values",
                    "logits",
                    "outputs",
                    "activations",
                    "attributions",
                    "advantages",
                    "value_attributions",
                )
            },
            dict(s, rank=int(rank), suggest_labels=bool(s.get("suggest_labels")) and has_states),
            self._trajectories,
            _episodes(self._trajectories),
            progress or _quiet,
            firsts=None,
            bookmarks=self.bookmarks,
        )

    # ------------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.npz`` (arrays) and ``path.json`` (format, version, settings, labels,
        bookmarks, the npz's sha256), atomically; returns the stem. Nothing is pickled.

        >>> stem = analysis.save("runs/analysis-2b")                     # doctest: +SKIP
        """
        stem = _stem(path)
        arrays = self.arrays()
        npz = stem.with_suffix(".npz")
        with atomic_open(npz, "wb") as f:
            np.savez(f, **arrays)
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arrays": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
            },
            "npz_sha256": sha256_file(npz),
            "settings": self.settings,
            "suggested_labels": self.suggested_labels,
            "label_evidence": self.label_evidence,
            "bookmarks": self.bookmarks,
        }
        write_json_atomic(stem.with_suffix(".json"), doc)
        return stem

    @classmethod
    def load(cls, path: str | os.PathLike) -> Analysis:
        """Read an analysis written by :meth:`save`. A missing file raises
        ``FileNotFoundError``; a wrong format, a newer format version, a corrupted or
        incomplete file raises :class:`AnalysisFileError` saying which.

        >>> analysis = Analysis.load("runs/analysis-2b")                 # doctest: +SKIP
        """
        stem = _stem(path)
        jpath, npath = stem.with_suffix(".json"), stem.with_suffix(".npz")
        if not jpath.is_file() or not npath.is_file():
            raise FileNotFoundError(
                f"no saved analysis at {stem} (need {npath.name} and {jpath.name}, written by "
                "Analysis.save)"
            )
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnalysisFileError(
                f"{jpath} is not valid JSON ({exc}); the file is corrupted: re-run analyze() "
                "and save again"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise AnalysisFileError(
                f"{jpath} is not an rlvision analysis file (format {found!r}, expected "
                f"{FORMAT!r}); write one with Analysis.save"
            )
        version = doc.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise AnalysisFileError(f"{jpath}: bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise AnalysisFileError(
                f"{jpath} has format version {version}, newer than this rlvision_widgets reads "
                f"({FORMAT_VERSION}); upgrade rlvision_widgets to load it"
            )
        if sha256_file(npath) != doc.get("npz_sha256"):
            raise AnalysisFileError(
                f"{npath} does not match {jpath.name} (sha256 differs): the file is corrupted "
                "or from another save; re-run analyze() and save again"
            )
        try:
            with np.load(npath, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zip/npy errors of a damaged file
            raise AnalysisFileError(
                f"{npath} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        listed = doc.get("arrays", {})
        missing = sorted((set(_ARRAYS) | set(listed)) - set(arrays))
        if missing:
            raise AnalysisFileError(f"{npath} is incomplete: missing arrays {missing}")
        for k, spec in listed.items():
            if list(arrays[k].shape) != spec.get("shape") or str(arrays[k].dtype) != spec.get(
                "dtype"
            ):
                raise AnalysisFileError(
                    f"{npath}: array {k!r} is {arrays[k].dtype} {arrays[k].shape}, "
                    f"{jpath.name} says {spec}"
                )
        out = cls(
            arrays,
            doc.get("suggested_labels", []),
            doc.get("bookmarks", []),
            doc.get("settings", {}),
            label_evidence=doc.get("label_evidence", []),
        )
        _check_consistent(out, str(stem))
        return out


# ================================================================================ analyze
def analyze(
    agent: nn.Module | str | os.PathLike | None,
    trajectories: Any,
    *,
    layer: str | None = None,
    output: str = "value",
    rank: int = 8,
    seed: int = 0,
    ig_steps: int = IG_STEPS,
    thumbnail_size: int = THUMBNAIL_SIZE,
    suggest_labels: bool | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Run the article's pipeline on ``trajectories`` and return an :class:`Analysis`.

    ``agent``: a torch module mapping uint8 (N, 64, 64, 3) to (logits, value), or a shipped
    agent's name / checkpoint path (:func:`~rlvision_widgets.agents.registry.resolve_agent`);
    never modified. ``trajectories``: a :class:`~rlvision_widgets.rollouts.Trajectories`, a
    dict with ``obs`` (E, T, 64, 64, 3) and optionally ``rewards``, ``firsts``,
    ``advantages``, ``values``, ``episodes``, or an observation array (E, T, 64, 64, 3) /
    (T, 64, 64, 3). ``layer``: default the network's object layer
    (:func:`~rlvision_widgets.analysis.features.object_layer`). ``output``: "value",
    "logit:<a>", "group:<g>", "logprob:<a>". ``rank``: NMF features, 1..channels.
    ``ig_steps``: integrated-gradient steps. ``suggest_labels``: label features from engine
    ground truth (default: when the trajectories carry engine states). ``progress``: called
    as ``progress(fraction, message)``; an exception it raises stops the analysis.

    >>> import rlvision_widgets as rv
    >>> from rlvision_widgets.agents import build_network
    >>> obs = np.random.default_rng(0).integers(0, 255, (1, 6, 64, 64, 3), dtype=np.uint8)
    >>> a = rv.analyze(build_network("compact"), obs, rank=3)
    >>> a.directions.shape, a.features.shape, a.residual.shape
    ((3, 32), (1, 6, 16, 16, 3), (1, 6, 16, 16))
    """
    from ..agents.registry import resolve_agent
    from .features import object_layer
    from .integrated_gradients import integrated_gradients
    from .layers import LayerAccess
    from .outputs import parse_output

    report = progress or _quiet
    model = resolve_agent(agent)
    access = LayerAccess(model)
    if layer is None:
        layer = object_layer(model)
    try:
        layer = access.check_layer(layer)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    spec = parse_output(output)
    arrays = _trajectory_arrays(trajectories)
    obs = arrays["obs"]
    E, T = obs.shape[:2]
    h, w, C = access.layer_shape(layer)
    _check_rank(rank, C)
    if isinstance(ig_steps, bool) or not isinstance(ig_steps, (int, np.integer)) or ig_steps < 1:
        raise ValueError(f"ig_steps must be an integer >= 1, got {ig_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    has_states = hasattr(trajectories, "state_at") and hasattr(trajectories, "num_envs")
    if suggest_labels is None:
        suggest_labels = has_states
    elif suggest_labels and not has_states:
        raise ValueError(
            "suggest_labels=True needs recorded Trajectories (with engine states, from "
            "collect_trajectories); pass suggest_labels=False for plain observations"
        )

    # the analysed agent's own policy, value and output on every frame
    report(0.0, "forward pass of every frame…")
    flat_obs = obs.reshape(E * T, *obs.shape[2:])
    logits, values, outputs = [], [], []
    for s in range(0, E * T, 512):
        lg, v = access.outputs(flat_obs[s : s + 512])
        logits.append(lg.float().numpy())
        values.append(v.float().numpy())
        outputs.append(spec(lg, v).detach().float().reshape(-1).numpy())
    values_a = np.concatenate(values).reshape(E, T)
    logits_a = np.concatenate(logits).reshape(E, T, -1)
    outputs_a = np.concatenate(outputs).reshape(E, T)
    advantages = _advantages(arrays, values_a, trajectories)

    # 1. value attributions of every frame (the NMF is fitted on them, as the article)
    steps = int(ig_steps)
    value_attr = np.empty((E, T, h, w, C), np.float32)
    acts = np.empty((E, T, h, w, C), np.float32)
    for e in range(E):
        report(0.6 * e / E, f"integrated gradients of the value at {layer}: trajectory {e + 1}/{E}")
        r = integrated_gradients(access, obs[e], layer, output="value", steps=steps)
        value_attr[e], acts[e] = r.attributions, r.activations
    # 2. NMF
    report(0.6, f"NMF (rank {rank}) of the value attribution at {layer}…")
    nmf = make_nmf(int(rank), int(seed)).fit(_flat(value_attr))
    # 3. attribution of the output (reduced in assemble)
    if spec.name == "value":
        attr, extra = value_attr, None
    else:
        attr = np.empty_like(value_attr)
        for e in range(E):
            report(0.65 + 0.2 * e / E, f"attributing {spec.name}: trajectory {e + 1}/{E}")
            attr[e] = integrated_gradients(
                access, obs[e], layer, output=spec.name, steps=steps
            ).attributions
        extra = value_attr

    settings = analysis_settings(
        model,
        obs,
        layer=layer,
        output=spec.name,
        rank=rank,
        seed=seed,
        ig_steps=steps,
        thumbnail_size=thumbnail_size,
        suggest_labels=suggest_labels,
    )
    return assemble(
        nmf,
        {
            "observations": obs,
            "values": values_a,
            "logits": logits_a,
            "outputs": outputs_a,
            "activations": acts,
            "attributions": attr,
            "advantages": advantages,
            "value_attributions": extra,
        },
        settings,
        trajectories if suggest_labels else None,
        arrays.get("episodes"),
        report,
        firsts=arrays["firsts"],
    )


# ================================================================================ helpers
def analysis_settings(
    model: nn.Module,
    observations: np.ndarray,
    *,
    layer: str,
    output: str,
    rank: int,
    seed: int,
    ig_steps: int,
    thumbnail_size: int,
    suggest_labels: bool,
) -> dict[str, Any]:
    """The ``settings`` an :class:`Analysis` records: everything that made it (the explorer
    records the same for the analysis on screen).

    >>> from rlvision_widgets.agents import build_network
    >>> s = analysis_settings(build_network("compact"), np.zeros((1, 2, 64, 64, 3), np.uint8),
    ...     layer="2b", output="value", rank=4, seed=0, ig_steps=10, thumbnail_size=120,
    ...     suggest_labels=False)
    >>> s["rank"], s["nmf_fitted_on"], s["envs"], s["steps"], s["thumbnail"]["patch"]
    (4, 'value attributions of every frame', 1, 2, 20)
    """
    from .. import __version__
    from .cache import model_hash
    from .featureviz import receptive_field
    from .layers import LayerAccess

    E, T = observations.shape[:2]
    try:
        rf = receptive_field(model, layer)
        field = {"size": int(rf.size), "stride": float(rf.stride), "center0": float(rf.center0)}
        patch = int(rf.size)
    except (TypeError, KeyError):  # not a ConvAgent: crops of 5 x the layer's stride
        field = None
        h = LayerAccess(model).layer_shape(layer)[0]
        patch = max(1, int(round(5 * observations.shape[2] / h)))
    return {
        "layer": layer,
        "output": output,
        "rank": int(rank),
        "seed": int(seed),
        "ig_steps": int(ig_steps),
        "ig_baseline": "zero activation at the layer, right Riemann sum",
        "nmf": dict(NMF_SETTINGS),
        "nmf_fitted_on": "value attributions of every frame",
        "thumbnail_size": int(thumbnail_size),
        "thumbnail": dict(_THUMB, patch=patch),
        "receptive_field": field,
        "suggest_labels": bool(suggest_labels),
        "agent": type(model).__name__,
        "agent_hash": model_hash(model),
        "observations_hash": array_hash(observations),
        "envs": int(E),
        "steps": int(T),
        "package_version": __version__,
    }


def assemble(
    nmf: Any,
    data: dict[str, np.ndarray | None],
    settings: dict[str, Any],
    trajectories: Any,
    episodes: Any,
    report: Progress | None = None,
    *,
    firsts: np.ndarray | None,
    bookmarks: list[dict[str, Any]] | None = None,
    reduced: tuple[np.ndarray, np.ndarray] | None = None,
) -> Analysis:
    """Steps 3-6 from a fitted NMF: reduce the attributions onto its directions, dataset
    examples, labels, bookmarks -> :class:`Analysis`. :func:`analyze`, :meth:`Analysis.with_rank`
    and the explorer (which schedules the same steps itself, shown frames first, and passes
    its ``reduced`` (features, residual) so nothing is computed twice) all end here.

    ``data``: observations, values, logits, outputs, activations, attributions, advantages,
    value_attributions (see :class:`Analysis`). ``trajectories``: recorded trajectories for
    labels (None: no labels). ``report``: ``report(fraction, message)``.

    >>> a = assemble(nmf, data, settings, None, None, firsts=None)    # doctest: +SKIP
    """
    report = report or _quiet
    attr = data["attributions"]
    E, T, h, w, C = attr.shape
    K = int(nmf.components_.shape[0])
    directions = np.asarray(nmf.components_, np.float32)
    if reduced is None:
        report(0.85, f"reducing {E * T} frames onto {K} features…")
        red = nmf.reduce(_flat(attr))
        features = red.features.reshape(E, T, h, w, K)
        residual = red.residual.reshape(E, T, h, w)
    else:
        features, residual = (np.asarray(x, np.float32) for x in reduced)
        if features.shape != (E, T, h, w, K) or residual.shape != (E, T, h, w):
            raise ValueError(
                f"reduced features/residual must be {(E, T, h, w, K)} / {(E, T, h, w)}, got "
                f"{features.shape} / {residual.shape}"
            )
    report(0.9, "dataset examples…")
    thumbs, frames, strengths = _dataset_examples(
        directions,
        data["activations"],
        data["observations"],
        settings["thumbnail_size"],
        settings.get("thumbnail", _THUMB),
        settings.get("receptive_field"),
    )
    labels: list[str] = []
    evidence: list[dict[str, Any]] = []
    if trajectories is not None:
        from .features import identify_labels

        report(0.95, "identifying features by their strongest examples…")
        found = identify_labels(
            None,
            traj=trajectories,
            activations=data["activations"],
            directions=directions,
            seed=settings["seed"],
        )
        labels = found.suggestions(with_score=False)
        evidence = [dict(e.to_json(), describe=e.describe()) for e in found.evidence]
    if bookmarks is None:
        from .bookmarks import bookmark_list

        bookmarks = bookmark_list(data["values"], data["advantages"], firsts, episodes)
    settings = dict(
        settings,
        nmf_fit={
            "relative_error": float(nmf.relative_error_),
            "residual_share": float(nmf.residual_share_),
            "coreset_rows": int(nmf.coreset_rows_),
            "iterations": int(nmf.n_iter_),
        },
    )
    report(1.0, f"{K} features at {settings['layer']} · {settings['output']}")
    return Analysis(
        dict(
            data,
            directions=directions,
            features=features,
            residual=residual,
            example_thumbnails=thumbs,
            example_frames=frames,
            example_strengths=strengths,
        ),
        labels,
        bookmarks,
        settings,
        nmf=nmf,
        trajectories=trajectories,
        label_evidence=evidence,
    )


def _dataset_examples(
    directions: np.ndarray,
    acts: np.ndarray,
    obs: np.ndarray,
    size: int,
    thumb: dict[str, Any],
    field: dict[str, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Legend thumbnails (K, size, size, 4) as :func:`~.featureviz.legend_thumbnails` draws
    them (``thumb``: its grid, patch, expand; ``field``: the layer's receptive field, which
    centres each crop), with the (env, step, y, x) and strength of each example."""
    from .featureviz import FeatureVisualizer, ReceptiveField, feature_maps

    E, T = acts.shape[:2]
    flat_acts = acts.reshape(E * T, *acts.shape[2:])
    maps = feature_maps(flat_acts, directions=directions, method="project")
    rf = (
        None
        if field is None
        else ReceptiveField(int(field["size"]), field["stride"], field["center0"])
    )
    vis = FeatureVisualizer(obs.reshape(E * T, *obs.shape[2:]), maps, rf=rf)
    K, n = directions.shape[0], int(thumb["grid"]) ** 2
    thumbs = np.zeros((K, size, size, 4), np.uint8)
    frames = np.full((K, n, 4), -1, np.int64)
    strengths = np.zeros((K, n), np.float32)
    for k in range(K):
        t = vis.thumbnail(k, **thumb)
        ys = (np.arange(size) * t.image.shape[0] // size).clip(0, t.image.shape[0] - 1)
        xs = (np.arange(size) * t.image.shape[1] // size).clip(0, t.image.shape[1] - 1)
        thumbs[k] = t.image[ys][:, xs]
        o = t.obs_indices.reshape(-1)
        ok = o >= 0
        frames[k, ok, 0], frames[k, ok, 1] = o[ok] // T, o[ok] % T
        frames[k, ok, 2:] = t.positions.reshape(-1, 2)[ok]
        strengths[k] = t.activations.reshape(-1)
    return thumbs, frames, strengths


def _advantages(arrays: dict[str, Any], values: np.ndarray, traj: Any) -> np.ndarray | None:
    """The trajectories' advantages when their values are the analysed agent's; else GAE
    recomputed with its values (None without rewards)."""
    given = arrays.get("values")
    same = (
        given is not None and given.shape == values.shape and np.allclose(given, values, atol=1e-4)
    )
    if same and arrays.get("advantages") is not None:
        return np.asarray(arrays["advantages"], np.float32)
    if arrays.get("rewards") is None:
        return None
    from ..rollouts.gae import gae_advantages

    E = values.shape[0]
    last_firsts = np.asarray(getattr(traj, "last_firsts", np.zeros(E, bool)))
    return gae_advantages(
        arrays["rewards"],
        values,
        arrays["firsts"],
        last_values=values[:, -1].copy(),
        last_firsts=last_firsts,
    ).astype(np.float32)


def _trajectory_arrays(trajectories: Any) -> dict[str, Any]:
    """obs (E, T, 64, 64, 3) uint8 and whatever else the input carries."""
    if isinstance(trajectories, Mapping):
        if "obs" not in trajectories:
            raise ValueError(
                f"a trajectories dict needs 'obs' (envs, steps, 64, 64, 3); got keys "
                f"{sorted(trajectories)}"
            )
        src = dict(trajectories)
    elif isinstance(trajectories, (np.ndarray, torch.Tensor)):
        src = {"obs": trajectories}
    elif hasattr(trajectories, "obs"):
        src = {
            k: getattr(trajectories, k, None)
            for k in ("obs", "values", "advantages", "rewards", "firsts", "episodes")
        }
    else:
        raise TypeError(
            "trajectories must be a Trajectories (collect_trajectories), a dict with 'obs', or "
            f"an observation array (envs, steps, 64, 64, 3); got {type(trajectories).__name__}"
        )
    obs = src["obs"]
    obs = obs.numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)
    if obs.ndim == 4:
        obs = obs[None]
        src = {
            k: (np.asarray(v)[None] if k != "episodes" and v is not None else v)
            for k, v in src.items()
        }
    if obs.ndim != 5 or obs.shape[-1] != 3 or obs.dtype != np.uint8 or 0 in obs.shape[:2]:
        raise ValueError(
            "observations must be uint8 (envs, steps, 64, 64, 3) or (steps, 64, 64, 3) with at "
            f"least one frame; got {obs.dtype} {obs.shape}"
        )
    out: dict[str, Any] = {"obs": obs, "episodes": src.get("episodes")}
    for k in ("values", "advantages", "rewards", "firsts"):
        v = src.get(k)
        if v is None:
            out[k] = None
            continue
        v = np.asarray(v)
        if v.shape != obs.shape[:2]:
            raise ValueError(
                f"trajectories {k!r} must be (envs, steps) = {obs.shape[:2]}, got {v.shape}"
            )
        out[k] = v
    if out["firsts"] is None:
        out["firsts"] = np.zeros(obs.shape[:2], bool)
    out["firsts"] = out["firsts"].astype(bool)
    return out


def _episodes(traj: Any) -> Any:
    return getattr(traj, "episodes", None)


def _check_rank(rank: Any, channels: int) -> None:
    if (
        isinstance(rank, bool)
        or not isinstance(rank, (int, np.integer))
        or not (1 <= rank <= channels)
    ):
        raise ValueError(
            f"rank must be an integer in 1..{channels} (the layer's channels), got {rank!r}"
        )


def _check_consistent(a: Analysis, where: str) -> None:
    E, T, h, w = a.residual.shape
    K, C = a.directions.shape
    want = {
        "attributions": (E, T, h, w, C),
        "activations": (E, T, h, w, C),
        "features": (E, T, h, w, K),
        "values": (E, T),
        "outputs": (E, T),
    }
    for k, shape in want.items():
        if getattr(a, k).shape != shape:
            raise AnalysisFileError(
                f"{where}: {k} has shape {getattr(a, k).shape}, expected {shape}"
            )


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, *x.shape[2:])


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".npz", ".json") else p


def _quiet(_frac: float, _msg: str = "") -> None:
    pass
