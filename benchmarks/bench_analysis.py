"""Benchmark: the whole analysis of 8 trajectories x 512 steps at every conv layer.

Per layer: value attributions (IG, 10 steps) of the 4,096-observation corpus, attribution NMF
(rank 8), feature maps of the corpus activations on the NMF directions, legend thumbnails and a
spatially-aware mosaic per feature, attributions of the 4,096 trajectory frames reduced to
the features + residual, the trajectory display scale and one trajectory's overlays
(positive and negative, blurred, 64 px). Plus bookmarks (GAE, advantage extremes, value spikes,
failed episodes). Prints the time of every stage, the total, and the process's peak resident
memory (goals: <= 2 minutes, <= 4 GB).

Collecting the trajectories and the corpus (playing the game) is timed separately: the corpus
is collected once and cached.

    .venv/bin/python benchmarks/bench_analysis.py                  # shipped reference agent
    .venv/bin/python benchmarks/bench_analysis.py --agent article  # random-weight article net
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from contextlib import contextmanager

import numpy as np
import torch

TIMES: dict[str, float] = {}
CPU: dict[str, float] = {}


@contextmanager
def stage(name: str):
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - t0
    CPU[name] = CPU.get(name, 0.0) + time.process_time() - c0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def trajectories(agent, num_envs: int, num_steps: int):
    """(obs (E, T, 64, 64, 3), values, rewards, firsts, episodes)."""
    from rlvision_widgets.rollouts import collect_trajectories

    traj = collect_trajectories(
        agent, num_envs=num_envs, num_steps=num_steps, seed=0, progress=False
    )
    return traj.obs, traj.values, traj.rewards, traj.firsts, traj.episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default="coinrun", choices=["coinrun", "article"])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--corpus", type=int, default=4096)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--layers", nargs="*", default=None)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    ap.add_argument(
        "--nmf-threads",
        type=int,
        default=None,
        help="torch threads inside the NMF (AttributionNMF n_threads; default: as "
        "--threads). Its coreset fit is small: on a busy machine 1 is fastest",
    )
    ap.add_argument("--cache", default="/tmp/rlvision-bench")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rlvision_widgets.agents import build_network
    from rlvision_widgets.analysis import (
        AttributionNMF,
        FeatureVisualizer,
        advantage_bookmarks,
        attribution_to_rgba,
        failed_episodes,
        feature_maps,
        integrated_gradients,
        model_hash,
        receptive_field,
        trajectory_scale,
        value_spikes,
    )
    from rlvision_widgets.rollouts.corpus import Corpus, collect_corpus
    from rlvision_widgets.rollouts.gae import gae_advantages

    torch.manual_seed(0)
    if args.agent == "coinrun":
        from rlvision_widgets.agents.registry import load_agent

        agent, desc = load_agent("coinrun").eval(), "shipped reference agent (compact network)"
    else:
        agent, desc = build_network("article").eval(), "article network, random weights"
    layers = args.layers or list(agent.layer_names)
    print(
        f"# {desc}; layers {layers}; torch threads {torch.get_num_threads()}; load average "
        f"{os.getloadavg()[0]:.2f} (other jobs on this machine slow every figure)"
    )

    t0 = time.perf_counter()
    obs, values, rewards, firsts, episodes = trajectories(agent, args.envs, args.steps)
    print(f"trajectories {obs.shape[:2]}: {time.perf_counter() - t0:.1f} s (not counted)")
    os.makedirs(args.cache, exist_ok=True)
    # keyed by the weights: a re-packaged agent must not reuse the old agent's play
    cpath = os.path.join(args.cache, f"corpus-{model_hash(agent)[:16]}-{args.corpus}-128")
    t0 = time.perf_counter()
    try:
        corpus = Corpus.load(cpath)
    except FileNotFoundError:
        corpus = collect_corpus(
            agent if args.agent == "coinrun" else None,
            num_obs=args.corpus,
            interval=128,
            num_envs=64,
            seed=0,
        )
        corpus.save(cpath)
    print(
        f"corpus {corpus.obs.shape}: {time.perf_counter() - t0:.1f} s (one-off, cached; "
        "not counted)"
    )

    rss0 = peak_rss_gb()
    t_start, c_start = time.perf_counter(), time.process_time()
    frames = obs.reshape(-1, 64, 64, 3)
    with stage("bookmarks"):
        adv = gae_advantages(rewards, values, firsts)
        marks = (
            advantage_bookmarks(adv, firsts, 16, "high")
            + advantage_bookmarks(adv, firsts, 16, "low")
            + value_spikes(values, firsts, 16)
        )
        failures = failed_episodes(episodes)
    summary = []
    for layer in layers:
        with stage("IG corpus"):
            ca = integrated_gradients(agent, corpus.obs, layer, "value", 10)
        with stage("NMF fit"):
            nmf = AttributionNMF(args.rank, seed=0, n_threads=args.nmf_threads).fit(ca.attributions)
        with stage("feature maps (NNLS)"):
            maps = feature_maps(ca.activations, nmf)
        del ca
        with stage("thumbnails + mosaics"):
            vis = FeatureVisualizer(
                corpus.obs,
                maps,
                rf=receptive_field(agent, layer) if hasattr(agent, "config") else None,
            )
            thumbs = vis.thumbnails()
            mosaics = [vis.mosaic(k) for k in range(vis.n_features)]
        del maps, vis
        with stage("IG trajectories"):
            ta = integrated_gradients(agent, frames, layer, "value", 10)
        with stage("reduce"):
            red = nmf.reduce(ta.attributions)
        del ta
        with stage("display"):
            feats = red.features.reshape(args.envs, args.steps, *red.features.shape[1:])
            res = red.residual.reshape(args.envs, args.steps, *red.residual.shape[1:])
            scale = trajectory_scale(feats[0])
            for sign in ("positive", "negative"):
                attribution_to_rgba(feats[0], scale=scale, residual=res[0], sign=sign, size=64)
        summary.append(
            (
                layer,
                red.features.shape[1:3],
                float(np.median(red.residual_share)),
                nmf.relative_error_,
                len(thumbs),
                mosaics[0].image.shape[:2],
            )
        )
        del red, feats, res, thumbs, mosaics
    total, cpu_total = time.perf_counter() - t_start, time.process_time() - c_start

    print("\nlayer  grid   residual_share(median)  nmf_rel_err  thumbnails  mosaic_px")
    for layer, hw, share_, err, nt, mpx in summary:
        print(
            f"{layer:5s}  {hw[0]:2d}x{hw[1]:<2d}  {share_:22.3f}  {err:11.3f}  {nt:10d}  "
            f"{mpx[0]}x{mpx[1]}"
        )
    print(
        f"\nbookmarks: {len(marks)} (advantage extremes + value spikes), "
        f"{len(failures)} failed episodes"
    )
    print("\nstage                      wall_s    cpu_s")
    for name, t in TIMES.items():
        print(f"{name:25s}  {t:8.2f}  {CPU[name]:7.2f}")
    print(f"{'TOTAL':25s}  {total:8.2f}  {cpu_total:7.2f}   (goal <= 120 s wall)")
    print("(cpu_s: CPU time this process used, all threads; on a busy machine wall_s exceeds it)")
    print(
        f"peak resident memory: {peak_rss_gb():.2f} GB (before the analysis: {rss0:.2f} GB; "
        "goal <= 4 GB)"
    )


if __name__ == "__main__":
    main()
