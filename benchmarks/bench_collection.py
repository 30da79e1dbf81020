"""Collection speed with the random agent, with and without exact cause tracking.

    .venv/bin/python benchmarks/bench_collection.py [--envs 16] [--steps 2000] [--repeats 3]
                                                    [--mode easy|hard] [--checkpoint-every 64]

The loop is the one ``collect_trajectories`` runs (policy forward, sampling, env step, copying
observations into a buffer). Three configurations play identical episodes (same seed):
no tracking; a :class:`CauseTracker` as specified (one state snapshot per level start, plus
one before a timeout); and the tracker with ``checkpoint_every`` (periodic snapshots in levels
whose failures need a replay). Runs alternate and the best of each is reported.

Two overhead figures are printed: the A/B ratio of best env-steps/s (sensitive to other load on
the machine) and the tracker's own share of its runs' wall time (hooks, snapshots, replays,
timed inside the run, so shared load affects both sides alike). Goal: overhead <= 10%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rlvision_widgets.agents.random_agent import RandomAgent  # noqa: E402
from rlvision_widgets.agents.sampling import sample_actions  # noqa: E402
from rlvision_widgets.environment import CauseTracker, CoinRunEnv, EnvOptions  # noqa: E402


@torch.no_grad()
def run(options: EnvOptions, steps: int, track: bool, checkpoint_every: int | None = None) -> dict:
    env = CoinRunEnv(options)
    tracker = CauseTracker(env, checkpoint_every=checkpoint_every) if track else None
    agent = RandomAgent()
    gen = torch.Generator().manual_seed(0)
    n = options.num_envs
    obs_buf = np.zeros((n, min(steps, 512), 64, 64, 3), np.uint8)
    obs, _, first = env.observe()
    t0 = time.perf_counter()
    for t in range(steps):
        obs_buf[:, t % obs_buf.shape[1]] = obs
        logits, value = agent(torch.from_numpy(obs))
        act = sample_actions(logits, gen)
        obs, rew, first = env.step(act)
    dt = time.perf_counter() - t0
    out = {"steps_per_s": n * steps / dt, "seconds": dt}
    if tracker is not None:
        out.update(tracker.stats)
        out["share"] = tracker.stats["hook_seconds"] / dt
        out["causes"] = Counter(r.cause for r in tracker.records)
        tracker.detach()
    env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", default="easy", choices=("easy", "hard"))
    ap.add_argument("--checkpoint-every", type=int, default=64)
    args = ap.parse_args()
    options = EnvOptions(num_envs=args.envs, rand_seed=0, distribution_mode=args.mode)
    run(options.replace(num_envs=1), 10, True)  # warm up: assets, imports
    configs = {
        "no tracking": (False, None),
        "tracking": (True, None),
        f"tracking, checkpoint_every={args.checkpoint_every}": (True, args.checkpoint_every),
    }
    results: dict[str, list[dict]] = {k: [] for k in configs}
    for _ in range(args.repeats):
        for name, (track, ckpt) in configs.items():
            results[name].append(run(options, args.steps, track, ckpt))
    print(
        f"CoinRun {args.mode}, random agent, {args.envs} envs x {args.steps} steps, "
        f"best of {args.repeats} alternating runs"
    )
    base = max(r["steps_per_s"] for r in results["no tracking"])
    for name, runs in results.items():
        best = max(r["steps_per_s"] for r in runs)
        line = (
            f"  {name:<34} {best:8.0f} env-steps/s  (runs: "
            + ", ".join(f"{r['steps_per_s']:.0f}" for r in runs)
            + ")"
        )
        if configs[name][0]:
            share = min(r["share"] for r in runs)
            line += (
                f"\n      A/B overhead {100 * (base / best - 1):5.1f}%   in-run overhead "
                f"{100 * share / (1 - share):5.1f}%"
            )
            r = runs[-1]
            line += (
                f"\n      episodes {r['episodes']}, failures {r['failures']}, replays "
                f"{r['replays']} ({r['replayed_steps']} steps), snapshots {r['snapshots']} "
                f"({r['checkpoints']} checkpoints), cause analysis {r['cause_seconds']:.3f} s"
            )
        print(line)
    causes = results["tracking"][-1]["causes"]
    print(f"  causes: {dict(sorted(causes.items()))}")


if __name__ == "__main__":
    main()
