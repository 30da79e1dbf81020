// Decodes the widget's array traits once per change, lazily, and caches the results for every
// component of a view. Each logical array is one typed trait (widgets/_arrays.py) decoded by one
// function of arrays.ts per kind:
//
//   observations    PngFrames (E, T, S, S, 3)
//   values, advantages, rewards (float32), actions, firsts (uint8)   ArrayTrait (E, T)
//   logits          ArrayTrait float32 (E, T, A)
//   attributions    AttributionMaps (E, T, H, W, K+1): K signed NMF features + residual
//   edited_*        the shown trajectory under the current edits (T,), (T, A), (1, T, H, W, K+1)
//   rerun_*         a trajectory re-collected with the edited agent
//   thumbnails      PngTiles;  grid, mosaics  MosaicTrait
import { AnyModel, Ctx, Message, RerunInfo, TraitName } from "./model";
import { bytesOf, decodePNG, RGBAImage } from "./decode";
import { Attr, attributionMaps, float32Array, Frames, mosaics as decodeMosaics, Mosaics, pngFrames, pngTiles, uint8Array } from "./arrays";
import { frameScale, outputOf, trajectoryScale } from "./display";

export type { Attr, Mosaics } from "./arrays";

export interface Steps {
  E: number;
  T: number;
  A: number;
  values: Float32Array;
  advantages: Float32Array;
  rewards: Float32Array;
  actions: Uint8Array;
  firsts: Uint8Array;
  logits: Float32Array;
}

export interface TrajStats {
  frameMax: Float32Array; // per frame: max over positions and features (signed)
  frameAbsMax: Float32Array; // per frame: max |x| over positions and features
  totals: Float32Array; // per frame and channel: Σ over positions (T·C)
  scale: number; // per-trajectory display scale
}

export interface Rerun {
  T: number;
  frames: RGBAImage | null;
  values: Float32Array;
  actions: Uint8Array;
  rewards: Float32Array;
  firsts: Uint8Array;
  info: RerunInfo;
}

export interface Grid {
  image: RGBAImage;
  rows: number;
  cols: number;
  cell: number; // pixels per cell in the image
  sources: Int32Array; // rows·cols·2: (trajectory, frame) of each cell, -1 for none
}

const F0 = new Float32Array(0);
const U0 = new Uint8Array(0);

export class DataStore {
  private cache = new Map<string, any>();
  private frameBuf = new Float32Array(0);
  private fullRes = new Map<string, RGBAImage>();
  private fullPending = new Set<string>();

  constructor(private ctx: Ctx) {
    const deps: Record<string, TraitName[]> = {
      steps: ["values", "advantages", "rewards", "actions", "firsts", "logits", "n_trajectories", "n_steps"],
      obs: ["observations"],
      attr: ["attributions"],
      edited: ["edited_attributions", "edited_values", "edited_logits", "edited_trajectory"],
      rerun: ["rerun_frames", "rerun_values", "rerun_actions", "rerun_rewards", "rerun_firsts", "rerun_info"],
      thumbs: ["thumbnails"],
      grid: ["grid"],
      gridsrc: ["grid_source_frames"],
      mosaics: ["mosaics"],
    };
    for (const [key, names] of Object.entries(deps)) {
      ctx.watch(names, () => {
        for (const k of [...this.cache.keys()]) if (k === key || k.startsWith(key + ":")) this.cache.delete(k);
        ctx.events.emit("data", key);
      });
    }
    ctx.watch(["observations"], () => this.fullRes.clear());
    const onMsg = (msg: Message | null, buffers?: ArrayBufferView[]) => {
      if (msg?.type === "full_frame" && buffers?.length) {
        const key = `${msg.trajectory as number}:${msg.frame as number}`;
        this.fullPending.delete(key);
        try {
          this.fullRes.set(key, decodePNG(bytesOf(buffers[0])));
          ctx.events.emit("data", "full");
        } catch (e) {
          console.warn("rlvision: bad full-resolution frame", e);
        }
      }
    };
    ctx.model.on("msg:custom", onMsg);
    ctx.onDispose(() => ctx.model.off("msg:custom", onMsg));
  }

  private memo<T>(key: string, fn: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, fn());
    return this.cache.get(key);
  }

  get model(): AnyModel {
    return this.ctx.model;
  }

  steps(): Steps | null {
    return this.memo("steps", () => {
      const m = this.model;
      const E = m.get("n_trajectories") ?? 0;
      const T = m.get("n_steps") ?? 0;
      if (!E || !T) return null;
      const n = E * T;
      const values = float32Array(m.get("values"))?.data;
      if (!values || values.length !== n) return null;
      const lg = float32Array(m.get("logits"));
      const A = lg && lg.shape.length === 3 && lg.data.length === n * lg.shape[2] ? lg.shape[2] : 0;
      const zf = new Float32Array(n);
      const adv = float32Array(m.get("advantages"))?.data;
      const rew = float32Array(m.get("rewards"))?.data;
      const act = uint8Array(m.get("actions"))?.data;
      const fir = uint8Array(m.get("firsts"))?.data;
      return {
        E, T, A, values,
        advantages: adv?.length === n ? adv : zf,
        rewards: rew?.length === n ? rew : zf,
        actions: act?.length === n ? act : new Uint8Array(n),
        firsts: fir?.length === n ? fir : new Uint8Array(n),
        logits: A ? lg!.data : F0,
      };
    });
  }

  /** The observation frames (decoded per trajectory on demand). */
  private frames(): Frames | null {
    return this.memo("obs", () => pngFrames(this.model.get("observations")));
  }

  /** Decoded observation strip of trajectory e (RGBA, S wide, S·T tall). */
  obs(e: number): RGBAImage | null {
    return this.frames()?.strip(e) ?? null;
  }

  /** Side S of the square observations. */
  obsSize(): number {
    return this.frames()?.S ?? 64;
  }

  /** Observation strip of the grid's dataset observations (cells with source (-2, i)). */
  gridSourceStrip(): RGBAImage | null {
    return this.memo("gridsrc", () => pngFrames(this.model.get("grid_source_frames"))?.strip(0) ?? null);
  }

  /** RGBA pixels of one 64×64 observation (a view into the strip). */
  frame(e: number, t: number): Uint8ClampedArray | null {
    const img = this.obs(e);
    if (!img) return null;
    const s = this.obsSize();
    const n = s * s * 4;
    if ((t + 1) * n > img.data.length) return null;
    return img.data.subarray(t * n, (t + 1) * n);
  }

  /** Full-resolution frame if cached; otherwise request it from Python and return null. */
  fullFrame(e: number, t: number): RGBAImage | null {
    const key = `${e}:${t}`;
    const got = this.fullRes.get(key);
    if (got) return got;
    if (!this.ctx.isStatic && !this.fullPending.has(key)) {
      this.fullPending.add(key);
      this.model.send({ type: "full_frame", trajectory: e, frame: t });
      setTimeout(() => this.fullPending.delete(key), 5000);
    }
    return null;
  }

  attr(): Attr | null {
    return this.memo("attr", () => attributionMaps(this.model.get("attributions")));
  }

  /** Attribution data of the shown trajectory under the current edits, if any. */
  edited(): { attr: Attr | null; values: Float32Array; logits: Float32Array; trajectory: number } | null {
    return this.memo("edited", () => {
      const m = this.model;
      const tr = m.get("edited_trajectory");
      if (typeof tr !== "number" || tr < 0) return null;
      const values = float32Array(m.get("edited_values"))?.data;
      if (!values || values.length === 0) return null;
      const logits = float32Array(m.get("edited_logits"))?.data ?? F0;
      return { attr: attributionMaps(m.get("edited_attributions")), values, logits, trajectory: tr };
    });
  }

  /** Are edits active for trajectory e (so edited data replaces the original)? */
  editedFor(e: number): ReturnType<DataStore["edited"]> {
    const ed = this.edited();
    return ed && ed.trajectory === e ? ed : null;
  }

  /** Dequantised maps (H·W·C) of (e, t), or null if not available. Reuses one buffer. */
  frameMaps(a: Attr, e: number, t: number): Float32Array | null {
    const q = a.q(e);
    if (!q || !a.ready(e, t)) return null;
    const n = a.H * a.W * a.C;
    if (this.frameBuf.length !== n) this.frameBuf = new Float32Array(n);
    const out = this.frameBuf;
    const base = t * n;
    const sb = (e * a.T + t) * a.C;
    const C = a.C;
    for (let p = 0; p < n; p += C) {
      for (let c = 0; c < C; c++) out[p + c] = (q[base + p + c] * a.scales[sb + c]) / 127;
    }
    return out;
  }

  /** Per-trajectory statistics for scales, legend totals and the feature graph. */
  stats(a: Attr, e: number, tag = ""): TrajStats {
    return this.memo(`${tag || "attr"}:stats:${e}`, () => {
      const { T, H, W, C, K } = a;
      const frameMax = new Float32Array(T);
      const frameAbsMax = new Float32Array(T);
      const totals = new Float32Array(T * C);
      const n = H * W * C;
      const q = a.q(e);
      for (let t = 0; t < T; t++) {
        if (!q || !a.ready(e, t)) {
          for (let c = 0; c < C; c++) totals[t * C + c] = NaN;
          continue;
        }
        const base = t * n;
        const sb = (e * T + t) * C;
        let mx = -Infinity;
        let amx = 0;
        for (let p = 0; p < H * W; p++) {
          for (let c = 0; c < C; c++) {
            const v = (q[base + p * C + c] * a.scales[sb + c]) / 127;
            totals[t * C + c] += v;
            if (c < K) {
              if (v > mx) mx = v;
              const av = Math.abs(v);
              if (av > amx) amx = av;
            }
          }
        }
        frameMax[t] = K > 0 ? mx : 0;
        frameAbsMax[t] = amx;
      }
      const readyMax: number[] = [];
      for (let t = 0; t < T; t++) if (q && a.ready(e, t)) readyMax.push(frameMax[t]);
      return { frameMax, frameAbsMax, totals, scale: trajectoryScale(readyMax) };
    });
  }

  /** Display scale for (e, t) under the current scale mode. */
  displayScale(a: Attr, e: number, t: number, tag = ""): number {
    const st = this.stats(a, e, tag);
    return this.model.get("scale_mode") === "frame" ? frameScale(st.frameMax[t]) : st.scale;
  }

  thumbnails(): { image: RGBAImage; size: number } | null {
    return this.memo("thumbs", () => {
      const t = pngTiles(this.model.get("thumbnails"));
      return t ? { image: t.image, size: t.w } : null;
    });
  }

  /** The mosaic of one feature Python computed on request (`grid`). */
  grid(): Grid | null {
    return this.memo("grid", () => {
      const g = decodeMosaics(this.model.get("grid"));
      return g ? { image: g.image, rows: g.rows, cols: g.cols, cell: g.cell, sources: g.sources } : null;
    });
  }

  /** Every feature's mosaic at one density (`mosaics`), decoded once. */
  mosaics(): Mosaics | null {
    return this.memo("mosaics", () => decodeMosaics(this.model.get("mosaics")));
  }

  /**
   * The mosaic to show for feature k at `density`: the precomputed one (every feature, also in
   * static exports) when its density matches, else the one Python computed on request.
   */
  gridFor(k: number, density: number): Grid | null {
    const all = this.mosaics();
    if (all && k >= 0 && k < all.K && (all.density === density || !this.model.get("grid"))) {
      return this.memo(`mosaics:${k}`, () => {
        const w = all.cols * all.cell;
        const hh = all.rows * all.cell;
        const px = new Uint8ClampedArray(w * hh * 4);
        const W = all.image.width;
        for (let y = 0; y < hh; y++) {
          const off = (y * W + k * w) * 4;
          px.set(all.image.data.subarray(off, off + w * 4), y * w * 4);
        }
        const n = all.rows * all.cols * 2;
        return { image: { width: w, height: hh, data: px }, rows: all.rows, cols: all.cols, cell: all.cell,
          sources: all.sources.subarray(k * n, (k + 1) * n) };
      });
    }
    return this.grid();
  }

  rerun(): Rerun | null {
    return this.memo("rerun", () => {
      const m = this.model;
      const values = float32Array(m.get("rerun_values"))?.data;
      if (!values || values.length === 0) return null;
      return {
        T: values.length, frames: pngFrames(m.get("rerun_frames"))?.strip(0) ?? null, values,
        actions: uint8Array(m.get("rerun_actions"))?.data ?? U0,
        rewards: float32Array(m.get("rerun_rewards"))?.data ?? F0,
        firsts: uint8Array(m.get("rerun_firsts"))?.data ?? U0,
        info: m.get("rerun_info") ?? {},
      };
    });
  }

  /** Canonical output spec with action names resolved to indices. */
  outputSpec(): string {
    const spec = (this.model.get("output") as string) || "value";
    const [kind, arg] = spec.split(":");
    if (arg === undefined || /^\d+$/.test(arg) || kind === "group") return spec;
    const names = (this.model.get("action_names") as string[]) ?? [];
    const i = names.indexOf(arg);
    return i >= 0 ? `${kind}:${i}` : spec;
  }

  /** The selected output over trajectory e (or the edited version). */
  outputSeries(e: number, values: Float32Array, logits: Float32Array, offset: number, T: number, A: number): Float32Array {
    const spec = this.outputSpec();
    const groups = (this.model.get("action_groups") as Record<string, number[]>) ?? {};
    const out = new Float32Array(T);
    for (let t = 0; t < T; t++) {
      const i = offset + t;
      out[t] = outputOf(spec, values[i], logits.subarray(i * A, (i + 1) * A), groups);
    }
    void e;
    return out;
  }
}

const stores = new WeakMap<Ctx, DataStore>();

/** The view's shared DataStore (one per rendered view, shared by its components). */
export function dataOf(ctx: Ctx): DataStore {
  let s = stores.get(ctx);
  if (!s) {
    s = new DataStore(ctx);
    stores.set(ctx, s);
  }
  return s;
}
