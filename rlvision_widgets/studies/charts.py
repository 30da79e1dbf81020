"""Charts of the studies: the article's blindness chart and failures by cause.

Both draw on a bare :class:`matplotlib.figure.Figure` (no pyplot: never switches a live
kernel's backend), return it, and save it when given a path.

>>> fig = plot_blindness_chart(report, "docs/results/editing_chart.png")  # doctest: +SKIP
>>> fig = plot_failures({"original": base, "saw-blind": edited})           # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..analysis.labels import label
from ..environment.causes import FAILURE_CAUSES
from ..rollouts.evaluate import EvaluationResult
from ..rollouts.stats import wilson_interval
from .article import ARTICLE_LEVELS, ARTICLE_TABLE, CONDITION_TITLES, TABLE_CAUSES, TABLE_HEADERS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_blindness_chart", "plot_failures"]


class _Report(Protocol):
    """What the chart reads of a :class:`~rlvision_widgets.studies.report.BlindnessReport`."""

    settings: dict[str, Any]
    diagnostics: dict[str, dict[str, Any]]

    def rows(self) -> list[dict[str, Any]]: ...


def plot_blindness_chart(report: _Report, path: str | os.PathLike | None = None) -> Figure:
    """The article's chart: % of levels failed by cause, one bar per model, ours beside the
    article's (Wilson 95% error bars on ours); a third panel with the frame-level check
    (:func:`~rlvision_widgets.studies.removal.removal_effects`) when the report has it.

    >>> fig = plot_blindness_chart(load_report("docs/results"), "chart.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure  # matplotlib only when drawing

    rows = [r for r in report.rows() if r["percent"] is not None]
    art_rows = [(name, vals) for name, vals in ARTICLE_TABLE.items()]
    colors = {
        "original": "#4c72b0",
        "saw_blind": "#dd8452",
        "saw_blind_all": "#c44e52",
        "left_enemy_blind": "#55a868",
        "invisible_saws": "#8c8c8c",
        "control": "#8172b3",
    }
    diag = {
        k: d
        for k, d in (report.diagnostics or {}).items()
        if isinstance(d, dict) and d.get("frames") and d.get("value_blindness") is not None
    }
    ncols = 3 if diag else 2
    fig = Figure(figsize=(11 + 3.6 * (ncols - 2), 3.8), dpi=120)
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": [1.15, 1, 0.8][:ncols]})
    x = np.arange(len(TABLE_CAUSES))
    labels = [TABLE_HEADERS[c].replace("enemy moving", "enemy\nmoving") for c in TABLE_CAUSES]

    def bars(ax, series, title, errs=None):
        width = 0.8 / max(len(series), 1)
        top = 0.0
        for j, (name, vals) in enumerate(series):
            h = [vals[c] for c in TABLE_CAUSES]
            top = max(top, max(h))
            yerr = None
            if errs is not None:
                lo_hi = errs[j]
                yerr = np.array(
                    [[h[i] - lo_hi[c][0], lo_hi[c][1] - h[i]] for i, c in enumerate(TABLE_CAUSES)]
                ).T
                top = max(top, max(lo_hi[c][1] for c in TABLE_CAUSES))
            pos = x + (j - (len(series) - 1) / 2) * width
            ax.bar(
                pos,
                h,
                width,
                yerr=yerr,
                capsize=2,
                color=colors.get(name, None),
                label=CONDITION_TITLES.get(name, name),
            )
            tops = h if errs is None else [errs[j][c][1] for c in TABLE_CAUSES]
            for px, hv, ty in zip(pos, h, tops):
                ax.text(
                    px,
                    ty + 0.01 * max(top, 1),
                    f"{hv:.1f}" if hv >= 1 else f"{hv:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("levels failed (%)")
        ax.set_ylim(0, top * 1.25 + 0.5)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)

    n = max((r["levels"] for r in rows), default=0)
    steps = report.settings.get("agent_steps")
    bars(
        axes[0],
        [(r["condition"], r["percent"]) for r in rows],
        f"This reproduction ({n:,} levels per model"
        + (f", agent at {steps:,} steps)" if steps else ")"),
        errs=[r["ci95"] for r in rows],
    )
    bars(axes[1], art_rows, f"Article ({ARTICLE_LEVELS:,} levels per model)")
    if diag:
        ax = axes[2]
        names_d = list(diag)
        xs = np.arange(2)
        w = 0.8 / len(names_d)
        for j, name in enumerate(names_d):
            d = diag[name]
            cond, _, variant = name.partition(":")
            vals = [
                100 * (d.get("value_blindness") or 0),
                100 * (d.get("policy_toward_hidden") or 0),
            ]
            label = CONDITION_TITLES.get(cond, cond) + (f" ({variant})" if variant else "")
            ax.bar(
                xs + (j - (len(names_d) - 1) / 2) * w,
                vals,
                w,
                label=label,
                color=colors.get(cond) if not variant else None,
                hatch="//" if variant else None,
                alpha=0.9 if not variant else 0.6,
            )
        ax.axhline(100, color="k", lw=0.6, ls="--")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels(
            ["value change\n(edit / saws hidden)", "policy: way to the\nsaws-hidden policy"],
            fontsize=7,
        )
        ax.set_ylabel("response to saws removed (%)")
        ax.set_title("Frame level: edit vs saws hidden", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    handles, names = [], []
    for ax in axes[:2]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if path is not None:
        fig.savefig(path)
    return fig


def plot_failures(
    results: dict[str, EvaluationResult],
    path: str | os.PathLike | None = None,
    title: str = "Failures by cause",
) -> Figure:
    """Grouped bar chart of failure % by cause, one bar per model (like the article's), with
    Wilson 95% error bars.

    >>> r = EvaluationResult(np.arange(4), ["saw", "success", "lava", "success"], np.ones(4))
    >>> fig = plot_failures({"agent": r})
    >>> fig.axes[0].get_xticklabels()[0].get_text()
    'buzzsaw'
    """
    from matplotlib.figure import Figure  # matplotlib only when drawing

    causes = list(FAILURE_CAUSES)
    fig = Figure(figsize=(7, 3.4), dpi=120)
    ax = fig.subplots()
    width = 0.8 / max(len(results), 1)
    for j, (name, r) in enumerate(results.items()):
        rates = [100 * r.failures[c] / r.levels for c in causes]
        cis = [wilson_interval(r.failures[c], r.levels) for c in causes]
        errs = np.array(
            [[rate - 100 * lo, 100 * hi - rate] for rate, (lo, hi) in zip(rates, cis)]
        ).T
        ax.bar(
            np.arange(len(causes)) + j * width,
            rates,
            width,
            yerr=errs,
            capsize=2,
            label=f"{name} (n={r.levels})",
        )
    ax.set_xticks(np.arange(len(causes)) + width * (len(results) - 1) / 2)
    ax.set_xticklabels([label(c).replace("enemy moving", "enemy\nmoving") for c in causes])
    ax.set_ylabel("levels failed (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
