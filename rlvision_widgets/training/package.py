"""Package a training run as a shipped agent: weights, config, model card, learning curve.

>>> package_agent("runs/reference", "rlvision_widgets/agents/reference/coinrun", levels=1000)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..agents.checkpoint import load_checkpoint, resolve_checkpoint
from ..agents.networks import multiply_adds
from ..files import atomic_open, copy_file_atomic, sha256_file, write_json_atomic
from ..rollouts.evaluate import evaluate

# openai/train-procgen, CoinRun easy, unseen levels (see ../shared/docs/machine-and-anchors.md)
IMPALA_EASY_TEST = ((1_000_000, 0.74), (5_000_000, 0.81), (25_000_000, 0.87))


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The JSON-lines training log of a run (one record per PPO update); a line that is not
    a JSON object with integer ``steps`` is a ValueError naming it.

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "log.jsonl").write_text(json.dumps({"steps": 64}) + "\\n")
    >>> read_log(d)
    [{'steps': 64}]
    """
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run folder?")
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {i} is not JSON ({exc.msg}); remove the line") from None
        if (
            not isinstance(rec, dict)
            or isinstance(rec.get("steps"), bool)
            or not isinstance(rec.get("steps"), int)
        ):
            raise ValueError(f"{path}, line {i}: a record must be an object with integer 'steps'")
        records.append(rec)
    return records


def plot_learning_curve(
    run_dir: str | Path,
    out_png: str | Path,
    title: str | None = None,
    eval_point: tuple[int, float, tuple[float, float]] | None = None,
) -> Path:
    """Success rate of training episodes vs env steps, with the IMPALA-CNN reference points."""
    from matplotlib.figure import Figure  # no pyplot: never switches a live kernel's backend

    log = [r for r in read_log(run_dir) if r.get("success_rate") is not None]
    fig = Figure(figsize=(6.4, 3.6), dpi=120)
    ax = fig.subplots()
    ax.plot(
        [r["steps"] / 1e6 for r in log],
        [100 * r["success_rate"] for r in log],
        lw=1.5,
        label="training episodes (last 500, sampled actions)",
    )
    ax.plot(
        [s / 1e6 for s, _ in IMPALA_EASY_TEST],
        [100 * v for _, v in IMPALA_EASY_TEST],
        "k^--",
        ms=5,
        lw=0.8,
        label="IMPALA-CNN PPO, unseen levels (train-procgen)",
    )
    if eval_point is not None:
        steps, rate, (lo, hi) = eval_point
        ax.errorbar(
            [steps / 1e6],
            [100 * rate],
            yerr=[[100 * (rate - lo)], [100 * (hi - rate)]],
            fmt="o",
            color="C3",
            capsize=3,
            label="evaluation, unseen levels (95% CI)",
        )
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("levels completed (%)")
    ax.set_ylim(0, 100)
    last = max([r["steps"] for r in log] + [1])
    ax.set_xlim(0, max(1.25 * last, 1.1e6) / 1e6)
    ax.grid(alpha=0.3)
    ax.set_title(title or "CoinRun (easy), PPO learning curve")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, format="png")
    return out_png


def package_agent(
    run_dir: str | Path,
    dest: str | Path,
    levels: int = 1000,
    start_level: int = 1_000_000,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Copy the run's newest weights to ``dest`` and write ``model_card.json`` (with an
    evaluation on ``levels`` unseen levels, sampled actions) and ``learning_curve.png``."""
    src = resolve_checkpoint(run_dir)
    model, config = load_checkpoint(src)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copy_file_atomic(src / "model.safetensors", dest / "model.safetensors")
    slim = {k: v for k, v in config.items() if k not in ("recent_successes",)}
    slim["files"] = {"model.safetensors": sha256_file(dest / "model.safetensors")}
    write_json_atomic(dest / "config.json", slim)
    env = config["env"]
    result = evaluate(
        model,
        levels=levels,
        start_level=start_level,
        seed=seed,
        distribution_mode=env["distribution_mode"],
        progress=progress,
    )
    log = read_log(run_dir)
    card = {
        "name": dest.name,
        "network": config["network"]["name"],
        "multiply_adds_per_frame": multiply_adds(model.config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": config["steps"],
        "wall_time_s": config["wall_time_s"],
        "wall_time_h": round(config["wall_time_s"] / 3600, 2),
        "mean_steps_per_s": round(config["steps"] / max(config["wall_time_s"], 1e-9), 1),
        "precision": config["training"]["precision"],
        "training": config["training"],
        "env": env,
        "training_success_rate_last_500": config.get("success_rate_recent"),
        "evaluation": {
            **result.to_json(),
            "start_level": start_level,
            "seed": seed,
            "actions": "sampled",
        },
        "log_records": len(log),
        "torch": config.get("torch"),
    }
    write_json_atomic(dest / "model_card.json", card)
    ev = card["evaluation"]
    plot_learning_curve(
        run_dir,
        dest / "learning_curve.png",
        title=f"Reference agent '{dest.name}' ({card['network']} network)",
        eval_point=(config["steps"], ev["success_rate"], tuple(ev["ci95"])),
    )
    return card
