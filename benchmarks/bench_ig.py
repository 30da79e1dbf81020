"""Benchmark: hidden-layer integrated gradients against Captum, measured in the same run.

IG of the value at layer 2b of the article network (Appendix C) over 8 x 512 CoinRun frames,
10 right-Riemann steps from a zero baseline, with

* ours: ``rlvision_widgets.analysis.integrated_gradients`` (frames and alphas in one batch);
* Captum: ``IntegratedGradients(f, ...).attribute(a, baselines=0, n_steps=10,
  method="riemann_right")`` on ``f = lambda a: value(forward_from("2b", a))``, called on chunks
  of frames (the activations computed once, as for ours).

Both run on the same blocks of frames, interleaved (alternating which goes first), so they
see the same machine load; wall and CPU times are printed (with one thread, CPU time is the
better measure on a busy machine), with the speed ratio and the largest difference relative
to the largest attribution. The network has random weights unless ``--checkpoint`` names one (no trained
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
    ap.add_argument("--network", default="article", choices=["article", "compact"])
    ap.add_argument("--checkpoint", default=None, help="load weights from a checkpoint instead")
    ap.add_argument("--layer", default="2b")
    ap.add_argument("--frames", type=int, default=8 * 512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--captum-chunk", type=int, default=64, help="frames per Captum call")
    ap.add_argument("--block", type=int, default=256, help="frames per interleaved block")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    ap.add_argument(
        "--share-next-conv",
        action="store_true",
        help="also time the shared-next-conv path (layers feeding a conv directly)",
    )
    args = ap.parse_args()
    if args.threads:
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
    obs = frames(envs, -(-args.frames // envs))[: args.frames]
    print(
        f"# IG at {args.layer}, {len(obs)} frames, {args.steps} steps; {weights}; "
        f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f} "
        f"(other jobs on this machine slow every figure)"
    )

    access = LayerAccess(net)
    ig = IntegratedGradients(lambda a: net.forward_from(args.layer, a)[1])

    def run_ours(block: np.ndarray) -> np.ndarray:
        return integrated_gradients(net, block, args.layer, steps=args.steps)

    def run_captum(block: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(block), args.captum_chunk):
            a = access.activations_nchw(block[s : s + args.captum_chunk], args.layer)
            out.append(
                ig.attribute(a, baselines=0.0, n_steps=args.steps, method="riemann_right")
                .permute(0, 2, 3, 1)
                .numpy()
            )
        return np.concatenate(out)

    run_ours(obs[:16])  # warm-up (oneDNN primitive creation) for both
    run_captum(obs[:16])
    # interleave blocks (alternating which goes first) so both see the same machine load
    wall = {"ours": 0.0, "captum": 0.0}
    cpu = {"ours": 0.0, "captum": 0.0}
    ours_attr, captum_attr, rel_delta = [], [], []
    block = args.block
    for i, s in enumerate(range(0, len(obs), block)):
        chunk = obs[s : s + block]
        for name in ("ours", "captum") if i % 2 == 0 else ("captum", "ours"):
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "ours":
                r = run_ours(chunk)
                ours_attr.append(r.attributions)
                rel_delta.append(r.relative_delta())
            else:
                captum_attr.append(run_captum(chunk))
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    ours_a, captum_a = np.concatenate(ours_attr), np.concatenate(captum_attr)
    rel = float(np.abs(ours_a - captum_a).max() / np.abs(captum_a).max())
    captum = captum_a

    n = len(obs)
    ours_rows = run_ours(obs[:1]).meta["batch_size"]
    print(
        f"(Captum called on {args.captum_chunk}-frame chunks = "
        f"{args.captum_chunk * args.steps} rows per forward; ours {ours_rows} rows per "
        f"forward; blocks of {block} frames, interleaved)"
    )
    print(
        f"ours    wall {wall['ours']:8.2f} s  cpu {cpu['ours']:8.2f} s  "
        f"{n / wall['ours']:7.1f} frames/s"
    )
    print(
        f"captum  wall {wall['captum']:8.2f} s  cpu {cpu['captum']:8.2f} s  "
        f"{n / wall['captum']:7.1f} frames/s"
    )
    print(
        f"speed ratio (captum / ours): wall {wall['captum'] / wall['ours']:.2f}x, "
        f"cpu {cpu['captum'] / cpu['ours']:.2f}x"
    )
    print(f"max |ours - captum| / max |captum|: {rel:.2e}")
    print(
        f"completeness: median |delta| / |F(a) - F(0)| = "
        f"{float(np.median(np.concatenate(rel_delta))):.3e}"
    )
    t_captum = wall["captum"]
    if args.share_next_conv:
        t0 = time.perf_counter()
        fast = integrated_gradients(net, obs, args.layer, steps=args.steps, share_next_conv=True)
        t_fast = time.perf_counter() - t0
        rel_f = float(np.abs(fast.attributions - captum).max() / np.abs(captum).max())
        print(
            f"shared-next-conv {t_fast:8.2f} s ({'used' if fast.meta['shared_next_conv'] else 'not applicable'}"
            f"), ratio captum / shared {t_captum / t_fast:.2f}x, max rel diff {rel_f:.2e}"
        )


if __name__ == "__main__":
    main()
