"""Collection speed with the random agent, with and without exact cause tracking.

    .venv/bin/python benchmarks/bench_collection.py [--envs 16] [--steps 2000] [--repeats 3]
                                                    [--mode easy|hard] [--replay-all]

The loop is the one ``collect_trajectories`` runs (policy forward, sampling, env step, copying
observations into the buffers); the runs with and without a :class:`CauseTracker` use the same
seed, so they play identical episodes. Runs alternate (A B A B ...) and the best of each is
reported, which keeps a busy machine from favouring one side. Goal: overhead <= 10%.
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
from rlvision_widgets.environment import CauseTracker, CoinRunEnv, EnvOptions  # noqa: E402
from rlvision_widgets.trajectories.collect import _sample  # noqa: E402


@torch.no_grad()
def run(options: EnvOptions, steps: int, track: bool, replay_all: bool) -> tuple[float, dict]:
    env = CoinRunEnv(options)
    tracker = CauseTracker(env, replay_all=replay_all) if track else None
    agent = RandomAgent()
    gen = torch.Generator().manual_seed(0)
    n = options.num_envs
    obs_buf = np.zeros((n, min(steps, 512), 64, 64, 3), np.uint8)
    obs, _, first = env.observe()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for t in range(steps):
        obs_buf[:, t % obs_buf.shape[1]] = obs
        logits, value = agent(torch.from_numpy(obs))
        act = _sample(logits, gen)
        obs, rew, first = env.step(act)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    info = {"cpu_steps_per_s": n * steps / cpu}
    if tracker is not None:
        info = dict(tracker.stats)
        info["causes"] = Counter(r.cause for r in tracker.records)
        tracker.detach()
    env.close()
    return n * steps / dt, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", default="easy", choices=("easy", "hard"))
    ap.add_argument("--replay-all", action="store_true",
                    help="replay every failure (disable the single-hazard shortcut)")
    args = ap.parse_args()
    options = EnvOptions(num_envs=args.envs, rand_seed=0, distribution_mode=args.mode)
    run(options.replace(num_envs=1), 10, True, False)            # warm up: assets, imports
    plain, tracked, plain_cpu, tracked_cpu, info = [], [], [], [], {}
    for _ in range(args.repeats):
        sps, pinfo = run(options, args.steps, False, args.replay_all)
        plain.append(sps)
        plain_cpu.append(pinfo["cpu_steps_per_s"])
        sps, info = run(options, args.steps, True, args.replay_all)
        tracked.append(sps)
        tracked_cpu.append(info["cpu_steps_per_s"])
    best_plain, best_tracked = max(plain), max(tracked)
    overhead = best_plain / best_tracked - 1
    print(f"CoinRun {args.mode}, random agent, {args.envs} envs x {args.steps} steps, "
          f"best of {args.repeats}{' (replay_all)' if args.replay_all else ''}")
    print(f"  without cause tracking: {best_plain:9.0f} env-steps/s   (runs: "
          f"{', '.join(f'{x:.0f}' for x in plain)})")
    print(f"  with cause tracking:    {best_tracked:9.0f} env-steps/s   (runs: "
          f"{', '.join(f'{x:.0f}' for x in tracked)})")
    print(f"  overhead: {100 * overhead:.1f}%  (ratio {best_plain / best_tracked:.3f}; goal <= 10%)")
    cpu_overhead = max(plain_cpu) / max(tracked_cpu) - 1
    print(f"  per CPU second: {max(plain_cpu):.0f} vs {max(tracked_cpu):.0f} env-steps, overhead "
          f"{100 * cpu_overhead:.1f}%")
    causes = info.pop("causes", {})
    info.pop("cpu_steps_per_s", None)
    print(f"  episodes {info.get('episodes')}, failures {info.get('failures')}, replays "
          f"{info.get('replays')} ({info.get('replayed_steps')} steps), timeout snapshots "
          f"{info.get('snapshots')}, time in cause analysis {info.get('cause_seconds', 0):.3f} s")
    print(f"  causes: {dict(sorted(causes.items()))}")


if __name__ == "__main__":
    main()
