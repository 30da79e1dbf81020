"""The ``rlvision`` command line: train, evaluate, export, sweep, explore.

Bad input never ends in a traceback: options are checked when parsed, output paths before any
work, and the package's errors for bad files or settings print as
``rlvision <command>: error: <message>`` with exit code 2 (as argparse's own errors do).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: OSError numbers that mean "this path or this machine refuses", i.e. bad input, not a bug
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOENT,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


# -- option types (argparse turns their ArgumentTypeError into "argument --x: ...", exit 2) ----
def _int_in(low: int, high: int | None = None, what: str = "") -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}{what}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float | None = None, *, open_low: bool = False) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if open_low else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            lo = f"> {low}" if open_low else f">= {low}"
            bound = lo if high is None else f"{lo} and <= {high}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


POSITIVE = _int_in(1)
NONNEGATIVE = _int_in(0)
SEED = _int_in(0, 2**31 - 1)
PORT = _int_in(1, 65535)


def _device(text: str) -> str:
    import torch

    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {text!r}"
        )
    return text


# -- checks before any work ----------------------------------------------------------------------
def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse an output path that cannot be written, before any work: a folder, a path under
    a file, or a folder this process may not create files in (tested by creating one).

    >>> import os, tempfile
    >>> check_output_path(os.path.join(tempfile.mkdtemp(), "sub", "out.csv")).name
    'out.csv'
    >>> check_output_path(tempfile.mkdtemp(), "--csv")
    Traceback (most recent call last):
    ...
    ValueError: --csv ... is a folder; give a file path
    """
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise ValueError(f"{what} {path} is a folder; give a file path")
    folder = path.parent
    while not folder.exists():  # the nearest existing folder is where files will be created
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{what} {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".rlvision-write-test-")
    except OSError as exc:
        raise ValueError(
            f"{what} {path} cannot be written ({exc.strerror} in {folder}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def _check_rank(agent: Any, layer: str | None, rank: int, default_layer: Any) -> None:
    """``rank`` fits the layer's channels (at most 16, what the explorer shows)."""
    from .analysis.layers import LayerAccess

    layer = layer or default_layer(agent)
    channels = LayerAccess(agent).layer_shape(layer)[2]
    top = min(16, channels)
    if not 1 <= rank <= top:
        raise ValueError(
            f"--rank {rank}: layer {layer} has {channels} channels; choose a rank in 1..{top}"
        )


def _network_agent(agent: Any, name: str, what: str) -> None:
    from .agents.random_agent import RandomAgent

    if isinstance(agent, RandomAgent):
        raise ValueError(
            f"--agent {name} has no layers, so {what} has nothing to analyse; use a network "
            "agent (--agent coinrun or a checkpoint path)"
        )


# -- train ---------------------------------------------------------------------------------------
#: command-line option -> PPOConfig field
TRAIN_OPTIONS = {
    "steps": "total_steps",
    "num_steps": "num_steps",
    "epochs": "epochs",
    "num_minibatches": "num_minibatches",
    "lr": "lr",
    "network": "network",
    "precision": "precision",
    "seed": "seed",
    "threads": "num_threads",
    "checkpoint_every": "checkpoint_every_s",
    "device": "device",
}
#: command-line option -> (EnvOptions field, value stored for a given flag)
ENV_OPTIONS = {
    "num_envs": ("num_envs", None),
    "distribution_mode": ("distribution_mode", None),
    "num_levels": ("num_levels", None),
    "start_level": ("start_level", None),
    "no_vel_info": ("paint_vel_info", False),
    "no_backgrounds": ("use_backgrounds", False),
    "restrict_themes": ("restrict_themes", True),
    "monochrome_assets": ("use_monochrome_assets", True),
}


def _add_env_flags(p: argparse.ArgumentParser) -> None:
    # defaults None: an option the user did not pass is told apart from one they did (resume)
    p.add_argument("--num-envs", type=POSITIVE, default=None, help="(default 64)")
    p.add_argument("--distribution-mode", default=None, choices=["easy", "hard"])
    p.add_argument("--num-levels", type=NONNEGATIVE, default=None, help="0 = unbounded")
    p.add_argument("--start-level", type=SEED, default=None)
    p.add_argument("--no-vel-info", action="store_true", default=None, help="no velocity info")
    p.add_argument("--no-backgrounds", action="store_true", default=None)
    p.add_argument("--restrict-themes", action="store_true", default=None)
    p.add_argument("--monochrome-assets", action="store_true", default=None)


def _add_engine_flags(p: argparse.ArgumentParser, engine_help: str, address_note: str = ""):
    """--engine and --address (the one engine option of the large jobs); returns the group."""
    g = p.add_argument_group("where it runs (the same result on every engine)")
    g.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help=f"{engine_help} (ray needs pip install 'rlvision_widgets[ray]')",
    )
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: join this Ray cluster ('auto', host:6379 or "
        "ray://host:10001; its nodes need rlvision_widgets installed) instead of starting a "
        f"local Ray{address_note}",
    )
    return g


def train_settings(a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training and env settings the user passed explicitly (PPOConfig / EnvOptions
    field names); what ``train`` applies to a new run and checks against a resumed one.

    >>> a = build_parser().parse_args(["train", "--resume", "runs/x", "--steps", "5"])
    >>> train_settings(a)
    ({'total_steps': 5}, {})
    """
    config = {f: getattr(a, o) for o, f in TRAIN_OPTIONS.items() if getattr(a, o) is not None}
    env = {}
    for option, (field, flag_value) in ENV_OPTIONS.items():
        value = getattr(a, option)
        if value is not None:
            env[field] = value if flag_value is None else flag_value
    return config, env


def cmd_train(a: argparse.Namespace) -> int:
    from .environment import EnvOptions
    from .training import PPOConfig, train

    config, env = train_settings(a)
    if a.resume:
        if a.run_dir is not None and Path(a.run_dir) != Path(a.resume):
            raise ValueError(f"give the run folder once: either {a.run_dir} or --resume {a.resume}")
        meta = train(a.resume, config, env, resume=True)
    else:
        run_dir = a.run_dir or "runs/coinrun"
        cfg = PPOConfig.from_dict(config)
        meta = train(run_dir, cfg, EnvOptions(**{"rand_seed": cfg.seed, **env}))
    print(f"steps={meta['steps']} success_rate_recent={meta['success_rate_recent']}")
    return 0


# -- evaluate ------------------------------------------------------------------------------------
def cmd_evaluate(a: argparse.Namespace) -> int:
    import json

    from .agents.registry import load_agent
    from .engines import check_engine
    from .rollouts.evaluate import evaluate
    from .studies.charts import plot_failures

    for path, what in ((a.csv, "--csv"), (a.chart, "--chart")):
        if path:
            check_output_path(path, what)
    check_engine(a.engine, a.address)
    if a.threads > 0:
        import torch

        torch.set_num_threads(a.threads)
    agent = load_agent(a.agent)
    kwargs = dict(
        levels=a.levels,
        start_level=a.start_level,
        distribution_mode=a.distribution_mode,
        invisible_saws=a.invisible_saws,
        seed=a.seed,
        num_envs=a.num_envs,
        sample=not a.argmax,
        progress=True,
        engine=a.engine,
        address=a.address,
        threads=a.threads or None,
        parts=a.parts,
    )
    if a.edit is None:
        result = evaluate(agent, **kwargs)
        out = result.to_json(per_level=a.per_level)
        out["agent"] = str(a.agent)
        _emit(a, str(a.agent), out)  # the result first: nothing after it can lose it
        if a.csv:
            result.write_csv(a.csv)
        if a.chart:
            plot_failures({str(a.agent): result}, a.chart)
        return 0

    from .analysis.features import object_layer
    from .files import json_safe
    from .studies.blindness import prepare_edit
    from .studies.statistics import compare_results

    _network_agent(agent, a.agent, "--edit")
    if a.nmf is None:
        _check_rank(agent, a.edit_layer, a.rank, object_layer)
    print(f"rlvision: finding feature {a.edit!r} and editing the agent ...", file=sys.stderr)
    edited, choice, ident = prepare_edit(
        agent,
        a.edit,
        layer=a.edit_layer,
        rank=a.rank,
        mode=a.edit_mode,
        strength=a.edit_strength,
        nmf=a.nmf,
        corpus_envs=a.corpus_envs,
        corpus_steps=a.corpus_steps,
        corpus_seed=a.corpus_seed,
        progress=False,
    )
    feats = choice.features or [choice.feature]
    print(f"rlvision: editing out feature(s) {feats}: {choice.note}", file=sys.stderr)
    if not choice.identified:
        print(f"rlvision: warning: {choice.note}", file=sys.stderr)
    base = evaluate(agent, **kwargs)
    result = evaluate(edited, **kwargs)
    out = result.to_json(per_level=a.per_level)
    out["agent"] = f"{a.agent} (edited: feature {', '.join(map(str, feats))})"
    edit = edited.edits[0]
    out["edit"] = {
        "feature": choice.feature,
        "features": feats,
        "class": choice.cls,
        "share": choice.score,
        "identified": choice.identified,
        "note": choice.note,
        "evidence": choice.evidence,
        "layer": edit.layer,
        "rank": a.rank if a.nmf is None else None,
        "mode": edit.mode,
        "strength": edit.strength,
        "direction": list(choice.direction),
        "directions": [list(d) for d in choice.all_directions],
    }
    out["base"] = base.to_json(per_level=a.per_level)
    out["base"]["agent"] = str(a.agent)
    out["comparison"] = compare_results(base, result)
    if ident is not None:
        out["features"] = ident.summary()
        if ident.labels is not None:
            out["identification"] = ident.labels.settings
    out = json_safe(out)
    if a.json:
        print(json.dumps(out), flush=True)
    else:
        print(f"edit: {choice.note} ({edit.mode} edit at {edit.layer})")
        for ev in choice.evidence:
            print(
                f"  feature {ev['feature']}: {ev['status']}, {ev['best_class']} "
                f"share {ev['share']} (base rate {ev['base_rate']}, lift {ev['lift']}, "
                f"p {ev['p_value']})"
            )
        _print_result(out["base"]["agent"], out["base"])
        _print_result(out["agent"], out)
        print("  two-proportion tests (edited vs original, same levels):")
        for cause, d in out["comparison"].items():
            print(
                f"  {cause:12s} {d['base']:6d} -> {d['edited']:6d}  z={d['z']:+.2f} p={d['p']:.3g}"
            )
        sys.stdout.flush()
    if a.csv:
        import csv

        from .files import atomic_open

        with atomic_open(a.csv, "w") as f:
            w = csv.writer(f)
            w.writerow(["level_seed", "outcome", "length", "base_outcome", "base_length"])
            w.writerows(
                zip(
                    result.level_seeds.tolist(),
                    result.outcomes,
                    result.lengths.tolist(),
                    base.outcomes,
                    base.lengths.tolist(),
                )
            )
    if a.chart:
        plot_failures(
            {
                str(a.agent): base,
                f"edited (feature {', '.join(map(str, feats))}"
                + (f", {choice.cls})" if choice.cls else ")"): result,
            },
            a.chart,
            title="Failures by cause: original vs edited (same levels)",
        )
    return 0


def _emit(a: argparse.Namespace, name: str, out: dict) -> None:
    import json

    if a.json:
        print(json.dumps(out))
    else:
        _print_result(name, out)
    sys.stdout.flush()


def _print_result(name: str, out: dict) -> None:
    lo, hi = out["ci95"]
    print(
        f"{name}: {out['success_rate']:.1%} of {out['levels']} levels completed "
        f"(95% CI {lo:.1%}-{hi:.1%})"
    )
    for cause, n in out["failures"].items():
        print(f"  {cause:12s} {n:6d}  ({n / out['levels']:.2%})")


# -- export, explore -----------------------------------------------------------------------------
class _StderrProgress:
    """``progress(fraction, message)`` for the command line: a stderr line when a job starts
    (the message's first word changes), every 5% of it, at most one a second for other new
    messages, and at the end (one rewritten line on a terminal).

    >>> import io, contextlib
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     p = _StderrProgress("export"); p(0.1, "fitting"); p(0.11, "fitting"); p(0.5, "x")
    >>> err.getvalue().splitlines()
    ['rlvision export:  10% fitting', 'rlvision export:  50% x']
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.last: tuple[float, str, float] | None = None
        self.tty = sys.stderr.isatty()

    @staticmethod
    def _job(message: str) -> str:
        words = message.split(":")[0].split()
        return words[0] if words else ""

    def __call__(self, fraction: float, message: str = "") -> None:
        import time

        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if self.last is not None and fraction < 1.0:
            f0, m0, t0 = self.last
            new_job = self._job(message) != self._job(m0) or fraction < f0
            news = message != m0 and now - t0 >= 1.0
            if not (new_job or news or fraction - f0 >= 0.05):
                return
        self.last = (fraction, message, now)
        line = f"rlvision {self.command}: {fraction:4.0%} {message}".rstrip()
        if self.tty:
            end = "\n" if fraction >= 1.0 else ""
            print(f"\r{line[:79]:<79}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def cmd_export(a: argparse.Namespace) -> int:
    from .agents.registry import load_agent
    from .analysis.features import object_layer
    from .widgets import export_explorer

    check_output_path(a.out, "export")
    agent = load_agent(a.agent)
    _network_agent(agent, a.agent, "export")
    _check_rank(agent, a.layer, a.rank, object_layer)
    report = _StderrProgress("export")
    out = export_explorer(
        a.out,
        agent=agent,
        num_envs=a.num_envs,
        num_steps=a.num_steps,
        seed=a.seed,
        layer=a.layer,
        output=a.output,
        rank=a.rank,
        progress=report,
    )
    report(1.0, "done")
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MB): one self-contained HTML file, opens without a kernel")
    return 0


# -- sweep ---------------------------------------------------------------------------------------
def _level_counts(text: str) -> tuple[int, ...]:
    """``"100,1000,unbounded"`` -> ``(100, 1000, 0)`` (0 = unbounded)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("unbounded", "0", "inf"):
            out.append(0)
            continue
        try:
            n = int(part.replace("_", ""))
        except ValueError:
            n = -1
        if n < 1:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated level counts >= 1 or 'unbounded', got {part!r}"
            )
        out.append(n)
    return tuple(out)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        seeds = (-1,)
    if any(not 0 <= s < 2**31 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds >= 0, got {text!r}")
    return seeds


def _cells(text: str) -> tuple[tuple[int, int], ...]:
    """``"1000:1,unbounded:2"`` -> ``((1000, 1), (0, 2))``."""
    out = []
    for part in text.split(","):
        levels, sep, seed = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated LEVELS:SEED pairs, e.g. 1000:1, got {part.strip()!r}"
            )
        out.append((_level_counts(levels)[0], _seeds(seed)[0]))
    return tuple(out)


def cmd_sweep(a: argparse.Namespace) -> int:
    from .engines import check_engine
    from .studies.sweep import SweepConfig, SweepStopped, plot_sweep, publish_sweep, run_sweep

    check_engine(a.engine, a.address)
    out = Path(a.out_dir)
    saved = out / "sweep.json"
    if a.config:
        cfg = SweepConfig.from_json(a.config)
    elif a.smoke:
        cfg = SweepConfig.smoke()
    elif saved.is_file():  # a stopped sweep resumes with its own settings
        cfg = SweepConfig.from_json(saved)
    else:
        cfg = SweepConfig()
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("levels", a.levels),
            ("seeds", a.seeds),
            ("steps", a.steps),
            ("eval_levels", a.eval_levels),
            ("extra_cells", a.extra_cells),
        )
        if v is not None
    }
    if a.precision is not None:
        changes["ppo"] = {**cfg.ppo, "precision": a.precision}
    if changes:
        cfg = cfg.replace(**changes)
    if a.publish:
        check_output_path(Path(a.publish) / "results.json", "--publish")
    try:
        results = run_sweep(cfg, out, engine=a.engine, address=a.address, threads=a.threads)
    except SweepStopped as exc:  # SIGINT/SIGTERM: not an error; the next run resumes
        # the cell's own words, without the engine's "task i of n (...) failed:" wrapping
        print(f"rlvision sweep: stopped: {getattr(exc, 'task_message', exc)}", file=sys.stderr)
        return 130
    print(results.table())
    plot_sweep(results, out)
    print(f"results: {out / 'results.json'}, {out / 'results.csv'}; figures in {out}")
    if a.publish:
        publish_sweep(out, a.publish)
        print(f"published results, figures and {len(results.cells)} agents to {a.publish}")
    return 0


def cmd_explore(a: argparse.Namespace) -> int:
    from .launch import launch_jupyterlab

    launch_jupyterlab(a.notebook, port=a.port, ip=a.ip)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rlvision`` argument parser (subcommands train, evaluate, export, sweep, explore).

    >>> build_parser().parse_args(["evaluate", "--levels", "10"]).levels
    10
    """
    parser = argparse.ArgumentParser(prog="rlvision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "train",
        help="train a PPO agent on CoinRun",
        description="Train a PPO agent on CoinRun. With --resume only the run settings "
        "(--steps, --threads, --precision, --checkpoint-every, --device) may change; any other "
        "option, when given, must match the run (what defines a run cannot change).",
    )
    p.add_argument("run_dir", nargs="?", default=None, help="(default runs/coinrun)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--steps", type=POSITIVE, default=None, help="total steps (default 25M)")
    p.add_argument("--num-steps", type=POSITIVE, default=None, help="(default 256)")
    p.add_argument("--epochs", type=POSITIVE, default=None, help="(default 3)")
    p.add_argument("--num-minibatches", type=POSITIVE, default=None, help="(default 8)")
    p.add_argument("--lr", type=_float_in(0.0, open_low=True), default=None, help="(5e-4)")
    p.add_argument("--network", default=None, choices=["compact", "article"])
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"])
    p.add_argument("--seed", type=SEED, default=None, help="(default 0)")
    p.add_argument("--threads", type=NONNEGATIVE, default=None, help="torch threads (0 = default)")
    p.add_argument("--checkpoint-every", type=_float_in(0.0), default=None, help="seconds (300)")
    p.add_argument("--device", type=_device, default=None, help="auto | cpu | cuda[:i]")
    _add_env_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="success rate and failures by cause on exact levels")
    p.add_argument("--agent", default="coinrun", help="shipped agent name, 'random', or a path")
    p.add_argument("--levels", type=POSITIVE, default=1000)
    p.add_argument("--start-level", type=SEED, default=0)
    p.add_argument("--distribution-mode", default="easy", choices=["easy", "hard"])
    p.add_argument("--invisible-saws", action="store_true")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--num-envs", type=POSITIVE, default=64, help="speed only, not the result")
    p.add_argument("--argmax", action="store_true", help="greedy actions instead of sampling")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--per-level", action="store_true", help="include per-level outcomes in JSON")
    p.add_argument("--csv", help="also write per-level outcomes to this CSV file")
    p.add_argument("--chart", metavar="PNG", help="also write a chart of failures by cause")
    p.add_argument(
        "--threads",
        type=NONNEGATIVE,
        default=1,
        help="torch threads, per task on --engine ray (default 1: evaluation runs small "
        "batches, and extra threads on a busy CPU slow it down many times; 0 = torch "
        "default here, 1 per Ray task)",
    )
    g = _add_engine_flags(
        p,
        "local: this process (default); ray: split the levels over Ray workers, one task per "
        "part with --threads torch threads",
    )
    g.add_argument(
        "--parts",
        type=POSITIVE,
        default=None,
        help="split the levels into this many tasks (default: one per Ray worker slot; "
        "1 on the local engine)",
    )
    g = p.add_argument_group("model editing (evaluate an agent blinded to one NMF feature)")
    g.add_argument(
        "--edit",
        metavar="FEATURE",
        help="feature index (edits that one feature), or object class (saw, enemy_left, "
        "enemy_right, agent, crate, coin, lava, wall, velocity): every NMF feature "
        "identified with it (at least half of its 32 strongest cells on or next to the "
        "object, at least 3x its base rate, permutation-tested) is projected out together; "
        "an error lists the identified classes when none is. Base and edited agents play "
        "the same levels and the JSON gets a two-proportion test per cause",
    )
    g.add_argument("--edit-layer", default=None, help="layer (default: the object layer, 2b)")
    g.add_argument("--rank", type=POSITIVE, default=8, help="NMF rank (default 8)")
    g.add_argument(
        "--edit-mode",
        default="weight",
        choices=["weight", "activation"],
        help="weight: edit the next conv kernel (the article); activation: hook",
    )
    g.add_argument(
        "--edit-strength", type=_float_in(0.0, 1.0), default=1.0, help="in [0, 1] (default 1)"
    )
    g.add_argument(
        "--nmf",
        metavar="PATH",
        help="take feature directions from a saved "
        "AttributionNMF (e.g. docs/results/editing_nmf) instead of fitting one",
    )
    g.add_argument("--corpus-envs", type=POSITIVE, default=8, help="corpus for the NMF (8)")
    g.add_argument("--corpus-steps", type=POSITIVE, default=512, help="steps per corpus env (512)")
    g.add_argument("--corpus-seed", type=SEED, default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="write the explorer as one self-contained HTML file",
        description="Collect trajectories of an agent, analyse them (integrated gradients and "
        "attribution NMF at one layer) and write the explorer as one HTML file that opens in a "
        "browser without Python or a kernel. Progress goes to stderr.",
    )
    p.add_argument(
        "out", nargs="?", default="explorer.html", help="HTML file to write (default explorer.html)"
    )
    p.add_argument(
        "--agent",
        default="coinrun",
        help="shipped agent name (default coinrun, the reference agent) or a checkpoint / run "
        "folder",
    )
    p.add_argument(
        "--num-envs", type=POSITIVE, default=8, help="trajectories to collect (default 8)"
    )
    p.add_argument(
        "--num-steps", type=POSITIVE, default=256, help="steps per trajectory (default 256)"
    )
    p.add_argument(
        "--seed", type=SEED, default=0, help="seed of the levels, actions and NMF (default 0)"
    )
    p.add_argument(
        "--layer", default=None, help="layer to attribute (default: the object layer, 2b)"
    )
    p.add_argument(
        "--output",
        default="value",
        help="what to attribute: value (default), logit:A, group:G or logprob:A (A an action, "
        "G an action group)",
    )
    p.add_argument("--rank", type=_int_in(1, 16), default=8, help="NMF features, 1..16 (default 8)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "sweep",
        help="the diversity sweep: train, evaluate and score agents on more and more levels",
        description="Train one agent per cell (training levels x seed, plus any extra cells) "
        "with the project's PPO, "
        "evaluate it on its training levels and on unseen levels (sampled with replacement, "
        "the same number for every cell) and score its interpretability automatically "
        "(docs/diversity.md). Done cells are skipped, stopped ones resume; a sweep folder "
        "keeps its settings in sweep.json, so `rlvision sweep DIR` continues it.",
    )
    p.add_argument("out_dir", nargs="?", default="runs/sweep", help="(default runs/sweep)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="JSON", help="a SweepConfig JSON file")
    source.add_argument(
        "--smoke",
        action="store_true",
        help="a one-minute sweep that checks the set-up (SweepConfig.smoke(); numbers mean nothing)",
    )
    p.add_argument(
        "--levels",
        type=_level_counts,
        default=None,
        help="training-level counts, e.g. 100,1000,10000,unbounded (the default)",
    )
    p.add_argument("--seeds", type=_seeds, default=None, help="training seeds, e.g. 0,1 (0)")
    p.add_argument(
        "--extra-cells",
        type=_cells,
        default=None,
        metavar="LEVELS:SEED,...",
        help="cells beyond the levels x seeds grid, e.g. 1000:1 (a second seed of 1,000 levels; "
        "replaces the saved list)",
    )
    p.add_argument("--steps", type=POSITIVE, default=None, help="PPO steps per cell (5M)")
    p.add_argument(
        "--eval-levels",
        type=POSITIVE,
        default=None,
        help="train and unseen levels played per cell (1000; the article 10,000)",
    )
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"])
    p.add_argument("--threads", type=POSITIVE, default=1, help="torch threads per cell (1)")
    p.add_argument(
        "--publish",
        metavar="DIR",
        help="also copy results, plots and each cell's agent (weights, learning curve) into "
        "DIR, e.g. docs/results/diversity (the plots always go to OUT_DIR)",
    )
    _add_engine_flags(
        p,
        "local: one cell after another here (default); ray: cells in parallel on Ray workers",
        " (OUT_DIR must be on a filesystem every node shares)",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("explore", help="open JupyterLab (headless) on the quick-start notebook")
    p.add_argument("--notebook", help="notebook to open (default: notebooks/01_quickstart.ipynb)")
    p.add_argument("--port", type=PORT, default=8888, help="1..65535 (default 8888)")
    p.add_argument("--ip", default="127.0.0.1")
    p.set_defaults(func=cmd_explore)
    return parser


def _message(exc: BaseException) -> str | None:
    """The message for an error that bad input causes; None for anything else (a bug)."""
    from .agents.checkpoint import CheckpointError
    from .rollouts.storage import TrajectoryFileError

    if isinstance(exc, (CheckpointError, TrajectoryFileError, ValueError)):
        return str(exc)
    if isinstance(exc, KeyError):  # unknown layer names and the like: the message, unquoted
        return str(exc.args[0]) if exc.args else "missing key"
    user_os = (
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    )
    if isinstance(exc, user_os) or (isinstance(exc, OSError) and exc.errno in _USER_ERRNOS):
        if exc.filename is not None and exc.strerror:
            return f"{exc.strerror}: {exc.filename}"
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``rlvision``; returns the exit code (2 for bad input, with a one-line message).

    >>> main(["explore", "--port", "70000"])                         # doctest: +SKIP
    2
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        message = _message(exc)
        if message is None:
            raise  # unexpected: a bug, shown with its traceback
        print(f"rlvision {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
