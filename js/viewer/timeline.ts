// The viewer's timeline: a compressed filmstrip with episode boundaries and bookmark markers, and
// value (original, edited, re-run), advantage, selected-output and per-feature attribution charts
// with a playhead; drag to scrub, hover for a tooltip. The static part is cached on an offscreen
// canvas until `invalidate`; each draw adds only the playhead.
import { h } from "../model";
import { cssColor, RESIDUAL_CSS } from "../display";
import { Box, drawChart, drawXAxis, fitCanvas, fmt, Series, tOf, xOf } from "../plot";
import { Viewer } from "./state";

const SCRUB_RANGE: [number, number] = [42 / 64, 44 / 64]; // the original's filmstrip slice
const COL = { value: "#2ca02c", advantage: "#1f77b4", output: "#d62728", edited: "#ff7f0e", rerun: "#9467bd" };

export interface Timeline {
  draw: () => void; // repaint (rebuilding the cached base when invalid or resized)
  invalidate: () => void; // the base must be rebuilt on the next draw
}

/** Mount the timeline (.rlv-timeline) into `host`; `onScrub` runs when a drag starts. */
export function mountTimeline(v: Viewer, host: HTMLElement, onScrub: () => void): Timeline {
  const { ctx, model, data, root } = v;
  const tl = h("canvas", { class: "rlv-timeline-canvas", tabindex: "0", "data-lm-suppress-shortcuts": "true" });
  const tip = h("div", { class: "rlv-tooltip rlv-hidden" });
  host.append(h("div", { class: "rlv-timeline" }, tl, tip));

  const base = document.createElement("canvas");
  let layout: { W: number; H: number; film: Box; charts: { box: Box; title: string }[]; T: number } | null = null;
  let baseValid = false;
  const filmCache = new Map<number, HTMLCanvasElement>();
  ctx.listen("data", (key: string) => {
    if (key === "obs") filmCache.clear();
    baseValid = false;
  });

  const filmstrip = (e: number): HTMLCanvasElement | null => {
    if (filmCache.has(e)) return filmCache.get(e)!;
    const img = data.obs(e);
    const s = data.steps();
    if (!img || !s) return null;
    const S = data.obsSize();
    const x0 = Math.round(SCRUB_RANGE[0] * S);
    const sw = Math.max(1, Math.round(SCRUB_RANGE[1] * S) - x0);
    const T = Math.min(s.T, Math.floor(img.height / S));
    const out = new Uint8ClampedArray(T * sw * S * 4);
    const rowW = T * sw;
    for (let t = 0; t < T; t++) {
      for (let y = 0; y < S; y++) {
        const srcOff = ((t * S + y) * S + x0) * 4;
        const dstOff = (y * rowW + t * sw) * 4;
        out.set(img.data.subarray(srcOff, srcOff + sw * 4), dstOff);
      }
    }
    const c = document.createElement("canvas");
    c.width = rowW;
    c.height = S;
    c.getContext("2d")!.putImageData(new ImageData(out, rowW, S), 0, 0);
    filmCache.set(e, c);
    return c;
  };

  const chartSeries = (e: number): { title: string; series: Series[]; zero?: boolean }[] => {
    const s = data.steps()!;
    const off = e * s.T;
    const T = s.T;
    const values = s.values.subarray(off, off + T);
    const ed = data.editedFor(e);
    const rr = data.rerun();
    const rinfo = rr?.info ?? {};
    const vSeries: Series[] = [{ data: values, color: COL.value, label: "value" }];
    if (ed) vSeries.push({ data: ed.values, color: COL.edited, dash: [4, 3], label: "edited value" });
    if (rr && rinfo.trajectory === e) {
      const start = +(rinfo.start ?? 0);
      const shifted = new Float32Array(T).fill(NaN);
      for (let i = 0; i < rr.T && start + i < T; i++) shifted[start + i] = rr.values[i];
      vSeries.push({ data: shifted, color: COL.rerun, width: 1.2, label: "re-run value" });
    }
    const out: { title: string; series: Series[]; zero?: boolean }[] = [
      { title: `Value${ed ? " · orange dashed: edited agent" : ""}${vSeries.length > (ed ? 2 : 1) ? " · purple: edited re-run" : ""}`, series: vSeries },
      { title: "Advantage", series: [{ data: s.advantages.subarray(off, off + T), color: COL.advantage }], zero: true },
    ];
    const spec = data.outputSpec();
    if (spec !== "value" && s.A) {
      const ser: Series[] = [{ data: data.outputSeries(e, s.values, s.logits, off, T, s.A), color: COL.output }];
      if (ed && ed.logits.length === T * s.A) ser.push({ data: data.outputSeries(e, ed.values, ed.logits, 0, T, s.A), color: COL.edited, dash: [4, 3] });
      out.push({ title: `Output: ${model.get("output_label") || spec}`, series: ser });
    }
    const { a, tag } = v.attrFor(e);
    if (a && a.T === T) {
      const st = data.stats(a, a.E === 1 ? 0 : e, tag);
      const iso = ctx.isolated();
      const ser: Series[] = [];
      for (let c = 0; c < a.C; c++) {
        const isRes = c === a.K;
        if (isRes && !model.get("show_residual") && iso !== a.K) continue;
        const d = new Float32Array(T);
        for (let t = 0; t < T; t++) d[t] = st.totals[t * a.C + c];
        const dim = iso >= 0 && iso !== c;
        ser.push({ data: d, color: dim ? "rgba(0,0,0,0.12)" : isRes ? RESIDUAL_CSS : cssColor(c, a.K), width: iso === c ? 2.2 : 1.2 });
      }
      // Draw the isolated feature last (on top).
      ser.sort((x, y) => (x.width ?? 1) - (y.width ?? 1));
      out.push({ title: "Attribution per feature (Σ over positions)", series: ser, zero: true });
    }
    return out;
  };

  const computeLayout = () => {
    const s = data.steps();
    const W = Math.max(320, Math.floor(root.clientWidth || v.host.clientWidth || 760) - 2);
    const left = 52;
    const right = 10;
    const film: Box = { x: left, y: 4, w: W - left - right, h: 40 };
    const charts: { box: Box; title: string }[] = [];
    let y = film.y + film.h + 8;
    const specs = s ? chartSeries(Math.min(v.traj(), s.E - 1)) : [];
    const heights = specs.map((_, i) => (i === 0 ? 70 : 60));
    specs.forEach((sp, i) => {
      charts.push({ box: { x: left, y, w: film.w, h: heights[i] }, title: sp.title });
      y += heights[i] + 6;
    });
    const H = y + 18;
    layout = { W, H, film, charts, T: s?.T ?? 0 };
  };

  const drawBase = () => {
    computeLayout();
    const L = layout!;
    const g = fitCanvas(base, L.W, L.H);
    g.clearRect(0, 0, L.W, L.H);
    const s = data.steps();
    if (!s) {
      g.fillStyle = "#888";
      g.font = "12px system-ui, sans-serif";
      g.fillText("No trajectory loaded", 10, 20);
      baseValid = true;
      return;
    }
    const e = Math.min(v.traj(), s.E - 1);
    const T = s.T;
    const b = v.boundaries(e);
    // Filmstrip.
    const fs = filmstrip(e);
    g.fillStyle = "#222";
    g.fillRect(L.film.x, L.film.y, L.film.w, L.film.h);
    if (fs) {
      g.imageSmoothingEnabled = true;
      g.drawImage(fs, L.film.x, L.film.y, L.film.w, L.film.h);
    }
    g.fillStyle = "#333";
    g.font = "600 10.5px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    g.fillText("frames", L.film.x - 4, L.film.y + L.film.h / 2);
    g.strokeStyle = "rgba(255,255,255,0.85)";
    g.setLineDash([2, 2]);
    for (const t of b) {
      const xx = Math.round(L.film.x + (t / T) * L.film.w) + 0.5;
      g.beginPath();
      g.moveTo(xx, L.film.y);
      g.lineTo(xx, L.film.y + L.film.h);
      g.stroke();
    }
    g.setLineDash([]);
    // Bookmarks on this trajectory.
    const bms = (model.get("bookmarks") ?? []).filter((m) => m.trajectory === e);
    for (const m of bms) {
      const xx = xOf(m.frame, T, L.film);
      g.fillStyle = m.kind === "failure" ? "#d62728" : m.kind === "low" ? "#ff7f0e" : m.kind === "high" ? "#2ca02c" : "#9467bd";
      g.beginPath();
      g.moveTo(xx - 4, L.film.y + L.film.h);
      g.lineTo(xx + 4, L.film.y + L.film.h);
      g.lineTo(xx, L.film.y + L.film.h - 7);
      g.fill();
    }
    const specs = chartSeries(e);
    const ticks: number[] = [];
    specs.forEach((sp, i) => {
      const c = L.charts[i];
      if (!c) return;
      const drawn: number[] = [];
      drawChart(g, { T, box: c.box, title: sp.title, series: sp.series, boundaries: b, zeroLine: sp.zero, ticksOut: drawn });
      ticks.push(drawn.length);
    });
    // every chart's y scale: how many tick labels each one has (top to bottom)
    tl.dataset.yTicks = ticks.join(",");
    tl.dataset.charts = specs.map((sp) => sp.title.split(" ·")[0].split(":")[0]).join("|");
    const lastBox = L.charts.length ? L.charts[L.charts.length - 1].box : L.film;
    drawXAxis(g, T, lastBox);
    baseValid = true;
  };

  const draw = () => {
    if (!baseValid || !layout || (root.clientWidth && Math.abs(layout.W - (root.clientWidth - 2)) > 2)) drawBase();
    const L = layout!;
    const g = fitCanvas(tl, L.W, L.H);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, tl.width, tl.height);
    g.drawImage(base, 0, 0);
    const dpr = tl.width / L.W;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!L.T) return;
    const t = v.frame();
    const xx = Math.round(xOf(t, L.T, L.film)) + 0.5;
    const bottom = L.charts.length ? L.charts[L.charts.length - 1].box : L.film;
    g.strokeStyle = "#d62728";
    g.lineWidth = 1.5;
    g.beginPath();
    g.moveTo(xx, L.film.y - 2);
    g.lineTo(xx, bottom.y + bottom.h);
    g.stroke();
    g.strokeStyle = "#fff";
    g.lineWidth = 1;
    const fw = Math.max(3, L.film.w / L.T);
    g.strokeRect(xx - fw / 2 - 1, L.film.y - 1, fw + 2, L.film.h + 2);
  };

  // Interaction: drag to scrub, hover for a tooltip.
  let dragging = false;
  const tAt = (ev: PointerEvent) => {
    const r = tl.getBoundingClientRect();
    if (!layout || !layout.T) return -1;
    return tOf(ev.clientX - r.left, layout.T, layout.film);
  };
  ctx.dom(tl, "pointerdown", (ev: PointerEvent) => {
    const t = tAt(ev);
    if (t < 0) return;
    dragging = true;
    tl.setPointerCapture(ev.pointerId);
    onScrub();
    v.seek(t);
  });
  ctx.dom(tl, "pointermove", (ev: PointerEvent) => {
    const t = tAt(ev);
    if (t < 0) return;
    if (dragging) v.seek(t);
    const s = data.steps();
    if (!s) return;
    const e = Math.min(v.traj(), s.E - 1);
    const i = e * s.T + t;
    const names = model.get("action_names") ?? [];
    const r = tl.getBoundingClientRect();
    tip.textContent = `step ${t} · V ${fmt(s.values[i])} · A ${fmt(s.advantages[i])} · ${names[s.actions[i]] ?? s.actions[i]}${s.firsts[i] ? " · new episode" : ""}`;
    tip.classList.remove("rlv-hidden");
    tip.style.left = `${Math.min(ev.clientX - r.left + 12, r.width - 260)}px`;
    tip.style.top = `${ev.clientY - r.top + 14}px`;
  });
  const endDrag = (ev: PointerEvent) => {
    if (dragging) {
      dragging = false;
      try {
        tl.releasePointerCapture(ev.pointerId);
      } catch {
        /* released */
      }
      model.save_changes();
    }
  };
  ctx.dom(tl, "pointerup", endDrag);
  ctx.dom(tl, "pointercancel", endDrag);
  ctx.dom(tl, "pointerleave", () => tip.classList.add("rlv-hidden"));

  return { draw, invalidate: () => (baseValid = false) };
}
