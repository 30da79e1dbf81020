// AttributionLegend: one entry per NMF feature (colour, dataset-example thumbnail, editable label,
// suggested label, attribution at the current step) plus a residual entry. Hovering an entry
// isolates that feature in every view of the widget (locally, no kernel round trip); clicking it
// opens the feature grid; shift-click pins the isolation.
import { Ctx, ensureStyle, h, panel, scheduler, widgetEntry } from "./model";
import { dataOf } from "./data";
import { cssColor, RESIDUAL_CSS } from "./display";
import { fmt } from "./plot";

export function mountLegend(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data = dataOf(ctx);
  const { root, body } = panel("Attribution legend", "Hover an entry to isolate that feature in every view; click to open its spatially-aware feature visualization; shift-click to pin the isolation. Labels are editable. Bars: net attribution of each feature at the current step.");
  root.classList.add("rlv-legend");
  const list = h("div", { class: "rlv-legend-list", "data-lm-suppress-shortcuts": "true" });
  body.append(list);
  host.append(root);

  type Entry = { item: HTMLElement; bar: HTMLElement; val: HTMLElement; input?: HTMLInputElement; thumb?: HTMLCanvasElement; sug?: HTMLElement };
  let entries: Entry[] = [];
  let builtFor = "";

  const K = () => (model.get("n_features") as number) ?? 0;

  const build = () => {
    const k = K();
    const labels = (model.get("feature_labels") as string[]) ?? [];
    const sugg = (model.get("suggested_labels") as string[]) ?? [];
    const key = `${k}|${labels.join("\u0001")}|${sugg.join("\u0001")}|${model.get("thumbnails_png")?.byteLength ?? 0}`;
    if (key === builtFor) return;
    builtFor = key;
    list.replaceChildren();
    entries = [];
    const thumbs = data.thumbnails();
    for (let i = 0; i <= k; i++) {
      const isRes = i === k;
      const color = isRes ? RESIDUAL_CSS : cssColor(i, k);
      const swatch = h("div", { class: "rlv-swatch", style: { borderColor: color, background: color } });
      let thumb: HTMLCanvasElement | undefined;
      if (!isRes && thumbs && thumbs.size > 0) {
        thumb = h("canvas", { class: "rlv-thumb" });
        const s = thumbs.size;
        thumb.width = s;
        thumb.height = s;
        const px = new Uint8ClampedArray(s * s * 4);
        const W = thumbs.image.width;
        for (let y = 0; y < s; y++) {
          const off = (y * W + i * s) * 4;
          if (off + s * 4 <= thumbs.image.data.length) px.set(thumbs.image.data.subarray(off, off + s * 4), y * s * 4);
        }
        thumb.getContext("2d")!.putImageData(new ImageData(px, s, s), 0, 0);
        swatch.style.background = `repeating-linear-gradient(45deg, #eee 0 4px, #fff 4px 8px)`;
        swatch.append(thumb);
      }
      const bar = h("div", { class: "rlv-lbar" });
      const val = h("span", { class: "rlv-lval" });
      const barWrap = h("div", { class: "rlv-lbar-wrap", title: "Net attribution of this feature at the current step (Σ over positions)" }, h("div", { class: "rlv-lbar-zero" }), bar);
      let input: HTMLInputElement | undefined;
      let sug: HTMLElement | undefined;
      const text = h("div", { class: "rlv-legend-text" });
      if (isRes) {
        text.append(h("div", { class: "rlv-legend-label", text: "Residual", title: "Attribution outside the span of the NMF directions (total − features)" }));
        text.append(h("div", { class: "rlv-suggest rlv-muted", text: "not captured by the features" }));
      } else {
        input = h("input", { class: "rlv-label-input", type: "text", value: labels[i] ?? "", placeholder: `feature ${i + 1}`,
          title: "Label this feature (synced to Python: explorer.feature_labels)", "data-lm-suppress-shortcuts": "true" });
        const inp = input;
        const commit = () => {
          const cur = [...((model.get("feature_labels") as string[]) ?? [])];
          while (cur.length < k) cur.push("");
          if (cur[i] === inp.value) return;
          cur[i] = inp.value;
          builtFor = ""; // labels changed
          ctx.set("feature_labels", cur);
        };
        ctx.dom(input, "change", commit);
        ctx.dom(input, "keydown", (e: KeyboardEvent) => {
          e.stopPropagation();
          if (e.key === "Enter") inp.blur();
        });
        ctx.dom(input, "click", (e: Event) => e.stopPropagation());
        text.append(input);
        if (sugg[i]) {
          sug = h("div", { class: "rlv-suggest", text: `suggested: ${sugg[i]}`, title: "Suggested label from ground-truth object masks; click to use it" });
          const s2 = sugg[i].replace(/\s*\(.*\)\s*$/, "");
          ctx.dom(sug, "click", (e: Event) => {
            e.stopPropagation();
            inp.value = s2;
            commit();
          });
          text.append(sug);
        }
      }
      text.append(h("div", { class: "rlv-lbar-row" }, barWrap, val));
      const item = h("div", { class: `rlv-legend-item${isRes ? " rlv-residual" : ""}`, "data-feature": String(i),
        title: isRes ? "Residual: hover to isolate" : `Feature ${i + 1}: hover to isolate, click for its feature visualization, shift-click to pin` },
        swatch, text);
      ctx.dom(item, "pointerenter", () => ctx.setHover(i));
      ctx.dom(item, "pointerleave", () => ctx.setHover(-1));
      ctx.dom(item, "click", (e: MouseEvent) => {
        if (e.shiftKey) {
          ctx.set("isolated_feature", model.get("isolated_feature") === i ? -1 : i);
          return;
        }
        if (!isRes && ctx.has("grid_feature")) ctx.set("grid_feature", i);
      });
      list.append(item);
      entries.push({ item, bar, val, input, thumb, sug });
    }
    root.dataset.entries = String(k);
  };

  const update = () => {
    build();
    const iso = ctx.isolated();
    const pinned = model.get("isolated_feature");
    const off = (model.get("edit_off") as boolean[]) ?? [];
    const strength = (model.get("edit_strengths") as number[]) ?? [];
    entries.forEach((en, i) => {
      const edited = !!off[i] || (strength[i] ?? 0) > 0;
      en.item.classList.toggle("rlv-feature-edited", edited);
      en.item.dataset.edit = off[i] ? "off" : edited ? `${Math.round(100 * strength[i])}%` : "";
      en.item.classList.toggle("rlv-active", iso === i);
      en.item.classList.toggle("rlv-dim", iso >= 0 && iso !== i);
      en.item.classList.toggle("rlv-pinned", pinned === i);
    });
    // Per-step bars.
    const a = data.attr();
    const e = (model.get("trajectory") as number) ?? 0;
    const t = (model.get("frame") as number) ?? 0;
    if (!a || a.C !== entries.length || t >= a.T || e >= a.E) {
      for (const en of entries) {
        en.bar.style.width = "0";
        en.val.textContent = "";
      }
      return;
    }
    const ed = data.editedFor(e);
    const src = ed && ed.attr ? ed.attr : a;
    const st = data.stats(src, src.E === 1 ? 0 : e, ed && ed.attr ? "edited" : "");
    let m = 0;
    for (let c = 0; c < src.C; c++) {
      const v = Math.abs(st.totals[t * src.C + c]);
      if (isFinite(v)) m = Math.max(m, v);
    }
    entries.forEach((en, c) => {
      const v = st.totals[t * src.C + c];
      if (!isFinite(v)) {
        en.bar.style.width = "0";
        en.val.textContent = "…";
        return;
      }
      const frac = m > 0 ? Math.abs(v) / m : 0;
      en.bar.style.width = `${(50 * frac).toFixed(1)}%`;
      en.bar.style.left = v >= 0 ? "50%" : `${(50 - 50 * frac).toFixed(1)}%`;
      en.bar.style.background = c === src.K ? RESIDUAL_CSS : cssColor(c, src.K);
      en.val.textContent = fmt(v);
    });
  };
  const sched = scheduler(update);
  ctx.watch(["n_features", "feature_labels", "suggested_labels", "thumbnails_png", "isolated_feature", "frame", "trajectory", "edit_off", "edit_strengths"], () => sched.request());
  ctx.listen("hover", () => update());
  ctx.listen("data", () => sched.request());
  ctx.onDispose(() => sched.cancel());
  update();
  return { redraw: update };
}

export default widgetEntry(mountLegend);
