#!/usr/bin/env python
"""Re-run the article's model-editing reproduction (buzzsaw / left-enemy blindness) on an agent.

Finds the saw and left-enemy features automatically, edits the agent, evaluates the original,
the edited agents, the invisible-saws control and a control edit on the same levels, and writes

* ``docs/results/editing.json``, ``editing_table.csv``, ``editing_levels.csv``,
  ``editing_table.md``, ``editing_nmf.npz/.json``  (``--out``)
* ``docs/images/editing_chart.png``                                           (``--chart``)
* the generated section of ``docs/editing.md``                                (``--doc``)

Usage (from the repository root)::

    .venv/bin/python scripts/reproduce_editing.py                 # shipped agent, 10,000 levels
    .venv/bin/python scripts/reproduce_editing.py --agent runs/reference --levels 2000
    .venv/bin/python scripts/reproduce_editing.py --from-results docs/results   # redraw only
    .venv/bin/python scripts/reproduce_editing.py --engine ray     # levels split over Ray workers

Runtime on the shared 2-core machine (one torch thread): about 1.5 minutes for the corpus,
features and frame-level checks, plus 2.5-3 minutes per model at 10,000 levels (30-40 s at
2,000); up to six models: about 15 minutes at 10,000 levels, 4-5 minutes at 2,000.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEGIN = "<!-- BEGIN GENERATED: scripts/reproduce_editing.py -->"
END = "<!-- END GENERATED -->"
ARTICLE_BLINDNESS = (12.76 - 0.37) / (32.20 - 0.37)


def _default_agent() -> str:
    from rlvision_widgets.agents.registry import reference_agents

    return "coinrun" if "coinrun" in reference_agents() else "runs/reference"


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def _p(p: float) -> str:
    return "< 1e-300" if p == 0 else (f"{p:.1e}" if p < 0.001 else f"{p:.3f}")


def generated_section(
    report, paths: dict, agent_name: str, runtime_s: float, chart_rel: str
) -> str:
    """Markdown for the generated block of docs/editing.md."""
    from rlvision_widgets.studies.article import CONDITION_TITLES, TABLE_HEADERS

    s = report.settings
    v = report.verdict()
    comps = report.comparisons()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "",
        f"*Generated {now} by `scripts/reproduce_editing.py` in {runtime_s / 60:.1f} min.*",
        "",
        f"**Agent** `{agent_name}`"
        + (f" ({s['agent_steps']:,} training steps)" if s.get("agent_steps") else "")
        + f"; **levels** {s['start_level']}–{s['start_level'] + s['levels'] - 1} "
        f"({s['levels']:,} per model, the same levels for every model, one episode each, "
        f"actions sampled, seed {s['seed']}); CoinRun {s['env_options']['distribution_mode']}"
        f" with the agent's training options; edit: NMF rank {s['rank']} at layer "
        f"`{s['layer']}`, `{s['mode']}` mode, strength {s['strength']}; corpus for the "
        f"features: {s['corpus']['num_envs']} × {s['corpus']['num_steps']} steps "
        f"(seed {s['corpus']['seed']}).",
        "",
        "### Failures by cause (% of levels; the article's figures in parentheses)",
        "",
        report.markdown_table(),
        "",
        f"![Failures by cause]({chart_rel})",
        "",
        "### Two-proportion z-tests against the original model (same levels)",
        "",
        report.tests_table(),
        "",
    ]
    lines += ["### Verdict", ""]
    for cond in ("saw_blind", "saw_blind_all"):
        sb = v.get(cond)
        if sb is None:
            continue
        title = CONDITION_TITLES[cond]
        if not sb.get("evaluated"):
            lines.append(f"* **{title}** not evaluated: {sb.get('note', '')}.")
            continue
        lo, hi = sb["ratio_ci95"]
        ceiling = sb["ceiling_ratio"]
        lines.append(
            f"* **{title}.** Saw failures {_pct(sb['base_rate'])} → "
            f"{_pct(sb['edited_rate'])}: ×{sb['ratio']:.2f} (95% CI {lo:.2f}–{hi:.2f}, "
            f"z = {sb['z']:+.2f}, p = {_p(sb['p'])}); the article: 0.37% → 12.76% (×34.5). "
            f"Target ≥ 5×: **{'met' if sb['reaches_5x'] else 'not met'}**; issue 13's goal "
            f"≥ 10×: **{'met' if sb['ratio'] >= 10 else 'not met'}**"
            + (
                ""
                if sb["5x_possible"]
                else f" — and not reachable by this agent: its saw failure rate is already "
                f"{_pct(sb['base_rate'])}, so even failing *every* level on a saw would be "
                f"only ×{ceiling:.1f}"
            )
            + (
                ""
                if "invisible_ratio" not in sb or sb.get("5x_possible_invisible")
                else ("; more to the point, m" if not sb["5x_possible"] else " — m")
                + f"aking the saws completely invisible raises saw failures"
                f" only ×{sb['invisible_ratio']:.2f} (p = {_p(sb['invisible_p'])}), and no edit"
                " of the network can blind it more than not drawing the saws at all"
            )
            + "."
        )
        changed = sb["other_causes_changed_p05"]
        holm = sb.get("other_causes_changed_holm", [])
        lines.append(
            "  Other causes: "
            + (
                "no significant change (all p ≥ 0.05: "
                + ", ".join(
                    f"{TABLE_HEADERS[c]} p = {_p(d['p'])}" for c, d in sb["other_causes"].items()
                )
                + ")"
                if not changed
                else "significant change in "
                + ", ".join(
                    f"{TABLE_HEADERS[c]} "
                    f"({_pct(sb['other_causes'][c]['base_rate'])} → "
                    f"{_pct(sb['other_causes'][c]['edited_rate'])}, p = "
                    f"{_p(sb['other_causes'][c]['p'])})"
                    for c in changed
                )
            )
            + (
                ""
                if not changed
                else " — "
                + ("also significant" if holm else "not significant")
                + " after Holm correction across the three other causes ("
                + ", ".join(
                    f"{TABLE_HEADERS[c]} p_holm = {_p(sb['other_causes'][c]['p_holm'])}"
                    for c in changed
                )
                + ")"
            )
            + f". Levels completed: {sb['success_change'] * 100:+.2f} points "
            f"(p = {_p(sb['success_p'])})."
        )
        if "vs_control" in sb:
            vc = sb["vs_control"]
            lines.append(
                f"  Against the control edit on the same levels: saw failures "
                f"{_pct(vc['control_rate'])} (control) vs {_pct(vc['edited_rate'])} "
                f"(z = {vc['z']:+.2f}, p = {_p(vc['p'])})."
            )
        if "blindness" in sb and sb["blindness"] is not None and math.isfinite(sb["blindness"]):
            blo, bhi = sb["blindness_ci95"]
            lines.append(
                "  How blind? (edited − original) / (invisible − original) saw-failure rate"
                f" = {sb['blindness']:.0%} (paired bootstrap 95% CI {blo:.0%}–{bhi:.0%}); the "
                f'article: {ARTICLE_BLINDNESS:.0%} ("around 50%" at best with iterated '
                "edits)."
            )
    le = v.get("left_enemy_blind", {})
    if le.get("evaluated"):
        lo, hi = le["ratio_ci95"]
        lines.append(
            f"* **Enemy-moving-left blindness.** Left-enemy failures {_pct(le['base_rate'])} → "
            f"{_pct(le['edited_rate'])}: ×{le['ratio']:.2f} (95% CI {lo:.2f}–{hi:.2f}, p = "
            f"{_p(le['p'])}); the article: 0.16% → 4.69% (×29). Other causes changed "
            "(p < 0.05): "
            + (", ".join(TABLE_HEADERS[c] for c in le["other_causes_changed_p05"]) or "none")
            + "."
        )
    else:
        lines.append(f"* **Enemy-moving-left blindness** not run: {le.get('note', '')}.")
    inv = v.get("invisible_saws")
    if inv:
        lines.append(
            f"* **Invisible buzzsaws** (control): saw failures "
            f"{_pct(inv['base_rate'])} →"
            f" {_pct(inv['edited_rate'])} (×{inv['ratio']:.2f}); the article: 0.37% → "
            "32.20%."
        )
    ctl = report.choices.get("control")
    if ctl is not None and "control" in comps:
        c = comps["control"]
        lines.append(
            f"* **Control edit** ({ctl.note}): saw {_pct(c['saw']['base_rate'])} → "
            f"{_pct(c['saw']['edited_rate'])} (p = {_p(c['saw']['p'])}), enemies "
            f"{_pct(c['enemy_left']['base_rate'] + c['enemy_right']['base_rate'])} → "
            f"{_pct(c['enemy_left']['edited_rate'] + c['enemy_right']['edited_rate'])}, other "
            f"{_pct(c['other']['base_rate'])} → {_pct(c['other']['edited_rate'])} "
            f"(p = {_p(c['other']['p'])})."
        )
    diag = getattr(report, "diagnostics", {}) or {}
    if diag:
        lines += [
            "",
            "### Does the edit blind the network? (frame level, corpus frames)",
            "",
            "On corpus frames where the object is in view, each frame is re-rendered with "
            "the object not drawn. *Hidden*: how the original network's value and policy "
            "change when the object is hidden; *edit*: how they change when the edited "
            "network sees the unchanged frame. Value blindness = Δvalue edit / Δvalue "
            "hidden (1 = the edit removes the value's whole response to the object; the "
            "correlation across frames says whether it does so frame by frame). Policy: "
            "the share of the way from the original policy to the policy with the object "
            "hidden that the edited policy goes, 1 − KL(hidden‖edited) / "
            "KL(hidden‖original). The last columns show the edit's side effects on frames "
            "without the object.",
            "",
            "| edit (features, mode) | object | frames | value | Δvalue hidden | "
            "Δvalue edit | value "
            "blindness (corr) | KL policy hidden | KL policy edit | policy: way to the "
            "hidden-object policy | "
            "\\|Δvalue\\| edit, frames without | KL edit, frames without |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]

        def f(x, fmt="{:.3f}"):
            return "–" if x is None else fmt.format(x)

        for name, d in diag.items():
            cond, _, variant = name.partition(":")
            title = CONDITION_TITLES.get(cond, cond) + {
                "": "",
                "activation": " — activation edit",
                "weight": " — weight edit",
                "all_features": " — all its features",
            }.get(variant, f" — {variant}")
            feats = ", ".join(str(k) for k in d.get("features", []))
            title += f" ({feats}; {d.get('mode', '')})"
            if not d.get("frames"):
                lines.append(f"| {title} | {d.get('class')} | 0 | " + " | ".join(["–"] * 9) + " |")
                continue
            lines.append(
                f"| {title} | {TABLE_HEADERS.get(d['class'], d['class'])} | "
                f"{d['frames']} | {f(d['value'], '{:.2f}')} | {f(d['value_hidden'], '{:+.3f}')} | "
                f"{f(d['value_edit'], '{:+.3f}')} | {f(d['value_blindness'], '{:.0%}')} "
                f"({f(d['value_corr'], '{:.2f}')}) | {f(d['policy_kl_hidden'], '{:.4f}')} | "
                f"{f(d['policy_kl_edit'], '{:.4f}')} | {f(d.get('policy_toward_hidden'), '{:.0%}')} | "
                f"{f(d.get('value_abs_edit_without'))} | "
                f"{f(d.get('policy_kl_edit_without'), '{:.4f}')} |"
            )
    lines += ["", "### Feature identification (automatic)", ""]
    ident = report.identification
    if ident is not None:
        lines.append(
            f"Value attributions at `{ident.layer}` (integrated gradients, 10 steps, "
            f"zero baseline), NMF rank {ident.meta['rank']} on {ident.meta['frames']:,} "
            "frames. Each feature is identified by its 32 strongest examples (the layer's "
            "activations projected on its direction, at most one cell per frame): the share "
            "lying on or next to each object class (engine boxes) against the class's base "
            "rate, with a permutation test; a label needs share >= 0.5, >= 3x the base rate "
            "and p <= 0.01, else the feature is unidentified. An edit named by a class "
            "projects out every feature identified with it. Edited features: "
            + "; ".join(f"{CONDITION_TITLES[k]}: {c.note}" for k, c in report.choices.items())
            + "."
        )
        if ident.labels is not None:
            lines += ["", ident.labels.table(), ""]

    def rel(p) -> str:
        p = Path(p)
        return str(p.relative_to(ROOT)) if p.is_absolute() and ROOT in p.parents else str(p)

    files = ", ".join(f"`{rel(p)}`" for p in paths.values())
    lines += ["", f"Files: {files}.", "", END]
    return "\n".join(lines)


DOC_TEMPLATE = """# Model editing: reproducing the article's blindness experiments

{generated}
"""


def write_doc(doc: Path, section: str) -> None:
    """Replace the generated block of ``doc`` (or create the doc around it)."""
    if doc.is_file():
        text = doc.read_text()
        if BEGIN in text and END in text:
            text = re.sub(
                re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: section, text, flags=re.S
            )
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
    else:
        text = DOC_TEMPLATE.format(generated=section)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--agent",
        default=None,
        help="agent name or checkpoint/run folder "
        "(default: the shipped 'coinrun' agent, else runs/reference)",
    )
    p.add_argument(
        "--levels",
        type=int,
        default=10000,
        help="levels per model (default 10000, the article's; >= 2000 recommended)",
    )
    p.add_argument("--start-level", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="action-sampling seed")
    p.add_argument("--layer", default=None, help="layer to edit (default: the object layer)")
    p.add_argument("--rank", type=int, default=8, help="NMF rank (default 8, the article's)")
    p.add_argument("--mode", default="weight", choices=["weight", "activation"])
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument(
        "--conditions",
        default=None,
        help="comma-separated subset of original,saw_blind,left_enemy_blind,"
        "invisible_saws,control (default: all)",
    )
    p.add_argument("--corpus-envs", type=int, default=8)
    p.add_argument("--corpus-steps", type=int, default=512)
    p.add_argument("--corpus-seed", type=int, default=0)
    p.add_argument("--unidentified", default="skip", choices=["skip", "run"])
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--chart", default=str(ROOT / "docs" / "images" / "editing_chart.png"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "editing.md"))
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/editing.md")
    p.add_argument("--save-agents", metavar="DIR", help="also save the edited agents here")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared CPU, more threads than free "
        "cores slow the small-batch forward passes down by 10-100x)",
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="where the evaluations run: local (default) or ray (each model's levels split "
        "over Ray workers, --threads torch threads per task; the same results)",
    )
    p.add_argument("--address", default=None, help="with --engine ray: join this Ray cluster")
    p.add_argument(
        "--parts", type=int, default=None, help="tasks per model (default: one per Ray worker)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--from-results",
        metavar="DIR",
        help="do not evaluate: reload the results "
        "saved in DIR (e.g. docs/results) and rewrite the chart, tables and doc",
    )
    a = p.parse_args(argv)

    import torch

    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.studies.article import CONDITIONS
    from rlvision_widgets.studies.blindness import run_blindness_experiments

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    conditions = (
        CONDITIONS
        if not a.conditions
        else tuple(c.strip() for c in a.conditions.split(",") if c.strip())
    )
    t0 = time.perf_counter()
    if a.from_results:
        from rlvision_widgets.studies.report import load_report

        report = load_report(a.from_results)
        agent_name = report.settings.get("agent", "?")
        paths = report.write(a.out, chart=a.chart)
        runtime = float(report.settings.get("runtime_s") or sum(report.timings.values()))
    else:
        agent_name = a.agent or _default_agent()
        agent = load_agent(agent_name)
        report = run_blindness_experiments(
            agent,
            levels=a.levels,
            start_level=a.start_level,
            seed=a.seed,
            layer=a.layer,
            rank=a.rank,
            mode=a.mode,
            strength=a.strength,
            conditions=conditions,
            corpus_envs=a.corpus_envs,
            corpus_steps=a.corpus_steps,
            corpus_seed=a.corpus_seed,
            unidentified=a.unidentified,
            progress=not a.quiet,
            engine=a.engine,
            address=a.address,
            threads=a.threads if a.threads > 0 else None,
            parts=a.parts,
        )
        report.settings["agent"] = agent_name
        report.settings["runtime_s"] = round(time.perf_counter() - t0, 1)
        report.settings["threads"] = a.threads
        report.settings["engine"] = a.engine
        paths = report.write(a.out, chart=a.chart)
        runtime = time.perf_counter() - t0
    if a.save_agents and not a.from_results:
        from rlvision_widgets.studies.blindness import blind_agent

        for cond, ch in report.choices.items():
            if ch.feature is not None:
                blind_agent(
                    agent,
                    ch.all_directions,
                    report.settings["layer"],
                    a.mode,
                    a.strength,
                    label=f"{cond}: feature {ch.feature} ({ch.cls})",
                ).save(Path(a.save_agents) / cond, meta={"edit_condition": cond})
    print(report.markdown_table())
    print()
    print(report.tests_table())
    if not a.no_doc:
        doc = Path(a.doc)
        try:
            chart_rel = str(Path(a.chart).resolve().relative_to(doc.resolve().parent))
        except ValueError:
            chart_rel = str(Path(a.chart).resolve())
        write_doc(doc, generated_section(report, paths, agent_name, runtime, chart_rel))
        print(f"\nwrote {doc}")
    for path in paths.values():
        print(f"wrote {path}")
    print(f"total {runtime / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
