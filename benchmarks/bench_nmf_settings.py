"""Benchmark: choose the one set of NMF settings (``analysis.settings.NMF_SETTINGS``).

The explorer's rank slider refits the NMF from its coreset, so a rank change must stay well
under a second, and the features it shows must be as good as a full fit's: the exact
reconstruction error (every row of the matrix, optimal non-negative W per row) within 1% of a
fit on all rows with a tight tolerance.

On the shipped agent (``load_agent("coinrun")``), 8 trajectories x 256 steps (seed 0), value
attributions (IG, 10 steps) at layer 2b: 2,048 frames x 16 x 16 positions, positive and
negative parts stacked, 1,048,576 rows x 32 channels. For every candidate (coreset size,
max_iter, tol): the first fit at rank 8 (coreset draw + fit), the refit time of each rank
2..12 (the fastest of ``--repeat`` runs: other jobs on the machine only add time), and each
rank's exact error against the full fit's (same matrix; the full fits are deterministic and
cached by the matrix's hash). One line per candidate: worst refit time and worst error ratio
over the ranks.

    .venv/bin/python benchmarks/bench_nmf_settings.py
    .venv/bin/python benchmarks/bench_nmf_settings.py --ranks 2 4 8 12 --candidates 8192:200:1e-4
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

DEFAULT_CANDIDATES = [
    "4096:200:1e-4",
    "8192:200:1e-4",
    "8192:400:1e-5",
    "16384:200:1e-4",
    "16384:400:1e-5",
    "32768:400:1e-5",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--layer", default="2b")
    ap.add_argument("--ranks", type=int, nargs="+", default=list(range(2, 13)))
    ap.add_argument(
        "--candidates",
        nargs="+",
        default=DEFAULT_CANDIDATES,
        help="coreset_size:max_iter:tol triples to measure",
    )
    ap.add_argument("--full-max-iter", type=int, default=1000)
    ap.add_argument("--full-tol", type=float, default=1e-7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeat", type=int, default=3, help="time each refit this many times (min)")
    ap.add_argument("--cache", default="/tmp/rlvision-bench", help="reuse trajectories / IG here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.analysis import (
        AnalysisCache,
        AttributionNMF,
        cached_attribution,
        model_hash,
    )
    from rlvision_widgets.analysis.settings import NMF_SETTINGS
    from rlvision_widgets.files import array_hash, write_json_atomic
    from rlvision_widgets.rollouts import Trajectories, collect_trajectories

    agent = load_agent("coinrun").eval()
    print(
        f"# shipped agent, {args.envs} x {args.steps} steps, layer {args.layer}; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f} (other jobs on this "
        f"machine slow every time); current NMF_SETTINGS {NMF_SETTINGS}"
    )
    os.makedirs(args.cache, exist_ok=True)
    # keyed by the weights: a re-packaged agent must not reuse the old agent's play
    tpath = os.path.join(
        args.cache, f"traj-coinrun-{model_hash(agent)[:16]}-{args.envs}x{args.steps}"
    )
    try:
        traj = Trajectories.load(tpath)
    except (FileNotFoundError, ValueError):
        traj = collect_trajectories(agent, args.envs, args.steps, seed=0, progress=False)
        traj.save(tpath)
    obs = traj.obs.reshape(-1, *traj.obs.shape[2:])
    t0 = time.perf_counter()
    attr = cached_attribution(
        AnalysisCache(args.cache), agent, obs, args.layer, "value", steps=10
    ).attributions
    rows = 2 * int(np.prod(attr.shape[:3]))
    print(
        f"IG attributions {attr.shape} ({time.perf_counter() - t0:.1f} s incl. cache); "
        f"matrix {rows:,} rows x {attr.shape[-1]}"
    )

    # reference: every row, tight tolerance (deterministic: cached by the matrix's hash)
    key = f"{array_hash(attr)[:16]}-{args.full_max_iter}-{args.full_tol:g}"
    fpath = os.path.join(args.cache, f"full-errors-{key}.json")
    full: dict[int, float] = {}
    if os.path.isfile(fpath):
        full = {int(k): v for k, v in json.load(open(fpath)).items()}
    t0 = time.perf_counter()
    for k in args.ranks:
        if k not in full:
            ref = AttributionNMF(
                k, seed=0, coreset_size=rows, max_iter=args.full_max_iter, tol=args.full_tol
            ).fit(attr)
            full[k] = ref.reconstruction_error(attr)
            write_json_atomic(fpath, full)
    print(f"full fits (all rows, tol {args.full_tol:g}): {time.perf_counter() - t0:.0f} s")
    print(
        "full-fit exact error per rank: "
        + ", ".join(f"{k}:{e:.3f}" for k, e in sorted(full.items()))
    )

    print(
        "\n| coreset | max_iter | tol | first fit s | worst refit s (rank) | mean refit s "
        "| worst error / full (rank) | mean error / full |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for cand in args.candidates:
        size, iters, tol = cand.split(":")
        settings = dict(coreset_size=int(size), max_iter=int(iters), tol=float(tol))
        t0 = time.perf_counter()
        nmf = AttributionNMF(8, seed=0, **settings).fit(attr)
        t_first = time.perf_counter() - t0
        times, ratios = {}, {}
        for k in args.ranks:
            best = float("inf")
            for _ in range(args.repeat):  # the fastest of a few: other jobs only add time
                t0 = time.perf_counter()
                nmf.refit(k)
                best = min(best, time.perf_counter() - t0)
            times[k] = best
            ratios[k] = nmf.reconstruction_error(attr) / full[k]
        kt = max(times, key=times.get)
        kr = max(ratios, key=ratios.get)
        print(
            f"| {int(size):,} | {int(iters)} | {float(tol):g} | {t_first:.2f} | "
            f"{times[kt]:.2f} ({kt}) | {np.mean(list(times.values())):.2f} | "
            f"{ratios[kr]:.4f} ({kr}) | {np.mean(list(ratios.values())):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
