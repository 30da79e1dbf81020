"""Benchmark: one feature-visualization step against a bare forward+backward, same run.

Issue 15, requirement 5. The shipped agent (``load_agent("coinrun")``) at layer 2b, 8
objectives (channels 0..7) optimized in one batch for 256 steps at 64 x 64:

* engine: ``optimize(agent, objectives, steps=256)`` -- parameterization (decorrelated
  Fourier by default), the article's transforms (8 px jitter, scale, rotation), the network
  to 2b through the engine's hooks, redirected ReLU, objectives, gradient, Adam; the time per
  step is its optimization time / steps;
* bare: the same network on the same batch -- a leaf float image (8, 3, 64, 64) through the
  agent's own modules 1a, 2a, 2b (no hooks), the same objective sum, and its gradient with
  respect to the image -- 256 times.

The variants run ``--repeats`` times, interleaved so they share the machine's load; the
fastest of each is kept (CPU time with one thread, and wall time). Reported: time per step,
the ratio engine / bare, and the overhead ratio (engine - bare) / bare, which the issue asks
to be at most 2 (the parameterization and transforms cost at most twice the network).

    .venv/bin/python benchmarks/bench_optvis.py                   # ~1 minute
    .venv/bin/python benchmarks/bench_optvis.py --methods fourier,maco,pixel --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def bare_steps(agent, images: torch.Tensor, channels: list[int], steps: int) -> None:
    """Forward to 2b through the agent's own modules and backward to the image, ``steps`` times."""
    blocks = [agent.get_submodule(name) for name in ("1a", "2a", "2b")]
    idx = torch.arange(len(channels))
    chans = torch.tensor(channels)
    for _ in range(steps):
        x = images.detach().requires_grad_(True)
        a = x
        for b in blocks:
            a = b(a)
        loss = -a[idx, chans].mean(dim=(1, 2)).sum()
        torch.autograd.grad(loss, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objectives", type=int, default=8)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="fourier,maco")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.analysis.optvis import Channel, FourierImage, optimize

    agent = load_agent("coinrun")
    channels = list(range(args.objectives))
    objs = [Channel("2b", c) for c in channels]
    images = FourierImage(args.objectives, seed=0)().detach()
    variants = {"bare": lambda: bare_steps(agent, images, channels, args.steps)}
    for m in args.methods.split(","):
        variants[f"engine ({m})"] = lambda m=m: optimize(
            agent, objs, steps=args.steps, method=m, progress=False
        )
    variants["engine (fourier, no transforms)"] = lambda: optimize(
        agent, objs, steps=args.steps, transforms=None, progress=False
    )
    optimize(agent, objs, steps=4, progress=False)  # warm up
    best_cpu = {k: np.inf for k in variants}
    best_wall = {k: np.inf for k in variants}
    for rep in range(args.repeats):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for k in order:
            c0, w0 = time.process_time(), time.perf_counter()
            variants[k]()
            best_cpu[k] = min(best_cpu[k], (time.process_time() - c0) / args.steps)
            best_wall[k] = min(best_wall[k], (time.perf_counter() - w0) / args.steps)
    print(
        f"shipped agent, layer 2b, {args.objectives} objectives x {args.steps} steps at 64x64, "
        f"{args.threads} thread(s), best of {args.repeats} interleaved runs"
    )
    print("| variant | ms/step (CPU) | ms/step (wall) | / bare (CPU) | overhead / bare (CPU) |")
    print("| --- | --- | --- | --- | --- |")
    b = best_cpu["bare"]
    for k in variants:
        c, w = best_cpu[k], best_wall[k]
        print(f"| {k} | {1e3 * c:.2f} | {1e3 * w:.2f} | {c / b:.2f} | {(c - b) / b:.2f} |")


if __name__ == "__main__":
    main()
