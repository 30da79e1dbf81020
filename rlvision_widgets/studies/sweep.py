"""The diversity sweep: agents trained on more and more levels, their generalization and their
interpretability (the article's section "The diversity hypothesis", footnotes 10-11).

A sweep is a grid of cells, number of training levels x seed (:class:`SweepConfig`). Each cell
(:func:`run_cell`, one task of :func:`~rlvision_widgets.engines.run_tasks`, so the sweep runs
here or on Ray):

1. **trains** an agent with the package's PPO in ``<out_dir>/<cell>/`` on levels
   ``[0, levels)`` (0 = unbounded), resuming a run folder that has a checkpoint, and keeps only
   its newest checkpoint (model + optimizer safetensors and JSON, enough to resume);
2. **evaluates** it on ``eval_levels`` of its training levels and as many unseen levels, each
   sampled with replacement (footnote 10) by a generator seeded from ``(eval_seed, levels,
   seed)`` (:func:`sample_levels`): training levels from ``[0, levels)``, unseen ones from
   ``[test_start_level, test_start_level + 2**20)``. The unbounded agent trained on every
   level seed, so its "train" levels are fresh draws from that distribution (any seed in
   ``[0, 2**31 - 1)``), levels it has practically never seen: for it both numbers measure
   unseen levels;
3. **scores** its interpretability (:func:`~rlvision_widgets.analysis.interpretability.
   interpretability_score`) on frames of its own play on unseen levels (fixed seed);
4. writes ``<out_dir>/<cell>/result.json`` atomically.

A cell whose ``result.json`` matches its settings is skipped; one with a partial run resumes
its training. The cell name (:func:`cell_name`) comes from what defines the trained agent
(levels, seed, steps, every PPO setting and env option); the evaluation and interpretability
settings are recorded in ``result.json``, and changing them re-evaluates without retraining.
Everything in a result except its ``"timing"`` section depends only on the settings, so two
runs (local or Ray) can be compared exactly. :func:`run_sweep` then writes
``<out_dir>/results.json`` and ``results.csv``; :func:`plot_sweep` draws the article's figures;
:func:`publish_sweep` copies results, figures and each cell's weights into the docs.

>>> config = SweepConfig(levels=(100, 1000, 10_000, 0), seeds=(0,))
>>> [c.name[:-9] for c in config.cells()]   # each name ends in a hash of the cell's settings
['levels-100_seed-0_5M', 'levels-1000_seed-0_5M', 'levels-10000_seed-0_5M', 'levels-unbounded_seed-0_5M']
>>> results = run_sweep(config, "runs/sweep")                           # doctest: +SKIP
>>> print(results.table())                                              # doctest: +SKIP
>>> plot_sweep(load_sweep("runs/sweep"), "docs/results/diversity")      # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..environment.causes import FAILURE_CAUSES
from ..environment.coinrun import EnvOptions
from ..files import atomic_open, copy_file_atomic, json_safe, write_json_atomic
from ..training.ppo import PPOConfig

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "ARTICLE_DIVERSITY",
    "SweepCell",
    "SweepConfig",
    "SweepResults",
    "SweepStopped",
    "TEST_RANGE",
    "cell_name",
    "load_sweep",
    "plot_sweep",
    "publish_sweep",
    "run_cell",
    "run_sweep",
    "sample_levels",
]

FORMAT = "rlvision-sweep"
CELL_FORMAT = "rlvision-sweep-cell"
VERSION = 1
#: unseen levels are drawn from [test_start_level, test_start_level + TEST_RANGE)
TEST_RANGE = 2**20
#: the level seeds an unbounded run trains on (procgen's num_levels=0): [0, 2**31 - 1)
ALL_LEVELS = 2**31 - 1
#: PPO settings the sweep sets itself (steps, seeds, threads) or that do not change the agent
_PPO_OWN = {"total_steps": "steps", "seed": "seeds", "num_threads": "threads (run_sweep)"}
# the machine's settings, not the agent's: a cell resumes with another thread count, device or
# precision (fp32 where the CPU lacks bf16) under the same name, as the trainer allows
_PPO_MACHINE = ("num_threads", "checkpoint_every_s", "device", "precision")
_ENV_OWN = {"num_levels": "levels", "start_level": "levels (training levels start at 0)"}

#: The article's footnote 10: two runs per level count, success on 10,000 train and test
#: levels sampled with replacement (%), and the share of 8 features two researchers found
#: interpretable (%; researcher x run).
ARTICLE_DIVERSITY: dict[str, Any] = {
    "levels": [100, 300, 1000, 3000, 10_000, 30_000, 100_000],
    "train_success": [
        [99.96, 99.82, 99.67, 99.65, 99.47, 99.55, 99.57],
        [99.97, 99.86, 99.70, 99.46, 99.39, 99.50, 99.37],
    ],
    "test_success": [
        [61.81, 66.95, 74.93, 89.87, 97.53, 98.66, 99.25],
        [64.13, 67.64, 73.46, 90.36, 97.44, 98.89, 99.35],
    ],
    "interpretable": [
        [52.5, 22.5, 11.25, 45, 90, 75, 91.25],
        [8.75, 8.75, 10, 26.25, 56.25, 90, 70],
        [15, 13.75, 15, 23.75, 53.75, 90, 96.25],
        [3.75, 6.25, 21.25, 45, 72.5, 83.75, 77.5],
    ],
}


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _int_tuple(name: str, value: Any, low: int, high: int) -> tuple[int, ...]:
    if _is_int(value):
        value = (value,)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    out = tuple(value)
    if not out:
        raise ValueError(f"{name} must hold at least one value, got an empty list")
    bad = [v for v in out if not _is_int(v) or not low <= v < high]
    if bad:
        raise ValueError(f"{name} must be integers in [{low}, {high}), got {bad[:3]!r}")
    dup = sorted({int(v) for v in out if out.count(v) > 1})
    if dup:
        raise ValueError(f"{name} lists {dup} more than once: each value makes its own cells")
    return tuple(int(v) for v in out)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if not _is_int(value) or value < low or (high is not None and value >= high):
        where = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {where}, got {value!r}")


@dataclass(frozen=True)
class SweepCell:
    """One cell of a sweep: number of training levels (0 = unbounded), seed, and its name
    (:func:`cell_name`).

    >>> SweepConfig(levels=(100,)).cells()[0].levels
    100
    """

    levels: int
    seed: int
    name: str


@dataclass(frozen=True)
class SweepConfig:
    """What a diversity sweep runs (validated on construction, errors name the setting).

    ``levels``: training-level counts (0 = unbounded); ``seeds``: training seeds; cells are
    levels x seeds. ``steps``: PPO steps per cell. ``env_options``: :class:`~rlvision_widgets.
    environment.coinrun.EnvOptions` fields for training, evaluation and scoring alike
    (``num_levels``/``start_level`` come from ``levels``). ``ppo``: :class:`~rlvision_widgets.
    training.ppo.PPOConfig` overrides for every cell (the article's defaults otherwise;
    ``total_steps``, ``seed`` and ``num_threads`` come from ``steps``, ``seeds`` and the
    ``threads`` of :func:`run_sweep`). ``extra_cells``: ``(levels, seed)`` cells beyond the
    grid, e.g. a second seed of one level count. ``eval_levels``: train and unseen levels played per
    cell, sampled with replacement (the article: 10,000); ``eval_seed``: seeds the samples and
    the sampled actions; ``test_start_level``: first unseen level (above every training level).
    ``interp_envs`` x ``interp_steps``: frames collected on unseen levels with
    ``interp_seed``, of which ``interp_frames`` are scored with ``interp_rank`` NMF features.

    >>> SweepConfig(levels=(100, 0), seeds=(0, 1)).cells()[-1]
    SweepCell(levels=0, seed=1, name='levels-unbounded_seed-1_5M-...')
    >>> [(c.levels, c.seed) for c in SweepConfig(levels=(100, 0), extra_cells=[(100, 1)]).cells()]
    [(100, 0), (100, 1), (0, 0)]
    >>> SweepConfig.from_json(SweepConfig(steps=1000).to_json()).steps
    1000
    >>> SweepConfig(ppo={"total_steps": 10})
    Traceback (most recent call last):
    ...
    ValueError: ppo: total_steps is set by the sweep's steps, not by ppo
    """

    levels: tuple[int, ...] = (100, 1000, 10_000, 0)
    seeds: tuple[int, ...] = (0,)
    steps: int = 5_000_000
    env_options: Mapping[str, Any] = field(default_factory=dict)
    ppo: Mapping[str, Any] = field(default_factory=dict)
    eval_levels: int = 1000
    eval_seed: int = 0
    test_start_level: int = 1_000_000
    interp_envs: int = 8
    interp_steps: int = 128
    interp_frames: int = 1024
    interp_rank: int = 8
    interp_seed: int = 0
    extra_cells: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "levels", _int_tuple("levels", self.levels, 0, 2**31))
        set_(self, "seeds", _int_tuple("seeds", self.seeds, 0, 2**31))
        set_(self, "extra_cells", self._extra_cells(self.extra_cells))
        _check_int("steps", self.steps, 1)
        for name in ("eval_levels", "interp_envs", "interp_steps", "interp_rank"):
            _check_int(name, getattr(self, name), 1)
        _check_int("interp_frames", self.interp_frames, 32)
        for name in ("eval_seed", "interp_seed"):
            _check_int(name, getattr(self, name), 0, 2**31)
        _check_int("test_start_level", self.test_start_level, 0, 2**31 - TEST_RANGE + 1)
        if self.interp_envs * self.interp_steps < 32:
            raise ValueError(
                f"interp_envs x interp_steps = {self.interp_envs * self.interp_steps} frames; "
                "the interpretability score needs at least 32"
            )
        top = max((*self.levels, *(n for n, _ in self.extra_cells)))
        if self.test_start_level < top:
            raise ValueError(
                f"test_start_level {self.test_start_level} lies inside the training levels "
                f"[0, {top}): unseen levels must start at {top} or above"
            )
        env = self._mapping("env_options", self.env_options, EnvOptions, _ENV_OWN)
        ppo = self._mapping("ppo", self.ppo, PPOConfig, _PPO_OWN)
        set_(self, "env_options", env)
        set_(self, "ppo", ppo)
        opts, cfg = EnvOptions(**env), PPOConfig(**ppo)
        if cfg.num_minibatches > cfg.num_steps * opts.num_envs:
            raise ValueError(
                f"ppo: num_minibatches {cfg.num_minibatches} is more than the "
                f"{cfg.num_steps * opts.num_envs} samples of an update (num_steps "
                f"{cfg.num_steps} x num_envs {opts.num_envs}); use fewer minibatches"
            )

    @staticmethod
    def _mapping(name: str, value: Any, cls: type, own: Mapping[str, str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict of {cls.__name__} fields, got {value!r}")
        valid = sorted(f.name for f in fields(cls) if f.name not in own)
        for key in value:
            if key in own:
                raise ValueError(f"{name}: {key} is set by the sweep's {own[key]}, not by {name}")
            if key not in valid:
                raise ValueError(
                    f"{name}: unknown {cls.__name__} field {key!r}; valid: {', '.join(valid)}"
                )
        out = {k: value[k] for k in sorted(value)}
        try:
            cls(**out)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None
        return out

    def _extra_cells(self, value: Any) -> tuple[tuple[int, int], ...]:
        how = "extra_cells must be a list of [levels, seed] pairs, e.g. [[1000, 1]]"
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise ValueError(f"{how}, got {value!r}")
        out: list[tuple[int, int]] = []
        for pair in value:
            if (
                isinstance(pair, (str, bytes, Mapping))
                or not isinstance(pair, (Sequence, np.ndarray))
                or len(pair) != 2
                or not all(_is_int(v) and 0 <= v < 2**31 for v in pair)
            ):
                raise ValueError(f"{how} (integers >= 0, 0 = unbounded), got {pair!r}")
            cell = (int(pair[0]), int(pair[1]))
            if cell in out or (cell[0] in self.levels and cell[1] in self.seeds):
                raise ValueError(
                    f"extra_cells: levels {cell[0]}, seed {cell[1]} is already a cell of the "
                    "sweep (the levels x seeds grid or an earlier extra cell)"
                )
            out.append(cell)
        return tuple(out)

    # -- cells -----------------------------------------------------------------------------
    def cells(self) -> list[SweepCell]:
        """Every cell: the levels x seeds grid (levels outer, seeds inner, in the order
        given) with each extra cell after the grid's cells of its level count (new level
        counts last, in the order given)."""
        order = list(self.levels)
        order += [n for n, _ in self.extra_cells if n not in order]
        pairs = [
            (n, s)
            for n in dict.fromkeys(order)
            for s in (
                *(self.seeds if n in self.levels else ()),
                *(s for m, s in self.extra_cells if m == n),
            )
        ]
        return [SweepCell(n, s, cell_name(self, n, s)) for n, s in pairs]

    def training(self, levels: int, seed: int, threads: int = 0) -> tuple[PPOConfig, EnvOptions]:
        """The PPO config and env options a cell trains with.

        >>> cfg, env = SweepConfig(steps=1000).training(100, 3)
        >>> cfg.total_steps, cfg.seed, env.num_levels, env.start_level
        (1000, 3, 100, 0)
        """
        cfg = PPOConfig(
            **self.ppo, total_steps=self.steps, seed=int(seed), num_threads=int(threads)
        )
        env = EnvOptions(**self.env_options, num_levels=int(levels), start_level=0)
        return cfg, env

    def cell_definition(self, levels: int, seed: int) -> dict[str, Any]:
        """What defines a cell's trained agent (hashed into its name): levels, seed, steps,
        every PPO setting but the machine's (threads, checkpoint interval, device, precision)
        and every env option."""
        cfg, env = self.training(levels, seed)
        ppo = {k: v for k, v in asdict(cfg).items() if k not in _PPO_MACHINE}
        return json_safe(
            {
                "levels": int(levels),
                "seed": int(seed),
                "steps": self.steps,
                "ppo": ppo,
                "env": env.to_dict(),
            }
        )

    def evaluation(self) -> dict[str, Any]:
        """The evaluation and interpretability settings (recorded in each ``result.json``)."""
        keys = ("eval_levels", "eval_seed", "test_start_level", "interp_envs", "interp_steps")
        keys += ("interp_frames", "interp_rank", "interp_seed")
        return {k: getattr(self, k) for k in keys} | {"test_range": TEST_RANGE}

    # -- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Plain JSON (:meth:`from_json` reads it back)."""
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | str | os.PathLike) -> SweepConfig:
        """A config from a dict or a JSON file; unknown keys are an error naming them."""
        if isinstance(doc, (str, os.PathLike)):
            path = Path(doc)
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read a sweep config from {path}: {exc}") from None
        if not isinstance(doc, Mapping):
            raise ValueError(f"a sweep config must be a JSON object, got {type(doc).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(doc) - set(valid))
        if unknown:
            raise ValueError(f"unknown sweep setting(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**doc)

    def replace(self, **changes: Any) -> SweepConfig:
        """A validated copy with ``changes``."""
        return replace(self, **changes)

    @classmethod
    def smoke(cls) -> SweepConfig:
        """A sweep that checks a set-up end to end in about a minute (an engine, a cluster's
        shared folder, a notebook): cells of 2 and unbounded levels, 256 PPO steps each (two
        updates of 4 envs x 32 steps), 8 levels per evaluation, 64 frames scored at rank 4.
        Its numbers mean nothing.

        >>> [c.name[:-9] for c in SweepConfig.smoke().cells()]
        ['levels-2_seed-0_256', 'levels-unbounded_seed-0_256']
        """
        return cls(
            levels=(2, 0),
            steps=256,
            env_options={"num_envs": 4},
            ppo={"num_steps": 32},
            eval_levels=8,
            interp_envs=2,
            interp_steps=32,
            interp_frames=64,
            interp_rank=4,
        )


def _steps_text(steps: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if steps >= size:
            return f"{steps / size:g}{unit}"
    return str(steps)


def cell_name(config: SweepConfig, levels: int, seed: int) -> str:
    """A cell's folder name: readable, plus a short hash of what defines its trained agent
    (:meth:`SweepConfig.cell_definition`), so any training setting but the machine's gives
    another name.

    >>> cell_name(SweepConfig(), 100, 0)
    'levels-100_seed-0_5M-...'
    >>> cell_name(SweepConfig(ppo={"lr": 1e-4}), 100, 0) != cell_name(SweepConfig(), 100, 0)
    True
    >>> cell_name(SweepConfig(ppo={"precision": "fp32"}), 100, 0) == cell_name(SweepConfig(), 100, 0)
    True
    """
    text = json.dumps(config.cell_definition(levels, seed), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    lv = "unbounded" if levels == 0 else str(int(levels))
    return f"levels-{lv}_seed-{int(seed)}_{_steps_text(config.steps)}-{digest}"


def sample_levels(config: SweepConfig, levels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) level seeds a cell is evaluated on: ``eval_levels`` each, sampled with
    replacement by generators seeded from ``(eval_seed, levels, seed)``. Train: from
    ``[0, levels)``, or from every level seed ``[0, 2**31 - 1)`` for an unbounded cell; test:
    from ``[test_start_level, test_start_level + TEST_RANGE)``.

    >>> train, test = sample_levels(SweepConfig(eval_levels=5), 100, 0)
    >>> bool(train.max() < 100), bool(test.min() >= 1_000_000), len(train), len(test)
    (True, True, 5, 5)
    """
    _check_int("levels", levels, 0, 2**31)
    _check_int("seed", seed, 0, 2**31)
    seq = np.random.SeedSequence([config.eval_seed, int(levels), int(seed)])
    g_train, g_test = (np.random.default_rng(s) for s in seq.spawn(2))
    n = config.eval_levels
    train = g_train.integers(0, levels if levels else ALL_LEVELS, n, dtype=np.int64)
    test = config.test_start_level + g_test.integers(0, TEST_RANGE, n, dtype=np.int64)
    return train, test


# ------------------------------------------------------------------------------ one cell
def _latest_steps(run_dir: Path) -> int | None:
    path = run_dir / "latest.json"
    if not path.is_file():
        return None
    try:
        steps = json.loads(path.read_text())["steps"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); restore it or remove {run_dir}") from None
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"{path}: 'steps' must be an integer >= 0, got {steps!r}")
    return int(steps)


def _keep_newest_checkpoint(run_dir: Path) -> Path:
    """Remove every checkpoint but the one ``latest.json`` names (PPO keeps two); return it."""
    name = json.loads((run_dir / "latest.json").read_text())["checkpoint"]
    for old in run_dir.glob("ckpt-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old)
    return run_dir / name


class SweepStopped(RuntimeError):
    """A cell's training was stopped (SIGINT/SIGTERM) before its steps; it resumes next run."""


def _train_cell(
    config: SweepConfig, levels: int, seed: int, run_dir: Path, threads: int, progress: bool
) -> float:
    """Train (or resume) a cell's agent; returns the seconds spent."""
    from ..training.ppo import train

    t0 = time.perf_counter()
    cfg, env = config.training(levels, seed, threads)
    done = _latest_steps(run_dir)
    if done is None:
        log = run_dir / "log.jsonl"
        if log.is_file():  # a start killed before its first checkpoint: begin again
            log.unlink()
        train(run_dir, cfg, env, progress=progress)
    elif done < config.steps:
        train(run_dir, cfg, env, resume=True, progress=progress)
    return time.perf_counter() - t0


def _read_result(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path} is unreadable ({exc}); the cell is evaluated again", stacklevel=3)
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == CELL_FORMAT else None


def run_cell(
    config: Mapping[str, Any],
    levels: int,
    seed: int,
    out_dir: str,
    threads: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """One cell of a sweep (the module doc's steps 1-4); returns its ``result.json`` document.

    ``config``: a :class:`SweepConfig` or its JSON (what :func:`run_sweep` passes, so the task
    travels to Ray workers as plain data). A ``result.json`` with the same settings is
    returned as it is.

    >>> doc = run_cell(SweepConfig(steps=1024).to_json(), 2, 0, "runs/sweep")  # doctest: +SKIP
    """
    from ..agents.registry import load_agent
    from ..analysis.interpretability import interpretability_score
    from ..rollouts.collect import collect_trajectories
    from ..rollouts.evaluate import evaluate

    cfg = config if isinstance(config, SweepConfig) else SweepConfig.from_json(config)
    if not any(c.levels == levels and c.seed == seed for c in cfg.cells()):
        raise ValueError(f"cell (levels {levels}, seed {seed}) is not a cell of this sweep")
    name = cell_name(cfg, levels, seed)
    run_dir = Path(out_dir) / name
    settings = {"definition": cfg.cell_definition(levels, seed), "evaluation": cfg.evaluation()}
    path = run_dir / "result.json"
    old = _read_result(path)
    if old is not None and old.get("settings") == json_safe(settings):
        return old
    t_start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    train_s = _train_cell(cfg, levels, seed, run_dir, threads, progress)
    trained = _latest_steps(run_dir) or 0
    if trained < cfg.steps:  # a stop signal ended the training: record nothing, resume later
        raise SweepStopped(
            f"cell {name} stopped at {trained:,} of {cfg.steps:,} steps; its checkpoint is "
            "kept and nothing is recorded for it: run the sweep again to resume it"
        )
    ckpt = _keep_newest_checkpoint(run_dir)
    agent = load_agent(run_dir)
    steps = int(agent.checkpoint_config["steps"])
    env = EnvOptions(**cfg.env_options)
    train_levels, test_levels = sample_levels(cfg, levels, seed)
    evals, timing = {}, {"train_s": round(train_s, 2)}
    for which, seeds in (("train", train_levels), ("test", test_levels)):
        t0 = time.perf_counter()
        res = evaluate(
            agent,
            levels=seeds.tolist(),
            seed=cfg.eval_seed,
            distribution_mode=env.distribution_mode,
            invisible_saws=env.invisible_saws,
            env_options=env,
            progress=progress,
        )
        timing[f"eval_{which}_s"] = round(time.perf_counter() - t0, 2)
        lo, hi = (
            (0, levels or ALL_LEVELS)
            if which == "train"
            else (cfg.test_start_level, cfg.test_start_level + TEST_RANGE)
        )
        evals[which] = {**res.to_json(), "level_range": [lo, hi]}
    t0 = time.perf_counter()
    traj = collect_trajectories(
        agent,
        num_envs=cfg.interp_envs,
        num_steps=cfg.interp_steps,
        seed=cfg.interp_seed,
        env_options=env.replace(start_level=cfg.test_start_level, num_levels=TEST_RANGE),
        progress=progress,
    )
    try:
        score = interpretability_score(
            agent, traj, rank=cfg.interp_rank, max_frames=cfg.interp_frames, seed=cfg.interp_seed
        )
    finally:
        traj.close()
    timing["interpretability_s"] = round(time.perf_counter() - t0, 2)
    timing["training_wall_time_s"] = agent.checkpoint_config.get("wall_time_s")
    timing["checkpoint_bytes"] = sum(p.stat().st_size for p in ckpt.iterdir() if p.is_file())
    timing["total_s"] = round(time.perf_counter() - t_start, 2)
    doc = {
        "format": CELL_FORMAT,
        "version": VERSION,
        "cell": name,
        "levels": int(levels),
        "seed": int(seed),
        "steps": steps,
        "settings": settings,
        "checkpoint": ckpt.name,
        "train": evals["train"],
        "test": evals["test"],
        "interpretability": score.to_json(),
        "timing": timing,
    }
    write_json_atomic(path, doc)
    return json.loads(path.read_text())  # exactly what a later run reads back


# ------------------------------------------------------------------------------- results
_COMPONENTS = ("score", "identified", "consistency", "object_focus", "background")


@dataclass
class SweepResults:
    """A sweep's cells (each one's ``result.json`` document, in the config's order).

    ``rows()`` flattens them (one row per cell, the CSV's columns, no timings); ``table()`` is
    Markdown; ``write(out_dir)`` writes ``results.json`` and ``results.csv``.

    >>> SweepResults(SweepConfig(), []).table().splitlines()[0][:32]
    '| cell | levels | seed | steps |'
    """

    config: SweepConfig
    cells: list[dict[str, Any]]

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per cell (success rates and Wilson bounds, interpretability
        components, failures by cause)."""
        out = []
        for c in self.cells:
            row: dict[str, Any] = {
                "cell": c["cell"],
                "levels": c["levels"],
                "levels_label": "unbounded" if c["levels"] == 0 else str(c["levels"]),
                "seed": c["seed"],
                "steps": c["steps"],
            }
            for which in ("train", "test"):
                ev = c[which]
                row[f"{which}_success"] = ev["success_rate"]
                row[f"{which}_ci_low"], row[f"{which}_ci_high"] = ev["ci95"]
                row[f"{which}_levels"] = ev["levels"]
            row["gap"] = round(row["train_success"] - row["test_success"], 6)
            it = c["interpretability"]
            for k in (*_COMPONENTS, "background_base_rate", "n_identified", "n_features"):
                row[k if k != "score" else "interpretability"] = it[k]
            for which in ("train", "test"):
                for cause in FAILURE_CAUSES:
                    row[f"{which}_{cause}"] = c[which]["failures"].get(cause, 0)
            out.append(row)
        return out

    def table(self) -> str:
        """Markdown: per cell, success on train and test levels (Wilson 95%) and the
        interpretability score with its components."""
        head = (
            "| cell | levels | seed | steps | train success | test success | gap | "
            "interpretability | identified | consistency | object focus | background |"
        )
        lines = [head, "|" + " --- |" * 12]

        def pct(r: dict, w: str) -> str:
            return (
                f"{100 * r[f'{w}_success']:.1f}% ({100 * r[f'{w}_ci_low']:.1f}–"
                f"{100 * r[f'{w}_ci_high']:.1f})"
            )

        def num(x: Any) -> str:
            return "–" if x is None else f"{x:.2f}"

        for r in self.rows():
            lines.append(
                f"| {r['cell']} | {r['levels_label']} | {r['seed']} | {r['steps']:,} | "
                f"{pct(r, 'train')} | {pct(r, 'test')} | {100 * r['gap']:.1f} pp | "
                f"{num(r['interpretability'])} | {r['n_identified']}/{r['n_features']} | "
                f"{num(r['consistency'])} | {num(r['object_focus'])} | {num(r['background'])} |"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` document: format, config, cells (timings included, under each
        cell's ``"timing"``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_json(),
            "cells": [dict(c) for c in self.cells],
        }

    def csv_text(self) -> str:
        """The ``results.csv`` text: :meth:`rows`, one line per cell."""
        rows = self.rows()
        text = io.StringIO(newline="")
        if rows:
            w = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        return text.getvalue()

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``results.json`` and ``results.csv`` into ``out_dir`` (atomically)."""
        out = Path(out_dir)
        write_json_atomic(out / "results.json", self.to_json())
        with atomic_open(out / "results.csv", "wb") as f:
            f.write(self.csv_text().encode("utf-8"))
        return out / "results.json", out / "results.csv"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SweepResults:
        """Read :meth:`to_json`'s output; a malformed document raises ValueError naming it."""
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise ValueError(f"not a sweep results document (format must be {FORMAT!r})")
        if doc.get("version") != VERSION:
            raise ValueError(f"unsupported sweep results version {doc.get('version')!r}")
        cells = doc.get("cells")
        if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("format") == CELL_FORMAT for c in cells
        ):
            raise ValueError("sweep results: 'cells' must be a list of cell results")
        return cls(SweepConfig.from_json(doc.get("config", {})), [dict(c) for c in cells])


def load_sweep(out_dir: str | os.PathLike) -> SweepResults:
    """The results :func:`run_sweep` wrote into ``out_dir`` (``results.json``; JSON only).

    >>> load_sweep("runs/sweep").table()                                    # doctest: +SKIP
    """
    path = Path(out_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no sweep results at {path}: run the sweep first (run_sweep)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    try:
        return SweepResults.from_json(doc)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def run_sweep(
    config: SweepConfig | Mapping[str, Any],
    out_dir: str | os.PathLike = "runs/sweep",
    *,
    engine: str = "local",
    address: str | None = None,
    threads: int = 1,
    progress: bool = True,
) -> SweepResults:
    """Run every cell of ``config`` (one task each, on ``engine``: ``"local"`` or ``"ray"``,
    ``address`` joins a Ray cluster, ``threads`` torch threads per cell), skipping done cells
    and resuming partial ones, then write ``results.json`` and ``results.csv`` into
    ``out_dir``. On a Ray cluster ``out_dir`` must be on a filesystem every node shares.

    >>> results = run_sweep(SweepConfig(levels=(100, 0)), "runs/sweep")     # doctest: +SKIP
    """
    from ..engines import check_engine, run_tasks

    cfg = config if isinstance(config, SweepConfig) else SweepConfig.from_json(config)
    check_engine(engine, address)
    if not _is_int(threads) or threads < 1:
        raise ValueError(
            f"threads must be an integer >= 1 (torch threads per cell), got {threads!r}"
        )
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    doc = cfg.to_json()
    write_json_atomic(out / "sweep.json", doc)  # `rlvision sweep DIR` resumes with these
    tasks = [
        {
            "config": doc,
            "levels": c.levels,
            "seed": c.seed,
            "out_dir": str(out),
            "threads": int(threads),
            "progress": bool(progress) and engine == "local",
        }
        for c in cfg.cells()
    ]
    cells = run_tasks(
        run_cell,
        tasks,
        engine=engine,
        address=address,
        threads=threads,
        progress=progress,
        desc="sweep",
    )
    results = SweepResults(cfg, cells)
    results.write(out)
    return results


# ------------------------------------------------------------------------------- figures
def _positions(levels: Sequence[int], extra: Sequence[int] = ()) -> tuple[dict[int, float], float]:
    """x position (log10) of each level count; unbounded (0) one decade right of the
    largest finite count (of ours and ``extra``)."""
    finite = [n for n in (*levels, *extra) if n > 0]
    right = math.log10(max(finite)) + 1.0 if finite else 1.0
    return {n: (math.log10(n) if n > 0 else right) for n in levels}, right


def _ticks(ax: Any, pos: dict[int, float], right: float, has_unbounded: bool) -> None:
    lo = math.floor(min([p for n, p in pos.items() if n > 0], default=right - 1))
    ticks = list(range(int(lo), int(math.ceil(right))))
    labels = [f"{10**t:,}" for t in ticks]
    if has_unbounded:
        ticks.append(right)
        labels.append("unbounded")
        ax.axvline(right - 0.5, color="0.8", lw=0.8, ls=":")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.set_xlim(lo - 0.3, right + 0.3)
    ax.set_xlabel("number of training levels (log scale)")


def _by_levels(rows: list[dict[str, Any]], key: str) -> tuple[list[int], np.ndarray]:
    """Level counts (sorted, unbounded last) and (n_levels, n_seeds) values of ``key``."""
    levels = sorted({r["levels"] for r in rows}, key=lambda n: (n == 0, n))
    vals = [[r[key] for r in rows if r["levels"] == n] for n in levels]
    width = max(len(v) for v in vals)
    arr = np.full((len(levels), width), np.nan)
    for i, v in enumerate(vals):
        arr[i, : len(v)] = [np.nan if x is None else x for x in v]
    return levels, arr


def _series(
    ax: Any,
    levels: list[int],
    x: np.ndarray,
    y: np.ndarray,
    fmt: str,
    color: str,
    lw: float,
    label: str,
) -> None:
    """A line through the finite level counts; the unbounded point joined by a dotted
    segment (the x axis is broken between them)."""
    fin = np.array([n > 0 for n in levels])
    marker = fmt.rstrip("-:")
    ax.plot(x[fin], y[fin], fmt, color=color, lw=lw, label=label)
    if not fin.all():
        ax.plot(x[~fin], y[~fin], marker, color=color, label=None if fin.any() else label)
        if fin.any():
            ax.plot([x[fin][-1], x[~fin][0]], [y[fin][-1], y[~fin][0]], ":", color=color, lw=lw)


def plot_sweep(
    results: SweepResults, out_dir: str | os.PathLike | None = None, article: bool = True
) -> dict[str, Figure]:
    """The article's two figures for a sweep: success on train and test levels vs number of
    training levels (log x; the unbounded cell at the right end, labelled; the band is the
    range over seeds, bars the Wilson 95% interval of each cell), and the interpretability
    score with its components vs number of levels. With ``article``, the article's numbers
    (footnote 10) are drawn in grey for comparison. Saved as ``success.png`` and
    ``interpretability.png`` into ``out_dir`` when given. Returns ``{name: Figure}``.

    >>> figs = plot_sweep(load_sweep("runs/sweep"), "docs/results/diversity")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure  # matplotlib only when drawing

    rows = results.rows()
    if not rows:
        raise ValueError("the sweep has no cells to plot")
    art = ARTICLE_DIVERSITY
    levels = sorted({r["levels"] for r in rows}, key=lambda n: (n == 0, n))
    pos, right = _positions(levels, art["levels"] if article else ())
    has_unb = 0 in levels
    figs: dict[str, Figure] = {}

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.subplots()
    for which, color, dx in (("train", "#4c72b0", -0.03), ("test", "#dd8452", 0.03)):
        lv, vals = _by_levels(rows, f"{which}_success")
        x = np.array([pos[n] for n in lv])
        mean = np.nanmean(vals, 1) * 100
        _series(ax, lv, x, mean, "o-", color, 1.5, f"{which} levels (ours)")
        if vals.shape[1] > 1:
            ax.fill_between(
                x, np.nanmin(vals, 1) * 100, np.nanmax(vals, 1) * 100, color=color, alpha=0.2
            )
        for r in rows:
            if r["levels"] in pos:
                s, lo, hi = (100 * r[f"{which}_{k}"] for k in ("success", "ci_low", "ci_high"))
                err = [[max(0.0, s - lo)], [max(0.0, hi - s)]]
                ax.errorbar(
                    pos[r["levels"]] + dx, s, err, color=color, capsize=2, lw=0.8, fmt="none"
                )
        if article:
            a = np.asarray(art[f"{which}_success"], float)
            ax.plot(
                np.log10(art["levels"]),
                a.mean(0),
                "s--",
                color=color,
                alpha=0.45,
                ms=3,
                lw=1,
                label=f"{which} levels (article)",
            )
    _ticks(ax, pos, right, has_unb)
    ax.set_ylabel("levels completed (%)")
    ax.set_title("Generalization vs training levels", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figs["success"] = fig

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.subplots()
    styles = {
        "interpretability": ("score", "k", "o-", 2.0),
        "identified": ("identified features", "#55a868", "^-", 1.2),
        "consistency": ("consistency", "#8172b3", "v-", 1.2),
        "object_focus": ("object focus (1 - background / base)", "#c44e52", "d-", 1.2),
        "background": ("attribution on background (share)", "#937860", "x:", 1.0),
    }
    for key, (label, color, fmt, lw) in styles.items():
        lv, vals = _by_levels(rows, key)
        x = np.array([pos[n] for n in lv])
        _series(ax, lv, x, np.nanmean(vals, 1), fmt, color, lw, label)
        if vals.shape[1] > 1:
            ax.fill_between(x, np.nanmin(vals, 1), np.nanmax(vals, 1), color=color, alpha=0.15)
    if article:
        a = np.asarray(art["interpretable"], float) / 100
        ax.errorbar(
            np.log10(art["levels"]),
            a.mean(0),
            a.std(0),
            fmt="s--",
            color="0.5",
            ms=3,
            lw=1,
            capsize=2,
            label="features interpretable (article, by hand)",
        )
    _ticks(ax, pos, right, has_unb)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share / score")
    ax.set_title("Interpretability vs training levels (automatic)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figs["interpretability"] = fig

    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, f in figs.items():
            with atomic_open(out / f"{name}.png", "wb") as fh:
                f.savefig(fh, format="png")
    return figs


# ------------------------------------------------------------------------------- publish
def publish_sweep(
    out_dir: str | os.PathLike, dest: str | os.PathLike, article: bool = True
) -> dict[str, Any]:
    """Copy what a finished sweep in ``out_dir`` shows into ``dest`` (e.g.
    ``docs/results/diversity``): ``results.json``, ``results.csv``, the two figures of
    :func:`plot_sweep`, and per cell ``agents/<cell>/`` with the newest checkpoint's
    ``config.json`` and ``model.safetensors`` (weights only, no optimizer state: loadable with
    ``load_agent``, not resumable), the cell's ``result.json`` and ``learning_curve.png``.
    Returns ``{"results": SweepResults, "agents": {cell: Path}, "figures": {name: Path}}``.

    >>> publish_sweep("runs/sweep", "docs/results/diversity")              # doctest: +SKIP
    """
    from ..training.package import plot_learning_curve

    results = load_sweep(out_dir)
    src, dst = Path(out_dir), Path(dest)
    dst.mkdir(parents=True, exist_ok=True)
    results.write(dst)
    plot_sweep(results, dst, article=article)
    agents: dict[str, Path] = {}
    for c in results.cells:
        ckpt = src / c["cell"] / c["checkpoint"]
        missing = [n for n in ("config.json", "model.safetensors") if not (ckpt / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{ckpt} lacks {', '.join(missing)}: the cell's checkpoint is gone; run the "
                f"sweep again (`rlvision sweep {src}`) to retrain or restore it"
            )
        folder = dst / "agents" / c["cell"]
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            copy_file_atomic(ckpt / name, folder / name)
        write_json_atomic(folder / "result.json", c)
        label = "unbounded" if c["levels"] == 0 else f"{c['levels']:,}"
        test = c["test"]
        plot_learning_curve(
            src / c["cell"],
            folder / "learning_curve.png",
            title=f"{label} training levels, seed {c['seed']}",
            eval_point=(c["steps"], test["success_rate"], tuple(test["ci95"])),
        )
        agents[c["cell"]] = folder
    figures = {name: dst / f"{name}.png" for name in ("success", "interpretability")}
    return {"results": results, "agents": agents, "figures": figures}
