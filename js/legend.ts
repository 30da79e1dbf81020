// AttributionLegend: one entry per NMF feature (colour, a 96-px dataset-example icon enlarged to
// 256 px on hover, its label with an explicit edit control, the suggested label with its evidence
// and an explicit "use" control, attribution at the current step) plus a residual entry. Hovering
// an entry isolates that feature in every view of the widget (locally, no kernel round trip);
// clicking it opens the feature grid; shift-click pins the isolation.
import { Ctx, ensureStyle, h, LabelEvidence, panel, scheduler, widgetEntry } from "./model";
import { dataOf } from "./data";
import { bytesOf } from "./decode";
import { cssColor, RESIDUAL_CSS } from "./display";
import { fmt } from "./plot";

export function mountLegend(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data = dataOf(ctx);
  const { root, body } = panel("Attribution legend", "Hover an entry to isolate that feature in every view; hover its icon to enlarge it; click the entry to open its feature grid (dataset examples and spatially-aware mosaic); shift-click to pin the isolation. ✎ edits a label; \"use\" accepts a suggestion (weak and duplicate suggestions are marked). Bars: net attribution of each feature at the current step.");
  root.classList.add("rlv-legend");
  const list = h("div", { class: "rlv-legend-list", "data-lm-suppress-shortcuts": "true" });
  body.append(list);
  host.append(root);

  type Entry = { item: HTMLElement; bar: HTMLElement; val: HTMLElement; thumb?: HTMLCanvasElement; sug?: HTMLElement };
  let entries: Entry[] = [];
  let builtFor = "";

  // The enlarged icon: fixed-position over the page (never reflows the layout).
  const pop = h("div", { class: "rlv-icon-pop rlv-hidden" });
  const popCanvas = h("canvas", { class: "rlv-icon-pop-canvas" });
  const popCap = h("div", { class: "rlv-icon-pop-cap" });
  pop.append(popCanvas, popCap);
  root.append(pop);
  const showPop = (thumb: HTMLCanvasElement, anchor: HTMLElement, caption: string) => {
    popCanvas.width = thumb.width;
    popCanvas.height = thumb.height;
    popCanvas.getContext("2d")!.drawImage(thumb, 0, 0);
    popCap.textContent = caption;
    const r = anchor.getBoundingClientRect();
    const size = 256;
    const left = r.left - size - 18 > 4 ? r.left - size - 18 : Math.min(window.innerWidth - size - 12, r.right + 8);
    const top = Math.max(4, Math.min(window.innerHeight - size - 40, r.top - 8));
    pop.style.left = `${Math.max(4, left)}px`;
    pop.style.top = `${top}px`;
    pop.classList.remove("rlv-hidden");
  };
  const hidePop = () => pop.classList.add("rlv-hidden");

  const K = () => (model.get("n_features") as number) ?? 0;

  /** Suggestion of feature i: label and evidence (strings alone: duplicates found here). */
  const suggestion = (i: number): (LabelEvidence & { label: string }) | null => {
    const ev = (model.get("label_evidence") as LabelEvidence[] | undefined) ?? [];
    const sugg = (model.get("suggested_labels") as string[]) ?? [];
    const raw = ev[i]?.label ?? sugg[i] ?? "";
    const label = String(raw).replace(/\s*\(.*\)\s*$/, "").trim();
    if (!label) return null;
    const names = (ev.length ? ev.map((x) => String(x.label ?? "")) : sugg).map((x) => x.replace(/\s*\(.*\)\s*$/, "").trim().toLowerCase());
    const duplicate = ev[i]?.duplicate ?? names.filter((x) => x === label.toLowerCase()).length > 1;
    return { ...(ev[i] ?? {}), label, duplicate };
  };

  const build = () => {
    const k = K();
    const labels = (model.get("feature_labels") as string[]) ?? [];
    const sugg = (model.get("suggested_labels") as string[]) ?? [];
    const ev = JSON.stringify(model.get("label_evidence") ?? []);
    const key = `${k}|${labels.join("\u0001")}|${sugg.join("\u0001")}|${ev}|${bytesOf(model.get("thumbnails")?.data).byteLength}`;
    if (key === builtFor) return;
    builtFor = key;
    hidePop();
    list.replaceChildren();
    entries = [];
    const thumbs = data.thumbnails();
    for (let i = 0; i <= k; i++) {
      const isRes = i === k;
      const color = isRes ? RESIDUAL_CSS : cssColor(i, k);
      const swatch = h("div", { class: `rlv-swatch${isRes ? " rlv-swatch-res" : ""}`, style: { borderColor: color, background: color } });
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
        const th = thumb;
        ctx.dom(swatch, "pointerenter", () => showPop(th, swatch, `Feature ${i + 1}: its strongest dataset examples (click for all)`));
        ctx.dom(swatch, "pointerleave", hidePop);
      }
      const bar = h("div", { class: "rlv-lbar" });
      const val = h("span", { class: "rlv-lval" });
      const barWrap = h("div", { class: "rlv-lbar-wrap", title: "Net attribution of this feature at the current step (Σ over positions)" }, h("div", { class: "rlv-lbar-zero" }), bar);
      let sug: HTMLElement | undefined;
      const text = h("div", { class: "rlv-legend-text" });
      if (isRes) {
        text.append(h("div", { class: "rlv-legend-label", text: "Residual", title: "Attribution outside the span of the NMF directions (total − features)" }));
        text.append(h("div", { class: "rlv-suggest rlv-muted", text: "not captured by the features" }));
      } else {
        // The label: text; editing it is an explicit control (✎), never a click on the entry.
        const name = h("span", { class: "rlv-legend-name", text: labels[i] || `feature ${i + 1}`, title: labels[i] || `feature ${i + 1}` });
        if (!labels[i]) name.classList.add("rlv-unlabelled");
        const edit = h("button", { class: "rlv-mini-btn rlv-label-edit", type: "button", text: "✎", title: "Edit this feature's label (synced to Python: feature_labels)", "data-lm-suppress-shortcuts": "true" });
        const input = h("input", { class: "rlv-label-input rlv-hidden", type: "text", value: labels[i] ?? "", placeholder: `feature ${i + 1}`,
          title: "Label this feature; Enter to keep, Escape to cancel", "data-lm-suppress-shortcuts": "true" });
        const head = h("div", { class: "rlv-legend-head" }, h("span", { class: "rlv-legend-num", text: `${i + 1}` }), name, input, edit);
        const commit = (value: string) => {
          const cur = [...((model.get("feature_labels") as string[]) ?? [])];
          while (cur.length < k) cur.push("");
          if (cur[i] === value) return;
          cur[i] = value;
          builtFor = ""; // labels changed
          ctx.set("feature_labels", cur);
        };
        const endEdit = (keep: boolean) => {
          if (input.classList.contains("rlv-hidden")) return;
          input.classList.add("rlv-hidden");
          name.classList.remove("rlv-hidden");
          if (keep) commit(input.value.trim());
          else input.value = labels[i] ?? "";
        };
        ctx.dom(edit, "click", (e: Event) => {
          e.stopPropagation();
          name.classList.add("rlv-hidden");
          input.classList.remove("rlv-hidden");
          input.focus();
          input.select();
        });
        ctx.dom(input, "keydown", (e: KeyboardEvent) => {
          e.stopPropagation();
          if (e.key === "Enter") endEdit(true);
          if (e.key === "Escape") endEdit(false);
        });
        ctx.dom(input, "blur", () => endEdit(true));
        ctx.dom(input, "click", (e: Event) => e.stopPropagation());
        text.append(head);
        const sg = suggestion(i);
        if (sg) {
          const weak = sg.confirmed === false;
          const share = typeof sg.share === "number" ? ` · ${Math.round(100 * sg.share)}% of its top cells` : "";
          const kind = weak ? "weak" : sg.duplicate ? "duplicate" : sg.confirmed ? "confirmed" : "suggested";
          const why = weak ? "Weak: below the identification threshold; a guess, not an identification" :
            sg.duplicate ? "Duplicate: another feature has the same suggestion" :
            sg.confirmed ? "Confirmed by the feature's strongest examples lying on this object" : "Suggested from ground-truth object masks";
          const accept = h("button", { class: "rlv-mini-btn rlv-accept", type: "button", text: "use", title: `Use "${sg.label}" as this feature's label`, "data-lm-suppress-shortcuts": "true" });
          accept.disabled = labels[i] === sg.label;
          const evidence = typeof sg.describe === "string" && sg.describe ? ` (${sg.describe})` : "";
          sug = h("div", { class: `rlv-suggest rlv-sg-${kind}`, title: `${why}${share}${evidence}. Press "use" to label the feature with it.` },
            h("span", { class: "rlv-sg-text", text: `${weak ? "weak? " : ""}${sg.label}${sg.duplicate ? " (dup.)" : ""}${share ? ` ${Math.round(100 * (sg.share as number))}%` : ""}` }),
            accept);
          sug.dataset.kind = kind;
          ctx.dom(accept, "click", (e: Event) => {
            e.stopPropagation();
            commit(sg.label);
          });
          text.append(sug);
        }
      }
      text.append(h("div", { class: "rlv-lbar-row" }, barWrap, val));
      const item = h("div", { class: `rlv-legend-item${isRes ? " rlv-residual" : ""}`, "data-feature": String(i),
        title: isRes ? "Residual: hover to isolate" : `Feature ${i + 1}: hover to isolate, click to open its feature grid (dataset examples), shift-click to pin` },
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
      entries.push({ item, bar, val, thumb, sug });
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
  ctx.watch(["n_features", "feature_labels", "suggested_labels", "label_evidence", "thumbnails", "isolated_feature", "frame", "trajectory", "edit_off", "edit_strengths"], () => sched.request());
  ctx.listen("hover", () => update());
  ctx.listen("data", () => sched.request());
  ctx.onDispose(() => sched.cancel());
  update();
  return { redraw: update };
}

export default widgetEntry(mountLegend);
