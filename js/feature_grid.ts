// FeatureGrid: the spatially-aware dataset-example mosaic of one NMF feature. Each cell shows, at
// its spatial position, the observation patch with the strongest activation there (transparency =
// weak response, stripes = nothing). Zoom is local; density asks Python for a new mosaic. Pressing
// a cell shows its source observation with the cell's region outlined, and can move the timeline.
import { Ctx, ensureStyle, h, panel, scheduler, widgetEntry } from "./model";
import { dataOf } from "./data";
import { bytesOf, decodePNG, RGBAImage } from "./decode";
import { cssColor } from "./display";

export function mountFeatureGrid(ctx: Ctx, host: HTMLElement, opts: { closable?: boolean } = {}): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data = dataOf(ctx);
  const { root, body } = panel("Spatially-aware feature visualization",
    "For each spatial position, the dataset observation whose activation of this feature is strongest there (limited reuse for diversity); transparency shows a weak response. Press a cell to see its source observation.");
  root.classList.add("rlv-grid");
  host.append(root);
  const title = h("div", { class: "rlv-grid-title" });
  const zoom = h("input", { type: "range", min: "1", max: "8", step: "0.25", class: "rlv-range", title: "Zoom (local)", "data-lm-suppress-shortcuts": "true" });
  const zoomVal = h("span", { class: "rlv-val" });
  const dens = h("input", { type: "range", min: "2", max: "32", step: "1", class: "rlv-range", title: "Density: cells per side (recomputed in Python)", "data-lm-suppress-shortcuts": "true" });
  const densVal = h("span", { class: "rlv-val" });
  const close = h("button", { class: "rlv-btn", text: "✕ close", title: "Close the feature grid", "data-lm-suppress-shortcuts": "true" });
  const bar = h("div", { class: "rlv-row" }, title,
    h("label", { class: "rlv-inline" }, "zoom ", zoom, zoomVal),
    h("label", { class: "rlv-inline" }, "density ", dens, densVal),
    opts.closable ? close : null);
  const mosaic = h("canvas", { class: "rlv-mosaic" });
  const scroller = h("div", { class: "rlv-mosaic-scroll" }, mosaic);
  const srcCanvas = h("canvas", { class: "rlv-grid-src" });
  const srcInfo = h("div", { class: "rlv-grid-src-info", text: "Press a cell to see its source observation." });
  const goto = h("button", { class: "rlv-btn rlv-hidden", text: "Show in timeline", title: "Move the timeline to this observation", "data-lm-suppress-shortcuts": "true" });
  const side = h("div", { class: "rlv-grid-side" }, srcCanvas, srcInfo, goto);
  const empty = h("div", { class: "rlv-empty rlv-hidden" });
  body.append(bar, h("div", { class: "rlv-grid-main" }, scroller, side), empty);

  let selected: { r: number; c: number } | null = null;
  let srcCache: { key: number; img: RGBAImage | null } = { key: -1, img: null };

  const sourceStrip = (): RGBAImage | null => {
    const b = bytesOf(model.get("grid_source_png"));
    if (srcCache.key === b.byteLength) return srcCache.img;
    let img: RGBAImage | null = null;
    try {
      img = b.length ? decodePNG(b) : null;
    } catch {
      img = null;
    }
    srcCache = { key: b.byteLength, img };
    return img;
  };

  const cellSource = (g: NonNullable<ReturnType<typeof data.grid>>, r: number, c: number): [number, number] => {
    const i = (r * g.cols + c) * 2;
    return [g.sources[i] ?? -1, g.sources[i + 1] ?? -1];
  };

  const drawSource = () => {
    const g = data.grid();
    const S = 160;
    const cg = srcCanvas.getContext("2d")!;
    srcCanvas.width = S;
    srcCanvas.height = S;
    cg.fillStyle = "#eee";
    cg.fillRect(0, 0, S, S);
    goto.classList.add("rlv-hidden");
    if (!g || !selected) {
      srcInfo.textContent = "Press a cell to see its source observation.";
      return;
    }
    const [tr, fr] = cellSource(g, selected.r, selected.c);
    if (fr < 0) {
      srcInfo.textContent = "No example at this position.";
      return;
    }
    let px: Uint8ClampedArray | null = null;
    const os = data.obsSize();
    if (tr >= 0) px = data.frame(tr, fr);
    else {
      const strip = sourceStrip();
      if (strip) {
        const n = os * os * 4;
        px = strip.data.subarray(fr * n, (fr + 1) * n);
        if (px.length !== n) px = null;
      }
    }
    if (!px) {
      srcInfo.textContent = "Source observation not available.";
      return;
    }
    const tmp = document.createElement("canvas");
    tmp.width = os;
    tmp.height = os;
    tmp.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(px), os, os), 0, 0);
    cg.imageSmoothingEnabled = false;
    cg.drawImage(tmp, 0, 0, S, S);
    // Outline the region of the selected cell (the receptive position it stands for).
    const k = (model.get("grid_feature") as number) ?? 0;
    const K = (model.get("n_features") as number) || 1;
    cg.strokeStyle = cssColor(Math.max(0, k), K);
    cg.lineWidth = 2;
    cg.strokeRect((selected.c / g.cols) * S, (selected.r / g.rows) * S, S / g.cols, S / g.rows);
    cg.strokeStyle = "#000";
    cg.lineWidth = 1;
    cg.strokeRect((selected.c / g.cols) * S - 1.5, (selected.r / g.rows) * S - 1.5, S / g.cols + 3, S / g.rows + 3);
    srcInfo.textContent = tr >= 0 ? `Trajectory ${tr + 1}, step ${fr} · cell (${selected.r}, ${selected.c})` : `Dataset observation ${fr} · cell (${selected.r}, ${selected.c})`;
    if (tr >= 0 && ctx.has("frame")) goto.classList.remove("rlv-hidden");
  };

  const draw = () => {
    const k = (model.get("grid_feature") as number) ?? -1;
    const K = (model.get("n_features") as number) ?? 0;
    root.classList.toggle("rlv-hidden", !!opts.closable && k < 0);
    if (opts.closable && k < 0) return;
    const labels = (model.get("feature_labels") as string[]) ?? [];
    const z = +(model.get("grid_zoom") ?? 1);
    zoom.value = String(z);
    zoomVal.textContent = `${z}×`;
    dens.value = String(model.get("grid_density") ?? 8);
    densVal.textContent = `${dens.value}²`;
    dens.disabled = ctx.isStatic;
    if (ctx.isStatic) dens.title = "Density needs a live kernel (static export)";
    title.replaceChildren(
      h("span", { class: "rlv-swatch-sm", style: { background: k >= 0 ? cssColor(k, Math.max(1, K)) : "#ccc" } }),
      h("b", { text: k >= 0 ? `Feature ${k + 1}` : "Feature" }),
      labels[k] ? ` · ${labels[k]}` : "");
    const g = data.grid();
    const busy = !!model.get("grid_busy");
    empty.classList.toggle("rlv-hidden", !!g && !busy);
    empty.textContent = busy ? "Computing the mosaic…" : "No mosaic yet.";
    if (!g) {
      mosaic.width = 1;
      mosaic.height = 1;
      return;
    }
    mosaic.width = g.image.width;
    mosaic.height = g.image.height;
    mosaic.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(g.image.data), g.image.width, g.image.height), 0, 0);
    const base = Math.min(256, g.image.width * 2);
    mosaic.style.width = `${base * z}px`;
    mosaic.style.height = `${(base * z * g.image.height) / g.image.width}px`;
    if (selected) {
      const cg = mosaic.getContext("2d")!;
      const cw = g.image.width / g.cols;
      const ch = g.image.height / g.rows;
      cg.strokeStyle = "#d62728";
      cg.lineWidth = Math.max(1, cw / 16);
      cg.strokeRect(selected.c * cw, selected.r * ch, cw, ch);
    }
    drawSource();
  };

  ctx.dom(mosaic, "pointerdown", (ev: PointerEvent) => {
    const g = data.grid();
    if (!g) return;
    const r = mosaic.getBoundingClientRect();
    const c = Math.floor(((ev.clientX - r.left) / r.width) * g.cols);
    const rr = Math.floor(((ev.clientY - r.top) / r.height) * g.rows);
    if (c < 0 || rr < 0 || c >= g.cols || rr >= g.rows) return;
    selected = { r: rr, c };
    draw();
  });
  ctx.dom(zoom, "input", () => {
    ctx.set("grid_zoom", +zoom.value, 200);
  });
  ctx.dom(dens, "change", () => {
    selected = null;
    ctx.set("grid_density", +dens.value);
  });
  ctx.dom(dens, "input", () => {
    densVal.textContent = `${dens.value}²`;
  });
  ctx.dom(close, "click", () => ctx.set("grid_feature", -1));
  ctx.dom(goto, "click", () => {
    const g = data.grid();
    if (!g || !selected) return;
    const [tr, fr] = cellSource(g, selected.r, selected.c);
    if (tr < 0) return;
    ctx.model.set("trajectory", tr);
    ctx.set("frame", fr);
  });
  const sched = scheduler(draw);
  ctx.watch(["grid_feature", "grid_zoom", "grid_density", "n_features", "feature_labels", "grid_busy", "grid_source_png"], () => {
    sched.request();
  });
  ctx.watch(["grid_feature"], () => {
    selected = null;
  });
  ctx.listen("data", (key: string) => {
    if (key === "grid" || key === "obs") sched.request();
  });
  ctx.onDispose(() => sched.cancel());
  draw();
  return { redraw: draw };
}

export default widgetEntry(mountFeatureGrid);
