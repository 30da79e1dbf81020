// Display maths for attribution overlays, computed in the browser so that colouring, blur, gain
// and isolation need no kernel round trip. Mirrors the pure functions of
// rlvision_widgets/analysis/display.py (and the original tool, lucid's rl_util):
//
//   colours   unit-norm RGB hues at 360·i/K (lucid hue_to_rgb, warped away from primaries)
//   scale     per trajectory: median over frames of each frame's max (features only, signed);
//             per frame: that frame's max; not positive → 1
//   colour    rgb = Σ_k gain·max(±x_k, 0)/scale · colour_k (+ residual · (1, 1, 1))
//   blur      unnormalised exp(−r/b) disc of radius 7·b at layer resolution (b = 1: the article's
//             radius 7); by default b = H/32, the article's disc on its 32×32 layer 2b scaled to
//             the shown layer (radius 3.5 on 16×16): see effectiveBlur
//   opacity   alpha = min(1, ‖rgb‖), displayed colour = rgb / alpha (clipped to [0, 1])

export type Sign = 1 | -1 | 0; // positive part, negative part, absolute value

const PRIMARIES: [number, number, number][] = [
  [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1],
];

function unit(v: number[]): [number, number, number] {
  const n = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / n, v[1] / n, v[2] / n];
}

/** An RGB unit vector for a hue angle in degrees (lucid's hue_to_rgb). */
export function hueToRgb(angle: number, warp = true): [number, number, number] {
  const ang = angle - 360 * Math.floor(angle / 360);
  const cols = PRIMARIES.map(unit);
  const R = 360 / cols.length;
  const n = Math.floor(ang / R);
  let D = (ang - n * R) / R;
  if (warp) {
    const adj = (x: number) => Math.sin((x * Math.PI) / 2);
    D = n % 2 === 0 ? adj(D) : 1 - adj(1 - D);
  }
  const a = cols[n % cols.length];
  const b = cols[(n + 1) % cols.length];
  return unit([(1 - D) * a[0] + D * b[0], (1 - D) * a[1] + D * b[1], (1 - D) * a[2] + D * b[2]]);
}

/** K feature colours, flattened (K·3), unit norm. */
export function featureColors(K: number): Float32Array {
  const out = new Float32Array(K * 3);
  for (let i = 0; i < K; i++) out.set(hueToRgb((360 * i) / K), 3 * i);
  return out;
}

/** CSS colour of feature i of K (brightest version of its hue, as the original legend). */
export function cssColor(i: number, K: number): string {
  const c = hueToRgb((360 * i) / K);
  const m = Math.max(c[0], c[1], c[2]) || 1;
  const to = (x: number) => Math.round((255 * x) / m);
  return `rgb(${to(c[0])}, ${to(c[1])}, ${to(c[2])})`;
}

export const RESIDUAL_CSS = "rgb(160, 160, 160)";

/** Median of an array (copy sorted). */
export function median(xs: ArrayLike<number>): number {
  const a = Float64Array.from(xs as ArrayLike<number>).sort();
  if (a.length === 0) return 0;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : 0.5 * (a[m - 1] + a[m]);
}

/** The article's per-trajectory scale: median over frames of each frame's max; 0 → max → 1. */
export function trajectoryScale(frameMaxes: ArrayLike<number>): number {
  let s = median(frameMaxes);
  if (!(s > 0)) {
    s = 0;
    for (let i = 0; i < frameMaxes.length; i++) s = Math.max(s, frameMaxes[i]);
  }
  return s > 0 ? s : 1;
}

/** Per-frame scale: the frame's max over positions and features; not positive → 1. */
export function frameScale(frameMax: number): number {
  return frameMax > 0 ? frameMax : 1;
}

export interface Kernel {
  radius: number;
  weights: Float32Array; // (2r+1)^2, row-major, dy outer
  offsets: Int32Array; // [dy, dx] pairs of the non-zero taps
  taps: Float32Array; // weights of those taps
}

/** The article's blur: a disc of radius 7 positions on its layer 2b of 32×32 positions. */
export const ARTICLE_BLUR_RADIUS = 7;
export const ARTICLE_LAYER_SIZE = 32;

/**
 * The blur length b in use: the `blur` trait when set (1 = the article's radius 7 on any layer,
 * 0 = off); when it is null (the default) scaled to the layer height H, b = H/32, so the disc
 * (radius 7·b) covers the share of the screen the article's covers (radius 3.5 on 16×16).
 * Mirrors analysis.display.default_blur_radius.
 */
export function effectiveBlur(blur: unknown, layerH?: number): number {
  if (blur !== null && blur !== undefined && Number.isFinite(+(blur as number))) return +(blur as number);
  return layerH && layerH > 0 ? layerH / ARTICLE_LAYER_SIZE : 1;
}

/** Radius in layer positions of the blur with length b (7·b; 0 = off). */
export function blurRadius(b: number): number {
  return b > 0 ? ARTICLE_BLUR_RADIUS * b : 0;
}

/** Unnormalised exp(−r/b) disc of radius 7·b (b = blur; b ≤ 0: identity). */
export function blurKernel(blur: number, baseRadius = ARTICLE_BLUR_RADIUS): Kernel {
  if (!(blur > 0)) {
    return { radius: 0, weights: Float32Array.of(1), offsets: Int32Array.of(0, 0), taps: Float32Array.of(1) };
  }
  const rad = baseRadius * blur;
  const R = Math.floor(rad + 1e-9);
  const size = 2 * R + 1;
  const w = new Float32Array(size * size);
  const offs: number[] = [];
  const taps: number[] = [];
  for (let dy = -R; dy <= R; dy++) {
    for (let dx = -R; dx <= R; dx++) {
      const r = Math.hypot(dx, dy);
      if (r > rad + 1e-9) continue;
      const v = Math.exp(-r / blur);
      w[(dy + R) * size + (dx + R)] = v;
      offs.push(dy, dx);
      taps.push(v);
    }
  }
  return { radius: R, weights: w, offsets: Int32Array.from(offs), taps: Float32Array.from(taps) };
}

export interface OverlayOptions {
  sign: Sign;
  scale: number; // display scale (attribution value that maps to full opacity)
  gain: number;
  isolate: number; // -1 all features, 0..K-1 one feature, K residual only
  residual: boolean; // add the residual (grey) when not isolating
  colors: Float32Array; // K·3
  kernel: Kernel;
}

/**
 * Colour one frame's feature maps (H·W·(K+1), channels last, the last channel the residual) into
 * layer-resolution RGB, blur it, and convert brightness to opacity. Returns RGBA bytes (H·W·4).
 * `scratch` (H·W·3 floats ×2) may be passed to avoid allocation.
 */
export function overlayRGBA(
  maps: Float32Array, H: number, W: number, K: number, o: OverlayOptions,
  out?: Uint8ClampedArray, scratch?: Float32Array,
): Uint8ClampedArray {
  const C = K + 1;
  const n = H * W;
  const buf = scratch && scratch.length >= 6 * n ? scratch : new Float32Array(6 * n);
  const rgb = buf.subarray(0, 3 * n);
  const blurred = buf.subarray(3 * n, 6 * n);
  rgb.fill(0);
  const mul = o.gain / (o.scale > 0 ? o.scale : 1);
  const part = (x: number) => (o.sign === 1 ? (x > 0 ? x : 0) : o.sign === -1 ? (x < 0 ? -x : 0) : Math.abs(x));
  const k0 = o.isolate >= 0 && o.isolate < K ? o.isolate : 0;
  const k1 = o.isolate >= 0 ? (o.isolate < K ? o.isolate + 1 : 0) : K;
  const withRes = o.isolate === K || (o.isolate < 0 && o.residual);
  for (let p = 0; p < n; p++) {
    const base = p * C;
    let r = 0, g = 0, b = 0;
    for (let k = k0; k < k1; k++) {
      const v = part(maps[base + k]);
      if (v === 0) continue;
      r += v * o.colors[3 * k];
      g += v * o.colors[3 * k + 1];
      b += v * o.colors[3 * k + 2];
    }
    if (withRes) {
      const v = part(maps[base + K]);
      r += v; g += v; b += v;
    }
    rgb[3 * p] = r * mul;
    rgb[3 * p + 1] = g * mul;
    rgb[3 * p + 2] = b * mul;
  }
  // Scatter blur (attribution is sparse: skip empty sources). Zero padding, as a SAME conv.
  let src = rgb;
  if (o.kernel.radius > 0) {
    blurred.fill(0);
    const offs = o.kernel.offsets;
    const taps = o.kernel.taps;
    const nt = taps.length;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = 3 * (y * W + x);
        const r = rgb[p], g = rgb[p + 1], b = rgb[p + 2];
        if (r === 0 && g === 0 && b === 0) continue;
        for (let t = 0; t < nt; t++) {
          const yy = y + offs[2 * t];
          const xx = x + offs[2 * t + 1];
          if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
          const q = 3 * (yy * W + xx);
          const w = taps[t];
          blurred[q] += w * r;
          blurred[q + 1] += w * g;
          blurred[q + 2] += w * b;
        }
      }
    }
    src = blurred;
  }
  const res = out && out.length === 4 * n ? out : new Uint8ClampedArray(4 * n);
  for (let p = 0; p < n; p++) {
    const r = src[3 * p], g = src[3 * p + 1], b = src[3 * p + 2];
    const norm = Math.sqrt(r * r + g * g + b * b);
    const a = norm < 1 ? norm : 1;
    const inv = a > 0 ? 255 / a : 0;
    res[4 * p] = r * inv;
    res[4 * p + 1] = g * inv;
    res[4 * p + 2] = b * inv;
    res[4 * p + 3] = Math.round(a * 255);
  }
  return res;
}

/** Grey version of RGBA pixels for the underlay (luminance, lifted so colours read on top). */
export function greyRGBA(src: Uint8ClampedArray, out?: Uint8ClampedArray): Uint8ClampedArray {
  const res = out && out.length === src.length ? out : new Uint8ClampedArray(src.length);
  for (let i = 0; i < src.length; i += 4) {
    const l = 0.299 * src[i] + 0.587 * src[i + 1] + 0.114 * src[i + 2];
    const v = 48 + 0.62 * l;
    res[i] = res[i + 1] = res[i + 2] = v;
    res[i + 3] = 255;
  }
  return res;
}

/** Log-softmax of one logits row. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/**
 * The selected network output for one step, from that step's value and logits. Output specs as in
 * the analysis layer: "value", "logit:<a>", "group:<name>", "logprob:<a>" (a an index).
 */
export function outputOf(spec: string, value: number, logits: ArrayLike<number>, groups: Record<string, number[]>): number {
  if (spec === "value" || !spec) return value;
  const [kind, arg] = spec.split(":");
  if (kind === "logit") return logits[+arg] ?? NaN;
  if (kind === "logprob") return logSoftmax(logits)[+arg] ?? NaN;
  if (kind === "group") {
    const g = groups[arg] ?? [];
    let s = 0;
    for (const a of g) s += logits[a];
    return s;
  }
  return NaN;
}
