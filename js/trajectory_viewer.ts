// TrajectoryViewer: observation with positive / negative (or combined) attribution overlays, the
// policy as a bar over actions, step information, video controls with hotkeys, and a timeline
// (compressed filmstrip scrubber + value, advantage, selected-output and feature-attribution
// graphs with axes and episode boundaries).
import { Ctx, ensureStyle, h, scheduler, widgetEntry } from "./model";
import { dataOf, DataStore, Attr } from "./data";
import { blurKernel, cssColor, effectiveBlur, featureColors, greyRGBA, Kernel, overlayRGBA, RESIDUAL_CSS, Sign } from "./display";
import { Box, drawChart, drawXAxis, fitCanvas, fmt, niceTicks, Series, tOf, xOf } from "./plot";

const SPEEDS = [3, 6, 12, 24, 48];
const ICONS: Record<string, string> = {
  play: "M4 2.5v11l9-5.5z",
  pause: "M3.5 2.5h3v11h-3zM9.5 2.5h3v11h-3z",
  first: "M2.5 2.5h2v11h-2zM14 2.5v11l-8.5-5.5z",
  last: "M11.5 2.5h2v11h-2zM2 2.5v11l8.5-5.5z",
  prev: "M12 2.5v11l-9-5.5z",
  next: "M4 2.5v11l9-5.5z",
  prevEp: "M1.5 2.5h1.5v11h-1.5zM9 2.5v11l-5.5-5.5zM15 2.5v11l-5.5-5.5z",
  nextEp: "M13 2.5h1.5v11h-1.5zM1 2.5v11l5.5-5.5zM7 2.5v11l5.5-5.5z",
};
function icon(name: string): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}
const SCRUB_RANGE: [number, number] = [42 / 64, 44 / 64]; // the original's filmstrip slice
const COL = { value: "#2ca02c", advantage: "#1f77b4", output: "#d62728", edited: "#ff7f0e", rerun: "#9467bd" };

function softmax(l: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  const out = new Float64Array(l.length);
  let s = 0;
  for (let i = 0; i < l.length; i++) s += out[i] = Math.exp(l[i] - m);
  for (let i = 0; i < l.length; i++) out[i] /= s;
  return out;
}

interface Screen {
  root: HTMLElement;
  canvas: HTMLCanvasElement;
  title: HTMLElement;
  sub: HTMLElement;
  sign: Sign | null; // null: the plain observation
}

/** Mount the trajectory viewer into `host`; returns a redraw function (for benchmarks). */
export function mountTrajectoryViewer(ctx: Ctx, host: HTMLElement): { redraw: () => void } {
  ensureStyle();
  const model = ctx.model;
  const data: DataStore = dataOf(ctx);
  const root = h("div", { class: "rlv-viewer", tabindex: "0", "data-lm-suppress-shortcuts": "true",
    title: "" });
  root.setAttribute("aria-label", "Trajectory viewer: ← → step, space play/pause, Home/End, [ ] episodes");
  host.append(root);

  // --- screens --------------------------------------------------------------------------------
  const mkScreen = (title: string, sub: string, sign: Sign | null): Screen => {
    const canvas = h("canvas", { class: "rlv-screen-canvas" });
    const t = h("div", { class: "rlv-screen-title", text: title });
    const s = h("div", { class: "rlv-screen-sub", text: sub });
    const r = h("div", { class: "rlv-screen" }, t, s, canvas);
    return { root: r, canvas, title: t, sub: s, sign };
  };
  const scrObs = mkScreen("Observation", "The pixels the model sees", null);
  const scrPos = mkScreen("Positive attribution", "Good news: raises the output", 1);
  const scrNeg = mkScreen("Negative attribution", "Bad news: lowers the output", -1);
  const scrAbs = mkScreen("Attribution (both signs)", "|attribution| of each feature", 0);
  const screens = h("div", { class: "rlv-screens" }, scrObs.root, scrPos.root, scrNeg.root, scrAbs.root);
  const badge = h("div", { class: "rlv-badge rlv-hidden", text: "NEW EPISODE",
    title: "This step starts a new episode (the environment was reset)" });
  scrObs.root.append(badge);

  // --- info + policy -----------------------------------------------------------------------
  const info = h("div", { class: "rlv-info" });
  const policyCanvas = h("canvas", { class: "rlv-policy-canvas" });
  const policy = h("div", { class: "rlv-policy" },
    h("div", { class: "rlv-subtitle", text: "Policy π(a | s)", title: "Action probabilities at this step; red: the action taken. Dashed outline: the original policy when edits are active. Hover a bar for details." }),
    policyCanvas);
  const side = h("div", { class: "rlv-side" }, info, policy);
  const top = h("div", { class: "rlv-top" }, screens, side);

  // --- transport ------------------------------------------------------------------------------
  const btn = (label: string, title: string, fn: () => void) => {
    const b = h("button", { class: "rlv-btn rlv-icon-btn", title, "aria-label": title, "data-lm-suppress-shortcuts": "true" });
    b.append(icon(label));
    ctx.dom(b, "click", (e: Event) => {
      e.preventDefault();
      fn();
      root.focus({ preventScroll: true });
    });
    return b;
  };
  const playBtn = btn("play", "Play / pause (space)", () => togglePlay());
  const speedSel = h("select", { class: "rlv-select", title: "Playback speed (frames per second)", "data-lm-suppress-shortcuts": "true" });
  for (const s of SPEEDS) speedSel.append(h("option", { value: String(s), text: `${s} fps` }));
  speedSel.value = "12";
  const trajSel = h("select", { class: "rlv-select", title: "Which trajectory (environment) to show", "data-lm-suppress-shortcuts": "true" });
  const stepLabel = h("span", { class: "rlv-step-label" });
  const transport = h("div", { class: "rlv-transport" },
    h("label", { class: "rlv-inline", title: "Trajectory" }, "Trajectory ", trajSel),
    btn("first", "First step (Home)", () => seek(0)),
    btn("prevEp", "Previous episode start ([)", () => jumpEpisode(-1)),
    btn("prev", "Step back (←; shift: 10 steps)", () => seek(frame() - 1)),
    playBtn,
    btn("next", "Step forward (→; shift: 10 steps)", () => seek(frame() + 1)),
    btn("nextEp", "Next episode start (])", () => jumpEpisode(1)),
    btn("last", "Last step (End)", () => seek(nSteps() - 1)),
    speedSel, stepLabel,
    h("span", { class: "rlv-hint", text: "← → step · space play · [ ] episodes" }));

  // --- timeline -------------------------------------------------------------------------------
  const tl = h("canvas", { class: "rlv-timeline-canvas", tabindex: "0", "data-lm-suppress-shortcuts": "true" });
  const tip = h("div", { class: "rlv-tooltip rlv-hidden" });
  const timeline = h("div", { class: "rlv-timeline" }, tl, tip);
  root.append(top, transport, timeline);

  // --- state helpers --------------------------------------------------------------------------
  const frame = () => (model.get("frame") as number) ?? 0;
  const traj = () => (model.get("trajectory") as number) ?? 0;
  const nSteps = () => data.steps()?.T ?? (model.get("n_steps") as number) ?? 0;
  const seek = (t: number, ms = 60) => {
    const T = nSteps();
    if (!T) return;
    const c = Math.max(0, Math.min(T - 1, Math.round(t)));
    if (c !== frame()) ctx.set("frame", c, ms);
  };
  const boundaries = (e: number): number[] => {
    const s = data.steps();
    if (!s) return [];
    const out: number[] = [];
    for (let t = 1; t < s.T; t++) if (s.firsts[e * s.T + t]) out.push(t);
    return out;
  };
  const jumpEpisode = (dir: number) => {
    const b = [0, ...boundaries(traj())];
    const t = frame();
    if (dir < 0) seek([...b].reverse().find((x) => x < t) ?? 0);
    else seek(b.find((x) => x > t) ?? nSteps() - 1);
  };

  // --- playback -------------------------------------------------------------------------------
  let timer: number | null = null;
  let last = 0;
  const tick = (now: number) => {
    if (!ctx.local.playing) return;
    const fps = +speedSel.value || 12;
    if (now - last >= 1000 / fps) {
      last = now;
      const T = nSteps();
      const t = frame() + 1;
      if (t >= T) {
        setPlaying(false);
        return;
      }
      ctx.set("frame", t, 250);
    }
    timer = requestAnimationFrame(tick);
  };
  const setPlaying = (p: boolean) => {
    ctx.local.playing = p;
    playBtn.replaceChildren(icon(p ? "pause" : "play"));
    if (p) {
      if (frame() >= nSteps() - 1) ctx.set("frame", 0);
      last = 0;
      timer = requestAnimationFrame(tick);
    } else {
      if (timer !== null) cancelAnimationFrame(timer);
      timer = null;
      model.save_changes();
    }
    ctx.events.emit("playing", p);
  };
  const togglePlay = () => setPlaying(!ctx.local.playing);
  ctx.onDispose(() => timer !== null && cancelAnimationFrame(timer));

  ctx.dom(root, "keydown", (e: KeyboardEvent) => {
    if ((e.target as HTMLElement)?.tagName === "INPUT" && (e.target as HTMLInputElement).type === "text") return;
    if ((e.target as HTMLElement)?.tagName === "SELECT") return;
    const step = e.shiftKey ? 10 : 1;
    let handled = true;
    switch (e.key) {
      case "ArrowLeft": seek(frame() - step); break;
      case "ArrowRight": seek(frame() + step); break;
      case " ": case "Spacebar": togglePlay(); break;
      case "Home": seek(0); break;
      case "End": seek(nSteps() - 1); break;
      case "[": jumpEpisode(-1); break;
      case "]": jumpEpisode(1); break;
      default: handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  });

  ctx.dom(trajSel, "change", () => {
    setPlaying(false);
    ctx.set("trajectory", +trajSel.value);
  });

  // --- drawing: screens -----------------------------------------------------------------------
  const obsCanvas = document.createElement("canvas");
  const greyCanvas = document.createElement("canvas");
  const ovCanvas = document.createElement("canvas");
  let kernel: Kernel = blurKernel(1);
  let kernelFor = 1;
  let colors = featureColors(0);
  let colorsFor = -1;
  let scratch: Float32Array = new Float32Array(0);
  let ovBytes: Uint8ClampedArray = new Uint8ClampedArray(0);
  let greyBytes: Uint8ClampedArray = new Uint8ClampedArray(0);

  // Screens shrink to fit three abreast beside the info column (or above it when narrow).
  const screenSize = () => {
    const max = (model.get("screen_size") as number) || 232;
    const W = root.clientWidth || host.clientWidth || 900;
    let s = Math.floor((W - 16 - 12 - 210) / 3);
    const narrow = s < 180;
    if (narrow) s = Math.floor((W - 18) / 3);
    root.classList.toggle("rlv-narrow", narrow);
    return Math.max(100, Math.min(max, s));
  };

  const putPixels = (c: HTMLCanvasElement, px: Uint8ClampedArray, w: number, hh: number) => {
    if (c.width !== w || c.height !== hh) {
      c.width = w;
      c.height = hh;
    }
    const g = c.getContext("2d")!;
    g.putImageData(new ImageData(px as any, w, hh), 0, 0);
  };

  const attrFor = (e: number): { a: Attr | null; tag: string } => {
    const ed = data.editedFor(e);
    if (ed && ed.attr) return { a: ed.attr, tag: "edited" };
    return { a: data.attr(), tag: "" };
  };

  const drawScreens = () => {
    const S = screenSize();
    const e = traj();
    const t = frame();
    const mode = model.get("overlay_mode") === "combined" ? "combined" : "split";
    scrPos.root.classList.toggle("rlv-hidden", mode !== "split");
    scrNeg.root.classList.toggle("rlv-hidden", mode !== "split");
    scrAbs.root.classList.toggle("rlv-hidden", mode === "split");
    const px = data.frame(e, t);
    const os = data.obsSize();
    const full = model.get("full_res") ? data.fullFrame(e, t) : null;
    let src: HTMLCanvasElement | null = null;
    const pix = full ? full.data : px;
    const pw = full ? full.width : os;
    const ph = full ? full.height : os;
    if (pix) {
      putPixels(obsCanvas, pix, pw, ph);
      src = obsCanvas;
    }
    let under: HTMLCanvasElement | null = src;
    if (pix && model.get("grey_underlay")) {
      greyBytes = greyRGBA(pix, greyBytes.length === pix.length ? greyBytes : undefined);
      putPixels(greyCanvas, greyBytes, pw, ph);
      under = greyCanvas;
    }
    for (const sc of [scrObs, scrPos, scrNeg, scrAbs]) sc.sub.style.maxWidth = `${S}px`;
    const paintBase = (c: HTMLCanvasElement, img: HTMLCanvasElement | null) => {
      const g = fitCanvas(c, S, S);
      g.imageSmoothingEnabled = !!full;
      g.fillStyle = "#222";
      g.fillRect(0, 0, S, S);
      if (img) g.drawImage(img, 0, 0, S, S);
      return g;
    };
    paintBase(scrObs.canvas, src);
    // Overlays.
    let { a, tag } = attrFor(e);
    let editPending = false;
    if (tag === "edited" && a && !a.ready(0, t)) {
      a = data.attr();
      tag = "";
      editPending = true;
    }
    const active = mode === "split" ? [scrPos, scrNeg] : [scrAbs];
    const blur = effectiveBlur(model.get("blur"), a?.H); // null: scaled to the layer (7·H/32)
    if (blur !== kernelFor) {
      kernel = blurKernel(blur);
      kernelFor = blur;
    }
    for (const scr of active) {
      const g = paintBase(scr.canvas, under);
      if (!a || t >= a.T || e >= a.E) {
        scr.sub.dataset.state = "empty";
        continue;
      }
      if (colorsFor !== a.K) {
        colors = featureColors(a.K);
        colorsFor = a.K;
      }
      const maps = data.frameMaps(a, a.E === 1 ? 0 : e, t);
      if (!maps) {
        scr.sub.dataset.state = "pending";
        g.fillStyle = "rgba(255,255,255,0.85)";
        g.font = "12px system-ui, sans-serif";
        g.fillText("computing attribution…", 8, S - 10);
        continue;
      }
      scr.sub.dataset.state = "ok";
      const n = a.H * a.W;
      if (scratch.length < 6 * n) scratch = new Float32Array(6 * n);
      if (ovBytes.length !== 4 * n) ovBytes = new Uint8ClampedArray(4 * n);
      const scale = data.displayScale(a, a.E === 1 ? 0 : e, t, tag);
      overlayRGBA(maps, a.H, a.W, a.K, {
        sign: scr.sign as Sign, scale, gain: +(model.get("gain") ?? 1), isolate: ctx.isolated(),
        residual: !!model.get("show_residual"), colors, kernel,
      }, ovBytes, scratch);
      putPixels(ovCanvas, ovBytes, a.W, a.H);
      g.imageSmoothingEnabled = true;
      g.imageSmoothingQuality = "high";
      g.drawImage(ovCanvas, 0, 0, S, S);
    }
    const iso = ctx.isolated();
    const K = a?.K ?? 0;
    const isoText = iso < 0 ? "" : iso === K ? " · residual only" : ` · feature ${iso + 1} only`;
    scrPos.title.textContent = `Positive attribution${isoText}`;
    scrNeg.title.textContent = `Negative attribution${isoText}`;
    scrAbs.title.textContent = `Attribution, both signs${isoText}`;
    const edited = tag === "edited";
    for (const s of active) {
      s.root.classList.toggle("rlv-edited", edited);
      s.root.classList.toggle("rlv-edit-pending", editPending);
      s.root.title = edited ? "Attribution of the edited agent" : editPending ? "Edited attribution is being computed; showing the original" : "";
    }
  };

  // --- drawing: info + policy ---------------------------------------------------------------
  let policyState: { p: Float64Array; p0: Float64Array | null; taken: number } | null = null;
  const drawPolicy = (p: Float64Array, p0: Float64Array | null, taken: number) => {
    policyState = { p, p0, taken };
    const W = Math.max(180, Math.min(420, policy.clientWidth || side.clientWidth || 220));
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
    const glyphs = (model.get("action_glyphs") as string[]) ?? [];
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let i = 0; i < A; i++) {
      const x = left + i * bw + 1;
      g.fillStyle = i === taken ? "#d62728" : "#9ca3af";
      const y = yOf(p[i]);
      g.fillRect(x, y, Math.max(1, bw - 2), yOf(0) - y);
      if (p0) {
        g.strokeStyle = "#374151";
        g.setLineDash([2, 2]);
        const y0 = yOf(p0[i]);
        g.strokeRect(x + 0.5, y0 + 0.5, Math.max(1, bw - 3), yOf(0) - y0);
        g.setLineDash([]);
      }
      g.fillStyle = i === taken ? "#d62728" : "#374151";
      g.font = `${i === taken ? "700 " : ""}11px system-ui, sans-serif`;
      g.fillText(glyphs[i] ?? String(i), x + bw / 2 - 1, Hh - bottom + 3);
    }
  };
  ctx.dom(policyCanvas, "mousemove", (ev: MouseEvent) => {
    if (!policyState) return;
    const r = policyCanvas.getBoundingClientRect();
    const A = policyState.p.length;
    const i = Math.floor(((ev.clientX - r.left - 30) / (r.width - 32)) * A);
    if (i < 0 || i >= A) {
      policyCanvas.title = "";
      return;
    }
    const names = (model.get("action_names") as string[]) ?? [];
    const { p, p0, taken } = policyState;
    policyCanvas.title = `${names[i] ?? i}: p = ${(100 * p[i]).toFixed(1)}%${p0 ? ` (original ${(100 * p0[i]).toFixed(1)}%)` : ""}${i === taken ? " · taken" : ""}`;
  });

  const infoRow = (k: string, v: string, title = "", cls = "") =>
    h("div", { class: `rlv-info-row ${cls}`, title }, h("span", { class: "rlv-info-k", text: k }), h("span", { class: "rlv-info-v", text: v }));

  const drawInfo = () => {
    const s = data.steps();
    if (!s) {
      info.replaceChildren(h("div", { class: "rlv-empty", text: "No trajectory loaded." }));
      return;
    }
    const e = Math.min(traj(), s.E - 1);
    const t = Math.min(frame(), s.T - 1);
    const i = e * s.T + t;
    const names = (model.get("action_names") as string[]) ?? [];
    const glyphs = (model.get("action_glyphs") as string[]) ?? [];
    const a = s.actions[i];
    // Episode index within the trajectory and step within the episode.
    let ep = 0;
    let start = 0;
    for (let u = 1; u <= t; u++) if (s.firsts[e * s.T + u]) {
      ep++;
      start = u;
    }
    const lastReward = t > 0 ? s.rewards[i - 1] : 0;
    const ed = data.editedFor(e);
    const out = data.outputSpec();
    const outLabel = (model.get("output_label") as string) || out;
    const rows: HTMLElement[] = [
      infoRow("Step", `${t} / ${s.T - 1}`, "Step within this trajectory"),
      infoRow("Episode", `${ep + 1} · step ${t - start}`, "Episode number within this trajectory, and step within the episode"),
      infoRow("Next action", `${glyphs[a] ?? ""} ${names[a] ?? a}`, "The action the agent took from this observation"),
      infoRow("Last reward", fmt(lastReward), "Reward received on the previous step", lastReward > 0 ? "rlv-good" : ""),
      infoRow("Value V(s)", ed ? `${fmt(s.values[i])} → ${fmt(ed.values[t])}` : fmt(s.values[i]),
        ed ? "Original → edited value" : "The value function's estimate at this step", ed ? "rlv-edited-text" : ""),
      infoRow("Advantage", fmt(s.advantages[i]), "GAE advantage of the action taken (γ 0.999, λ 0.95)"),
    ];
    if (out !== "value" && s.A) {
      const groups = (model.get("action_groups") as Record<string, number[]>) ?? {};
      const series = data.outputSeries(e, s.values, s.logits, e * s.T, s.T, s.A);
      void groups;
      rows.push(infoRow("Output", `${fmt(series[t])}`, `Selected output: ${outLabel}`));
    }
    info.replaceChildren(...rows);
    badge.classList.toggle("rlv-hidden", !s.firsts[i]);
    // Policy.
    if (!s.A) return;
    const logits = ed && ed.logits.length === s.T * s.A ? ed.logits.subarray(t * s.A, (t + 1) * s.A) : s.logits.subarray(i * s.A, (i + 1) * s.A);
    drawPolicy(softmax(logits), ed ? softmax(s.logits.subarray(i * s.A, (i + 1) * s.A)) : null, a);
  };

  // --- drawing: timeline ----------------------------------------------------------------------
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
      out.push({ title: `Output: ${(model.get("output_label") as string) || spec}`, series: ser });
    }
    const { a, tag } = attrFor(e);
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
    const W = Math.max(320, Math.floor(root.clientWidth || host.clientWidth || 760) - 2);
    const left = 52;
    const right = 10;
    const film: Box = { x: left, y: 4, w: W - left - right, h: 40 };
    const charts: { box: Box; title: string }[] = [];
    let y = film.y + film.h + 8;
    const specs = s ? chartSeries(Math.min(traj(), s.E - 1)) : [];
    const heights = specs.map((_, i) => (i === 0 ? 70 : 52));
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
    const e = Math.min(traj(), s.E - 1);
    const T = s.T;
    const b = boundaries(e);
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
    const bms = ((model.get("bookmarks") as any[]) ?? []).filter((m) => m.trajectory === e);
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
    specs.forEach((sp, i) => {
      const c = L.charts[i];
      if (!c) return;
      drawChart(g, { T, box: c.box, title: sp.title, series: sp.series, boundaries: b, zeroLine: sp.zero });
    });
    const lastBox = L.charts.length ? L.charts[L.charts.length - 1].box : L.film;
    drawXAxis(g, T, lastBox);
    baseValid = true;
  };

  const drawTimeline = () => {
    if (!baseValid || !layout || (root.clientWidth && Math.abs(layout.W - (root.clientWidth - 2)) > 2)) drawBase();
    const L = layout!;
    const g = fitCanvas(tl, L.W, L.H);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, tl.width, tl.height);
    g.drawImage(base, 0, 0);
    const dpr = tl.width / L.W;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!L.T) return;
    const t = frame();
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

  // Timeline interaction: drag to scrub, hover for a tooltip.
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
    setPlaying(false);
    seek(t);
  });
  ctx.dom(tl, "pointermove", (ev: PointerEvent) => {
    const t = tAt(ev);
    if (t < 0) return;
    if (dragging) seek(t);
    const s = data.steps();
    if (!s) return;
    const e = Math.min(traj(), s.E - 1);
    const i = e * s.T + t;
    const names = (model.get("action_names") as string[]) ?? [];
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

  // --- trajectory selector + step label -------------------------------------------------------
  const drawTransport = () => {
    const s = data.steps();
    const E = s?.E ?? 0;
    if (trajSel.options.length !== E) {
      trajSel.replaceChildren();
      const eps = (model.get("trajectory_labels") as string[]) ?? [];
      for (let e = 0; e < E; e++) trajSel.append(h("option", { value: String(e), text: eps[e] ?? `${e + 1} of ${E}` }));
    }
    trajSel.value = String(traj());
    stepLabel.textContent = s ? `step ${frame()} / ${s.T - 1}` : "";
    root.dataset.frame = String(frame());
  };

  // --- orchestration --------------------------------------------------------------------------
  const frameDraw = () => {
    drawScreens();
    drawInfo();
    drawTransport();
    drawTimeline();
  };
  const sched = scheduler(frameDraw);
  ctx.watch(["frame"], () => sched.request());
  ctx.watch(["trajectory"], () => {
    baseValid = false;
    sched.request();
  });
  ctx.watch(["gain", "blur", "scale_mode", "show_residual", "overlay_mode", "grey_underlay", "full_res", "isolated_feature", "screen_size"], () => {
    baseValid = false;
    sched.request();
  });
  ctx.watch(["output", "output_label", "bookmarks", "action_names", "action_glyphs", "trajectory_labels"], () => {
    baseValid = false;
    sched.request();
  });
  ctx.listen("data", () => {
    baseValid = false;
    sched.request();
  });
  ctx.listen("hover", () => {
    baseValid = false;
    sched.request();
  });
  if (typeof ResizeObserver !== "undefined") {
    const ro = new ResizeObserver(() => {
      baseValid = false;
      sched.request();
    });
    ro.observe(root);
    ctx.onDispose(() => ro.disconnect());
  }
  ctx.onDispose(() => sched.cancel());
  frameDraw();
  const api = {
    redraw: () => frameDraw(),
    drawScreens: () => drawScreens(),
  };
  (root as any).rlv = api;
  return api;
}

export default widgetEntry(mountTrajectoryViewer);

/** The display maths (also used by tests and for custom renderings). */
export * as display from "./display";
