"""The blindness experiments' report: the article's table beside ours, the statistical tests,
a verdict per edit, and the files (JSON, CSV, Markdown, chart, NMF) it is saved as and
rebuilt from.

>>> print(report.markdown_table())                                          # doctest: +SKIP
>>> paths = report.write("docs/results")                                    # doctest: +SKIP
>>> load_report("docs/results").verdict()["saw_blind"]["ratio"]             # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.features import FeatureIdentification, FeatureLabels, FeatureScores
from ..analysis.nmf import AttributionNMF
from ..files import json_safe
from ..rollouts.evaluate import EvaluationResult
from ..rollouts.stats import two_proportion_test, wilson_interval
from .article import (
    ARTICLE_LEVELS,
    ARTICLE_TABLE,
    CONDITION_TITLES,
    CONDITIONS,
    EDIT_TARGETS,
    TABLE_CAUSES,
    TABLE_HEADERS,
    table_counts,
)
from .charts import plot_blindness_chart
from .choice import EditChoice
from .statistics import compare_results, holm_adjust, paired_bootstrap_blindness

__all__ = ["BlindnessReport", "load_report"]


@dataclass
class BlindnessReport:
    """Results of :func:`~rlvision_widgets.studies.blindness.run_blindness_experiments`: per
    condition the evaluation ``results`` and the edit ``choices``, the run's ``settings``, the
    feature ``identification``, ``timings`` (s) and the frame-level ``diagnostics``
    (:func:`~rlvision_widgets.studies.removal.removal_effects`). Its methods compare, render
    and write them (see the module doc).

    >>> ones = np.ones(2, np.int64)
    >>> report = BlindnessReport({"original": EvaluationResult(np.arange(2), ["saw", "success"],
    ...                                                       ones)}, {}, {})
    >>> report.rows()[0]["percent"]
    {'saw': 50.0, 'enemy_left': 0.0, 'enemy_right': 0.0, 'other': 0.0}
    """

    results: dict[str, EvaluationResult]
    choices: dict[str, EditChoice]
    settings: dict[str, Any]
    identification: FeatureIdentification | None = None
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- numbers
    def comparisons(self) -> dict[str, dict[str, dict[str, Any]]]:
        """:func:`compare_results` of every condition against the original."""
        base = self.results["original"]
        return {
            name: compare_results(base, r) for name, r in self.results.items() if name != "original"
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per condition: % of levels failed by the article's four causes (ours and
        the article's), levels, success rate with CI."""
        out = []
        for name in [c for c in CONDITIONS if c in self.results or c in self.choices]:
            r = self.results.get(name)
            row: dict[str, Any] = {
                "condition": name,
                "title": CONDITION_TITLES[name],
                "article": ARTICLE_TABLE.get(name),
            }
            if r is None:
                row.update(levels=0, percent=None, note=self.choices[name].note)
            else:
                counts = table_counts(r)
                row.update(
                    levels=r.levels,
                    counts=counts,
                    percent={c: 100 * counts[c] / r.levels for c in TABLE_CAUSES},
                    ci95={
                        c: [100 * x for x in wilson_interval(counts[c], r.levels)]
                        for c in TABLE_CAUSES
                    },
                    success_rate=r.success_rate,
                    success_ci95=list(r.ci95),
                )
                if name in self.choices:
                    row["note"] = self.choices[name].note
            out.append(row)
        return out

    def verdict(self) -> dict[str, Any]:
        """Per edit: the target cause's rate ratio (CI, p), the ceiling ratio (100% / original
        rate), whether it reached 5x, which other causes changed significantly (raw p < 0.05
        and Holm-adjusted), and the blindness fraction for saws."""
        out: dict[str, Any] = {}
        comps = self.comparisons()
        base = self.results["original"]
        for cond, cls in EDIT_TARGETS.items():
            if cond not in self.results:
                if cond in self.choices:
                    out[cond] = {"evaluated": False, "note": self.choices[cond].note}
                continue
            comp = comps[cond]
            t = comp[cls]
            others = [c for c in TABLE_CAUSES if c != cls]
            raw_sig = [c for c in others if comp[c]["p"] < 0.05]
            holm_p = holm_adjust({c: comp[c]["p"] for c in others})
            holm_sig = [c for c in others if holm_p[c] < 0.05]
            base_rate = t["base_rate"]
            ceiling = (1.0 / base_rate) if base_rate > 0 else math.inf
            v = {
                "evaluated": True,
                "target_cause": cls,
                "base_rate": base_rate,
                "edited_rate": t["edited_rate"],
                "ratio": t["ratio"],
                "ratio_ci95": t["ratio_ci95"],
                "z": t["z"],
                "p": t["p"],
                "ceiling_ratio": ceiling,
                "reaches_5x": bool(t["ratio"] >= 5),
                "5x_possible": bool(ceiling >= 5),
                "other_causes_changed_p05": raw_sig,
                "other_causes_changed_holm": holm_sig,
                "other_causes": {
                    c: {
                        "base_rate": comp[c]["base_rate"],
                        "edited_rate": comp[c]["edited_rate"],
                        "z": comp[c]["z"],
                        "p": comp[c]["p"],
                        "p_holm": holm_p[c],
                    }
                    for c in others
                },
                "success_change": comp["success"]["edited_rate"] - comp["success"]["base_rate"],
                "success_p": comp["success"]["p"],
            }
            v["target_met"] = bool(v["reaches_5x"] and not raw_sig)
            if "control" in self.results:  # is the rise larger than a control edit's?
                kc = sum(o == cls for o in self.results["control"].outcomes)
                ke = sum(o == cls for o in self.results[cond].outcomes)
                n = self.results[cond].levels
                zc, pc = two_proportion_test(kc, n, ke, n)
                v["vs_control"] = {"control_rate": kc / n, "edited_rate": ke / n, "z": zc, "p": pc}
            if cls == "saw" and "invisible_saws" in self.results:
                b, lo, hi = paired_bootstrap_blindness(
                    base, self.results[cond], self.results["invisible_saws"]
                )
                v["blindness"] = b
                v["blindness_ci95"] = [lo, hi]
                inv = comps["invisible_saws"]["saw"]
                # complete blindness (saws not drawn) bounds what any edit can do
                v["invisible_ratio"] = inv["ratio"]
                v["invisible_p"] = inv["p"]
                v["5x_possible_invisible"] = bool(inv["ratio"] >= 5)
            out[cond] = v
        if "invisible_saws" in comps:
            c = comps["invisible_saws"]["saw"]
            out["invisible_saws"] = {
                "ratio": c["ratio"],
                "ratio_ci95": c["ratio_ci95"],
                "base_rate": c["base_rate"],
                "edited_rate": c["edited_rate"],
                "p": c["p"],
            }
        if "control" in comps:
            comp = comps["control"]
            out["control"] = {
                c: {
                    "base_rate": comp[c]["base_rate"],
                    "edited_rate": comp[c]["edited_rate"],
                    "p": comp[c]["p"],
                }
                for c in TABLE_CAUSES
            }
        return out

    # -------------------------------------------------------------- rendering
    def markdown_table(self, article: bool = True, digits: int = 2) -> str:
        """The article's table: % of levels failed by cause, ours (with article beside)."""
        head = ["model", "levels"] + [TABLE_HEADERS[c] for c in TABLE_CAUSES] + ["completed"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for row in self.rows():
            if row["percent"] is None:
                cells = [row["title"], "–"] + ["not run"] * len(TABLE_CAUSES) + ["–"]
            else:
                pct = row["percent"]
                cells = (
                    [row["title"], f"{row['levels']:,}"]
                    + [
                        f"{pct[c]:.{digits}f}%"
                        + (f" ({row['article'][c]:.2f}%)" if article and row["article"] else "")
                        for c in TABLE_CAUSES
                    ]
                    + [f"{100 * row['success_rate']:.1f}%"]
                )
            lines.append("| " + " | ".join(cells) + " |")
        if article:
            lines.append("")
            lines.append(
                f"In parentheses: the article's figures (footnotes 7 and 8, "
                f"{ARTICLE_LEVELS:,} levels each, fully trained agent)."
            )
        return "\n".join(lines)

    def tests_table(self, digits: int = 3) -> str:
        """Markdown: per condition and cause, rates, ratio (95% CI), z, p (two-proportion)."""
        lines = [
            "| model | cause | original | edited | ratio (95% CI) | z | p |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, comp in self.comparisons().items():
            for c in (*TABLE_CAUSES, "success"):
                d = comp[c]
                lo, hi = d["ratio_ci95"]
                ratio = "–" if not math.isfinite(d["ratio"]) else f"{d['ratio']:.2f}"
                lines.append(
                    f"| {CONDITION_TITLES[name]} | {TABLE_HEADERS.get(c, c)} | "
                    f"{100 * d['base_rate']:.2f}% | {100 * d['edited_rate']:.2f}% | "
                    f"{ratio} ({lo:.2f}–{hi:.2f}) | {d['z']:+.2f} | {_fmt_p(d['p'])} |"
                )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Everything, as plain JSON (per-level outcomes are in the CSV)."""
        ident = None
        if self.identification is not None:
            ident = {
                "layer": self.identification.layer,
                "output": self.identification.output,
                "meta": self.identification.meta,
                "features": self.identification.summary(),
                "scores": self.identification.scores.to_json(),
                "labels": (
                    None
                    if self.identification.labels is None
                    else self.identification.labels.to_json()
                ),
                "components": np.round(self.identification.nmf.components_, 6).tolist(),
            }
        return json_safe(
            {
                "settings": self.settings,
                "results": {k: r.to_json() for k, r in self.results.items()},
                "table": self.rows(),
                "article_table": ARTICLE_TABLE,
                "article_levels": ARTICLE_LEVELS,
                "comparisons": self.comparisons(),
                "verdict": self.verdict(),
                "edits": {k: c.to_json() for k, c in self.choices.items()},
                "feature_identification": ident,
                "frame_diagnostics": self.diagnostics,
                "timings_s": self.timings,
            }
        )

    def write(
        self,
        out_dir: str | os.PathLike,
        chart: str | os.PathLike | None = None,
        stem: str = "editing",
    ) -> dict[str, Path]:
        """Write ``<stem>.json``, ``<stem>_table.csv`` (article format), ``<stem>_levels.csv``
        (per level, every condition), ``<stem>_table.md`` and the chart (``chart`` or
        ``<stem>_chart.png``); the NMF as ``<stem>_nmf.npz/.json`` (reusable with
        ``rlvision evaluate --nmf``). Returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        paths["json"] = out / f"{stem}.json"
        paths["json"].write_text(json.dumps(self.to_json(), indent=1))
        paths["table_csv"] = out / f"{stem}_table.csv"
        with open(paths["table_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "condition",
                    "levels",
                    *[f"pct_{c}" for c in TABLE_CAUSES],
                    *[f"article_pct_{c}" for c in TABLE_CAUSES],
                    "success_rate",
                ]
            )
            for row in self.rows():
                pct = row["percent"] or {}
                art = row["article"] or {}
                w.writerow(
                    [
                        row["condition"],
                        row["levels"],
                        *[f"{pct[c]:.4f}" if c in pct else "" for c in TABLE_CAUSES],
                        *[art.get(c, "") for c in TABLE_CAUSES],
                        f"{row['success_rate']:.6f}" if "success_rate" in row else "",
                    ]
                )
        paths["levels_csv"] = out / f"{stem}_levels.csv"
        names = list(self.results)
        with open(paths["levels_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["level_seed", *[f"{n}_outcome" for n in names], *[f"{n}_length" for n in names]]
            )
            first = self.results[names[0]]
            for i, seed in enumerate(first.level_seeds.tolist()):
                w.writerow(
                    [
                        seed,
                        *[self.results[n].outcomes[i] for n in names],
                        *[int(self.results[n].lengths[i]) for n in names],
                    ]
                )
        paths["table_md"] = out / f"{stem}_table.md"
        paths["table_md"].write_text(self.markdown_table() + "\n\n" + self.tests_table() + "\n")
        paths["chart"] = Path(chart) if chart else out / f"{stem}_chart.png"
        paths["chart"].parent.mkdir(parents=True, exist_ok=True)
        plot_blindness_chart(self, paths["chart"])
        if self.identification is not None:
            paths["nmf"] = self.identification.nmf.save(out / f"{stem}_nmf")
            for ext in (".npz", ".json"):  # readable like the other outputs
                paths["nmf"].with_suffix(ext).chmod(0o644)
        return paths


def load_report(out_dir: str | os.PathLike, stem: str = "editing") -> BlindnessReport:
    """Rebuild a :class:`BlindnessReport` from the files :meth:`BlindnessReport.write` wrote
    (``<stem>.json``, ``<stem>_levels.csv``, ``<stem>_nmf``), e.g. to redraw the chart or the
    doc without re-running the evaluations.

    >>> report = load_report("docs/results")                                  # doctest: +SKIP
    """
    out = Path(out_dir)
    jpath, lpath = out / f"{stem}.json", out / f"{stem}_levels.csv"
    if not jpath.is_file() or not lpath.is_file():
        raise FileNotFoundError(
            f"no saved blindness experiments in {out} (need {jpath.name} and "
            f"{lpath.name}; run scripts/reproduce_editing.py first)"
        )
    data = json.loads(jpath.read_text())
    with open(lpath, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    seeds = np.array([int(r[0]) for r in body], dtype=np.int64)
    results = {}
    for name, res in data["results"].items():
        io, il = head.index(f"{name}_outcome"), head.index(f"{name}_length")
        results[name] = EvaluationResult(
            seeds,
            [r[io] for r in body],
            np.array([int(r[il]) for r in body], np.int64),
            res.get("settings", {}),
        )

    def arr(x: Any) -> np.ndarray:
        return (
            np.array([[np.nan if v is None else v for v in row] for row in x], np.float64)
            if x and isinstance(x[0], list)
            else np.array([np.nan if v is None else v for v in x], np.float64)
        )

    choices = {
        k: EditChoice(**{**c, "score": np.nan if c["score"] is None else c["score"]})
        for k, c in data.get("edits", {}).items()
    }
    ident = None
    fi = data.get("feature_identification")
    if fi and (out / f"{stem}_nmf.npz").is_file():
        sc = fi["scores"]
        scores = FeatureScores(
            tuple(sc["classes"]),
            arr(sc["correlation"]),
            arr(sc["mass_share"]),
            arr(sc["lift"]),
            arr(sc["recall"]),
            arr(sc["area_share"]),
            np.array(sc["frames_with_class"]),
            int(sc["n_frames"]),
            sc["metric"],
            sc.get("meta", {}),
        )
        ident = FeatureIdentification(
            AttributionNMF.load(out / f"{stem}_nmf"),
            scores,
            fi["layer"],
            fi["output"],
            np.zeros((0, 2), np.int64),
            fi.get("meta", {}),
            FeatureLabels.from_json(fi["labels"]) if fi.get("labels") else None,
        )
    return BlindnessReport(
        results,
        choices,
        data["settings"],
        ident,
        data.get("timings_s", {}),
        data.get("frame_diagnostics") or {},
    )


def _fmt_p(p: float) -> str:
    return "<1e-300" if p == 0 else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")
