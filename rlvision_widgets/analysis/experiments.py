"""The article's blindness experiments: edit an agent to be blind to a hazard, count failures.

Pipeline (:func:`run_blindness_experiments`):

1. **Corpus and features.** Collect trajectories of the agent (the article: 8 x 512 steps),
   take integrated gradients of the value at the object layer, fit the attribution NMF
   (rank 8) and score every feature against the engine's object masks
   (:mod:`~rlvision_widgets.analysis.features`). "The saw feature" is the feature that best
   matches buzzsaws; "the left-enemy feature" the one that best matches enemies moving left.
   A class whose best feature scores below ``min_score`` is reported as *not identified*,
   and its edit is skipped (``unidentified="skip"``) rather than faked with an unrelated
   feature.
2. **Edits.** Project the feature's NMF direction out of the layer
   (:class:`~rlvision_widgets.agents.editing.EditedAgent`; the article's weight edit of the
   next conv kernel by default). A *control* edit projects out a non-hazard feature of similar
   mass, to show that an edit of the same kind does not raise hazard failures by itself.
3. **Evaluation.** Every model plays the same levels (``start_level ...``), one episode each,
   actions sampled with the same seed; failures are labelled by the engine
   (:func:`~rlvision_widgets.analysis.evaluation.evaluate`). The invisible-saws control is
   the original agent on the same levels with saws not drawn.
4. **Report.** The article's table (% of levels failed by buzzsaw / enemy moving left / enemy
   moving right / multiple or other), a two-proportion z-test per cause against the original,
   the ratio of failure rates with a 95% CI, the article's "blindness" measure
   ``(edited - original) / (invisible - original)`` with a paired bootstrap CI, a chart,
   JSON and CSV.

>>> report = run_blindness_experiments(load_agent("coinrun"), levels=2000)   # doctest: +SKIP
>>> print(report.markdown_table())                                          # doctest: +SKIP
>>> report.write("docs/results")                                            # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import norm
from torch import nn

from ..environment.causes import FAILURE_CAUSES
from ..environment.coinrun import EnvOptions
from .evaluation import EvaluationResult, evaluate
from .features import CLASS_LABELS, FeatureIdentification, identify_features, object_layer, \
    resolve_class
from .stats import two_proportion_test, wilson_interval

__all__ = ["ARTICLE_LEVELS", "ARTICLE_TABLE", "BlindnessReport", "CONDITIONS", "EditChoice",
           "TABLE_CAUSES", "agent_env_options", "blind_agent", "choose_control",
           "choose_feature", "compare_results", "collect_corpus", "load_report",
           "plot_blindness_chart", "prepare_edit", "rate_ratio_ci", "removal_effects",
           "run_blindness_experiments",
           "strict_json", "table_counts"]

#: The article's causes (footnotes 7-8): buzzsaw / enemy moving left / enemy moving right /
#: multiple or other. Our "other" = lava + multiple + timeout.
TABLE_CAUSES = ("saw", "enemy_left", "enemy_right", "other")
OTHER_CAUSES = ("lava", "multiple", "timeout")
TABLE_HEADERS = {"saw": "buzzsaw", "enemy_left": "enemy moving left",
                 "enemy_right": "enemy moving right", "other": "multiple or other"}
#: Experimental conditions, in table order.
CONDITIONS = ("original", "saw_blind", "saw_blind_all", "left_enemy_blind", "invisible_saws",
              "control")
CONDITION_TITLES = {"original": "Original model", "saw_blind": "Buzzsaw blindness",
                    "saw_blind_all": "Buzzsaw blindness, every saw feature",
                    "left_enemy_blind": "Enemy moving left blindness",
                    "invisible_saws": "Original model, invisible buzzsaws",
                    "control": "Control edit (non-hazard feature)"}
#: Which object class each edit blinds, and which cause it should raise.
EDIT_TARGETS = {"saw_blind": "saw", "saw_blind_all": "saw", "left_enemy_blind": "enemy_left"}
HAZARD_CLASSES = ("saw", "enemy_left", "enemy_right", "lava")
#: The article's results, % of 10,000 levels failed by cause (footnotes 7 and 8).
ARTICLE_TABLE = {
    "original": {"saw": 0.37, "enemy_left": 0.16, "enemy_right": 0.12, "other": 0.08},
    "saw_blind": {"saw": 12.76, "enemy_left": 0.16, "enemy_right": 0.08, "other": 0.05},
    "left_enemy_blind": {"saw": 0.36, "enemy_left": 4.69, "enemy_right": 0.97, "other": 0.07},
    "invisible_saws": {"saw": 32.20, "enemy_left": 0.05, "enemy_right": 0.05, "other": 0.05},
}
ARTICLE_LEVELS = 10_000


# --------------------------------------------------------------------------------- stats
def table_counts(result: EvaluationResult) -> dict[str, int]:
    """Failures in the article's four categories (other = lava + multiple + timeout).

    >>> r = EvaluationResult(np.arange(4), ["saw", "lava", "success", "timeout"], np.ones(4))
    >>> table_counts(r)
    {'saw': 1, 'enemy_left': 0, 'enemy_right': 0, 'other': 2}
    """
    f = result.failures
    return {"saw": f["saw"], "enemy_left": f["enemy_left"], "enemy_right": f["enemy_right"],
            "other": sum(f[c] for c in OTHER_CAUSES)}


def rate_ratio_ci(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95
                  ) -> tuple[float, float, float]:
    """Ratio ``(k2/n2) / (k1/n1)`` with a Katz log-scale CI (0.5 added to zero counts).

    >>> r, lo, hi = rate_ratio_ci(50, 1000, 100, 1000)
    >>> round(r, 2), round(lo, 2), round(hi, 2)
    (2.0, 1.44, 2.78)
    """
    for k, n in ((k1, n1), (k2, n2)):
        if n <= 0 or not 0 <= k <= n:
            raise ValueError(f"need 0 <= count <= n and n > 0, got {k} of {n}")
    a, b = (k1, k2) if k1 and k2 else (k1 + 0.5, k2 + 0.5)
    ratio = (b / n2) / (a / n1)
    se = math.sqrt(max(1 / a - 1 / n1 + 1 / b - 1 / n2, 0.0))
    z = float(norm.ppf(0.5 + confidence / 2))
    ratio_point = (k2 / n2) / (k1 / n1) if k1 else (math.inf if k2 else 1.0)
    return ratio_point, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def _holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    out, running = {}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def compare_results(base: EvaluationResult, other: EvaluationResult
                    ) -> dict[str, dict[str, Any]]:
    """Per cause (each failure cause, "other", "failed", "success"): counts, rates, the
    two-proportion z-test against ``base`` (``z``, ``p``, ``p_holm`` over the failure causes),
    the rate ratio with its 95% CI, and the paired counts on the same levels.

    >>> a = EvaluationResult(np.arange(4), ["saw", "success", "success", "lava"], np.ones(4))
    >>> b = EvaluationResult(np.arange(4), ["saw", "saw", "success", "lava"], np.ones(4))
    >>> c = compare_results(a, b)["saw"]
    >>> c["base"], c["edited"], c["only_edited"]
    (1, 2, 1)
    """
    if base.levels != other.levels or not np.array_equal(base.level_seeds, other.level_seeds):
        raise ValueError("compare_results needs evaluations on the same levels (same levels, "
                         "start level and distribution mode)")
    n = base.levels
    ob, oe = np.asarray(base.outcomes), np.asarray(other.outcomes)
    groups: dict[str, tuple[str, ...]] = {c: (c,) for c in FAILURE_CAUSES}
    groups["other"] = OTHER_CAUSES
    groups["failed"] = FAILURE_CAUSES
    groups["success"] = ("success",)
    out: dict[str, dict[str, Any]] = {}
    for name, members in groups.items():
        in_b, in_e = np.isin(ob, members), np.isin(oe, members)
        k1, k2 = int(in_b.sum()), int(in_e.sum())
        z, p = two_proportion_test(k1, n, k2, n)
        ratio, lo, hi = rate_ratio_ci(k1, n, k2, n)
        out[name] = {"base": k1, "edited": k2, "base_rate": k1 / n, "edited_rate": k2 / n,
                     "ratio": ratio, "ratio_ci95": [lo, hi], "z": z, "p": p,
                     "only_base": int((in_b & ~in_e).sum()),
                     "only_edited": int((in_e & ~in_b).sum())}
    holm = _holm({c: out[c]["p"] for c in (*FAILURE_CAUSES,)})
    for c in FAILURE_CAUSES:
        out[c]["p_holm"] = holm[c]
    return out


def _paired_bootstrap_blindness(orig: EvaluationResult, edited: EvaluationResult,
                                invisible: EvaluationResult, cause: str = "saw",
                                n_boot: int = 2000, seed: int = 0
                                ) -> tuple[float, float, float]:
    """Blindness ``(edited - original) / (invisible - original)`` of ``cause``'s failure rate
    with a paired (same levels) percentile bootstrap 95% CI."""
    a = np.asarray(orig.outcomes) == cause
    b = np.asarray(edited.outcomes) == cause
    c = np.asarray(invisible.outcomes) == cause

    def frac(ia: np.ndarray, ib: np.ndarray, ic: np.ndarray) -> np.ndarray:
        den = ic - ia
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, (ib - ia) / den, np.nan)

    point = float(frac(a.mean(), b.mean(), c.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = frac(a[idx].mean(1), b[idx].mean(1), c[idx].mean(1))
    boots = boots[np.isfinite(boots)]
    if not len(boots):
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return point, float(lo), float(hi)


# ------------------------------------------------------------------------ agents, corpus
def agent_env_options(agent: nn.Module) -> EnvOptions:
    """The game options the agent was trained with (checkpoint config), else the defaults."""
    cfg = getattr(agent, "checkpoint_config", None) or {}
    env = dict(cfg.get("env") or {})
    try:
        return EnvOptions.from_dict(env).replace(invisible_saws=False) if env else EnvOptions()
    except (TypeError, ValueError):
        return EnvOptions()


def collect_corpus(agent: nn.Module, num_envs: int = 8, num_steps: int = 512, seed: int = 0,
                   env_options: EnvOptions | None = None, progress: bool = False):
    """Trajectories for feature identification (the article's 8 x 512 steps by default).

    >>> traj = collect_corpus(load_agent("coinrun"), num_envs=2, num_steps=64)  # doctest: +SKIP
    """
    from ..trajectories import collect_trajectories
    return collect_trajectories(agent, num_envs=num_envs, num_steps=num_steps, seed=seed,
                                env_options=env_options or agent_env_options(agent),
                                progress=progress)


@dataclass
class EditChoice:
    """The feature an edit removes: ``condition``, target object ``cls``, ``feature`` index
    (None if not identified), its ``score`` for ``cls``, the feature's own ``best_class``,
    ``identified`` (score >= min_score and the class visible in the corpus), the unit
    ``direction`` and a human ``note``; for an edit of several features, ``features`` and
    their ``directions`` (projected out one after the other)."""

    condition: str
    cls: str
    feature: int | None
    score: float
    best_class: str
    identified: bool
    direction: list[float] = field(default_factory=list, repr=False)
    note: str = ""
    features: list[int] = field(default_factory=list)
    directions: list[list[float]] = field(default_factory=list, repr=False)

    @property
    def all_directions(self) -> list[list[float]]:
        """Every direction this edit projects out."""
        return self.directions or ([self.direction] if self.direction else [])

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = None if not math.isfinite(self.score) else round(self.score, 5)
        d["direction"] = [round(float(x), 6) for x in self.direction]
        d["directions"] = [[round(float(x), 6) for x in v] for v in self.directions]
        return d


def choose_feature(ident: FeatureIdentification, cls: str, condition: str = "",
                   min_score: float = 0.05) -> EditChoice:
    """The feature that best matches object class ``cls`` (see module doc).

    >>> choice = choose_feature(ident, "saw")                                 # doctest: +SKIP
    >>> choice.feature, choice.score, choice.identified                       # doctest: +SKIP
    (4, 0.27, True)
    """
    cls = resolve_class(cls)
    scores = ident.scores
    j = scores.classes.index(cls)
    if scores.frames_with_class[j] == 0:
        return EditChoice(condition, cls, None, float("nan"), "", False, [],
                          f"no {CLASS_LABELS[cls]} visible in the {scores.n_frames} corpus frames")
    k, s = scores.feature_for(cls)
    best, best_s = scores.best_class(k)
    ok = bool(np.isfinite(s) and s >= min_score)
    note = (f"feature {k} matches {CLASS_LABELS[cls]} with {scores.metric} {s:.3f}"
            + ("" if best == cls else f" (its best class is {CLASS_LABELS.get(best, best)}, "
                                      f"{best_s:.3f})")
            + ("" if ok else f"; below min_score {min_score}: no {CLASS_LABELS[cls]} feature "
                             "identified"))
    return EditChoice(condition, cls, k if ok else None, s, best, ok,
                      ident.direction(k).tolist() if ok else [], note)


def _all_features_choice(ident: FeatureIdentification, condition: str, cls: str,
                         min_score: float) -> EditChoice:
    """Every feature whose best class is ``cls`` (scoring >= min_score), to edit together."""
    best = ident.scores.best_classes()
    same = [k for k, (c, s) in enumerate(best) if c == cls and s >= min_score]
    if len(same) < 2:
        return EditChoice(condition, cls, None, float("nan"), cls, False, [],
                          f"only {len(same)} feature(s) match {CLASS_LABELS[cls]}: nothing more "
                          "to edit than the single-feature edit")
    return EditChoice(condition, cls, same[0], best[same[0]][1], cls, True,
                      ident.direction(same[0]).tolist(),
                      f"features {', '.join(map(str, same))} (every feature whose best match is "
                      f"{CLASS_LABELS[cls]}), projected out one after the other",
                      features=same, directions=[ident.direction(k).tolist() for k in same])


def choose_control(ident: FeatureIdentification, reference: int | None,
                   exclude: Sequence[int] = ()) -> EditChoice:
    """A non-hazard feature (best class not a hazard) with explained mass closest to
    ``reference``'s, as a control edit of the same kind."""
    best = ident.scores.best_classes()
    mass = np.asarray(ident.nmf.component_mass_, np.float64)
    cands = [k for k, (c, _) in enumerate(best) if c and c not in HAZARD_CLASSES
             and k not in exclude]
    if not cands:
        return EditChoice("control", "", None, float("nan"), "", False, [],
                          "every feature matches a hazard: no control feature")
    target = mass[reference] if reference is not None else np.median(mass)
    k = min(cands, key=lambda i: abs(math.log(max(mass[i], 1e-30) / max(target, 1e-30))))
    cls, s = best[k]
    return EditChoice("control", cls, k, s, cls, True, ident.direction(k).tolist(),
                      f"control: feature {k} ({CLASS_LABELS.get(cls, cls)}, {s:.3f}), the "
                      "non-hazard feature closest in attribution mass to the saw feature")


def blind_agent(agent: nn.Module, direction: Sequence[float] | np.ndarray, layer: str,
                mode: str = "weight", strength: float = 1.0, label: str = "") -> nn.Module:
    """An :class:`~rlvision_widgets.agents.editing.EditedAgent` with ``direction`` projected
    out of ``layer`` (the original agent is not modified); a 2-D ``direction`` (k, C)
    projects out each row in turn.

    >>> saw_blind = blind_agent(agent, ident.direction("saw"), "2b")          # doctest: +SKIP
    """
    from ..agents.editing import EditedAgent
    dirs = np.asarray(direction, np.float32)
    edited = EditedAgent(agent)
    for v in (dirs if dirs.ndim == 2 else dirs[None]):
        edited.add(layer, v, strength=strength, mode=mode, label=label)
    return edited


def removal_effects(agent: nn.Module, edited: nn.Module, traj: Any, cls: str = "saw",
                    max_frames: int = 512, seed: int = 0) -> dict[str, Any]:
    """Frame-level check of an edit: does it do to the network what hiding the object does?

    On corpus frames where ``cls`` is in view, each frame is re-rendered with that class not
    drawn (the engine's own invisible-saws mechanism). Compared on those frames:

    * ``value_hidden``: mean change of the original agent's value when the object is hidden;
      ``value_edit``: mean change when instead the edited agent sees the original frame;
      ``value_blindness`` = ``value_edit / value_hidden`` (1 = the edit removes the value's
      whole response to the object, 0 = none of it); ``value_corr``: correlation across frames.
    * ``policy_kl_hidden`` / ``policy_kl_edit``: mean KL(original policy || policy with the
      object hidden / edited policy), and ``policy_blindness`` = ``kl_edit / kl_hidden``
      (how large the edit's policy change is relative to hiding's; any change counts);
      ``policy_toward_hidden`` = 1 - KL(hidden || edited) / KL(hidden || original): the share
      of the way from the original policy to the policy with the object hidden that the edit
      goes (1 = the edited policy acts as if the object were hidden; <= 0 = no closer).
    * ``*_without``: the edit's effect on frames *without* the class (specificity).

    >>> removal_effects(agent, blind_agent(agent, v, "2b"), traj, "saw")      # doctest: +SKIP
    {'frames': 512, 'value_hidden': 0.61, 'value_edit': 0.35, 'value_blindness': 0.57, ...}
    """
    import torch

    from ..environment.render import hidden_variant, object_boxes
    from ..environment.state import parse_state

    cls = resolve_class(cls)
    frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
    rng = np.random.default_rng(seed)
    rng.shuffle(frames)
    with_cls, without, hidden_obs = [], [], []
    renderer = traj.renderer
    for e, t in sorted(frames[: 8 * max_frames]):
        if len(with_cls) >= max_frames and len(without) >= max_frames:
            break
        try:
            state = traj.state_at(e, t)
        except (KeyError, IndexError):
            continue
        st = parse_state(state)
        if len(object_boxes(st, 64).boxes[cls]):
            if len(with_cls) < max_frames:
                variant = hidden_variant(st, cls)
                if variant is not None:
                    hidden_obs.append(renderer.frames(variant)[0])
                    with_cls.append((e, t))
        elif len(without) < max_frames:
            without.append((e, t))

    def run(model: nn.Module, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, value = model(torch.from_numpy(np.ascontiguousarray(obs)))
        return torch.log_softmax(logits.float(), -1).numpy(), value.float().numpy()

    def kl(lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
        return (np.exp(lp) * (lp - lq)).sum(-1)

    out: dict[str, Any] = {"class": cls, "frames": len(with_cls), "frames_without": len(without)}
    if with_cls:
        idx = np.asarray(with_cls)
        obs = traj.obs[idx[:, 0], idx[:, 1]]
        lp0, v0 = run(agent, obs)
        lph, vh = run(agent, np.stack(hidden_obs))
        lpe, ve = run(edited, obs)
        dh, de = vh - v0, ve - v0
        klh, kle = kl(lp0, lph), kl(lp0, lpe)
        kl_h0, kl_he = kl(lph, lp0).mean(), kl(lph, lpe).mean()
        out.update(value=float(v0.mean()), value_hidden=float(dh.mean()),
                   value_edit=float(de.mean()),
                   value_blindness=float(de.mean() / dh.mean()) if dh.mean() != 0 else None,
                   value_corr=float(np.corrcoef(dh, de)[0, 1]) if len(dh) > 2
                   and dh.std() > 0 and de.std() > 0 else None,
                   policy_kl_hidden=float(klh.mean()), policy_kl_edit=float(kle.mean()),
                   policy_blindness=float(kle.mean() / klh.mean()) if klh.mean() > 0 else None,
                   policy_toward_hidden=float(1 - kl_he / kl_h0) if kl_h0 > 0 else None)
    if without:
        idx = np.asarray(without)
        obs = traj.obs[idx[:, 0], idx[:, 1]]
        lp0, v0 = run(agent, obs)
        lpe, ve = run(edited, obs)
        out.update(value_edit_without=float((ve - v0).mean()),
                   value_abs_edit_without=float(np.abs(ve - v0).mean()),
                   policy_kl_edit_without=float(kl(lp0, lpe).mean()))
    return out


def prepare_edit(agent: nn.Module, feature: int | str, layer: str | None = None, rank: int = 8,
                 mode: str = "weight", strength: float = 1.0, nmf: Any = None,
                 corpus_envs: int = 8, corpus_steps: int = 512, corpus_seed: int = 0,
                 min_score: float = 0.05, progress: bool = False
                 ) -> tuple[nn.Module, EditChoice, FeatureIdentification | None]:
    """An edited agent blind to one NMF feature, given by index or object-class name.

    ``nmf``: an :class:`~rlvision_widgets.analysis.nmf.AttributionNMF` (or the path it was
    saved to) to take the directions from; without it (or to score features for a class
    name) a corpus of ``corpus_envs x corpus_steps`` steps is collected and the article's NMF
    fitted (:func:`~rlvision_widgets.analysis.features.identify_features`). A class name whose
    best feature scores below ``min_score`` is still edited, with ``identified=False`` and a
    note. Returns ``(edited agent, choice, identification or None)``.

    >>> edited, choice, _ = prepare_edit(load_agent("coinrun"), "saw")        # doctest: +SKIP
    >>> choice.feature, choice.note                                          # doctest: +SKIP
    """
    from .nmf import AttributionNMF
    layer = layer or object_layer(agent)
    if isinstance(nmf, (str, os.PathLike)):
        nmf = AttributionNMF.load(nmf)
    is_index = isinstance(feature, (int, np.integer)) or (isinstance(feature, str)
                                                          and feature.strip().isdigit())
    if not is_index:
        resolve_class(str(feature))          # fail fast, listing the valid classes
    ident = None
    if is_index and nmf is not None:
        k = int(feature)
        K = nmf.components_.shape[0]
        if not 0 <= k < K:
            raise ValueError(f"feature index {k} out of range: the NMF has features 0..{K - 1}")
        choice = EditChoice("edit", "", k, float("nan"), "", True,
                            nmf.components_[k].astype(np.float32).tolist(),
                            f"feature {k} of the given NMF")
    else:
        traj = collect_corpus(agent, corpus_envs, corpus_steps, corpus_seed, None, progress)
        ident = identify_features(agent, traj, layer=layer, rank=rank, nmf=nmf, seed=corpus_seed)
        traj.close()
        if is_index:
            k = ident.index(int(feature))
            cls, s = ident.scores.best_class(k)
            choice = EditChoice("edit", cls, k, s, cls, True, ident.direction(k).tolist(),
                                f"feature {k} (best match: {CLASS_LABELS.get(cls, cls)}, "
                                f"{ident.scores.metric} {s:.3f})")
        else:
            choice = choose_feature(ident, str(feature), "edit", min_score)
            if not choice.identified:
                k, s = ident.scores.feature_for(str(feature))
                choice = EditChoice("edit", choice.cls, k, s, ident.scores.best_class(k)[0],
                                    False, ident.direction(k).tolist(),
                                    choice.note + "; edited its best match anyway")
    edited = blind_agent(agent, choice.direction, layer, mode, strength,
                         label=f"feature {choice.feature}" + (f" ({choice.cls})" if choice.cls
                                                               else ""))
    return edited, choice, ident


# --------------------------------------------------------------------------------- report
@dataclass
class BlindnessReport:
    """Results of :func:`run_blindness_experiments` (see the module doc)."""

    results: dict[str, EvaluationResult]
    choices: dict[str, EditChoice]
    settings: dict[str, Any]
    identification: FeatureIdentification | None = None
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- numbers
    def comparisons(self) -> dict[str, dict[str, dict[str, Any]]]:
        """:func:`compare_results` of every condition against the original."""
        base = self.results["original"]
        return {name: compare_results(base, r) for name, r in self.results.items()
                if name != "original"}

    def rows(self) -> list[dict[str, Any]]:
        """One row per condition: % of levels failed by the article's four causes (ours and
        the article's), levels, success rate with CI."""
        out = []
        for name in [c for c in CONDITIONS if c in self.results or c in self.choices]:
            r = self.results.get(name)
            row: dict[str, Any] = {"condition": name, "title": CONDITION_TITLES[name],
                                   "article": ARTICLE_TABLE.get(name)}
            if r is None:
                row.update(levels=0, percent=None, note=self.choices[name].note)
            else:
                counts = table_counts(r)
                row.update(levels=r.levels, counts=counts,
                           percent={c: 100 * counts[c] / r.levels for c in TABLE_CAUSES},
                           ci95={c: [100 * x for x in wilson_interval(counts[c], r.levels)]
                                 for c in TABLE_CAUSES},
                           success_rate=r.success_rate, success_ci95=list(r.ci95))
                if name in self.choices:
                    row["note"] = self.choices[name].note
            out.append(row)
        return out

    def verdict(self) -> dict[str, Any]:
        """Per edit: the target cause's rate ratio (CI, p), the ceiling ratio (100% / original
        rate), whether it reached 5x, which other causes changed significantly (raw p < 0.05
        and Holm-adjusted), and the blindness fraction for saws."""
        out: dict[str, Any] = {}
        comps = self.comparisons()
        base = self.results["original"]
        for cond, cls in EDIT_TARGETS.items():
            if cond not in self.results:
                if cond in self.choices:
                    out[cond] = {"evaluated": False, "note": self.choices[cond].note}
                continue
            comp = comps[cond]
            t = comp[cls]
            others = [c for c in TABLE_CAUSES if c != cls]
            raw_sig = [c for c in others if comp[c]["p"] < 0.05]
            holm_p = _holm({c: comp[c]["p"] for c in others})
            holm_sig = [c for c in others if holm_p[c] < 0.05]
            base_rate = t["base_rate"]
            ceiling = (1.0 / base_rate) if base_rate > 0 else math.inf
            v = {"evaluated": True, "target_cause": cls, "base_rate": base_rate,
                 "edited_rate": t["edited_rate"], "ratio": t["ratio"],
                 "ratio_ci95": t["ratio_ci95"], "z": t["z"], "p": t["p"],
                 "ceiling_ratio": ceiling, "reaches_5x": bool(t["ratio"] >= 5),
                 "5x_possible": bool(ceiling >= 5),
                 "other_causes_changed_p05": raw_sig, "other_causes_changed_holm": holm_sig,
                 "other_causes": {c: {"base_rate": comp[c]["base_rate"],
                                      "edited_rate": comp[c]["edited_rate"],
                                      "z": comp[c]["z"], "p": comp[c]["p"],
                                      "p_holm": holm_p[c]} for c in others},
                 "success_change": comp["success"]["edited_rate"] - comp["success"]["base_rate"],
                 "success_p": comp["success"]["p"]}
            v["target_met"] = bool(v["reaches_5x"] and not raw_sig)
            if "control" in self.results:      # is the rise larger than a control edit's?
                kc = sum(o == cls for o in self.results["control"].outcomes)
                ke = sum(o == cls for o in self.results[cond].outcomes)
                n = self.results[cond].levels
                zc, pc = two_proportion_test(kc, n, ke, n)
                v["vs_control"] = {"control_rate": kc / n, "edited_rate": ke / n, "z": zc,
                                   "p": pc}
            if cls == "saw" and "invisible_saws" in self.results:
                b, lo, hi = _paired_bootstrap_blindness(base, self.results[cond],
                                                        self.results["invisible_saws"])
                v["blindness"] = b
                v["blindness_ci95"] = [lo, hi]
                inv = comps["invisible_saws"]["saw"]
                # complete blindness (saws not drawn) bounds what any edit can do
                v["invisible_ratio"] = inv["ratio"]
                v["invisible_p"] = inv["p"]
                v["5x_possible_invisible"] = bool(inv["ratio"] >= 5)
            out[cond] = v
        if "invisible_saws" in comps:
            c = comps["invisible_saws"]["saw"]
            out["invisible_saws"] = {"ratio": c["ratio"], "ratio_ci95": c["ratio_ci95"],
                                     "base_rate": c["base_rate"], "edited_rate": c["edited_rate"],
                                     "p": c["p"]}
        if "control" in comps:
            comp = comps["control"]
            out["control"] = {c: {"base_rate": comp[c]["base_rate"],
                                  "edited_rate": comp[c]["edited_rate"], "p": comp[c]["p"]}
                              for c in TABLE_CAUSES}
        return out

    # -------------------------------------------------------------- rendering
    def markdown_table(self, article: bool = True, digits: int = 2) -> str:
        """The article's table: % of levels failed by cause, ours (with article beside)."""
        head = ["model", "levels"] + [TABLE_HEADERS[c] for c in TABLE_CAUSES] + ["completed"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for row in self.rows():
            if row["percent"] is None:
                cells = [row["title"], "–"] + ["not run"] * len(TABLE_CAUSES) + ["–"]
            else:
                pct = row["percent"]
                cells = [row["title"], f"{row['levels']:,}"] + [
                    f"{pct[c]:.{digits}f}%" + (f" ({row['article'][c]:.2f}%)" if article and
                                               row["article"] else "") for c in TABLE_CAUSES
                ] + [f"{100 * row['success_rate']:.1f}%"]
            lines.append("| " + " | ".join(cells) + " |")
        if article:
            lines.append("")
            lines.append(f"In parentheses: the article's figures (footnotes 7 and 8, "
                         f"{ARTICLE_LEVELS:,} levels each, fully trained agent).")
        return "\n".join(lines)

    def tests_table(self, digits: int = 3) -> str:
        """Markdown: per condition and cause, rates, ratio (95% CI), z, p (two-proportion)."""
        lines = ["| model | cause | original | edited | ratio (95% CI) | z | p |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, comp in self.comparisons().items():
            for c in (*TABLE_CAUSES, "success"):
                d = comp[c]
                lo, hi = d["ratio_ci95"]
                ratio = "–" if not math.isfinite(d["ratio"]) else f"{d['ratio']:.2f}"
                lines.append(
                    f"| {CONDITION_TITLES[name]} | {TABLE_HEADERS.get(c, c)} | "
                    f"{100 * d['base_rate']:.2f}% | {100 * d['edited_rate']:.2f}% | "
                    f"{ratio} ({lo:.2f}–{hi:.2f}) | {d['z']:+.2f} | {_fmt_p(d['p'])} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Everything, as plain JSON (per-level outcomes are in the CSV)."""
        ident = None
        if self.identification is not None:
            ident = {"layer": self.identification.layer, "output": self.identification.output,
                     "meta": self.identification.meta,
                     "features": self.identification.summary(),
                     "scores": self.identification.scores.to_json(),
                     "components": np.round(self.identification.nmf.components_, 6).tolist()}
        return strict_json({"settings": self.settings,
                        "results": {k: r.to_json() for k, r in self.results.items()},
                        "table": self.rows(), "article_table": ARTICLE_TABLE,
                        "article_levels": ARTICLE_LEVELS,
                        "comparisons": self.comparisons(), "verdict": self.verdict(),
                        "edits": {k: c.to_json() for k, c in self.choices.items()},
                        "feature_identification": ident, "frame_diagnostics": self.diagnostics,
                        "timings_s": self.timings})

    def write(self, out_dir: str | os.PathLike, chart: str | os.PathLike | None = None,
              stem: str = "editing") -> dict[str, Path]:
        """Write ``<stem>.json``, ``<stem>_table.csv`` (article format), ``<stem>_levels.csv``
        (per level, every condition), ``<stem>_table.md`` and the chart (``chart`` or
        ``<stem>_chart.png``); the NMF as ``<stem>_nmf.npz/.json`` (reusable with
        ``rlvision evaluate --nmf``). Returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        paths["json"] = out / f"{stem}.json"
        paths["json"].write_text(json.dumps(self.to_json(), indent=1))
        paths["table_csv"] = out / f"{stem}_table.csv"
        with open(paths["table_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["condition", "levels", *[f"pct_{c}" for c in TABLE_CAUSES],
                        *[f"article_pct_{c}" for c in TABLE_CAUSES], "success_rate"])
            for row in self.rows():
                pct = row["percent"] or {}
                art = row["article"] or {}
                w.writerow([row["condition"], row["levels"],
                            *[f"{pct[c]:.4f}" if c in pct else "" for c in TABLE_CAUSES],
                            *[art.get(c, "") for c in TABLE_CAUSES],
                            f"{row['success_rate']:.6f}" if "success_rate" in row else ""])
        paths["levels_csv"] = out / f"{stem}_levels.csv"
        names = list(self.results)
        with open(paths["levels_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["level_seed", *[f"{n}_outcome" for n in names],
                        *[f"{n}_length" for n in names]])
            first = self.results[names[0]]
            for i, seed in enumerate(first.level_seeds.tolist()):
                w.writerow([seed, *[self.results[n].outcomes[i] for n in names],
                            *[int(self.results[n].lengths[i]) for n in names]])
        paths["table_md"] = out / f"{stem}_table.md"
        paths["table_md"].write_text(self.markdown_table() + "\n\n" + self.tests_table() + "\n")
        paths["chart"] = Path(chart) if chart else out / f"{stem}_chart.png"
        paths["chart"].parent.mkdir(parents=True, exist_ok=True)
        plot_blindness_chart(self, paths["chart"])
        if self.identification is not None:
            paths["nmf"] = self.identification.nmf.save(out / f"{stem}_nmf")
            for ext in (".npz", ".json"):                 # readable like the other outputs
                paths["nmf"].with_suffix(ext).chmod(0o644)
        return paths


def load_report(out_dir: str | os.PathLike, stem: str = "editing") -> BlindnessReport:
    """Rebuild a :class:`BlindnessReport` from the files :meth:`BlindnessReport.write` wrote
    (``<stem>.json``, ``<stem>_levels.csv``, ``<stem>_nmf``), e.g. to redraw the chart or the
    doc without re-running the evaluations.

    >>> report = load_report("docs/results")                                  # doctest: +SKIP
    """
    from .features import FeatureScores
    from .nmf import AttributionNMF
    out = Path(out_dir)
    jpath, lpath = out / f"{stem}.json", out / f"{stem}_levels.csv"
    if not jpath.is_file() or not lpath.is_file():
        raise FileNotFoundError(f"no saved blindness experiments in {out} (need {jpath.name} and "
                                f"{lpath.name}; run scripts/reproduce_editing.py first)")
    data = json.loads(jpath.read_text())
    with open(lpath, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    seeds = np.array([int(r[0]) for r in body], dtype=np.int64)
    results = {}
    for name, res in data["results"].items():
        io, il = head.index(f"{name}_outcome"), head.index(f"{name}_length")
        results[name] = EvaluationResult(seeds, [r[io] for r in body],
                                         np.array([int(r[il]) for r in body], np.int64),
                                         res.get("settings", {}))

    def arr(x: Any) -> np.ndarray:
        return np.array([[np.nan if v is None else v for v in row] for row in x], np.float64) \
            if x and isinstance(x[0], list) else np.array([np.nan if v is None else v
                                                           for v in x], np.float64)

    choices = {k: EditChoice(**{**c, "score": np.nan if c["score"] is None else c["score"]})
               for k, c in data.get("edits", {}).items()}
    ident = None
    fi = data.get("feature_identification")
    if fi and (out / f"{stem}_nmf.npz").is_file():
        sc = fi["scores"]
        scores = FeatureScores(tuple(sc["classes"]), arr(sc["correlation"]),
                               arr(sc["mass_share"]), arr(sc["lift"]), arr(sc["recall"]),
                               arr(sc["area_share"]), np.array(sc["frames_with_class"]),
                               int(sc["n_frames"]), sc["metric"], sc.get("meta", {}))
        ident = FeatureIdentification(AttributionNMF.load(out / f"{stem}_nmf"), scores,
                                      fi["layer"], fi["output"], np.zeros((0, 2), np.int64),
                                      fi.get("meta", {}))
    return BlindnessReport(results, choices, data["settings"], ident,
                           data.get("timings_s", {}), data.get("frame_diagnostics") or {})


def _fmt_p(p: float) -> str:
    return "<1e-300" if p == 0 else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def strict_json(x: Any) -> Any:
    """Replace non-finite floats by None (strict JSON), recursively."""
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict_json(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def plot_blindness_chart(report: BlindnessReport, path: str | os.PathLike | None = None):
    """The article's chart: % of levels failed by cause, one bar per model, ours beside the
    article's (Wilson 95% error bars on ours)."""
    from matplotlib.figure import Figure  # no pyplot: never switches a live kernel's backend

    rows = [r for r in report.rows() if r["percent"] is not None]
    art_rows = [(name, vals) for name, vals in ARTICLE_TABLE.items()]
    colors = {"original": "#4c72b0", "saw_blind": "#dd8452", "saw_blind_all": "#c44e52",
              "left_enemy_blind": "#55a868",
              "invisible_saws": "#8c8c8c", "control": "#8172b3"}
    diag = {k: d for k, d in (report.diagnostics or {}).items()
            if isinstance(d, dict) and d.get("frames") and d.get("value_blindness") is not None}
    ncols = 3 if diag else 2
    fig = Figure(figsize=(11 + 3.6 * (ncols - 2), 3.8), dpi=120)
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": [1.15, 1, 0.8][:ncols]})
    x = np.arange(len(TABLE_CAUSES))
    labels = [TABLE_HEADERS[c].replace("enemy moving", "enemy\nmoving") for c in TABLE_CAUSES]

    def bars(ax, series, title, errs=None):
        width = 0.8 / max(len(series), 1)
        top = 0.0
        for j, (name, vals) in enumerate(series):
            h = [vals[c] for c in TABLE_CAUSES]
            top = max(top, max(h))
            yerr = None
            if errs is not None:
                lo_hi = errs[j]
                yerr = np.array([[h[i] - lo_hi[c][0], lo_hi[c][1] - h[i]]
                                 for i, c in enumerate(TABLE_CAUSES)]).T
                top = max(top, max(lo_hi[c][1] for c in TABLE_CAUSES))
            pos = x + (j - (len(series) - 1) / 2) * width
            ax.bar(pos, h, width, yerr=yerr, capsize=2, color=colors.get(name, None),
                   label=CONDITION_TITLES.get(name, name))
            tops = h if errs is None else [errs[j][c][1] for c in TABLE_CAUSES]
            for px, hv, ty in zip(pos, h, tops):
                ax.text(px, ty + 0.01 * max(top, 1), f"{hv:.1f}" if hv >= 1 else f"{hv:.2f}",
                        ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("levels failed (%)")
        ax.set_ylim(0, top * 1.25 + 0.5)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)

    n = max((r["levels"] for r in rows), default=0)
    steps = report.settings.get("agent_steps")
    bars(axes[0], [(r["condition"], r["percent"]) for r in rows],
         f"This reproduction ({n:,} levels per model"
         + (f", agent at {steps:,} steps)" if steps else ")"),
         errs=[r["ci95"] for r in rows])
    bars(axes[1], art_rows, f"Article ({ARTICLE_LEVELS:,} levels per model)")
    if diag:
        ax = axes[2]
        names_d = list(diag)
        xs = np.arange(2)
        w = 0.8 / len(names_d)
        for j, name in enumerate(names_d):
            d = diag[name]
            cond, _, variant = name.partition(":")
            vals = [100 * (d.get("value_blindness") or 0),
                    100 * (d.get("policy_toward_hidden") or 0)]
            label = CONDITION_TITLES.get(cond, cond) + (f" ({variant})" if variant else "")
            ax.bar(xs + (j - (len(names_d) - 1) / 2) * w, vals, w, label=label,
                   color=colors.get(cond) if not variant else None,
                   hatch="//" if variant else None, alpha=0.9 if not variant else 0.6)
        ax.axhline(100, color="k", lw=0.6, ls="--")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(["value change\n(edit / saws hidden)",
                            "policy: way to the\nsaws-hidden policy"], fontsize=7)
        ax.set_ylabel("response to saws removed (%)")
        ax.set_title("Frame level: edit vs saws hidden", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    handles, names = [], []
    for ax in axes[:2]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if path is not None:
        fig.savefig(path)
    return fig


# --------------------------------------------------------------------------------- runner
def run_blindness_experiments(agent: nn.Module, levels: int = 2000, start_level: int = 0,
                              seed: int = 0, layer: str | None = None, rank: int = 8,
                              mode: str = "weight", strength: float = 1.0,
                              conditions: Sequence[str] = CONDITIONS,
                              corpus_envs: int = 8, corpus_steps: int = 512, corpus_seed: int = 0,
                              identification: FeatureIdentification | None = None,
                              min_score: float = 0.05, unidentified: str = "skip",
                              corpus: Any = None, diagnose: bool = True,
                              num_envs: int = 64, distribution_mode: str | None = None,
                              progress: bool = True,
                              log: Callable[[str], None] | None = print) -> BlindnessReport:
    """Run the article's blindness experiments on ``agent`` (see the module doc).

    ``levels`` per condition (the same levels for all), ``conditions`` a subset of
    :data:`CONDITIONS` ("original" is always run), ``mode`` "weight" (the article's edit of the
    next conv kernel) or "activation", ``identification`` to reuse features already found
    (else a corpus of ``corpus_envs x corpus_steps`` is collected, or ``corpus`` used),
    ``unidentified`` "skip" (default: no edit for a class no feature matches) or "run" (edit its
    best feature anyway), ``diagnose``: run :func:`removal_effects` on the corpus for each
    edit (frame-level value and policy blindness).

    >>> report = run_blindness_experiments(agent, levels=2000)                # doctest: +SKIP
    """
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise ValueError(f"unknown condition(s) {bad}; valid conditions: {list(CONDITIONS)}")
    if unidentified not in ("skip", "run"):
        raise ValueError(f"unidentified must be 'skip' or 'run', got {unidentified!r}")
    say = log or (lambda _m: None)
    agent = agent.eval()
    env = agent_env_options(agent)
    if distribution_mode:
        env = env.replace(distribution_mode=distribution_mode)
    layer = layer or object_layer(agent)
    timings: dict[str, float] = {}
    choices: dict[str, EditChoice] = {}
    needs_features = any(c in conditions for c in (*EDIT_TARGETS, "control"))
    traj = corpus
    if needs_features and identification is None:
        t0 = time.perf_counter()
        if traj is None:
            say(f"collecting the corpus ({corpus_envs} x {corpus_steps} steps) ...")
            traj = collect_corpus(agent, corpus_envs, corpus_steps, corpus_seed, env, progress)
        say(f"integrated gradients + NMF (rank {rank}) at {layer}, scoring features ...")
        identification = identify_features(agent, traj, layer=layer, rank=rank, seed=corpus_seed)
        timings["features"] = time.perf_counter() - t0
    if identification is not None:
        for k, row in enumerate(identification.summary()):
            say(f"  feature {k}: {row['label']} ({row['score']})")
    for cond, cls in EDIT_TARGETS.items():
        if cond == "saw_blind_all" and cond in conditions:
            choices[cond] = _all_features_choice(identification, cond, cls, min_score)
            say(f"{cond}: {choices[cond].note}")
        elif cond in conditions:
            choice = choose_feature(identification, cls, cond, min_score)
            if not choice.identified and unidentified == "run" and math.isfinite(choice.score):
                k, s = identification.scores.feature_for(cls)
                choice = EditChoice(cond, cls, k, s, identification.scores.best_class(k)[0],
                                    False, identification.direction(k).tolist(),
                                    choice.note + "; edited anyway (unidentified='run')")
            choices[cond] = choice
            say(f"{cond}: {choice.note}")
    if "control" in conditions:
        ref = choices.get("saw_blind")
        exclude = [k for c in choices.values() for k in (c.features or [c.feature])
                   if k is not None]
        choices["control"] = choose_control(identification,
                                            ref.feature if ref else None, exclude)
        say(choices["control"].note)

    models: dict[str, tuple[nn.Module, bool]] = {"original": (agent, False)}
    for cond in conditions:
        if cond in EDIT_TARGETS or cond == "control":
            ch = choices[cond]
            if ch.feature is None:
                continue
            feats = ", ".join(str(k) for k in (ch.features or [ch.feature]))
            models[cond] = (blind_agent(agent, ch.all_directions, layer, mode, strength,
                                        label=f"{cond}: feature {feats} ({ch.cls})"), False)
        elif cond == "invisible_saws":
            models[cond] = (agent, True)
    diagnostics: dict[str, dict[str, Any]] = {}
    if traj is not None and diagnose:
        t0 = time.perf_counter()
        # (name, model, class, edit mode, features); variants are checked at frame level only
        variants: list[tuple[str, nn.Module, str, str, list[int]]] = []
        for cond in models:
            if cond in EDIT_TARGETS or cond == "control":
                variants.append((cond, models[cond][0], EDIT_TARGETS.get(cond, "saw"), mode,
                                 choices[cond].features or [choices[cond].feature]))
        for cond, cls in EDIT_TARGETS.items():
            ch = choices.get(cond)
            if cond not in models or ch is None or ch.feature is None or ch.features:
                continue
            other = "activation" if mode == "weight" else "weight"
            variants.append((f"{cond}:{other}", blind_agent(agent, ch.direction, layer, other,
                                                            strength), cls, other, [ch.feature]))
            same = [k for k, (c, _) in enumerate(identification.scores.best_classes())
                    if c == cls]
            if len(same) > 1 and f"{cond}_all" not in models:
                edited = blind_agent(agent, identification.direction(same[0]), layer, mode,
                                     strength)
                for k in same[1:]:
                    edited.add(layer, identification.direction(k), strength=strength, mode=mode)
                variants.append((f"{cond}:all_features", edited, cls, mode, same))
        for name, model, cls, how, feats in variants:
            say(f"frame-level check of {name}: hiding vs editing out {cls} ...")
            diagnostics[name] = {"mode": how, "features": feats,
                                 **removal_effects(agent, model, traj, cls, seed=corpus_seed)}
        timings["diagnostics"] = time.perf_counter() - t0
    if traj is not None and corpus is None:
        traj.close()
    results: dict[str, EvaluationResult] = {}
    for name in [c for c in CONDITIONS if c in models]:
        model, invisible = models[name]
        t0 = time.perf_counter()
        say(f"evaluating {name} on {levels} levels ...")
        results[name] = evaluate(model, levels=levels, start_level=start_level,
                                 distribution_mode=env.distribution_mode,
                                 invisible_saws=invisible, seed=seed, num_envs=num_envs,
                                 sample=True, env_options=env, progress=progress)
        timings[f"evaluate_{name}"] = time.perf_counter() - t0
        c = table_counts(results[name])
        say(f"  {name}: " + ", ".join(f"{k} {100 * v / levels:.2f}%" for k, v in c.items())
            + f", completed {100 * results[name].success_rate:.1f}%")
    cfg = getattr(agent, "checkpoint_config", None) or {}
    settings = {"levels": int(levels), "start_level": int(start_level), "seed": int(seed),
                "layer": layer, "rank": int(rank), "mode": mode, "strength": float(strength),
                "conditions": list(conditions), "corpus": {"num_envs": corpus_envs,
                                                           "num_steps": corpus_steps,
                                                           "seed": corpus_seed},
                "min_score": min_score, "unidentified": unidentified,
                "env_options": env.to_dict(), "agent_steps": cfg.get("steps"),
                "sample": True, "num_envs": int(num_envs)}
    return BlindnessReport(results, choices, settings, identification, timings, diagnostics)
