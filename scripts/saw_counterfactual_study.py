#!/usr/bin/env python
"""Run the saw counterfactual study (issue 17, requirement 4) on an agent and draw its figure.

Collects trajectories with the agent, analyses them (value attribution at layer 2b, NMF rank 8,
suggested labels), hides every saw in view one at a time
(:func:`rlvision_widgets.studies.counterfactual_saws.saw_counterfactual_study`), prints the
summary as JSON with the time of each stage, and writes

* ``<out>.npz`` / ``<out>.json``: the study (columns, settings, summary)           (``--out``)
* ``docs/images/counterfactual-saws.png``: the scatter plots                       (``--plot``)

Usage (from the repository root)::

    .venv/bin/python scripts/saw_counterfactual_study.py                       # 32 x 128 frames
    .venv/bin/python scripts/saw_counterfactual_study.py --envs 8 --steps 128 --plot none
    .venv/bin/python scripts/saw_counterfactual_study.py --from-study test-artifacts/saw-study/study

Runtime on the shared 2-core machine (one torch thread): see docs/counterfactual-study.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="coinrun", help="agent name or checkpoint (default coinrun)")
    p.add_argument("--envs", type=int, default=32, help="trajectories (default 32)")
    p.add_argument("--steps", type=int, default=128, help="steps per trajectory (default 128)")
    p.add_argument("--seed", type=int, default=0, help="collection / NMF / bootstrap seed")
    p.add_argument("--layer", default="2b")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=None, help="frames with saws (default all)")
    p.add_argument("--out", default="test-artifacts/saw-study/study", help="study file stem")
    p.add_argument(
        "--plot", default="docs/images/counterfactual-saws.png", help="PNG path, or 'none'"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--from-study", default=None, help="a saved study's stem: summarise and redraw only"
    )
    args = p.parse_args(argv)
    if args.from_study:
        from rlvision_widgets.studies.counterfactual_saws import SawStudy

        study = SawStudy.load(args.from_study)
        if args.plot != "none":
            study.plot(args.plot)
        summary = study.summary(seed=args.seed)
        print(json.dumps({"rows": len(study), "summary": summary}, indent=1, default=float))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    import rlvision_widgets as rv
    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.rollouts import collect_trajectories
    from rlvision_widgets.studies.counterfactual_saws import saw_counterfactual_study

    times = {}
    t0 = time.perf_counter()
    agent = load_agent(args.agent)
    traj = collect_trajectories(
        agent, num_envs=args.envs, num_steps=args.steps, seed=args.seed, progress=False
    )
    times["collect_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis = rv.analyze(agent, traj, layer=args.layer, rank=args.rank, seed=args.seed)
    times["analyze_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    study = saw_counterfactual_study(
        agent, traj, analysis, max_frames=args.max_frames, seed=args.seed, progress=False
    )
    times["study_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = study.summary(seed=args.seed)
    times["summary_s"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    stem = study.save(args.out)
    if args.plot != "none":
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        study.plot(args.plot)
    report = {
        "command": " ".join(["scripts/saw_counterfactual_study.py", *(argv or sys.argv[1:])]),
        "corpus": {"envs": args.envs, "steps": args.steps, "episodes": len(traj.episodes)},
        "suggested_labels": analysis.suggested_labels,
        "rows": len(study),
        "summary": summary,
        "times": {k: round(v, 1) for k, v in times.items()},
        "study_files": str(stem),
        "plot": args.plot,
    }
    print(json.dumps(report, indent=1, default=float))
    traj.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
