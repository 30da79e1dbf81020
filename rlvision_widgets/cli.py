"""The ``rlvision`` command line: train, evaluate, export, explore."""

from __future__ import annotations

import argparse
import sys


def _add_env_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--distribution-mode", default="easy", choices=["easy", "hard"])
    p.add_argument("--num-levels", type=int, default=0, help="0 = unbounded")
    p.add_argument("--start-level", type=int, default=0)
    p.add_argument("--no-vel-info", action="store_true", help="do not paint velocity info")
    p.add_argument("--no-backgrounds", action="store_true")
    p.add_argument("--restrict-themes", action="store_true")
    p.add_argument("--monochrome-assets", action="store_true")


def _env_options(a: argparse.Namespace, **extra):
    from .environment import EnvOptions

    return EnvOptions(
        num_envs=a.num_envs,
        distribution_mode=a.distribution_mode,
        num_levels=a.num_levels,
        start_level=a.start_level,
        paint_vel_info=not a.no_vel_info,
        use_backgrounds=not a.no_backgrounds,
        restrict_themes=a.restrict_themes,
        use_monochrome_assets=a.monochrome_assets,
        **extra,
    )


def cmd_train(a: argparse.Namespace) -> int:
    from .training import PPOConfig, train

    cfg = PPOConfig(
        total_steps=a.steps,
        num_steps=a.num_steps,
        network=a.network,
        precision=a.precision,
        seed=a.seed,
        lr=a.lr,
        epochs=a.epochs,
        num_minibatches=a.num_minibatches,
        num_threads=a.threads,
        checkpoint_every_s=a.checkpoint_every,
        device=a.device,
    )
    if a.resume:
        meta = train(a.resume, cfg, resume=True)
    else:
        meta = train(a.run_dir, cfg, _env_options(a, rand_seed=a.seed))
    print(f"steps={meta['steps']} success_rate_recent={meta['success_rate_recent']}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    import json

    from .agents.registry import load_agent
    from .rollouts.evaluate import evaluate
    from .studies.charts import plot_failures

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
    )
    if a.edit is None:
        result = evaluate(agent, **kwargs)
        out = result.to_json(per_level=a.per_level)
        out["agent"] = str(a.agent)
        if a.csv:
            result.write_csv(a.csv)
        if a.chart:
            plot_failures({str(a.agent): result}, a.chart)
        if a.json:
            print(json.dumps(out))
        else:
            _print_result(str(a.agent), out)
        return 0

    from .files import json_safe
    from .studies.blindness import prepare_edit
    from .studies.statistics import compare_results

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
    if not choice.identified:
        print(f"rlvision: warning: {choice.note}", file=sys.stderr)
    base = evaluate(agent, **kwargs)
    result = evaluate(edited, **kwargs)
    out = result.to_json(per_level=a.per_level)
    out["agent"] = f"{a.agent} (edited: feature {choice.feature})"
    edit = edited.edits[0]
    out["edit"] = {
        "feature": choice.feature,
        "class": choice.cls,
        "score": choice.score,
        "identified": choice.identified,
        "note": choice.note,
        "layer": edit.layer,
        "rank": a.rank if a.nmf is None else None,
        "mode": edit.mode,
        "strength": edit.strength,
        "direction": list(choice.direction),
    }
    out["base"] = base.to_json(per_level=a.per_level)
    out["base"]["agent"] = str(a.agent)
    out["comparison"] = compare_results(base, result)
    if ident is not None:
        out["features"] = ident.summary()
    out = json_safe(out)
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
                f"edited (feature {choice.feature}"
                + (f", {choice.cls})" if choice.cls else ")"): result,
            },
            a.chart,
            title="Failures by cause: original vs edited (same levels)",
        )
    if a.json:
        print(json.dumps(out))
    else:
        print(f"edit: {choice.note} ({edit.mode} edit at {edit.layer})")
        _print_result(out["base"]["agent"], out["base"])
        _print_result(out["agent"], out)
        print("  two-proportion tests (edited vs original, same levels):")
        for cause, d in out["comparison"].items():
            print(
                f"  {cause:12s} {d['base']:6d} -> {d['edited']:6d}  z={d['z']:+.2f} p={d['p']:.3g}"
            )
    return 0


def _print_result(name: str, out: dict) -> None:
    lo, hi = out["ci95"]
    print(
        f"{name}: {out['success_rate']:.1%} of {out['levels']} levels completed "
        f"(95% CI {lo:.1%}-{hi:.1%})"
    )
    for cause, n in out["failures"].items():
        print(f"  {cause:12s} {n:6d}  ({n / out['levels']:.2%})")


def cmd_export(a: argparse.Namespace) -> int:
    from .agents.registry import load_agent
    from .widgets import export_explorer

    agent = load_agent(a.agent)
    out = export_explorer(
        a.out,
        agent=agent,
        num_envs=a.num_envs,
        num_steps=a.num_steps,
        seed=a.seed,
        layer=a.layer,
        output=a.output,
        rank=a.rank,
    )
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MB): one self-contained HTML file, opens without a kernel")
    return 0


def cmd_explore(a: argparse.Namespace) -> int:
    from .launch import launch_jupyterlab

    launch_jupyterlab(a.notebook, port=a.port, ip=a.ip)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a PPO agent on CoinRun")
    p.add_argument("run_dir", nargs="?", default="runs/coinrun")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--steps", type=int, default=25_000_000)
    p.add_argument("--num-steps", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--num-minibatches", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--network", default="compact", choices=["compact", "article"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds")
    p.add_argument("--device", default="auto")
    _add_env_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="success rate and failures by cause on exact levels")
    p.add_argument("--agent", default="coinrun", help="shipped agent name, 'random', or a path")
    p.add_argument("--levels", type=int, default=1000)
    p.add_argument("--start-level", type=int, default=0)
    p.add_argument("--distribution-mode", default="easy", choices=["easy", "hard"])
    p.add_argument("--invisible-saws", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--argmax", action="store_true", help="greedy actions instead of sampling")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--per-level", action="store_true", help="include per-level outcomes in JSON")
    p.add_argument("--csv", help="also write per-level outcomes to this CSV file")
    p.add_argument("--chart", metavar="PNG", help="also write a chart of failures by cause")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: evaluation runs small batches, and extra "
        "threads on a busy CPU slow it down many times; 0 = torch default)",
    )
    g = p.add_argument_group("model editing (evaluate an agent blinded to one NMF feature)")
    g.add_argument(
        "--edit",
        metavar="FEATURE",
        help="feature index, or object class (saw, enemy_left, enemy_right, agent, "
        "crate, coin, lava, wall, velocity) whose best-matching NMF feature is "
        "projected out; base and edited agents play the same levels and the "
        "JSON gets a two-proportion test per cause",
    )
    g.add_argument("--edit-layer", default=None, help="layer (default: the object layer, 2b)")
    g.add_argument("--rank", type=int, default=8, help="NMF rank (default 8)")
    g.add_argument(
        "--edit-mode",
        default="weight",
        choices=["weight", "activation"],
        help="weight: edit the next conv kernel (the article); activation: hook",
    )
    g.add_argument("--edit-strength", type=float, default=1.0, help="in [0, 1] (default 1)")
    g.add_argument(
        "--nmf",
        metavar="PATH",
        help="take feature directions from a saved "
        "AttributionNMF (e.g. docs/results/editing_nmf) instead of fitting one",
    )
    g.add_argument("--corpus-envs", type=int, default=8, help="corpus for the NMF (default 8)")
    g.add_argument("--corpus-steps", type=int, default=512, help="steps per corpus env (512)")
    g.add_argument("--corpus-seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="write the explorer as one self-contained HTML file")
    p.add_argument("out", nargs="?", default="explorer.html")
    p.add_argument("--agent", default="coinrun", help="shipped agent name, 'random', or a path")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", default=None, help="layer to attribute (default: object layer)")
    p.add_argument("--output", default="value", help="value | logit:A | group:G | logprob:A")
    p.add_argument("--rank", type=int, default=8, help="number of NMF features")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("explore", help="open JupyterLab (headless) on the quick-start notebook")
    p.add_argument("--notebook", help="notebook to open (default: notebooks/01_quickstart.ipynb)")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--ip", default="127.0.0.1")
    p.set_defaults(func=cmd_explore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        print(f"rlvision: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
