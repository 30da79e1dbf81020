"""Widget responsiveness and payload benchmark.

Measures, on the Explorer over E trajectories x T steps (default 8 x 512, the article's size):

* payload: MB of binary widget state sent to the browser (goal <= 30 MB for 8 x 512);
* scrub redraw: ms per frame to redraw the viewer (3 canvases with attribution overlays, info,
  policy, timeline playhead) in headless Chromium (goal <= 16 ms);
* rank change: Python (NMF refit + reduction of the shown trajectory, first push) + browser
  (decode, legend, overlays) until the new legend and overlays are drawn (goal <= 2 s);
* feature switch-off: Python (edited forward pass -> value graph; edited attribution of the
  frames around the current one -> overlays) + browser redraw (goal <= 2 s).

    python benchmarks/bench_widgets.py                 # 8 x 512 (takes a few minutes here)
    python benchmarks/bench_widgets.py --envs 2 --steps 64 --json out.json
    python benchmarks/bench_widgets.py --threads 1     # e.g. on a busy machine
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def _load_agent():
    from rlvision_widgets.agents.registry import resolve_agent

    return resolve_agent(None).eval(), "shipped reference agent"


class _Pushes:
    """Records when traits change (the moment Python sends them to the browser)."""

    def __init__(self, widget, names):
        self.t: dict[str, list[float]] = {n: [] for n in names}
        widget.observe(lambda ch: self.t[ch["name"]].append(time.perf_counter()), names=names)

    def first_after(self, name: str, t0: float) -> float:
        return min(x for x in self.t[name] if x >= t0) - t0


def _push_js(page, widget, names):
    """Send the current values of ``names`` to the page's model like a kernel update; returns
    the browser time (ms) to apply them and redraw every view synchronously."""
    from browser.harness import payload

    p = payload(widget)
    return page.evaluate(
        """([p, names]) => { const b64 = (s) => { const bin = atob(s); const u = new Uint8Array(bin.length);
             for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i); return new DataView(u.buffer); };
           const ch = {}; for (const n of names) ch[n] = p.state[n];
           for (const b of p.buffers) if (names.includes(b.path[0])) {  // nested: data, scales.data
             let o = ch; for (let i = 0; i < b.path.length - 1; i++) o = o[b.path[i]];
             o[b.path[b.path.length - 1]] = b64(b.data); }
           const t0 = performance.now();
           window.model.fromPython(ch);
           const api = window.el.rlv; api.viewer.redraw(); api.legend.redraw(); api.edit.redraw();
           return performance.now() - t0; }""",
        [p, names],
    )


ATTR = [
    "attributions",
    "n_features",
    "feature_labels",
    "rank",
    "thumbnails",
    "edit_strengths",
    "edit_off",
]
EDITED = ["edited_values", "edited_logits", "edited_trajectory", "edited_attributions", "edit_off"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--frames", type=int, default=200, help="frames to time when scrubbing")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own setting)",
    )
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)

    from browser.harness import launch, mount, skip_reason

    from rlvision_widgets.rollouts import collect_trajectories
    from rlvision_widgets.widgets import Explorer

    torch.manual_seed(0)
    agent, agent_note = _load_agent()
    res: dict = {
        "envs": a.envs,
        "steps": a.steps,
        "rank": a.rank,
        "agent": agent_note,
        "torch_threads": torch.get_num_threads(),
    }
    t0 = time.perf_counter()
    traj = collect_trajectories(agent, a.envs, a.steps, seed=0, progress=False)
    res["collect_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    ex = Explorer(agent, traj, rank=a.rank, background=False, suggest_labels=False, prefetch=False)
    res["initial_analysis_s"] = round(time.perf_counter() - t0, 2)
    sizes = ex.payload_bytes()
    res["payload_mb"] = round(sizes["total"] / 1e6, 2)
    res["payload_breakdown_mb"] = {
        k: round(v / 1e6, 3) for k, v in sizes.items() if v > 10_000 and k != "total"
    }
    print(f"payload {res['payload_mb']} MB for {a.envs} x {a.steps} (goal <= 30 MB)", flush=True)

    reason = skip_reason()
    if reason:
        print(f"browser part skipped: {reason}")
        return res
    with launch() as browser:
        page = browser.new_page()
        ex.frame = min(100, a.steps - 1)
        mount(page, ex, width=1280)
        page.wait_for_timeout(100)
        # --- scrub redraw
        ms = page.evaluate(
            """(n) => { const api = window.el.rlv; const T = window.model.get('n_steps');
                 const out = []; api.viewer.redraw();
                 for (let i = 0; i < n; i++) { const t0 = performance.now();
                   window.model.set('frame', (i * 7) % T); api.viewer.redraw();
                   out.push(performance.now() - t0); }
                 return out; }""",
            a.frames,
        )
        ms = np.asarray(ms)
        res["scrub_ms_mean"] = round(float(ms.mean()), 2)
        res["scrub_ms_p95"] = round(float(np.percentile(ms, 95)), 2)
        print(
            f"scrub redraw {res['scrub_ms_mean']} ms/frame (p95 {res['scrub_ms_p95']}; goal <= 16)",
            flush=True,
        )

        # --- rank change: Python to the first push (NMF for the new rank + the frames around
        # the shown one) + browser redraw. First an uncached rank (refit from the coreset),
        # then a neighbouring rank after the idle-time prefetch (the slider's usual step).
        pushes = _Pushes(ex, ["attributions", "n_features", "edited_values", "edited_attributions"])
        for label, new_rank, warm in (
            ("refit", max(2, a.rank - 2), False),
            ("prefetched", max(2, a.rank - 2) + 1, True),
        ):
            if warm:
                ex._job_prefetch(lambda *_: None)  # what idle time does in a kernel
            t0 = time.perf_counter()
            ex.rank = new_rank
            total_py = time.perf_counter() - t0
            first_py = pushes.first_after("attributions", t0)
            first_js = _push_js(page, ex, ATTR)
            entries = page.locator(".rlv-legend-item").count()
            assert entries == new_rank + 1, entries
            key = "rank_change_s" if not warm else "rank_change_prefetched_s"
            res[key] = round(first_py + first_js / 1000, 3)
            res[key.replace("_s", "_detail")] = {
                "to_rank": new_rank,
                "python_first_push_s": round(first_py, 3),
                "browser_ms": round(first_js, 1),
                "python_all_trajectories_s": round(total_py, 3),
            }
            print(
                f"rank change ({label}) -> {new_rank}: {res[key]} s to legend + overlays "
                f"(all trajectories {total_py:.2f} s; goal <= 2 s)",
                flush=True,
            )

        # --- feature switch-off: value graph, then overlays of the current frame
        t0 = time.perf_counter()
        ex.edit_off = [True] + [False] * (ex.n_features - 1)
        total_py = time.perf_counter() - t0
        value_py = pushes.first_after("edited_values", t0)
        overlay_py = (
            min(x for x in pushes.t["edited_attributions"] if x >= t0 and x > t0 + value_py) - t0
        )
        js = _push_js(page, ex, EDITED)
        res["switch_off_s"] = round(overlay_py + js / 1000, 3)
        res["switch_off_detail"] = {
            "python_value_graph_s": round(value_py, 3),
            "python_first_overlays_s": round(overlay_py, 3),
            "browser_ms": round(js, 1),
            "python_all_frames_s": round(total_py, 3),
        }
        print(
            f"switch-off: value graph after {value_py:.2f} s, overlays after "
            f"{res['switch_off_s']} s (whole trajectory {total_py:.2f} s; goal <= 2 s)",
            flush=True,
        )
    ex.close()
    out = json.dumps(res, indent=2)
    print(out)
    if a.json:
        Path(a.json).write_text(out)
    return res


if __name__ == "__main__":
    main()
