"""Make docs/images/feature-visualization.png and the figures in docs/feature-visualization.md.

Shipped agent ("coinrun"), layer 2b: a 512-frame corpus the agent saw (64 envs, one frame every
8 steps, seed 0), NMF directions from ``rlvision_widgets.analyze`` on it (rank 8), then
optimization-based feature visualization (256 steps, seed 0) of 6 channels, 4 NMF directions,
2 centre neurons and a caricature, with the decorrelated Fourier parameterization (default;
with jitter to the last step, i.e. no polishing; with the L2 penalty on layer 1a) and MACO.
Prints, per method and objective, the value of the optimized image shown as an observation,
the best real frame's value and their ratio; draws the best real frame beside each method's
image.

    .venv/bin/python scripts/optvis_figure.py           # ~2 minutes on a busy 2-core machine
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "feature-visualization.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import rlvision_widgets as rv
    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.analysis.optvis import (
        Caricature,
        Channel,
        Neuron,
        nmf_objectives,
        optimize,
    )
    from rlvision_widgets.rollouts.corpus import collect_corpus

    agent = load_agent("coinrun")
    t0 = time.time()
    frames = collect_corpus(agent, num_obs=512, interval=8, num_envs=64, seed=0).obs
    analysis = rv.analyze(agent, frames, rank=8, seed=0)
    print(f"corpus + NMF: {time.time() - t0:.1f} s")
    objs = [Channel("2b", c) for c in (0, 5, 11, 14, 19, 23)]
    objs += nmf_objectives(analysis.directions[:4])
    objs += [Neuron("2b", 11), Neuron("2b", 23), Caricature("2b", frames[100], name="caricature")]
    methods = {
        "Fourier": dict(method="fourier"),
        "Fourier, jitter to the end": dict(method="fourier", polish_steps=0),
        "Fourier + L2(1a)": dict(method="fourier", l2_penalty=1.0),
        "MACO": dict(method="maco"),
    }
    results = {}
    for name, kw in methods.items():
        r = optimize(agent, objs, steps=args.steps, seed=args.seed, progress=False, **kw)
        c = r.compare(agent, frames)
        results[name] = (r, c)
        print(f"\n### {name}: {len(objs)} objectives x {args.steps} steps in {r.seconds:.1f} s")
        print(c.table())
        print(f"min ratio {np.nanmin(c.ratio):.2f}, median {np.nanmedian(c.ratio):.2f}")

    show = [0, 1, 2, 3, 6, 7, 8, 9, 10, 12]
    cols = ["best real frame", *methods]
    fig, axes = plt.subplots(len(show), len(cols), figsize=(2.0 * len(cols), 2.05 * len(show)))
    first = next(iter(results.values()))[1]
    for i, k in enumerate(show):
        best = frames[first.best_index[k]]
        panels = [(best, f"{first.best_real[k]:.2f}")]
        for name in methods:
            r, c = results[name]
            panels.append((r.images[k], f"{c.optimized[k]:.2f} ({c.ratio[k]:.1f}x)"))
        for j, (img, text) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(text, fontsize=8)
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(objs[k].label, fontsize=9)
    fig.suptitle(
        "Shipped agent, layer 2b: optimized images vs the best of 512 real frames\n"
        "(objective value as an observation; ratio to the best real frame)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(args.out, dpi=64)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
