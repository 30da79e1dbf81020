"""The article's blindness experiments: edit an agent to be blind to a hazard, count failures.

Pipeline (:func:`run_blindness_experiments`; each step has its module in this package):

1. **Corpus and features.** Collect trajectories of the agent (the article: 8 x 512 steps),
   take integrated gradients of the value at the object layer, fit the attribution NMF
   (rank 8) and identify every feature by its strongest examples against the engine's object
   boxes (:mod:`~rlvision_widgets.analysis.features`: >= half of its 32 strongest cells on or
   next to the object, >= 3x its base rate, permutation-tested). "The saw feature" is the
   saw-identified feature whose strongest cells lie on saws most often, "every saw feature"
   all saw-identified features (:mod:`.choice`). A class no feature is identified with is
   reported as *not identified*, and its edit is skipped (``unidentified="skip"``) rather
   than faked with an unrelated feature.
2. **Edits.** Project the feature's NMF direction out of the layer, on a copy of the agent
   (:func:`~rlvision_widgets.agents.editing.apply_edit`, the one editing mechanism; the
   article's weight edit of the next conv kernel by default). The every-saw-feature edit
   projects out the subspace all saw features span, in one edit. A *control* edit projects
   out a non-hazard feature of similar mass, to show that an edit of the same kind does not
   raise hazard failures by itself. On the corpus, :mod:`.removal` checks frame by frame that
   the edit acts like hiding the object.
3. **Evaluation.** Every model plays the same levels (``start_level ...``), one episode each,
   actions sampled with the same seed; failures are labelled by the engine
   (:func:`~rlvision_widgets.rollouts.evaluate.evaluate`). The invisible-saws control is
   the original agent on the same levels with saws not drawn.
4. **Report** (:mod:`.report`). The article's table (% of levels failed by buzzsaw / enemy
   moving left / enemy moving right / multiple or other; :mod:`.article`), a two-proportion
   z-test per cause against the original, the ratio of failure rates with a 95% CI, the
   article's "blindness" measure ``(edited - original) / (invisible - original)`` with a
   paired bootstrap CI (:mod:`.statistics`), a chart (:mod:`.charts`), JSON and CSV.

>>> report = run_blindness_experiments(load_agent("coinrun"), levels=2000)   # doctest: +SKIP
>>> print(report.markdown_table())                                          # doctest: +SKIP
>>> report.write("docs/results")                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from .._compat import moved_names
from ..agents.editing import Edit, EditedAgent, apply_edit
from ..analysis.features import (
    FeatureIdentification,
    identify_features,
    object_layer,
    resolve_class,
)
from ..analysis.nmf import AttributionNMF
from ..engines import check_engine
from ..environment.coinrun import EnvOptions
from ..rollouts import Trajectories, collect_trajectories
from ..rollouts.evaluate import EvaluationResult, evaluate
from .article import CONDITIONS, EDIT_TARGETS, table_counts
from .choice import (
    EditChoice,
    choose_all_features,
    choose_control,
    choose_feature,
)
from .removal import removal_effects
from .report import BlindnessReport

__all__ = ["agent_env_options", "blind_agent", "prepare_edit", "run_blindness_experiments"]


def agent_env_options(agent: nn.Module) -> EnvOptions:
    """The game options the agent was trained with (checkpoint config), else the defaults;
    saws always visible.

    >>> from rlvision_widgets.agents import build_network
    >>> agent_env_options(build_network("compact")) == EnvOptions()
    True
    """
    cfg = getattr(agent, "checkpoint_config", None) or {}
    env = dict(cfg.get("env") or {})
    try:
        return EnvOptions.from_dict(env).replace(invisible_saws=False) if env else EnvOptions()
    except (TypeError, ValueError):
        return EnvOptions()


def blind_agent(
    agent: nn.Module,
    direction: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    layer: str,
    mode: str = "weight",
    strength: float = 1.0,
    label: str = "",
) -> EditedAgent:
    """``agent`` edited to be blind to ``direction`` at ``layer``: one
    :class:`~rlvision_widgets.agents.editing.Edit` applied by
    :func:`~rlvision_widgets.agents.editing.apply_edit` (a copy; the original is not modified).
    A 2-D ``direction`` (K, C) projects out the subspace its rows span, together.

    >>> from rlvision_widgets.agents import build_network
    >>> blind = blind_agent(build_network("compact"), np.eye(32)[[2, 9]], "2b")
    >>> [(e.layer, e.num_directions, e.mode) for e in blind.edits]
    [('2b', 2, 'weight')]
    """
    return apply_edit(agent, Edit(layer, direction, strength, mode, label))


def prepare_edit(
    agent: nn.Module,
    feature: int | str,
    layer: str | None = None,
    rank: int = 8,
    mode: str = "weight",
    strength: float = 1.0,
    nmf: Any = None,
    corpus_envs: int = 8,
    corpus_steps: int = 512,
    corpus_seed: int = 0,
    progress: bool = False,
) -> tuple[EditedAgent, EditChoice, FeatureIdentification | None]:
    """An edited agent (:func:`blind_agent`) blind to one NMF feature given by index, or to
    every feature identified with an object class given by name (one subspace edit).

    ``nmf``: an :class:`~rlvision_widgets.analysis.nmf.AttributionNMF` (or the path it was
    saved to) to take the directions from; without it (or to score features for a class
    name) a corpus of ``corpus_envs x corpus_steps`` steps is collected and the article's NMF
    fitted (:func:`~rlvision_widgets.analysis.features.identify_features`). A class name no
    feature is identified with raises a ValueError naming the classes that were identified.
    Returns ``(edited agent, choice, identification or None)``.

    >>> edited, choice, _ = prepare_edit(load_agent("coinrun"), "saw")        # doctest: +SKIP
    >>> choice.feature, choice.note                                          # doctest: +SKIP
    """
    layer = layer or object_layer(agent)
    if isinstance(nmf, (str, os.PathLike)):
        nmf = AttributionNMF.load(nmf)
    is_index = isinstance(feature, (int, np.integer)) or (
        isinstance(feature, str) and feature.strip().isdigit()
    )
    if not is_index:
        resolve_class(str(feature))  # fail fast, listing the valid classes
    ident = None
    if is_index and nmf is not None:
        k = int(feature)
        K = nmf.components_.shape[0]
        if not 0 <= k < K:
            raise ValueError(f"feature index {k} out of range: the NMF has features 0..{K - 1}")
        choice = EditChoice(
            "edit",
            "",
            k,
            float("nan"),
            "",
            True,
            nmf.components_[k].astype(np.float32).tolist(),
            f"feature {k} of the given NMF",
        )
    else:
        traj = collect_trajectories(
            agent,
            corpus_envs,
            corpus_steps,
            corpus_seed,
            agent_env_options(agent),
            progress=progress,
        )
        ident = identify_features(agent, traj, layer=layer, rank=rank, nmf=nmf, seed=corpus_seed)
        traj.close()
        if is_index:
            k = ident.index(int(feature))
            ev = ident.labels.evidence[k]
            choice = EditChoice(
                "edit",
                ev.label,
                k,
                ev.share if ev.label else float("nan"),
                ev.best_class,
                True,
                ident.direction(k).tolist(),
                f"feature {k} ({ev.describe()})",
                evidence=[ev.to_json()],
            )
        else:
            choice = choose_all_features(ident, "edit", str(feature), min_features=1)
            if not choice.identified:
                raise ValueError(f"cannot edit {feature!r}: {choice.note}")
    feats = ", ".join(str(k) for k in (choice.features or [choice.feature]))
    edited = blind_agent(
        agent,
        choice.all_directions,
        layer,
        mode,
        strength,
        label=f"feature {feats}" + (f" ({choice.cls})" if choice.cls else ""),
    )
    return edited, choice, ident


def run_blindness_experiments(
    agent: nn.Module,
    levels: int = 2000,
    start_level: int = 0,
    seed: int = 0,
    layer: str | None = None,
    rank: int = 8,
    mode: str = "weight",
    strength: float = 1.0,
    conditions: Sequence[str] = CONDITIONS,
    corpus_envs: int = 8,
    corpus_steps: int = 512,
    corpus_seed: int = 0,
    identification: FeatureIdentification | None = None,
    min_score: float | None = None,
    unidentified: str = "skip",
    corpus: Any = None,
    diagnose: bool = True,
    num_envs: int = 64,
    distribution_mode: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    engine: str = "local",
    address: str | None = None,
    threads: int | None = None,
    parts: int | None = None,
) -> BlindnessReport:
    """Run the article's blindness experiments on ``agent`` (see the module doc).

    ``levels`` per condition (the same levels for all), ``conditions`` a subset of
    :data:`CONDITIONS` ("original" is always run), ``mode`` "weight" (the article's edit of the
    next conv kernel) or "activation", ``identification`` to reuse features already found
    (else a corpus of ``corpus_envs x corpus_steps`` is collected, or ``corpus`` used),
    ``unidentified`` "skip" (default: no edit for a class no feature is identified with) or
    "run" (edit the feature whose strongest cells lie on it most often anyway, marked
    ``identified=False``), ``min_score``: no longer used (deprecated), ``diagnose``: run :func:`removal_effects` on the corpus for each
    edit (frame-level value and policy blindness).

    ``engine``, ``address``, ``threads``, ``parts``: where each model's evaluation runs, as in
    :func:`~rlvision_widgets.rollouts.evaluate.evaluate`: ``engine="ray"`` splits the levels
    of every model over Ray's workers (edited agents travel through Ray's object store), with
    results identical to the local run; the corpus, features and frame-level checks run here.

    >>> report = run_blindness_experiments(agent, levels=2000)                # doctest: +SKIP
    >>> report = run_blindness_experiments(agent, levels=10_000, engine="ray")  # doctest: +SKIP
    """
    check_engine(engine, address)  # before any work
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
            traj = collect_trajectories(
                agent, corpus_envs, corpus_steps, corpus_seed, env, progress=progress
            )
        say(f"integrated gradients + NMF (rank {rank}) at {layer}, scoring features ...")
        identification = identify_features(agent, traj, layer=layer, rank=rank, seed=corpus_seed)
        timings["features"] = time.perf_counter() - t0
    if min_score is not None:
        warnings.warn(
            "min_score no longer applies: features are identified by their strongest examples",
            FutureWarning,
            stacklevel=2,
        )
    labels = identification.labels if identification is not None else None
    if labels is not None:
        for e in labels.evidence:
            say(f"  feature {e.feature}: {e.describe()}")
    for cond, cls in EDIT_TARGETS.items():
        if cond == "saw_blind_all" and cond in conditions:
            choices[cond] = choose_all_features(identification, cond, cls)
            say(f"{cond}: {choices[cond].note}")
        elif cond in conditions:
            choice = choose_feature(identification, cls, cond)
            j = labels.classes.index(cls) if labels is not None else None
            if (
                not choice.identified
                and unidentified == "run"
                and labels is not None
                and labels.base_rate[j] > 0
            ):
                k = int(np.nanargmax(np.nan_to_num(labels.share[:, j], nan=-1)))
                choice = EditChoice(
                    cond,
                    cls,
                    k,
                    float(labels.share[k, j]),
                    labels.evidence[k].best_class,
                    False,
                    identification.direction(k).tolist(),
                    choice.note + f"; feature {k} edited anyway (unidentified='run')",
                    evidence=[labels.evidence[k].to_json()],
                )
            choices[cond] = choice
            say(f"{cond}: {choice.note}")
    if "control" in conditions:
        ref = choices.get("saw_blind")
        exclude = [
            k for c in choices.values() for k in (c.features or [c.feature]) if k is not None
        ]
        choices["control"] = choose_control(identification, ref.feature if ref else None, exclude)
        say(choices["control"].note)

    models: dict[str, tuple[Any, bool]] = {"original": (agent, False)}
    for cond in conditions:
        if cond in EDIT_TARGETS or cond == "control":
            ch = choices[cond]
            if ch.feature is None:
                continue
            feats = ", ".join(str(k) for k in (ch.features or [ch.feature]))
            models[cond] = (
                blind_agent(
                    agent,
                    ch.all_directions,
                    layer,
                    mode,
                    strength,
                    label=f"{cond}: feature {feats} ({ch.cls})",
                ),
                False,
            )
        elif cond == "invisible_saws":
            models[cond] = (agent, True)
    diagnostics: dict[str, dict[str, Any]] = {}
    if traj is not None and diagnose:
        t0 = time.perf_counter()
        # (name, edited model, class, features); variants are checked at frame level only
        variants: list[tuple[str, EditedAgent, str, list[int]]] = []
        for cond in models:
            if cond in EDIT_TARGETS or cond == "control":
                ch = choices[cond]
                variants.append(
                    (
                        cond,
                        models[cond][0],
                        EDIT_TARGETS.get(cond, "saw"),
                        ch.features or [ch.feature],
                    )
                )
        for cond, cls in EDIT_TARGETS.items():
            ch = choices.get(cond)
            if cond not in models or ch is None or ch.feature is None or ch.features:
                continue
            used = models[cond][0].edits[0].mode
            other = "activation" if used == "weight" else "weight"
            variant = blind_agent(agent, ch.direction, layer, other, strength)
            if variant.edits[0].mode != used:  # no weight variant where the weight edit fell back
                variants.append((f"{cond}:{other}", variant, cls, [ch.feature]))
            same = labels.features_for(cls) if labels is not None else []
            if len(same) > 1 and f"{cond}_all" not in models:
                dirs = np.stack([identification.direction(k) for k in same])
                edited = blind_agent(agent, dirs, layer, mode, strength)
                variants.append((f"{cond}:all_features", edited, cls, same))
        for name, model, cls, feats in variants:
            say(f"frame-level check of {name}: hiding vs editing out {cls} ...")
            diagnostics[name] = {
                "mode": model.edits[0].mode,
                "features": feats,
                **removal_effects(agent, model, traj, cls, seed=corpus_seed),
            }
        timings["diagnostics"] = time.perf_counter() - t0
    if traj is not None and corpus is None:
        traj.close()
    results: dict[str, EvaluationResult] = {}
    for name in [c for c in CONDITIONS if c in models]:
        model, invisible = models[name]
        t0 = time.perf_counter()
        say(f"evaluating {name} on {levels} levels ...")
        results[name] = evaluate(
            model,
            levels=levels,
            start_level=start_level,
            distribution_mode=env.distribution_mode,
            invisible_saws=invisible,
            seed=seed,
            num_envs=num_envs,
            sample=True,
            env_options=env,
            progress=progress,
            engine=engine,
            address=address,
            threads=threads,
            parts=parts,
        )
        timings[f"evaluate_{name}"] = time.perf_counter() - t0
        c = table_counts(results[name])
        say(
            f"  {name}: "
            + ", ".join(f"{k} {100 * v / levels:.2f}%" for k, v in c.items())
            + f", completed {100 * results[name].success_rate:.1f}%"
        )
    cfg = getattr(agent, "checkpoint_config", None) or {}
    settings = {
        "levels": int(levels),
        "start_level": int(start_level),
        "seed": int(seed),
        "layer": layer,
        "rank": int(rank),
        "mode": mode,
        "modes_used": {
            c: m.edits[0].mode for c, (m, _) in models.items() if isinstance(m, EditedAgent)
        },
        "strength": float(strength),
        "conditions": list(conditions),
        "corpus": {"num_envs": corpus_envs, "num_steps": corpus_steps, "seed": corpus_seed},
        "identification": labels.settings if labels is not None else None,
        "unidentified": unidentified,
        "env_options": env.to_dict(),
        "agent_steps": cfg.get("steps"),
        "sample": True,
        "num_envs": int(num_envs),
    }
    return BlindnessReport(results, choices, settings, identification, timings, diagnostics)


def _collect_corpus(
    agent: nn.Module,
    num_envs: int = 8,
    num_steps: int = 512,
    seed: int = 0,
    env_options: EnvOptions | None = None,
    progress: bool = False,
) -> Trajectories:
    """The 0.1 ``collect_corpus`` of the blindness experiments (trajectories, not a
    :class:`~rlvision_widgets.rollouts.corpus.Corpus`), served by :func:`_old_names`."""
    return collect_trajectories(
        agent, num_envs, num_steps, seed, env_options or agent_env_options(agent), progress=progress
    )


def _old_names(module: str) -> Callable[[str], Any]:
    """The module ``__getattr__`` serving the 0.1 names of ``rlvision_widgets.analysis.
    experiments`` that are gone, each with a ``FutureWarning``: ``strict_json`` (now
    :func:`rlvision_widgets.files.json_safe`), ``HAZARD_CLASSES`` (now in
    :mod:`rlvision_widgets.analysis.labels`) and ``collect_corpus`` (trajectories with the
    agent's game options: use :func:`rlvision_widgets.rollouts.collect_trajectories` with
    ``env_options=agent_env_options(agent)``; not :func:`rlvision_widgets.rollouts.corpus.
    collect_corpus`, which returns a ``Corpus``).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     f = _old_names("demo")("strict_json")
    >>> f.__name__, caught[0].category.__name__
    ('json_safe', 'FutureWarning')
    """
    moved = moved_names(
        module,
        {"strict_json": "files:json_safe", "HAZARD_CLASSES": "analysis.labels:HAZARD_CLASSES"},
    )

    def __getattr__(name: str) -> Any:
        if name == "collect_corpus":
            warnings.warn(
                f"{module}.collect_corpus is deprecated and goes away in the next "
                "release: use rlvision_widgets.rollouts.collect_trajectories(agent, "
                "num_envs, num_steps, seed, env_options=agent_env_options(agent))",
                FutureWarning,
                stacklevel=2,
            )
            return _collect_corpus
        return moved(name)

    return __getattr__


__getattr__ = _old_names(__name__)
