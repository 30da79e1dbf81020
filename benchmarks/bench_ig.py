"""Benchmark: hidden-layer integrated gradients against Captum, measured in the same run.

IG of the value at layer 2b of the article network (Appendix C) over 8 x 512 CoinRun frames,
10 right-Riemann steps from a zero baseline, with

* ours: ``rlvision_widgets.analysis.integrated_gradients`` (frames and alphas in one batch);
* Captum: ``IntegratedGradients(f, ...).attribute(a, baselines=0, n_steps=10,
  method="riemann_right")`` on ``f = lambda a: value(forward_from("2b", a))``, called on chunks
  of frames (the activations computed once, as for ours).

Prints both times, the speed ratio and the largest difference relative to the largest
attribution. The network has random weights unless ``--checkpoint`` names one (no trained
article-sized network ships with the package); observations come from CoinRun played with
uniform random actions.

    .venv/bin/python benchmarks/bench_ig.py                 # 8 x 512 frames, layer 2b
    .venv/bin/python benchmarks/bench_ig.py --frames 512 --layer 2a --threads 1
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def frames(num_envs: int, num_steps: int, seed: int = 0) -> np.ndarray:
    from rlvision_widgets.environment import CoinRunEnv, EnvOptions
    env = CoinRunEnv(EnvOptions(num_envs=num_envs, rand_seed=seed))
    rng = np.random.default_rng(seed)
    out = np.empty((num_envs, num_steps, 64, 64, 3), np.uint8)
    obs, _, _ = env.observe()
    for t in range(num_steps):
        out[:, t] = obs
        obs, _, _ = env.step(rng.integers(0, 15, num_envs).astype(np.int32))
    env.close()
    return out.reshape(-1, 64, 64, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="article", choices=["article", "compact"])
    ap.add_argument("--checkpoint", default=None, help="load weights from a checkpoint instead")
    ap.add_argument("--layer", default="2b")
    ap.add_argument("--frames", type=int, default=8 * 512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--captum-chunk", type=int, default=64, help="frames per Captum call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--share-next-conv", action="store_true",
                    help="also time the shared-next-conv path (layers feeding a conv directly)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from captum.attr import IntegratedGradients

    from rlvision_widgets.agents import build_network, load_checkpoint
    from rlvision_widgets.analysis import integrated_gradients
    from rlvision_widgets.analysis.layers import LayerAccess

    torch.manual_seed(0)
    if args.checkpoint:
        net = load_checkpoint(args.checkpoint)[0].eval()
        weights = f"checkpoint {args.checkpoint}"
    else:
        net = build_network(args.network).eval()
        weights = f"{args.network} network, random weights (seed 0)"
    envs = 8 if args.frames >= 8 else 1
    obs = frames(envs, -(-args.frames // envs))[:args.frames]
    print(f"# IG at {args.layer}, {len(obs)} frames, {args.steps} steps; {weights}; "
          f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f} "
          f"(other jobs on this machine slow every figure)")

    # warm-up (oneDNN primitive creation) for both
    integrated_gradients(net, obs[:16], args.layer, steps=args.steps)
    t0 = time.perf_counter()
    ours = integrated_gradients(net, obs, args.layer, steps=args.steps)
    t_ours = time.perf_counter() - t0

    access = LayerAccess(net)
    ig = IntegratedGradients(lambda a: net.forward_from(args.layer, a)[1])
    ig.attribute(access.activations_nchw(obs[:16], args.layer), baselines=0.0,
                 n_steps=args.steps, method="riemann_right")
    t0 = time.perf_counter()
    chunks = []
    for s in range(0, len(obs), args.captum_chunk):
        a = access.activations_nchw(obs[s:s + args.captum_chunk], args.layer)
        chunks.append(ig.attribute(a, baselines=0.0, n_steps=args.steps,
                                   method="riemann_right").permute(0, 2, 3, 1).numpy())
    t_captum = time.perf_counter() - t0
    captum = np.concatenate(chunks)
    rel = float(np.abs(ours.attributions - captum).max() / np.abs(captum).max())

    n = len(obs)
    print(f"ours    {t_ours:8.2f} s  {n / t_ours:8.1f} frames/s")
    print(f"captum  {t_captum:8.2f} s  {n / t_captum:8.1f} frames/s")
    print(f"speed ratio (captum / ours): {t_captum / t_ours:.2f}x")
    print(f"max |ours - captum| / max |captum|: {rel:.2e}")
    print(f"completeness: median |delta| / |F(a) - F(0)| = "
          f"{float(np.median(ours.relative_delta())):.3e}")
    if args.share_next_conv:
        t0 = time.perf_counter()
        fast = integrated_gradients(net, obs, args.layer, steps=args.steps, share_next_conv=True)
        t_fast = time.perf_counter() - t0
        rel_f = float(np.abs(fast.attributions - captum).max() / np.abs(captum).max())
        print(f"shared-next-conv {t_fast:8.2f} s ({'used' if fast.meta['shared_next_conv'] else 'not applicable'}"
              f"), ratio captum / shared {t_captum / t_fast:.2f}x, max rel diff {rel_f:.2e}")


if __name__ == "__main__":
    main()
