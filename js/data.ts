// Decodes the widget's binary traits once per change, lazily, and caches the results for every
// component of a view. Layout of the traits (all little-endian, frames first):
//
//   obs_png         concatenated PNG strips, one per trajectory (obs_size wide, obs_size·T tall);
//                   obs_offsets: n_trajectories + 1 byte offsets
//   values, advantages, rewards   float32 (E·T);  actions, firsts  uint8 (E·T)
//   logits          float32 (E·T·A)
//   attr_maps       zlib(int8 (E, T, H, W, K+1)): K signed NMF features + residual, each
//                   quantised per (frame, channel): x = q · attr_scales[e, t, c] / 127
//   attr_scales     float32 (E·T·(K+1));  attr_shape [E, T, H, W, K+1]
//   edited_*        the same for the shown trajectory under the current edits (E = 1)
//   rerun_*         a trajectory re-collected with the edited agent
import { AnyModel, Ctx, Message, RerunInfo, TraitName } from "./model";
import { bytesOf, decodePNG, f32, i32, inflate, RGBAImage, split } from "./decode";
import { frameScale, outputOf, trajectoryScale } from "./display";

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

export interface Attr {
  E: number;
  T: number;
  H: number;
  W: number;
  C: number; // K + 1
  K: number;
  q: (e: number) => Int8Array | null; // per-trajectory int8 maps (T·H·W·C), decoded lazily
  ready: (e: number, t: number) => boolean; // false where the data is still being computed
  scales: Float32Array;
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

function decodeAttr(model: AnyModel, prefix: "" | "edited_"): Attr | null {
  const shape = model.get(`${prefix}attr_shape`) as number[] | undefined;
  const bytes = bytesOf(model.get(`${prefix}attr_maps`));
  const offsets = (model.get(`${prefix}attr_offsets`) as number[] | undefined) ?? [];
  if (!shape || shape.length !== 5 || bytes.length === 0) return null;
  const [E, T, H, W, C] = shape;
  const scales = f32(model.get(`${prefix}attr_scales`));
  if (scales.length !== E * T * C) return null;
  const parts = offsets.length === E + 1 ? split(bytes, offsets) : [bytes];
  const chunks: (Int8Array | null)[] = new Array(E).fill(null);
  const n = T * H * W * C;
  const decode = (e: number): Int8Array | null => {
    const part = parts.length === E ? parts[e] : null;
    if (!part || part.length === 0) return null;
    const raw = inflate(part);
    if (raw.length !== n) {
      console.warn(`rlvision: attribution chunk ${e} has ${raw.length} values, expected ${n}`);
      return null;
    }
    return new Int8Array(raw.buffer, raw.byteOffset, raw.length);
  };
  const ready = bytesOf(model.get(`${prefix}attr_ready`));
  return {
    E, T, H, W, C, K: C - 1, scales,
    q: (e: number) => {
      if (e < 0 || e >= E) return null;
      if (chunks[e] === null) chunks[e] = decode(e);
      return chunks[e];
    },
    ready: (e: number, t: number) => (ready.length === E * T ? ready[e * T + t] !== 0 : true),
  };
}

export class DataStore {
  private cache = new Map<string, any>();
  private frameBuf = new Float32Array(0);
  private fullRes = new Map<string, RGBAImage>();
  private fullPending = new Set<string>();

  constructor(private ctx: Ctx) {
    const deps: Record<string, TraitName[]> = {
      steps: ["values", "advantages", "rewards", "actions", "firsts", "logits", "n_trajectories", "n_steps"],
      obs: ["obs_png", "obs_offsets", "obs_size"],
      attr: ["attr_maps", "attr_scales", "attr_shape", "attr_offsets", "attr_ready"],
      edited: ["edited_attr_maps", "edited_attr_scales", "edited_attr_shape", "edited_attr_offsets", "edited_attr_ready", "edited_values", "edited_logits", "edited_trajectory"],
      rerun: ["rerun_png", "rerun_values", "rerun_actions", "rerun_rewards", "rerun_firsts", "rerun_info"],
      thumbs: ["thumbnails_png", "thumbnail_size"],
      grid: ["grid_png", "grid_shape", "grid_sources"],
      mosaics: ["mosaics_png", "mosaics_shape", "mosaics_sources"],
    };
    for (const [key, names] of Object.entries(deps)) {
      ctx.watch(names, () => {
        for (const k of [...this.cache.keys()]) if (k === key || k.startsWith(key + ":")) this.cache.delete(k);
        ctx.events.emit("data", key);
      });
    }
    ctx.watch(["obs_png"], () => this.fullRes.clear());
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
      const values = f32(m.get("values"));
      if (values.length !== E * T) return null;
      const logits = f32(m.get("logits"));
      const A = logits.length / (E * T) || 0;
      const zf = new Float32Array(E * T);
      const adv = f32(m.get("advantages"));
      const rew = f32(m.get("rewards"));
      const act = bytesOf(m.get("actions"));
      const fir = bytesOf(m.get("firsts"));
      return {
        E, T, A: Math.floor(A), values,
        advantages: adv.length === E * T ? adv : zf,
        rewards: rew.length === E * T ? rew : zf,
        actions: act.length === E * T ? act : new Uint8Array(E * T),
        firsts: fir.length === E * T ? fir : new Uint8Array(E * T),
        logits,
      };
    });
  }

  /** Decoded observation strip of trajectory e (RGBA, obs_size wide, obs_size·T tall). */
  obs(e: number): RGBAImage | null {
    return this.memo(`obs:${e}`, () => {
      const offsets = this.model.get("obs_offsets") as number[] | undefined;
      const bytes = bytesOf(this.model.get("obs_png"));
      if (!offsets || offsets.length < 2 || bytes.length === 0) return null;
      const parts = split(bytes, offsets);
      if (!parts[e]) return null;
      try {
        return decodePNG(parts[e]);
      } catch (err) {
        console.warn("rlvision: bad observation strip", err);
        return null;
      }
    });
  }

  obsSize(): number {
    return this.model.get("obs_size") ?? 64;
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
    return this.memo("attr", () => decodeAttr(this.model, ""));
  }

  /** Attribution data of the shown trajectory under the current edits, if any. */
  edited(): { attr: Attr | null; values: Float32Array; logits: Float32Array; trajectory: number } | null {
    return this.memo("edited", () => {
      const m = this.model;
      const tr = m.get("edited_trajectory");
      if (typeof tr !== "number" || tr < 0) return null;
      const values = f32(m.get("edited_values"));
      if (values.length === 0) return null;
      return { attr: decodeAttr(m, "edited_"), values, logits: f32(m.get("edited_logits")), trajectory: tr };
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
      const b = bytesOf(this.model.get("thumbnails_png"));
      if (b.length === 0) return null;
      try {
        return { image: decodePNG(b), size: this.model.get("thumbnail_size") ?? 0 };
      } catch {
        return null;
      }
    });
  }

  grid(): Grid | null {
    return this.memo("grid", () => {
      const b = bytesOf(this.model.get("grid_png"));
      const shape = this.model.get("grid_shape") as number[] | undefined;
      if (b.length === 0 || !shape || shape.length < 3) return null;
      try {
        return { image: decodePNG(b), rows: shape[0], cols: shape[1], cell: shape[2], sources: i32(this.model.get("grid_sources")) };
      } catch {
        return null;
      }
    });
  }

  /** Every feature's mosaic at one density (`mosaics_*`), decoded once. */
  mosaics(): { image: RGBAImage; K: number; rows: number; cols: number; cell: number; density: number; sources: Int32Array } | null {
    return this.memo("mosaics", () => {
      const b = bytesOf(this.model.get("mosaics_png"));
      const shape = this.model.get("mosaics_shape") as number[] | undefined;
      if (b.length === 0 || !shape || shape.length < 5) return null;
      try {
        const [K, rows, cols, cell, density] = shape;
        return { image: decodePNG(b), K, rows, cols, cell, density, sources: i32(this.model.get("mosaics_sources")) };
      } catch {
        return null;
      }
    });
  }

  /**
   * The mosaic to show for feature k at `density`: the precomputed one (every feature, also in
   * static exports) when its density matches, else the one Python computed on request.
   */
  gridFor(k: number, density: number): Grid | null {
    const all = this.mosaics();
    if (all && k >= 0 && k < all.K && (all.density === density || !bytesOf(this.model.get("grid_png")).length)) {
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
      const values = f32(m.get("rerun_values"));
      if (values.length === 0) return null;
      let frames: RGBAImage | null = null;
      try {
        const b = bytesOf(m.get("rerun_png"));
        if (b.length) frames = decodePNG(b);
      } catch {
        frames = null;
      }
      return {
        T: values.length, frames, values,
        actions: bytesOf(m.get("rerun_actions")),
        rewards: f32(m.get("rerun_rewards")),
        firsts: bytesOf(m.get("rerun_firsts")),
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
