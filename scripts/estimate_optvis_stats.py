"""Estimate the CoinRun image statistics shipped for optimization-based feature visualization.

Plays CoinRun with the shipped agent ("coinrun"), keeps 4,096 observations (64 envs, one every
16 steps, random phase per env; seed 1234), and writes the mean logit colour, the colour matrix
and the amplitude spectrum (rlvision_widgets.analysis.optvis.statistics) next to the module:

    .venv/bin/python scripts/estimate_optvis_stats.py            # ~3 minutes on a busy core
"""

from __future__ import annotations

import argparse
import time

from rlvision_widgets.analysis.optvis.statistics import SHIPPED_STATS, estimate_statistics
from rlvision_widgets.rollouts.corpus import collect_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--interval", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default=str(SHIPPED_STATS))
    args = ap.parse_args()
    t0 = time.time()
    corpus = collect_corpus(
        "coinrun",
        num_obs=args.frames,
        interval=args.interval,
        num_envs=64,
        seed=args.seed,
        progress=True,
    )
    meta = {
        "agent": "coinrun",
        "interval": args.interval,
        "seed": args.seed,
        "num_envs": 64,
        "corpus_hash": corpus.hash,
        "script": "scripts/estimate_optvis_stats.py",
    }
    stats = estimate_statistics(corpus.obs, meta)
    stem = stats.save(args.out)
    print(f"wrote {stem}.npz/.json from {len(corpus)} frames in {time.time() - t0:.1f} s")
    print("mean logit colour", stats.mean.round(3).tolist())
    print("colour matrix", stats.colour.round(3).tolist())
    s = stats.spectrum
    print(
        f"spectrum: DC {s[0, 0]:.2f}, (0,1) {s[0, 1]:.2f}, (0,8) {s[0, 8]:.3f}, "
        f"(32,32) {s[32, 32]:.4f}"
    )


if __name__ == "__main__":
    main()
