// CounterfactualPanel: edit the game, not the network (issue 17, requirement 3). The original
// frame (512-px engine render, drawn at 320 css px) with its objects outlined, and the engine's
// re-render of the edited state beside it. A click on either frame goes to Python as
// {type: "cf_click", x, y} in 512-px frame coordinates; Python selects the object there, moves
// the selected object there, or places the palette's kind there (cf_mode), re-renders, runs the
// agent on both frames and sends back cf_edited, cf_objects, cf_history and cf_result.
import { Ctx, ensureStyle, h, panel, scheduler, widgetEntry } from "./model";
import { pngFrames } from "./arrays";
import type { Frames } from "./arrays";
import css from "./counterfactual_panel.css";

const STYLE_ID = "rlv-cf-style-v1";
const KINDS = ["saw", "enemy", "crate", "coin"];

interface CfObject { ref: number | [number, number]; kind: string; box: [number, number, number, number] }
interface CfResult {
  value?: number; value_edited?: number; value_change?: number; kl?: number;
  policy_changes?: { action: string; p: number; p_edited: number; change: number }[];
  features?: { label: string; total: number; total_edited: number; change: number }[];
}

const sameRef = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const f3 = (v: number | undefined) => (v === undefined || !isFinite(v) ? "–" : v.toFixed(3));
const signed = (v: number | undefined) => (v === undefined || !isFinite(v) ? "–" : (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(3));

export function mountCounterfactualPanel(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  if (!document.getElementById(STYLE_ID)) {
    const s = document.createElement("style");
    s.id = STYLE_ID;
    s.textContent = css;
    document.head.appendChild(s);
  }
  const model = ctx.model as any; // cf_* traits are not in ModelState (composed later)
  const get = (k: string) => model.get(k);
  const { root, body } = panel("Counterfactual frame",
    "Edit the game, not the network: click an object on a frame to select it, then hide, remove or move it (drag it, or Move… and click the place), or pick a kind from the palette and click a free place. The engine re-renders the edited state; the agent's value, policy and attribution are compared with the original.");
  root.classList.add("rlv-cf");
  host.append(root);
  const sup = { "data-lm-suppress-shortcuts": "true" };
  const mkCanvas = (cls: string) => h("canvas", { class: `rlv-cf-canvas ${cls}`, width: 512, height: 512 }) as HTMLCanvasElement;
  const orig = mkCanvas("rlv-cf-original");
  const edit = mkCanvas("rlv-cf-edited");
  const origCap = h("div", { class: "rlv-cf-cap", text: "Original" });
  const editCap = h("div", { class: "rlv-cf-cap", text: "Counterfactual" });
  const btn = (text: string, cls: string, title: string) => h("button", { class: `rlv-btn ${cls}`, text, title, ...sup }) as HTMLButtonElement;
  const hide = btn("Hide", "rlv-cf-hide", "Hide the selected object: not drawn, still in the game (a hidden saw still kills)");
  const remove = btn("Remove", "rlv-cf-remove", "Remove the selected object from the level");
  const move = btn("Move…", "rlv-cf-move", "Then click where the selected object should go");
  const undo = btn("Undo", "rlv-cf-undo", "Take back the last edit of this frame");
  const reset = btn("Reset", "rlv-cf-reset", "Back to the original frame (clears this frame's history)");
  // inside the explorer: edit the frame the viewer shows (the panel does no work until asked)
  const composed = model.get("frame") !== undefined && model.get("trajectory") !== undefined;
  const follow = btn("Edit the shown frame", "rlv-cf-follow", "Load the frame the viewer shows now (its earlier edits come back)");
  const palette = h("select", { class: "rlv-cf-palette", title: "Place an object: pick a kind, then click a free place", ...sup }) as HTMLSelectElement;
  palette.append(h("option", { value: "", text: "Place…" }), ...KINDS.map((k) => h("option", { value: k, text: k })));
  const selInfo = h("span", { class: "rlv-muted rlv-cf-selected" });
  const error = h("div", { class: "rlv-cf-error" });
  const result = h("div", { class: "rlv-cf-result" });
  const history = h("ol", { class: "rlv-cf-history" });
  body.append(
    h("div", { class: "rlv-cf-screens" },
      h("div", { class: "rlv-cf-screen" }, origCap, orig), h("div", { class: "rlv-cf-screen" }, editCap, edit)),
    h("div", { class: "rlv-row" }, ...(composed ? [follow] : []), hide, remove, move, palette, undo, reset, selInfo),
    error, result, h("div", { class: "rlv-muted", text: "Edits of this frame:" }), history);

  let origFrames: Frames | null = null;
  let editFrames: Frames | null = null;
  const decode = () => {
    origFrames = pngFrames(get("cf_original"));
    editFrames = pngFrames(get("cf_edited"));
  };

  const paint = (c: HTMLCanvasElement, fr: Frames | null, objs: CfObject[], selected: unknown) => {
    const g = c.getContext("2d")!;
    const R = (get("cf_resolution") as number) || 512;
    if (c.width !== R) { c.width = R; c.height = R; }
    g.fillStyle = "#222";
    g.fillRect(0, 0, R, R);
    const img = fr?.strip(0);
    if (img) {
      const tmp = document.createElement("canvas");
      tmp.width = img.width;
      tmp.height = img.height;
      tmp.getContext("2d")!.putImageData(new ImageData(new Uint8ClampedArray(img.data), img.width, img.height), 0, 0);
      g.drawImage(tmp, 0, 0, R, R);
    }
    return { g, objs, selected };
  };
  const outline = (g: CanvasRenderingContext2D, objs: CfObject[], selected: unknown) => {
    for (const o of objs) {
      const [x0, y0, x1, y1] = o.box;
      const sel = sameRef(o.ref, selected);
      g.lineWidth = sel ? 4 : 2;
      g.strokeStyle = sel ? "#facc15" : o.kind === "agent" ? "rgba(96,165,250,0.8)" : "rgba(255,255,255,0.85)";
      g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
  };

  const draw = () => {
    const objs = (get("cf_objects") as CfObject[]) ?? [];
    const selected = get("cf_selected");
    const busy = !!get("cf_busy");
    const live = !ctx.isStatic;
    const o = paint(orig, origFrames, objs, selected);
    outline(o.g, objs, selected);
    const e = paint(edit, editFrames, objs, selected);
    if (selected !== null && selected !== undefined) outline(e.g, objs.filter((x) => sameRef(x.ref, selected)), selected);
    const hist = (get("cf_history") as string[]) ?? [];
    const tr = get("cf_trajectory");
    const fr = get("cf_frame");
    origCap.textContent = !origFrames ? (composed ? "Original · press “Edit the shown frame” to load the viewer's frame" : "Original")
      : tr >= 0 ? `Original · T${tr + 1}·${fr} (trajectory ${tr + 1}, step ${fr})` : "Original";
    editCap.textContent = hist.length ? `Counterfactual · ${hist.length} edit${hist.length > 1 ? "s" : ""}` : "Counterfactual · no edits yet";
    const selObj = objs.find((x) => sameRef(x.ref, selected));
    const mode = get("cf_mode") as string;
    selInfo.textContent = mode === "move" ? "Click where it should go" : mode === "add" ? `Click a free place for a ${get("cf_palette_kind")}` :
      selObj ? `Selected: ${selObj.kind} ${JSON.stringify(selObj.ref)}` : "Click an object to select it";
    hide.disabled = remove.disabled = move.disabled = !live || busy || !selObj || selObj.kind === "agent";
    undo.disabled = reset.disabled = !live || busy || !hist.length;
    palette.disabled = !live || busy;
    follow.disabled = !live || busy;
    if (composed) follow.textContent = `Edit the shown frame (T${(get("trajectory") as number) + 1}·${get("frame")})`;
    move.classList.toggle("rlv-cf-active", mode === "move");
    palette.value = mode === "add" ? ((get("cf_palette_kind") as string) ?? "") : "";
    error.textContent = (get("cf_error") as string) || "";
    root.classList.toggle("rlv-cf-busy", busy);
    history.replaceChildren(...hist.map((s) => h("li", { text: s })));
    const r = (get("cf_result") as CfResult) ?? {};
    result.replaceChildren();
    if (r.value !== undefined) {
      result.append(h("div", { class: "rlv-cf-value",
        text: `Value ${f3(r.value)} → ${f3(r.value_edited)} (change ${signed(r.value_change)}) · policy KL ${r.kl !== undefined && r.kl > 0 && r.kl < 0.001 ? r.kl.toExponential(2) : f3(r.kl)} nats` }));
      const rows = (r.policy_changes ?? []).map((p) =>
        h("tr", {}, h("td", { text: p.action }), h("td", { text: f3(p.p) }), h("td", { text: f3(p.p_edited) }), h("td", { text: signed(p.change) })));
      if (rows.length) result.append(h("table", { class: "rlv-cf-policy" },
        h("tr", {}, h("th", { text: "action" }), h("th", { text: "p" }), h("th", { text: "p edited" }), h("th", { text: "change" })), ...rows));
      const feats = (r.features ?? []).map((f) =>
        h("tr", {}, h("td", { text: f.label }), h("td", { text: f3(f.total) }), h("td", { text: f3(f.total_edited) }), h("td", { text: signed(f.change) })));
      if (feats.length) result.append(h("table", { class: "rlv-cf-features" },
        h("tr", {}, h("th", { text: "feature" }), h("th", { text: "attribution" }), h("th", { text: "edited" }), h("th", { text: "change" })), ...feats));
    }
  };
  const sched = scheduler(draw);

  const onClick = (ev: MouseEvent) => {
    if (ctx.isStatic || get("cf_busy")) return;
    const c = ev.currentTarget as HTMLCanvasElement;
    const rect = c.getBoundingClientRect();
    const R = (get("cf_resolution") as number) || 512;
    const x = ((ev.clientX - rect.left) / rect.width) * R;
    const y = ((ev.clientY - rect.top) / rect.height) * R;
    model.send({ type: "cf_click", x, y });
  };
  // Drag and drop: press on the selected object's box, release elsewhere -> {type: "cf_drag"}.
  let drag: { ref: unknown; x: number; y: number } | null = null;
  let dragged = false;
  const at = (ev: MouseEvent): [number, number] => {
    const rect = (ev.currentTarget as HTMLCanvasElement).getBoundingClientRect();
    const R = (get("cf_resolution") as number) || 512;
    return [((ev.clientX - rect.left) / rect.width) * R, ((ev.clientY - rect.top) / rect.height) * R];
  };
  const onDown = (ev: PointerEvent) => {
    const sel = get("cf_selected");
    if (ctx.isStatic || sel === null || sel === undefined) return;
    const [x, y] = at(ev);
    const o = ((get("cf_objects") as CfObject[]) ?? []).find((q) => sameRef(q.ref, sel));
    if (o && x >= o.box[0] && x <= o.box[2] && y >= o.box[1] && y <= o.box[3]) drag = { ref: sel, x, y };
  };
  const onUp = (ev: PointerEvent) => {
    const d = drag;
    drag = null;
    if (!d) return;
    const [x, y] = at(ev);
    if (Math.hypot(x - d.x, y - d.y) < 12) return;
    dragged = true; // the click that follows is the end of the drag, not a selection
    model.send({ type: "cf_drag", ref: d.ref, x, y });
  };
  for (const c of [orig, edit]) {
    ctx.dom(c, "pointerdown", onDown);
    ctx.dom(c, "pointerup", onUp);
    ctx.dom(c, "click", (ev: MouseEvent) => {
      if (dragged) {
        dragged = false;
        return;
      }
      onClick(ev);
    });
  }
  const setMode = (mode: string, kind?: string) => {
    if (kind !== undefined) model.set("cf_palette_kind", kind);
    model.set("cf_mode", mode);
    model.save_changes();
    sched.request();
  };
  ctx.dom(hide, "click", () => model.send({ type: "cf_hide", ref: get("cf_selected") }));
  ctx.dom(remove, "click", () => model.send({ type: "cf_remove", ref: get("cf_selected") }));
  ctx.dom(move, "click", () => setMode(get("cf_mode") === "move" ? "select" : "move"));
  ctx.dom(undo, "click", () => model.send({ type: "cf_undo" }));
  ctx.dom(reset, "click", () => model.send({ type: "cf_reset" }));
  ctx.dom(follow, "click", () => model.send({ type: "cf_follow" }));
  ctx.dom(palette, "change", () => (palette.value ? setMode("add", palette.value) : setMode("select", "")));

  ctx.watch(["cf_original", "cf_edited"] as any, () => { decode(); sched.request(); });
  ctx.watch(["cf_objects", "cf_selected", "cf_history", "cf_result", "cf_busy", "cf_error", "cf_mode", "cf_palette_kind", "cf_trajectory", "cf_frame", "trajectory", "frame"] as any, () => sched.request());
  ctx.onDispose(() => sched.cancel());
  decode();
  draw();
  return { redraw: draw };
}

export default widgetEntry(mountCounterfactualPanel);
