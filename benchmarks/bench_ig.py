"""Benchmark: hidden-layer integrated gradients against Captum, measured in the same run.

IG of the value at layer 2b of the shipped agent (``load_agent("coinrun")``) over N CoinRun
frames (uniform random actions), 10 right-Riemann steps from a zero baseline:

* ours: ``rlvision_widgets.analysis.integrated_gradients(agent, frames, "2b")``;
* Captum: ``IntegratedGradients(f).attribute(a, baselines=0.0, n_steps=10,
  method="riemann_right")`` with ``f = lambda a: agent.forward_from("2b", a)[1]`` -- the same
  network function ours differentiates (same module, same fused L2 pool) -- and
  ``a = agent.forward_to(frames, "2b")`` computed inside the timing, as ours does. Captum is
  timed as documented (one call on all N frames) and, for context, called by hand on chunks of
  ``--captum-chunk`` frames (its best batching on this machine; Captum's own
  ``internal_batch_size`` splits the steps, not the frames, and is slower here).

Each variant runs ``--repeats`` times, interleaved (alternating order) so all see the same
machine load; the fastest CPU time of each is reported (with one thread CPU time is the better
measure on a busy machine), as time per frame, with the speed-up and the largest difference
from Captum relative to the largest attribution.

    .venv/bin/python benchmarks/bench_ig.py                       # 1,024 frames
    .venv/bin/python benchmarks/bench_ig.py --frames 512 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch


def frames(num_envs: int, num_steps: int, seed: int = 0) -> np.ndarray:
    """CoinRun frames from uniform random actions, (num_envs * num_steps, 64, 64, 3) uint8."""
    from rlvision_widgets.environment import NUM_ACTIONS, CoinRunEnv, EnvOptions

    env = CoinRunEnv(EnvOptions(num_envs=num_envs, rand_seed=seed))
    rng = np.random.default_rng(seed)
    out = np.empty((num_envs, num_steps, 64, 64, 3), np.uint8)
    obs, _, _ = env.observe()
    for t in range(num_steps):
        out[:, t] = obs
        obs, _, _ = env.step(rng.integers(0, NUM_ACTIONS, num_envs).astype(np.int32))
    env.close()
    return out.reshape(-1, 64, 64, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default="coinrun", help="shipped agent name or checkpoint path")
    ap.add_argument("--layer", default="2b")
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per variant (min kept)")
    ap.add_argument("--captum-chunk", type=int, default=16, help="frames per hand-chunked call")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = ap.parse_args()
    if args.frames < 1 or args.steps < 1 or args.repeats < 1 or args.captum_chunk < 1:
        ap.error("--frames, --steps, --repeats and --captum-chunk must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)

    from captum.attr import IntegratedGradients

    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.analysis import integrated_gradients

    net = load_agent(args.agent).eval()
    if not hasattr(net, "forward_from"):
        raise SystemExit(f"agent {args.agent!r} has no forward_from; pick a ConvAgent")
    envs = min(8, args.frames)
    obs = frames(envs, -(-args.frames // envs))[: args.frames]
    layer, steps = args.layer, args.steps
    print(
        f"# IG of the value at {layer}, {len(obs)} frames, {steps} steps (riemann_right); "
        f"agent {args.agent!r} ({net.config.name} network, fused_l2pool={net.fused_l2pool}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    ig = IntegratedGradients(lambda a: net.forward_from(layer, a)[1])

    def captum(block: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            a = net.forward_to(torch.from_numpy(block), layer)
        attr = ig.attribute(a, baselines=0.0, n_steps=steps, method="riemann_right")
        return attr.detach().permute(0, 2, 3, 1).numpy()

    variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "ours": lambda b: integrated_gradients(net, b, layer, "value", steps).attributions,
        "captum (one call)": captum,
        f"captum ({args.captum_chunk}-frame calls)": lambda b: np.concatenate(
            [captum(b[s : s + args.captum_chunk]) for s in range(0, len(b), args.captum_chunk)]
        ),
    }
    for fn in variants.values():  # warm-up (oneDNN primitives, allocator)
        fn(obs[: min(32, len(obs))])
    cpu = {k: float("inf") for k in variants}
    wall = {k: float("inf") for k in variants}
    result: dict[str, np.ndarray] = {}
    names = list(variants)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            result[name] = variants[name](obs)
            wall[name] = min(wall[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)

    n = len(obs)
    ref = result["captum (one call)"]
    scale = float(np.abs(ref).max())
    for name in names:
        rel = float(np.abs(result[name] - ref).max()) / scale
        print(
            f"{name:26s} cpu {1e3 * cpu[name] / n:7.3f} ms/frame  wall {1e3 * wall[name] / n:7.3f}"
            f" ms/frame  speed-up of ours (cpu) {cpu[name] / cpu['ours']:5.2f}x  "
            f"max|diff| / max|attr| vs captum {rel:.1e}"
        )
    ok = cpu[names[1]] / cpu["ours"] >= 3 and float(np.abs(result["ours"] - ref).max()) <= (
        1e-5 * scale
    )
    print(f"goal (>= 3x Captum one call, equal to 1e-5 of the largest attribution): {ok}")


if __name__ == "__main__":
    main()
