// EditPanel: per NMF feature an edit strength (0 = original, 1 = its direction fully projected out
// of the layer's activations, P = I − s·v vᵀ/‖v‖²) and a switch-off toggle. Python recomputes the
// shown trajectory's value, policy and attribution live; "Re-run" collects a new trajectory with
// the edited agent on the same level and shows it beside the original.
import { Ctx, ensureStyle, h, panel, scheduler, widgetEntry } from "./model";
import { dataOf } from "./data";
import { cssColor } from "./display";
import { drawChart, fitCanvas } from "./plot";

export function mountEditPanel(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data = dataOf(ctx);
  const { root, body } = panel("Model editing",
    "Blind the agent to a feature: project its NMF direction out of the layer's activations (Appendix A). The shown trajectory's value, policy and attribution update live; Re-run plays the edited agent on the same level.");
  root.classList.add("rlv-edit");
  host.append(root);
  const sup = { "data-lm-suppress-shortcuts": "true" };
  const rows = h("div", { class: "rlv-edit-rows" });
  const reset = h("button", { class: "rlv-btn", text: "Reset edits", title: "Set every strength to 0 and switch every feature back on", ...sup });
  const rerun = h("button", { class: "rlv-btn rlv-primary", text: "Re-run agent with edits", title: "Collect a new trajectory with the edited agent on this trajectory's level and show it beside the original", ...sup });
  const note = h("span", { class: "rlv-muted" });
  const orig = h("canvas", { class: "rlv-cmp-canvas" });
  const edit = h("canvas", { class: "rlv-cmp-canvas" });
  const origCap = h("div", { class: "rlv-cmp-cap", text: "Original" });
  const editCap = h("div", { class: "rlv-cmp-cap", text: "Edited re-run" });
  const chart = h("canvas", { class: "rlv-cmp-chart" });
  const cmp = h("div", { class: "rlv-cmp rlv-hidden" },
    h("div", { class: "rlv-cmp-screens" }, h("div", {}, origCap, orig), h("div", {}, editCap, edit)), chart);
  body.append(rows, h("div", { class: "rlv-row" }, reset, rerun, note), cmp);

  let builtFor = "";
  type Row = { slider: HTMLInputElement; off: HTMLInputElement; val: HTMLElement; row: HTMLElement };
  let widgets: Row[] = [];
  const K = () => (model.get("n_features") as number) ?? 0;
  const arrays = (): [number[], boolean[]] => {
    const k = K();
    const s = [...((model.get("edit_strengths") as number[]) ?? [])];
    const o = [...((model.get("edit_off") as boolean[]) ?? [])];
    while (s.length < k) s.push(0);
    while (o.length < k) o.push(false);
    return [s.slice(0, k), o.slice(0, k)];
  };

  const build = () => {
    const k = K();
    const labels = (model.get("feature_labels") as string[]) ?? [];
    const key = `${k}|${labels.join("\u0001")}`;
    if (key === builtFor) return;
    builtFor = key;
    rows.replaceChildren();
    widgets = [];
    for (let i = 0; i < k; i++) {
      const slider = h("input", { type: "range", min: "0", max: "1", step: "0.05", class: "rlv-range", title: "Edit strength: 0 = original, 1 = direction fully projected out", ...sup });
      const off = h("input", { type: "checkbox", title: "Switch this feature off (strength 1)", ...sup });
      const val = h("span", { class: "rlv-val" });
      const row = h("div", { class: "rlv-edit-row", "data-feature": String(i) },
        h("span", { class: "rlv-swatch-sm", style: { background: cssColor(i, k) } }),
        h("span", { class: "rlv-edit-label", text: labels[i] || `feature ${i + 1}`, title: labels[i] || `feature ${i + 1}` }),
        slider, val, h("label", { class: "rlv-inline rlv-off", title: "Switch off" }, off, " off"));
      ctx.dom(row, "pointerenter", () => ctx.setHover(i));
      ctx.dom(row, "pointerleave", () => ctx.setHover(-1));
      ctx.dom(slider, "input", () => {
        const [s] = arrays();
        s[i] = +slider.value;
        val.textContent = (+slider.value).toFixed(2);
        ctx.set("edit_strengths", s, 300);
      });
      ctx.dom(slider, "change", () => model.save_changes());
      ctx.dom(off, "change", () => {
        const [, o] = arrays();
        o[i] = off.checked;
        ctx.set("edit_off", o);
      });
      rows.append(row);
      widgets.push({ slider, off, val, row });
    }
    if (!k) rows.append(h("div", { class: "rlv-muted", text: "No features to edit yet." }));
  };

  ctx.dom(reset, "click", () => {
    const k = K();
    model.set("edit_strengths", new Array(k).fill(0));
    model.set("edit_off", new Array(k).fill(false));
    // the re-run belongs to the edits: reset clears it (its curve and comparison) too
    for (const name of ["rerun_frames", "rerun_values", "rerun_actions", "rerun_rewards", "rerun_firsts"] as const) model.set(name, null);
    ctx.set("rerun_info", {});
  });
  ctx.dom(rerun, "click", () => {
    note.textContent = "Re-running…";
    model.send({ type: "rerun" });
  });

  const drawCompare = () => {
    const rr = data.rerun();
    const info = rr?.info ?? {};
    const e = (model.get("trajectory") as number) ?? 0;
    const show = !!rr && info.trajectory === e;
    cmp.classList.toggle("rlv-hidden", !show);
    if (!show || !rr) return;
    const t = (model.get("frame") as number) ?? 0;
    const S = 176;
    const os = data.obsSize();
    const paint = (c: HTMLCanvasElement, px: Uint8ClampedArray | null) => {
      const g = fitCanvas(c, S, S);
      g.fillStyle = "#222";
      g.fillRect(0, 0, S, S);
      if (!px) return;
      const tmp = document.createElement("canvas");
      tmp.width = os;
      tmp.height = os;
      tmp.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(px), os, os), 0, 0);
      g.imageSmoothingEnabled = false;
      g.drawImage(tmp, 0, 0, S, S);
    };
    paint(orig, data.frame(e, t));
    // One step base everywhere: steps of the shown trajectory (the re-run starts at `start`).
    const start = +(info.start ?? 0);
    const rt = Math.max(0, Math.min(t - start, rr.T - 1));
    const n = os * os * 4;
    paint(edit, rr.frames ? rr.frames.data.subarray(rt * n, (rt + 1) * n) : null);
    origCap.textContent = `Original · step ${t}${info.original_outcome ? ` · ${info.original_outcome}` : ""}`;
    editCap.textContent = t < start ? `Edited re-run · starts at step ${start}` : t - start >= rr.T ? `Edited re-run · ended at step ${start + rr.T - 1}` :
      `Edited re-run · step ${start + rt}${info.outcome ? ` · ${info.outcome}` : ""}`;
    const s = data.steps();
    if (!s) return;
    const W = Math.max(300, Math.min(560, root.clientWidth - 40));
    const g = fitCanvas(chart, W, 100);
    g.clearRect(0, 0, W, 100);
    const T = Math.max(s.T, start + rr.T);
    const shifted = new Float32Array(T).fill(NaN);
    for (let i = 0; i < rr.T; i++) shifted[start + i] = rr.values[i];
    drawChart(g, {
      T, box: { x: 44, y: 4, w: W - 54, h: 68 }, title: "Value: original (green) vs edited re-run (purple)",
      series: [{ data: s.values.subarray(e * s.T, (e + 1) * s.T), color: "#2ca02c" }, { data: shifted, color: "#9467bd" }],
      playhead: t, xAxis: true, boundaries: start > 0 ? [start] : [],
    });
  };

  const draw = () => {
    build();
    const [s, o] = arrays();
    widgets.forEach((w, i) => {
      w.slider.value = String(s[i]);
      w.val.textContent = o[i] ? "off" : s[i].toFixed(2);
      w.off.checked = o[i];
      w.slider.disabled = o[i] || ctx.isStatic;
      w.off.disabled = ctx.isStatic;
      w.row.classList.toggle("rlv-edited-row", o[i] || s[i] > 0);
    });
    rerun.disabled = ctx.isStatic || !!model.get("busy");
    reset.disabled = ctx.isStatic;
    const active = o.some((x) => x) || s.some((x) => x > 0);
    const info = model.get("rerun_info") ?? {};
    note.textContent = ctx.isStatic ? "Editing needs a live kernel (static export)." :
      info.message ? String(info.message) : active ? "Edits active: value, policy and attribution show the edited agent." : "";
    root.classList.toggle("rlv-edits-active", active);
    drawCompare();
  };
  const sched = scheduler(draw);
  ctx.watch(["n_features", "feature_labels", "edit_strengths", "edit_off", "busy", "rerun_info", "frame", "trajectory"], () => sched.request());
  ctx.listen("data", (k: string) => {
    if (k === "rerun" || k === "obs" || k === "steps") sched.request();
  });
  ctx.onDispose(() => sched.cancel());
  draw();
  return { redraw: draw };
}

export default widgetEntry(mountEditPanel);
