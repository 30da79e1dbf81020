// The viewer's policy: π(a | s) at the shown step as bars over actions, the action taken in red,
// the original policy dashed when edits are active, and a tooltip per bar. The actions that do
// nothing in CoinRun (`noop_actions`: the buttons D A W S Q E) are one "no-op keys" bar with
// their total probability unless "all 15" (`show_all_actions`) is on.
import { h } from "../model";
import { fitCanvas, niceTicks } from "../plot";
import { Viewer } from "./state";

function softmax(l: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  const out = new Float64Array(l.length);
  let s = 0;
  for (let i = 0; i < l.length; i++) s += out[i] = Math.exp(l[i] - m);
  for (let i = 0; i < l.length; i++) out[i] /= s;
  return out;
}

/** Mount the policy bars (.rlv-policy) into `host`; `draw` paints the shown step's policy. */
export function mountPolicy(view: Viewer, host: HTMLElement): { draw: () => void } {
  const { ctx, model, data } = view;
  const policyCanvas = h("canvas", { class: "rlv-policy-canvas" });
  const allBox = h("input", { type: "checkbox", class: "rlv-all-actions", title: "Show all 15 actions (the no-op keys D A W S Q E separately)", "data-lm-suppress-shortcuts": "true" });
  const policy = h("div", { class: "rlv-policy" },
    h("div", { class: "rlv-subtitle-row" },
      h("div", { class: "rlv-subtitle", text: "Policy π(a | s)", title: "Action probabilities at this step; red: the action taken. Dashed outline: the original policy when edits are active. ∅: the keys that do nothing in CoinRun (D A W S Q E), summed. Hover a bar for details." }),
      h("label", { class: "rlv-inline rlv-muted", title: "Show all 15 actions (the no-op keys D A W S Q E separately)" }, allBox, "all 15")),
    policyCanvas);
  host.append(policy);
  ctx.dom(allBox, "change", () => ctx.set("show_all_actions", allBox.checked));

  /** Bars: [action indices summed into the bar] in display order. */
  const barsOf = (A: number): number[][] => {
    if (model.get("show_all_actions")) return Array.from({ length: A }, (_, i) => [i]);
    const noop = new Set((model.get("noop_actions") ?? []).filter((i) => i < A));
    const bars: number[][] = [];
    for (let i = 0; i < A; i++) if (!noop.has(i)) bars.push([i]);
    if (noop.size) bars.push([...noop].sort((x, y) => x - y));
    return bars;
  };
  const sumOf = (p: Float64Array, idx: number[]) => idx.reduce((acc, i) => acc + p[i], 0);

  let policyState: { p: Float64Array; p0: Float64Array | null; taken: number; bars: number[][] } | null = null;
  const drawPolicy = (pa: Float64Array, p0a: Float64Array | null, taken: number) => {
    const bars = barsOf(pa.length);
    policyState = { p: pa, p0: p0a, taken, bars };
    const p = Float64Array.from(bars, (b) => sumOf(pa, b));
    const p0 = p0a ? Float64Array.from(bars, (b) => sumOf(p0a, b)) : null;
    const takenBar = bars.findIndex((b) => b.includes(taken));
    policy.dataset.bars = String(bars.length);
    const W = Math.max(180, Math.min(420, policy.clientWidth || host.clientWidth || 220));
    const Hh = 96;
    const g = fitCanvas(policyCanvas, W, Hh);
    g.clearRect(0, 0, W, Hh);
    const A = p.length;
    const left = 30, bottom = 18, top = 6;
    const bw = (W - left - 2) / A;
    let mx = 0;
    for (let i = 0; i < A; i++) mx = Math.max(mx, p[i], p0 ? p0[i] : 0);
    const ymax = [0.1, 0.2, 0.25, 0.5, 0.75, 1].find((v) => v >= mx - 1e-9) ?? 1;
    const yOf = (v: number) => top + (Hh - top - bottom) * (1 - v / ymax);
    g.font = "10px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of niceTicks(0, ymax, 3)) {
      const y = Math.round(yOf(v)) + 0.5;
      g.strokeStyle = v === 0 ? "#888" : "#eee";
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(W, y);
      g.stroke();
      g.fillStyle = "#666";
      g.fillText(`${+(v * 100).toFixed(1)}%`, left - 3, y);
    }
    const glyphs = model.get("action_glyphs") ?? [];
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let i = 0; i < A; i++) {
      const x = left + i * bw + 1;
      const group = bars[i].length > 1;
      g.fillStyle = i === takenBar ? "#d62728" : group ? "#cbd5e1" : "#9ca3af";
      const y = yOf(p[i]);
      g.fillRect(x, y, Math.max(1, bw - 2), yOf(0) - y);
      if (p0) {
        g.strokeStyle = "#374151";
        g.setLineDash([2, 2]);
        const y0 = yOf(p0[i]);
        g.strokeRect(x + 0.5, y0 + 0.5, Math.max(1, bw - 3), yOf(0) - y0);
        g.setLineDash([]);
      }
      g.fillStyle = i === takenBar ? "#d62728" : "#374151";
      g.font = `${i === takenBar ? "700 " : ""}11px system-ui, sans-serif`;
      g.fillText(group ? "∅" : glyphs[bars[i][0]] ?? String(bars[i][0]), x + bw / 2 - 1, Hh - bottom + 3);
    }
  };
  ctx.dom(policyCanvas, "mousemove", (ev: MouseEvent) => {
    if (!policyState) return;
    const r = policyCanvas.getBoundingClientRect();
    const { p, p0, taken, bars } = policyState;
    const A = bars.length;
    const i = Math.floor(((ev.clientX - r.left - 30) / (r.width - 32)) * A);
    if (i < 0 || i >= A) {
      policyCanvas.title = "";
      return;
    }
    const names = model.get("action_names") ?? [];
    const b = bars[i];
    const name = b.length > 1 ? `no-op keys (${b.map((j) => names[j] ?? j).join(" ")}: do nothing in CoinRun)` : names[b[0]] ?? b[0];
    const pb = sumOf(p, b);
    policyCanvas.title = `${name}: p = ${(100 * pb).toFixed(1)}%${p0 ? ` (original ${(100 * sumOf(p0, b)).toFixed(1)}%)` : ""}${b.includes(taken) ? ` · taken${b.length > 1 ? ` (${names[taken] ?? taken})` : ""}` : ""}`;
  });

  const draw = () => {
    allBox.checked = !!model.get("show_all_actions");
    const s = data.steps();
    if (!s || !s.A) return;
    const e = Math.min(view.traj(), s.E - 1);
    const t = Math.min(view.frame(), s.T - 1);
    const i = e * s.T + t;
    const ed = data.editedFor(e);
    const logits = ed && ed.logits.length === s.T * s.A ? ed.logits.subarray(t * s.A, (t + 1) * s.A) : s.logits.subarray(i * s.A, (i + 1) * s.A);
    drawPolicy(softmax(logits), ed ? softmax(s.logits.subarray(i * s.A, (i + 1) * s.A)) : null, s.actions[i]);
  };
  return { draw };
}
