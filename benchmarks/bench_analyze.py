"""Benchmark: ``rv.analyze`` stage by stage, then a rank change, ``save`` and ``load``.

The shipped agent plays ``--envs`` x ``--steps`` (seed 0; not timed); ``rv.analyze`` runs on
those trajectories with its defaults (object layer, value, rank 8) and each stage is timed
from its progress message to the next: forward pass, value IG, NMF fit, reduction, dataset
examples, labels. Then ``Analysis.with_rank`` (6 and 12), ``save`` (with the folder's size)
and ``Analysis.load``. Numbers for docs/analysis.md ("The refit is not all of a rank change").

    .venv/bin/python benchmarks/bench_analyze.py                # torch's default threads
    .venv/bin/python benchmarks/bench_analyze.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

# progress-message prefixes of rv.analyze, in order (analysis/pipeline.py)
STAGES = [
    ("forward pass", "forward pass"),
    ("value IG", "integrated gradients"),
    ("NMF fit", "NMF"),
    ("reduction", "reducing"),
    ("dataset examples", "dataset examples"),
    ("labels", "identifying"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import rlvision_widgets as rv
    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.analysis import Analysis
    from rlvision_widgets.rollouts import collect_trajectories

    agent = load_agent("coinrun").eval()
    print(
        f"# shipped agent, {args.envs} x {args.steps} steps; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}"
    )
    traj = collect_trajectories(agent, args.envs, args.steps, seed=0, progress=False)

    marks: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    analysis = rv.analyze(agent, traj, progress=lambda f, m: marks.append((time.perf_counter(), m)))
    end = time.perf_counter()
    print(f"analyze: {end - t0:.1f} s")
    starts = {}
    for t, message in marks:
        for name, prefix in STAGES:
            if message.startswith(prefix) and name not in starts:
                starts[name] = t
    names = [name for name, _ in STAGES if name in starts]
    for name, after in zip(names, [*names[1:], None]):
        print(f"  {name}: {(starts[after] if after else end) - starts[name]:.1f} s")

    for rank in (6, 12):
        t = time.perf_counter()
        analysis.with_rank(rank)
        print(f"with_rank({rank}): {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        path = analysis.save(os.path.join(folder, "analysis"))
        saved = time.perf_counter() - t
        size = sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(folder)
            for f in files
        )
        print(f"save: {saved:.1f} s ({size / 1e6:.0f} MB)")
        t = time.perf_counter()
        Analysis.load(path)
        print(f"load: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
