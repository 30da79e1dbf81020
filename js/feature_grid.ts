// FeatureGrid: what one NMF feature responds to. The spatially-aware dataset-example mosaic: each
// cell shows, at its spatial position, the crop of the cell's receptive field from the dataset
// observation that activates the feature most there (transparency = weak response, stripes =
// nothing), drawn at ≥ 256 px; and a gallery of the feature's strongest dataset examples, each a
// receptive-field crop beside the frame it comes from (click one to show it in the timeline).
// The mosaic of every feature may be precomputed (`mosaics`, also in static exports); another
// density asks Python. Pressing a mosaic cell shows its source observation with the receptive
// field outlined, and can move the timeline. Beside the gallery, on request ("Optimize": Python's
// `optvis` job, never automatic), the image gradient ascent finds for the feature's NMF direction
// (issue 15), with its objective value against the best real frame; a static export shows it
// when it was computed, and no button action.
import { Ctx, ensureStyle, Example, h, panel, scheduler, widgetEntry } from "./model";
import type { OptvisInfo, TilesWire } from "./model_state";
import { dataOf, Grid } from "./data";
import { RGBAImage } from "./decode";
import { pngTiles } from "./arrays";
import { cssColor } from "./display";

/** Smallest displayed mosaic side (CSS px) at zoom 1. */
export const MOSAIC_MIN_PX = 256;
/** Displayed side of a gallery crop (CSS px). */
export const EXAMPLE_PX = 96;
/** Displayed side of the optimized image (CSS px; whole pixels of a 64 px image). */
export const OPTVIS_PX = 192;

const fmt = (x: number | null | undefined, d = 3): string => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");

export function mountFeatureGrid(ctx: Ctx, host: HTMLElement, opts: { closable?: boolean } = {}): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data = dataOf(ctx);
  const { root, body } = panel("Feature grid: dataset examples and spatially-aware visualization",
    "Top: the feature's strongest dataset examples, each the crop of the receptive field where it responds, beside the frame it comes from (click one to show it in the timeline). Below: for each spatial position, the receptive-field crop of the dataset observation whose activation of this feature is strongest there (limited reuse for diversity); transparency shows a weak response. Press a cell to see its source observation.");
  root.classList.add("rlv-grid");
  host.append(root);
  const title = h("div", { class: "rlv-grid-title" });
  const zoom = h("input", { type: "range", min: "0.5", max: "4", step: "0.25", class: "rlv-range", title: "Zoom (local)", "data-lm-suppress-shortcuts": "true" });
  const zoomVal = h("span", { class: "rlv-val" });
  const dens = h("input", { type: "range", min: "2", max: "32", step: "1", class: "rlv-range", title: "Density: cells per side (recomputed in Python)", "data-lm-suppress-shortcuts": "true" });
  const densVal = h("span", { class: "rlv-val" });
  const close = h("button", { class: "rlv-btn", text: "✕ close", title: "Close the feature grid", "data-lm-suppress-shortcuts": "true" });
  const bar = h("div", { class: "rlv-row" }, title,
    h("label", { class: "rlv-inline" }, "zoom ", zoom, zoomVal),
    h("label", { class: "rlv-inline" }, "density ", dens, densVal),
    opts.closable ? close : null);
  const gallery = h("div", { class: "rlv-gallery" });
  const galleryHead = h("div", { class: "rlv-sub-head", text: "Strongest dataset examples" });
  const mosaic = h("canvas", { class: "rlv-mosaic" });
  const scroller = h("div", { class: "rlv-mosaic-scroll" }, mosaic);
  const srcCanvas = h("canvas", { class: "rlv-grid-src" });
  const srcInfo = h("div", { class: "rlv-grid-src-info", text: "Press a cell to see its source observation." });
  const goto = h("button", { class: "rlv-btn rlv-hidden", text: "Show in timeline", title: "Move the timeline to this observation", "data-lm-suppress-shortcuts": "true" });
  const side = h("div", { class: "rlv-grid-side" }, srcCanvas, srcInfo, goto);
  const empty = h("div", { class: "rlv-empty rlv-hidden" });
  // the optimized image of the feature (computed on request), beside the dataset examples
  const ovCanvas = h("canvas", { class: "rlv-optvis-img rlv-hidden" });
  const ovNote = h("div", { class: "rlv-optvis-note" });
  const ovValue = h("div", { class: "rlv-optvis-val" });
  const ovCap = h("div", { class: "rlv-optvis-cap" });
  const ovBtn = h("button", { class: "rlv-btn rlv-optvis-btn", type: "button", text: "Optimize",
    title: "Optimize an input image for this feature's NMF direction (gradient ascent in Python; a few seconds), shown beside the dataset examples",
    "data-lm-suppress-shortcuts": "true" });
  // before a result: one inline control on the gallery's heading row (no extra height)
  const ovAsk = h("span", { class: "rlv-optvis-ask" }, ovNote, ovBtn);
  const ovBox = h("div", { class: "rlv-optvis rlv-hidden" },
    h("div", { class: "rlv-sub-head", text: "Optimized image" }), ovCanvas, ovValue, ovCap);
  body.append(bar, h("div", { class: "rlv-grid-top" },
    h("div", { class: "rlv-grid-examples" }, h("div", { class: "rlv-subtitle-row" }, galleryHead, ovAsk), gallery), ovBox),
    h("div", { class: "rlv-sub-head", text: "Spatially-aware feature visualization" }),
    h("div", { class: "rlv-grid-main" }, scroller, side), empty);

  let selected: { r: number; c: number } | null = null;
  let galleryKey = "";

  const feature = () => (model.get("grid_feature") as number) ?? -1;
  const density = () => (model.get("grid_density") as number) ?? 8;
  const current = (): Grid | null => data.gridFor(feature(), density());

  const sourceStrip = (): RGBAImage | null => data.gridSourceStrip();

  const cellSource = (g: Grid, r: number, c: number): [number, number] => {
    const i = (r * g.cols + c) * 2;
    return [g.sources[i] ?? -1, g.sources[i + 1] ?? -1];
  };

  const frameCanvas = (px: Uint8ClampedArray, os: number): HTMLCanvasElement => {
    const tmp = document.createElement("canvas");
    tmp.width = os;
    tmp.height = os;
    tmp.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(px), os, os), 0, 0);
    return tmp;
  };

  const drawSource = (g: Grid | null) => {
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
    cg.imageSmoothingEnabled = false;
    cg.drawImage(frameCanvas(px, os), 0, 0, S, S);
    // Outline the receptive field of the selected cell (a crop of g.cell observation pixels).
    const k = feature();
    const K = (model.get("n_features") as number) || 1;
    const cx = ((selected.c + 0.5) / g.cols) * S;
    const cy = ((selected.r + 0.5) / g.rows) * S;
    const side = (Math.min(g.cell, os) / os) * S;
    cg.strokeStyle = cssColor(Math.max(0, k), K);
    cg.lineWidth = 2;
    cg.strokeRect(cx - side / 2, cy - side / 2, side, side);
    cg.strokeStyle = "#000";
    cg.lineWidth = 1;
    cg.strokeRect(cx - side / 2 - 1.5, cy - side / 2 - 1.5, side + 3, side + 3);
    srcInfo.textContent = tr >= 0 ? `Trajectory ${tr + 1}, step ${fr} · cell (${selected.r}, ${selected.c})` : `Dataset observation ${fr} · cell (${selected.r}, ${selected.c})`;
    if (tr >= 0 && ctx.has("frame")) goto.classList.remove("rlv-hidden");
  };

  let ovWire: TilesWire | null | undefined;
  let ovPixels: RGBAImage | null = null;
  const drawOptvis = () => {
    const k = feature();
    const info = (model.get("optvis_info") as OptvisInfo | undefined) ?? {};
    const layer = model.get("attr_layer") as string | undefined;
    const K = model.get("n_features") as number | undefined;
    // a result belongs to one feature of one analysis (layer, rank)
    const mine = k >= 0 && info.feature === k && (info.layer === undefined || !layer || info.layer === layer)
      && (info.rank === undefined || !K || info.rank === K);
    const wire = model.get("optvis_image") as TilesWire | null | undefined;
    if (wire !== ovWire) {
      ovWire = wire;
      const t = pngTiles(wire);
      ovPixels = t ? { width: t.w, height: t.h, data: t.image.data.subarray(0, t.w * t.h * 4) } : null;
      if (t && t.K > 1) { // first tile only
        const px = new Uint8ClampedArray(t.w * t.h * 4);
        for (let y = 0; y < t.h; y++) px.set(t.image.data.subarray(y * t.image.width * 4, (y * t.image.width + t.w) * 4), y * t.w * 4);
        ovPixels = { width: t.w, height: t.h, data: px };
      }
    }
    const enabled = !!model.get("optvis_enabled");
    const ready = mine && info.state === "ready" && !!ovPixels;
    const computing = mine && info.state === "computing";
    const failed = mine && info.state === "error";
    ovBox.classList.toggle("rlv-hidden", !ready);
    ovAsk.classList.toggle("rlv-hidden", ready || k < 0 || (!enabled && !ctx.isStatic));
    root.dataset.optvis = ready ? "ready" : computing ? "computing" : failed ? "error" : "none";
    ovCanvas.classList.toggle("rlv-hidden", !ready);
    if (ready && ovPixels) {
      ovCanvas.width = ovPixels.width;
      ovCanvas.height = ovPixels.height;
      ovCanvas.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(ovPixels.data), ovPixels.width, ovPixels.height), 0, 0);
      ovCanvas.style.width = `${OPTVIS_PX}px`;
      ovCanvas.style.height = `${(OPTVIS_PX * ovPixels.height) / ovPixels.width}px`;
      const ratio = typeof info.ratio === "number" ? `${fmt(info.ratio, 2)}× ` : "";
      const bf = info.best_frame;
      ovValue.textContent = `Objective ${fmt(info.value)}: ${ratio}the best of ${info.n_frames ?? "the"} real frames (${fmt(info.best_real)}${bf ? `, T${bf[0] + 1}·${bf[1]}` : ""}).`;
      ovValue.title = `Projection on the feature's direction at ${info.layer ?? "the layer"}, mean over positions. `
        + `Strongest position: ${fmt(info.cell_value)} vs ${fmt(info.best_cell)} for the strongest dataset example`
        + (typeof info.cell_ratio === "number" ? ` (${fmt(info.cell_ratio, 2)}×).` : ".")
        + (info.seconds !== undefined ? ` ${info.steps ?? ""} steps, ${fmt(info.seconds, 1)} s.` : "");
      ovCap.textContent = info.caption ?? "An input image optimized to raise this feature's direction: not a real frame.";
    } else {
      ovValue.textContent = "";
      ovCap.textContent = "";
    }
    ovNote.title = "";
    if (ctx.isStatic) ovNote.textContent = "Optimized image: needs a live kernel";
    else if (computing) ovNote.textContent = `Optimizing (${info.steps ?? ""} steps)…`;
    else if (failed) {
      ovNote.textContent = "Optimization failed";
      ovNote.title = info.message ?? "";
    } else ovNote.textContent = "Optimized image:";
    ovBtn.disabled = ctx.isStatic || !enabled || computing;
    ovBtn.classList.toggle("rlv-hidden", ctx.isStatic);
  };

  const drawGallery = () => {
    const k = feature();
    const all = (model.get("feature_examples") as Example[][] | undefined) ?? [];
    const items = k >= 0 ? all[k] ?? [] : [];
    const key = `${k}|${items.length}|${JSON.stringify(items[0] ?? {})}|${data.obsSize()}|${model.get("observations")?.offsets.join(",") ?? ""}`;
    if (key === galleryKey) return;
    galleryKey = key;
    gallery.replaceChildren();
    const os = data.obsSize();
    const K = (model.get("n_features") as number) || 1;
    let shown = 0;
    for (const ex of items) {
      const px = data.frame(ex.trajectory, ex.frame);
      if (!px) continue;
      const full = frameCanvas(px, os);
      const [top, left, side] = ex.box;
      const crop = h("canvas", { class: "rlv-ex-crop" });
      crop.width = EXAMPLE_PX;
      crop.height = EXAMPLE_PX;
      const g = crop.getContext("2d")!;
      g.imageSmoothingEnabled = false;
      // checkerboard beyond the screen edge (as the mosaic)
      const q = EXAMPLE_PX / side;
      for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
        g.fillStyle = (top + y + left + x) % 2 === 0 ? "#fff" : "#bfbfbf";
        g.fillRect(x * q, y * q, q, q);
      }
      const sx = Math.max(0, left), sy = Math.max(0, top);
      const ex2 = Math.min(os, left + side), ey2 = Math.min(os, top + side);
      if (ex2 > sx && ey2 > sy) g.drawImage(full, sx, sy, ex2 - sx, ey2 - sy, (sx - left) * q, (sy - top) * q, (ex2 - sx) * q, (ey2 - sy) * q);
      const ctxFrame = h("canvas", { class: "rlv-ex-frame" });
      const F = 48;
      ctxFrame.width = F;
      ctxFrame.height = F;
      const gf = ctxFrame.getContext("2d")!;
      gf.imageSmoothingEnabled = false;
      gf.drawImage(full, 0, 0, F, F);
      gf.strokeStyle = cssColor(k, K);
      gf.lineWidth = 2;
      gf.strokeRect((left / os) * F, (top / os) * F, (side / os) * F, (side / os) * F);
      const item = h("button", { class: "rlv-ex", type: "button", "data-lm-suppress-shortcuts": "true",
        title: `Trajectory ${ex.trajectory + 1}, step ${ex.frame}: activation ${ex.value?.toFixed?.(3) ?? ex.value} at layer position (${ex.y}, ${ex.x}). Click to show this step in the timeline.` },
        crop, h("div", { class: "rlv-ex-side" }, ctxFrame, h("div", { class: "rlv-ex-cap", text: `T${ex.trajectory + 1}·${ex.frame}` })));
      item.dataset.trajectory = String(ex.trajectory);
      item.dataset.frame = String(ex.frame);
      ctx.dom(item, "click", () => {
        if (ctx.has("trajectory")) ctx.model.set("trajectory", ex.trajectory);
        if (ctx.has("frame")) ctx.set("frame", ex.frame);
      });
      gallery.append(item);
      shown++;
    }
    galleryHead.classList.toggle("rlv-hidden", shown === 0);
    gallery.classList.toggle("rlv-hidden", shown === 0);
    root.dataset.examples = String(shown);
  };

  const draw = () => {
    const k = feature();
    const K = (model.get("n_features") as number) ?? 0;
    root.classList.toggle("rlv-hidden", !!opts.closable && k < 0);
    if (opts.closable && k < 0) return;
    const labels = (model.get("feature_labels") as string[]) ?? [];
    const z = +(model.get("grid_zoom") ?? 1);
    zoom.value = String(z);
    zoomVal.textContent = `${z}×`;
    dens.value = String(density());
    densVal.textContent = `${dens.value}²`;
    const all = data.mosaics();
    dens.disabled = ctx.isStatic;
    if (ctx.isStatic) dens.title = all ? `Density ${all.density}² (precomputed; other densities need a live kernel)` : "Density needs a live kernel (static export)";
    title.replaceChildren(
      h("span", { class: "rlv-swatch-sm", style: { background: k >= 0 ? cssColor(k, Math.max(1, K)) : "#ccc" } }),
      h("b", { text: k >= 0 ? `Feature ${k + 1}` : "Feature" }),
      labels[k] ? ` · ${labels[k]}` : "");
    drawGallery();
    drawOptvis();
    const g = current();
    const busy = !!model.get("grid_busy") && !(all && all.density === density());
    empty.classList.toggle("rlv-hidden", !!g && !busy);
    empty.textContent = busy ? "Computing the mosaic…" : "No mosaic yet.";
    if (!g) {
      mosaic.width = 1;
      mosaic.height = 1;
      mosaic.style.width = "0px";
      drawSource(null);
      return;
    }
    mosaic.width = g.image.width;
    mosaic.height = g.image.height;
    mosaic.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(g.image.data), g.image.width, g.image.height), 0, 0);
    // whole pixels per image pixel, at least MOSAIC_MIN_PX wide
    const scale = Math.max(1, Math.ceil(MOSAIC_MIN_PX / g.image.width));
    const base = g.image.width * scale;
    mosaic.style.width = `${base * z}px`;
    mosaic.style.height = `${(base * z * g.image.height) / g.image.width}px`;
    root.dataset.mosaicPx = String(base * z);
    if (selected) {
      const cg = mosaic.getContext("2d")!;
      const cw = g.image.width / g.cols;
      const ch = g.image.height / g.rows;
      cg.strokeStyle = "#d62728";
      cg.lineWidth = Math.max(1, cw / 16);
      cg.strokeRect(selected.c * cw, selected.r * ch, cw, ch);
    }
    drawSource(g);
  };

  ctx.dom(mosaic, "pointerdown", (ev: PointerEvent) => {
    const g = current();
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
  ctx.dom(ovBtn, "click", () => {
    const k = feature();
    if (k < 0 || ctx.isStatic) return;
    model.send({ type: "optvis", feature: k });
    ovBtn.disabled = true; // until Python answers (optvis_info)
  });
  ctx.dom(goto, "click", () => {
    const g = current();
    if (!g || !selected) return;
    const [tr, fr] = cellSource(g, selected.r, selected.c);
    if (tr < 0) return;
    ctx.model.set("trajectory", tr);
    ctx.set("frame", fr);
  });
  const sched = scheduler(draw);
  ctx.watch(["grid_feature", "grid_zoom", "grid_density", "n_features", "feature_labels", "grid_busy", "grid_source_frames", "feature_examples", "optvis_info", "optvis_image", "optvis_enabled", "attr_layer"], () => {
    sched.request();
  });
  ctx.watch(["grid_feature"], () => {
    selected = null;
    // opened from the legend: bring the grid into view (it sits below the viewer)
    if (opts.closable && feature() >= 0) requestAnimationFrame(() => {
      if (!root.classList.contains("rlv-hidden")) root.scrollIntoView?.({ block: "nearest" });
    });
  });
  ctx.listen("data", (key: string) => {
    if (key === "grid" || key === "obs" || key === "mosaics") {
      if (key === "obs") galleryKey = "";
      sched.request();
    }
  });
  ctx.onDispose(() => sched.cancel());
  draw();
  return { redraw: draw };
}

export default widgetEntry(mountFeatureGrid);
