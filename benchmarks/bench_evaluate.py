"""Evaluation's sampling cost: one stream per level, drawn row by row or in one batched call.

    .venv/bin/python benchmarks/bench_evaluate.py [--rows 64] [--repeats 200] [--levels 64]
                                                  [--num-envs 64] [--no-end-to-end]

Part 1 times, in the same run and on the same logits, drawing one action for each of ``rows``
rows: the earlier evaluation loop (one ``sample_actions`` call per row, each with the row's
level stream), the per-row stream API (one call with a list of generators) and a plain
batched draw from one generator, next to the shipped agent's forward pass on ``rows``
observations. Part 2 runs ``evaluate`` with the shipped agent on ``levels`` levels twice,
with the per-row loop patched back in and with the batched call, checks that both give the
same outcomes, and prints the wall times. Ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import rlvision_widgets.rollouts.evaluate as evaluate_module  # noqa: E402
from rlvision_widgets.agents.registry import load_agent  # noqa: E402
from rlvision_widgets.agents.sampling import sample_actions  # noqa: E402
from rlvision_widgets.environment.actions import NUM_ACTIONS  # noqa: E402
from rlvision_widgets.rollouts.evaluate import evaluate, level_generator  # noqa: E402


def per_row_loop(logits: torch.Tensor, generators: list[torch.Generator]) -> np.ndarray:
    """The earlier evaluation loop: one sampler call per row."""
    return np.array([sample_actions(logits[i : i + 1], g)[0] for i, g in enumerate(generators)])


def best_ms(fn, repeats: int) -> float:
    """Best of three means over ``repeats`` calls, in milliseconds."""
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats * 1e3)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--levels", type=int, default=64)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--no-end-to-end", action="store_true")
    args = ap.parse_args()
    n = args.rows
    logits = torch.randn(n, NUM_ACTIONS, generator=torch.Generator().manual_seed(0)) * 2
    streams = [level_generator(0, lvl) for lvl in range(n)]
    one = torch.Generator().manual_seed(0)
    check = (
        [level_generator(1, lvl) for lvl in range(n)],
        [level_generator(1, lvl) for lvl in range(n)],
    )
    same = np.array_equal(per_row_loop(logits, check[0]), sample_actions(logits, check[1]))
    agent = load_agent("coinrun").eval()
    obs = torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        times = {
            "per-row loop (earlier)": best_ms(lambda: per_row_loop(logits, streams), args.repeats),
            "per-row stream API": best_ms(lambda: sample_actions(logits, streams), args.repeats),
            "plain batched, one stream": best_ms(lambda: sample_actions(logits, one), args.repeats),
            "agent forward pass": best_ms(lambda: agent(obs), max(5, args.repeats // 20)),
        }
    print(f"sampling {n} rows (torch threads: {torch.get_num_threads()}), best of 3 means:")
    for name, ms in times.items():
        print(f"  {name:28s} {ms:8.3f} ms")
    loop, api, plain = (times[k] for k in list(times)[:3])
    print(f"  identical draws, per-row loop vs API: {same}")
    print(f"  per-row loop / API: {loop / api:.1f}x;  API / plain batched: {api / plain:.1f}x")
    fwd = times["agent forward pass"]
    print(
        f"  sampling share of sampling + forward: loop {loop / (loop + fwd):.1%}, "
        f"API {api / (api + fwd):.1%}"
    )
    if args.no_end_to_end:
        return
    kw = dict(levels=args.levels, num_envs=args.num_envs, seed=0, progress=False)
    evaluate(agent, levels=2, num_envs=2, progress=False)  # warm up: assets, imports
    t0 = time.perf_counter()
    batched = evaluate(agent, **kw)
    t_batched = time.perf_counter() - t0
    evaluate_module.sample_actions = per_row_loop
    try:
        t0 = time.perf_counter()
        looped = evaluate(agent, **kw)
        t_loop = time.perf_counter() - t0
    finally:
        evaluate_module.sample_actions = sample_actions
    agree = looped.outcomes == batched.outcomes and np.array_equal(looped.lengths, batched.lengths)
    steps = int(batched.lengths.sum())
    print(f"evaluate, shipped agent, {args.levels} levels, num_envs={args.num_envs}:")
    print(
        f"  per-row loop {t_loop:7.1f} s   batched {t_batched:7.1f} s   ratio {t_loop / t_batched:.2f}x"
    )
    print(f"  identical outcomes and lengths: {agree};  level-steps: {steps};")
    print(f"  success rate {batched.success_rate:.3f}")


if __name__ == "__main__":
    main()
