// Controls: analysis settings that need Python (layer, output, NMF rank) and display settings that
// are applied in the browser (residual, gain, blur, scale, overlay mode, grey underlay, full-res);
// the bookmarks list that moves the timeline; a status line with progress for long Python work.
import { ARTICLE_BLUR_RADIUS, blurRadius, effectiveBlur } from "./display";
import { Ctx, ensureStyle, h, ModelState, OutputOption, panel, scheduler, widgetEntry } from "./model";

const BOOKMARK_KINDS: [string, string, string][] = [
  ["high", "High advantage", "Frames with the highest advantage (at most one per episode): better than expected"],
  ["low", "Low advantage", "Frames with the lowest advantage (at most one per episode): worse than expected"],
  ["spike", "Value spikes", "Frames where the value jumps for a single step (hallucination search)"],
  ["failure", "Failures", "The frames before an episode failed, with the engine's cause"],
];

/** The busy/progress/error line shared by the explorer and standalone components. */
export function mountStatus(ctx: Ctx, host: HTMLElement): void {
  const model = ctx.model;
  const bar = h("div", { class: "rlv-progress-bar" });
  const prog = h("div", { class: "rlv-progress" }, bar);
  const msg = h("span", { class: "rlv-status-msg" });
  const err = h("span", { class: "rlv-error" });
  const root = h("div", { class: "rlv-status" }, prog, msg, err);
  host.append(root);
  const draw = () => {
    const busy = !!model.get("busy");
    const p = +(model.get("progress") ?? 0);
    root.classList.toggle("rlv-busy", busy);
    prog.classList.toggle("rlv-hidden", !busy);
    bar.style.width = `${Math.round(100 * Math.max(0, Math.min(1, p)))}%`;
    msg.textContent = (model.get("status") as string) || (ctx.isStatic ? "Static export: display settings work; analysis settings need a live kernel." : "");
    err.textContent = (model.get("error") as string) || "";
    root.dataset.busy = busy ? "1" : "0";
  };
  ctx.watch(["busy", "progress", "status", "error"], draw);
  draw();
}

export function mountControls(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const { root, body } = panel("Controls", "Layer, output and rank are recomputed in Python (progress shown above); everything else is applied instantly in the browser.");
  root.classList.add("rlv-controls");
  host.append(root);
  const sup = { "data-lm-suppress-shortcuts": "true" };

  const layer = h("select", { class: "rlv-select", title: "Hidden layer whose activations are attributed", ...sup });
  const output = h("select", { class: "rlv-select", title: "Network output to attribute: the value, a policy logit, an action group (sum of logits) or a log-probability", ...sup });
  const rank = h("input", { type: "range", min: "1", max: "16", step: "1", class: "rlv-range", title: "Number of NMF features (recomputed in Python)", ...sup });
  const rankVal = h("span", { class: "rlv-val" });
  const residual = h("input", { type: "checkbox", title: "Show the residual (attribution outside the NMF features) in grey", ...sup });
  const gain = h("input", { type: "range", min: "-2", max: "3", step: "0.05", class: "rlv-range", title: "Gain: multiplies attribution before colouring (log scale)", ...sup });
  const gainVal = h("span", { class: "rlv-val" });
  // The slider and its value are the blur radius R in layer positions (disc exp(−7r/R), r ≤ R);
  // the synced trait `blur` is the length b = R/7 (1 = the article's radius 7), null = auto.
  const blur = h("input", { type: "range", min: "0", max: String(2 * ARTICLE_BLUR_RADIUS), step: "0.5", class: "rlv-range rlv-blur", title: "Blur radius at layer resolution (0 = off). Auto: the article's radius 7 on its 32×32 layer 2b scaled to this layer, 7·H/32 (3.5 on 16×16); 7 = the article's disc exp(−r) on any layer", ...sup });
  const blurVal = h("span", { class: "rlv-val rlv-blur-val" });
  const blurAuto = h("button", { class: "rlv-btn rlv-blur-auto", type: "button", text: "auto", title: "Scale the blur radius to the layer: 7·H/32 (the article's radius 7 on its 32×32 layer)", ...sup });
  const scale = h("select", { class: "rlv-select", title: "Display scale: per trajectory (median over frames of each frame's max, as the article) or per frame", ...sup },
    h("option", { value: "trajectory", text: "per trajectory" }), h("option", { value: "frame", text: "per frame" }));
  const mode = h("select", { class: "rlv-select", title: "Overlay: positive and negative panels, or one panel of |attribution|", ...sup },
    h("option", { value: "split", text: "positive | negative" }), h("option", { value: "combined", text: "combined |x|" }));
  const grey = h("input", { type: "checkbox", title: "Show the observation in grey under the attribution colours", ...sup });
  const full = h("input", { type: "checkbox", title: "Show full-resolution (512×512) frames, rendered on demand by Python", ...sup });

  const field = (label: string, ...els: HTMLElement[]) => h("label", { class: "rlv-field" }, h("span", { class: "rlv-field-label", text: label }), ...els);
  const analysis = h("div", { class: "rlv-ctl-group" },
    h("div", { class: "rlv-ctl-head", text: "Analysis (Python)" }),
    field("Layer", layer), field("Output", output), field("NMF rank", rank, rankVal));
  const display = h("div", { class: "rlv-ctl-group" },
    h("div", { class: "rlv-ctl-head", text: "Display (browser)" }),
    field("Gain", gain, gainVal), field("Blur", blur, blurVal, blurAuto), field("Scale", scale), field("Overlay", mode),
    h("div", { class: "rlv-checks" },
      h("label", { class: "rlv-inline" }, residual, " residual"),
      h("label", { class: "rlv-inline" }, grey, " grey underlay"),
      h("label", { class: "rlv-inline" }, full, " full-res")));
  const bmList = h("div", { class: "rlv-bookmarks" });
  const bookmarks = h("div", { class: "rlv-ctl-group rlv-bm-group" }, h("div", { class: "rlv-ctl-head", text: "Bookmarks", title: "Click to move the timeline" }), bmList);
  body.append(h("div", { class: "rlv-ctl-grid" }, analysis, display, bookmarks));

  // Events → traits.
  ctx.dom(layer, "change", () => ctx.set("layer", layer.value));
  ctx.dom(output, "change", () => ctx.set("output", output.value));
  ctx.dom(rank, "input", () => (rankVal.textContent = rank.value));
  ctx.dom(rank, "change", () => ctx.set("rank", +rank.value));
  ctx.dom(residual, "change", () => ctx.set("show_residual", residual.checked));
  ctx.dom(gain, "input", () => ctx.set("gain", +Math.pow(2, +gain.value).toFixed(3), 150));
  ctx.dom(blur, "input", () => ctx.set("blur", +blur.value / ARTICLE_BLUR_RADIUS, 150));
  ctx.dom(blurAuto, "click", (e: Event) => {
    e.preventDefault();
    ctx.set("blur", null);
  });
  ctx.dom(scale, "change", () => ctx.set("scale_mode", scale.value as ModelState["scale_mode"]));
  ctx.dom(mode, "change", () => ctx.set("overlay_mode", mode.value as ModelState["overlay_mode"]));
  ctx.dom(grey, "change", () => ctx.set("grey_underlay", grey.checked));
  ctx.dom(full, "change", () => ctx.set("full_res", full.checked));

  let bmKey = "";
  const drawBookmarks = () => {
    const bms = model.get("bookmarks") ?? [];
    const key = JSON.stringify(bms);
    if (key !== bmKey) {
      bmKey = key;
      bmList.replaceChildren();
      if (!bms.length) bmList.append(h("div", { class: "rlv-muted", text: "No bookmarks." }));
      for (const [kind, label, help] of BOOKMARK_KINDS) {
        const items = bms.filter((b) => (b.kind ?? "other") === kind);
        if (!items.length) continue;
        bmList.append(h("div", { class: "rlv-bm-kind", text: label, title: help }));
        for (const b of items) {
          const it = h("button", { class: `rlv-bm rlv-bm-${kind}`, "data-lm-suppress-shortcuts": "true",
            title: b.detail ?? `${label}: trajectory ${b.trajectory + 1}, step ${b.frame}`,
            text: b.label ?? `T${b.trajectory + 1} · step ${b.frame}` });
          it.dataset.trajectory = String(b.trajectory);
          it.dataset.frame = String(b.frame);
          ctx.dom(it, "click", () => {
            if (ctx.has("trajectory")) ctx.model.set("trajectory", b.trajectory);
            ctx.set("frame", b.frame);
          });
          bmList.append(it);
        }
      }
      const others = bms.filter((b) => !BOOKMARK_KINDS.some(([k]) => k === b.kind));
      if (others.length) bmList.append(h("div", { class: "rlv-bm-kind", text: "Other" }));
      for (const b of others) {
        const it = h("button", { class: "rlv-bm", text: b.label ?? `T${b.trajectory + 1} · step ${b.frame}`, title: b.detail ?? "" });
        it.dataset.trajectory = String(b.trajectory);
        it.dataset.frame = String(b.frame);
        ctx.dom(it, "click", () => {
          ctx.model.set("trajectory", b.trajectory);
          ctx.set("frame", b.frame);
        });
        bmList.append(it);
      }
    }
    const tr = model.get("trajectory");
    const fr = model.get("frame");
    for (const el of Array.from(bmList.querySelectorAll<HTMLElement>(".rlv-bm"))) {
      el.classList.toggle("rlv-current", +el.dataset.trajectory! === tr && +el.dataset.frame! === fr);
    }
  };

  const allActions = h("input", { type: "checkbox", class: "rlv-all-actions", title: "List all 15 actions in the Output menu (the keys D A W S Q E, which do nothing in CoinRun, are hidden by default)", ...sup });
  analysis.append(h("label", { class: "rlv-inline rlv-muted rlv-all-actions-label", title: allActions.title }, allActions, "all 15 actions in the Output menu"));
  ctx.dom(allActions, "change", () => ctx.set("show_all_actions", allActions.checked));

  /** Output options without the no-op actions (unless shown, or the one selected). */
  const visibleOutputs = (): OutputOption[] => {
    const opts = model.get("outputs") ?? [];
    if (model.get("show_all_actions")) return opts;
    const noop = new Set(model.get("noop_actions") ?? []);
    const cur = (model.get("output") as string) ?? "";
    return opts.filter((o) => {
      const spec = String(Array.isArray(o) ? o[0] : o);
      const m = /^(logit|logprob):(\d+)$/.exec(spec);
      return !m || !noop.has(+m[2]) || spec === cur;
    });
  };

  const fill = (sel: HTMLSelectElement, opts: OutputOption[], key: string) => {
    const k = JSON.stringify(opts);
    if (sel.dataset.key === k) return;
    sel.dataset.key = k;
    sel.replaceChildren();
    const groups = new Map<string, HTMLElement>();
    for (const o of opts) {
      const [value, label, group] = Array.isArray(o) ? o : [o, o, ""];
      const opt = h("option", { value: String(value), text: String(label) });
      if (group) {
        if (!groups.has(group)) {
          const og = h("optgroup", { label: group });
          groups.set(group, og);
          sel.append(og);
        }
        groups.get(group)!.append(opt);
      } else sel.append(opt);
    }
    void key;
  };

  const draw = () => {
    const busy = !!model.get("busy");
    const stat = ctx.isStatic;
    fill(layer, model.get("layers") ?? [], "layers");
    layer.value = (model.get("layer") as string) ?? "";
    fill(output, visibleOutputs(), "outputs");
    allActions.checked = !!model.get("show_all_actions");
    output.dataset.options = String(output.options.length);
    output.value = (model.get("output") as string) ?? "value";
    rank.max = String(model.get("rank_max") ?? 16);
    rank.value = String(model.get("rank") ?? 8);
    rankVal.textContent = rank.value;
    for (const el of [layer, output, rank]) {
      el.disabled = stat;
      if (stat) el.title = "Needs a live kernel (static export)";
    }
    root.classList.toggle("rlv-is-busy", busy);
    residual.checked = !!model.get("show_residual");
    const gv = +(model.get("gain") ?? 1);
    gain.value = String(Math.log2(gv > 0 ? gv : 1));
    gainVal.textContent = `${gv.toFixed(2)}×`;
    // the effective radius: explicit, or scaled to the shown layer (attributions (E, T, H, W, C))
    const bTrait = model.get("blur");
    const auto = bTrait === null || bTrait === undefined;
    const layerH = model.get("attributions")?.shape[2];
    const known = !auto || (layerH ?? 0) > 0;
    const radius = blurRadius(effectiveBlur(bTrait, layerH));
    blur.value = String(radius);
    blurVal.textContent = known ? radius.toFixed(1) : "auto";
    blurVal.title = auto ? (known ? `auto: 7·${layerH}/32 for this ${layerH}-position layer` : "auto: 7·H/32 for the shown layer") : `b = ${(+bTrait).toFixed(3)}`;
    blurAuto.classList.toggle("rlv-primary", auto);
    blurAuto.setAttribute("aria-pressed", auto ? "true" : "false");
    root.dataset.blurRadius = known ? String(radius) : "";
    root.dataset.blurAuto = auto ? "1" : "0";
    scale.value = (model.get("scale_mode") as string) ?? "trajectory";
    mode.value = (model.get("overlay_mode") as string) ?? "split";
    grey.checked = !!model.get("grey_underlay");
    full.checked = !!model.get("full_res");
    full.disabled = stat;
    drawBookmarks();
  };
  const sched = scheduler(draw);
  ctx.watch(["layers", "layer", "outputs", "output", "rank", "rank_max", "show_residual", "gain", "blur", "attributions", "scale_mode",
    "overlay_mode", "grey_underlay", "full_res", "bookmarks", "busy", "trajectory", "frame", "show_all_actions", "noop_actions"], () => sched.request());
  ctx.onDispose(() => sched.cancel());
  draw();
  return { redraw: draw };
}

export default widgetEntry(mountStatus, mountControls);
