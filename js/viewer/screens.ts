// The viewer's screens: the observation and the attribution overlays (positive and negative, or
// both signs combined) drawn over it, sized to fit, with the new-episode badge.
import { h } from "../model";
import { blurKernel, effectiveBlur, featureColors, greyRGBA, Kernel, overlayRGBA, Sign } from "../display";
import { fitCanvas } from "../plot";
import { Viewer } from "./state";

interface Screen {
  root: HTMLElement;
  canvas: HTMLCanvasElement;
  title: HTMLElement;
  sub: HTMLElement;
  iso: HTMLElement; // "feature k only" badge over the canvas (never changes the layout)
  sign: Sign | null; // null: the plain observation
}

function mkScreen(title: string, sub: string, sign: Sign | null): Screen {
  const canvas = h("canvas", { class: "rlv-screen-canvas" });
  const t = h("div", { class: "rlv-screen-title", text: title });
  const s = h("div", { class: "rlv-screen-sub", text: sub });
  const iso = h("div", { class: "rlv-iso-badge rlv-hidden" });
  const r = h("div", { class: "rlv-screen" }, t, s, h("div", { class: "rlv-screen-box" }, canvas, iso));
  return { root: r, canvas, title: t, sub: s, iso, sign };
}

function putPixels(c: HTMLCanvasElement, px: Uint8ClampedArray, w: number, hh: number): void {
  if (c.width !== w || c.height !== hh) {
    c.width = w;
    c.height = hh;
  }
  const g = c.getContext("2d")!;
  g.putImageData(new ImageData(px as Uint8ClampedArray<ArrayBuffer>, w, hh), 0, 0);
}

/** Mount the screens (.rlv-screens) into `host`; `draw` paints the shown step. */
export function mountScreens(v: Viewer, host: HTMLElement): { draw: () => void } {
  const { ctx, model, data, root } = v;
  const scrObs = mkScreen("Observation", "The pixels the model sees", null);
  const scrPos = mkScreen("Positive attribution", "Good news: raises the output", 1);
  const scrNeg = mkScreen("Negative attribution", "Bad news: lowers the output", -1);
  const scrAbs = mkScreen("Attribution (both signs)", "|attribution| of each feature", 0);
  const screens = h("div", { class: "rlv-screens" }, scrObs.root, scrPos.root, scrNeg.root, scrAbs.root);
  const badge = h("div", { class: "rlv-badge rlv-hidden", text: "NEW EPISODE",
    title: "This step starts a new episode (the environment was reset)" });
  scrObs.root.append(badge);
  host.append(screens);

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
    const max = model.get("screen_size") || 232;
    const W = root.clientWidth || v.host.clientWidth || 900;
    let s = Math.floor((W - 16 - 12 - 210) / 3);
    const narrow = s < 180;
    if (narrow) s = Math.floor((W - 18) / 3);
    root.classList.toggle("rlv-narrow", narrow);
    return Math.max(100, Math.min(max, s));
  };

  const drawBadge = () => {
    const s = data.steps();
    if (!s) return;
    const e = Math.min(v.traj(), s.E - 1);
    const t = Math.min(v.frame(), s.T - 1);
    badge.classList.toggle("rlv-hidden", !s.firsts[e * s.T + t]);
  };

  const draw = () => {
    const S = screenSize();
    const e = v.traj();
    const t = v.frame();
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
    for (const sc of [scrObs, scrPos, scrNeg, scrAbs]) {
      // fixed-width captions: hovering or isolating never changes the layout
      sc.sub.style.width = `${S}px`;
      sc.title.style.width = `${S}px`;
    }
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
    let { a, tag } = v.attrFor(e);
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
    // the edited data holds the shown trajectory only (E = 1): its row 0 is trajectory e
    const ae = a && (tag === "edited" || a.E === 1) ? 0 : e;
    for (const scr of active) {
      const g = paintBase(scr.canvas, under);
      if (!a || t >= a.T || ae >= a.E) {
        scr.sub.dataset.state = "empty";
        continue;
      }
      if (colorsFor !== a.K) {
        colors = featureColors(a.K);
        colorsFor = a.K;
      }
      const maps = data.frameMaps(a, ae, t);
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
      const scale = data.displayScale(a, ae, t, tag);
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
    const isoText = iso < 0 ? "" : iso === K ? "residual only" : `feature ${iso + 1} only`;
    for (const sc of [scrPos, scrNeg, scrAbs]) {
      sc.iso.textContent = isoText;
      sc.iso.classList.toggle("rlv-hidden", !isoText);
    }
    const edited = tag === "edited";
    for (const s of active) {
      s.root.classList.toggle("rlv-edited", edited);
      s.root.classList.toggle("rlv-edit-pending", editPending);
      s.root.title = edited ? "Attribution of the edited agent" : editPending ? "Edited attribution is being computed; showing the original" : "";
    }
    drawBadge();
  };
  return { draw };
}
