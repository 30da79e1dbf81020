// Decoders of the typed array traits (rlvision_widgets/widgets/_arrays.py): one function per
// trait kind, typed by the wire types of model_state.ts. `null`/absent traits decode to null.
import type { ArrayWire, AttributionWire, FramesWire, MosaicWire, TilesWire } from "./model_state";
import { bytesOf, decodePNG, inflate, RGBAImage, split } from "./decode";

type TypedArray = Float32Array | Int32Array | Int8Array | Uint8Array;
const CTORS = { float32: Float32Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array } as const;

/** An `ArrayTrait`: its shape and a typed view of its little-endian data. */
export interface NDArray<A extends TypedArray = TypedArray> {
  shape: number[];
  data: A;
}

function typed<A extends TypedArray>(w: ArrayWire, dtype: ArrayWire["dtype"]): NDArray<A> | null {
  if (w.dtype !== dtype) {
    console.warn(`rlvision: expected a ${dtype} array, got ${w.dtype}`);
    return null;
  }
  const b = bytesOf(w.data);
  const Ctor = CTORS[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  const n = w.shape.reduce((a, x) => a * x, 1);
  if (b.byteLength !== n * size) {
    console.warn(`rlvision: ${b.byteLength} bytes do not make a ${dtype} array of shape [${w.shape}]`);
    return null;
  }
  const src = b.byteOffset % size === 0 ? b : b.slice();
  return { shape: w.shape, data: new Ctor(src.buffer as ArrayBuffer, src.byteOffset, n) as A };
}

/** A float32 `ArrayTrait` (null if unset or of another dtype). */
export function float32Array(w: ArrayWire | null | undefined): NDArray<Float32Array> | null {
  return w ? typed<Float32Array>(w, "float32") : null;
}

/** A uint8 `ArrayTrait`. */
export function uint8Array(w: ArrayWire | null | undefined): NDArray<Uint8Array> | null {
  return w ? typed<Uint8Array>(w, "uint8") : null;
}

/** An int32 `ArrayTrait`. */
export function int32Array(w: ArrayWire | null | undefined): NDArray<Int32Array> | null {
  return w ? typed<Int32Array>(w, "int32") : null;
}

/** `PngFrames`: frames (E, T, S, S, C), a PNG strip per trajectory decoded on demand. */
export interface Frames {
  E: number;
  T: number;
  S: number;
  strip: (e: number) => RGBAImage | null; // S wide, S·T tall, RGBA
}

export function pngFrames(w: FramesWire | null | undefined): Frames | null {
  if (!w || w.shape.length !== 5) return null;
  const [E, T, S] = w.shape;
  const parts = split(bytesOf(w.data), w.offsets);
  const cache = new Map<number, RGBAImage | null>();
  return {
    E, T, S,
    strip: (e: number) => {
      if (!cache.has(e)) {
        let img: RGBAImage | null = null;
        try {
          img = parts[e]?.length ? decodePNG(parts[e]) : null;
        } catch (err) {
          console.warn("rlvision: bad PNG strip", err);
        }
        cache.set(e, img);
      }
      return cache.get(e) ?? null;
    },
  };
}

/** `PngTiles`: K images (h × w) side by side in one RGBA image. */
export interface Tiles {
  image: RGBAImage;
  K: number;
  h: number;
  w: number;
}

export function pngTiles(w: TilesWire | null | undefined): Tiles | null {
  if (!w || w.shape.length !== 4 || !w.shape[0]) return null;
  try {
    return { image: decodePNG(bytesOf(w.data)), K: w.shape[0], h: w.shape[1], w: w.shape[2] };
  } catch (err) {
    console.warn("rlvision: bad PNG tiles", err);
    return null;
  }
}

/** `MosaicTrait`: K mosaics of rows × cols cells side by side; per cell its source. */
export interface Mosaics {
  image: RGBAImage;
  K: number;
  rows: number;
  cols: number;
  cell: number; // pixels per cell
  density: number; // cells per side it was computed at (0: unknown)
  sources: Int32Array; // (K, rows, cols, 2): (trajectory, frame), (-2, i), or (-1, -1)
}

export function mosaics(w: MosaicWire | null | undefined): Mosaics | null {
  if (!w || w.shape.length !== 4) return null;
  const [K, rows, cols, cell] = w.shape;
  const src = int32Array(w.sources);
  if (!K || !src) return null;
  try {
    return { image: decodePNG(bytesOf(w.data)), K, rows, cols, cell, density: w.density ?? 0, sources: src.data };
  } catch (err) {
    console.warn("rlvision: bad mosaic", err);
    return null;
  }
}

/** `AttributionMaps`: int8 maps (E, T, H, W, C) per trajectory, inflated on demand. */
export interface Attr {
  E: number;
  T: number;
  H: number;
  W: number;
  C: number; // K + 1
  K: number;
  q: (e: number) => Int8Array | null; // per-trajectory int8 maps (T·H·W·C), decoded lazily
  ready: (e: number, t: number) => boolean; // false where the data is still being computed
  scales: Float32Array; // (E, T, C): x = q · scale / 127
}

export function attributionMaps(w: AttributionWire | null | undefined): Attr | null {
  if (!w || w.shape.length !== 5) return null;
  const [E, T, H, W, C] = w.shape;
  const bytes = bytesOf(w.data);
  const scales = float32Array(w.scales);
  if (bytes.length === 0 || !scales || scales.data.length !== E * T * C) return null;
  const parts = w.offsets.length === E + 1 ? split(bytes, w.offsets) : [];
  const chunks: (Int8Array | null)[] = new Array(E).fill(null);
  const n = T * H * W * C;
  const decode = (e: number): Int8Array | null => {
    const part = parts[e];
    if (!part || part.length === 0) return null;
    const raw = inflate(part);
    if (raw.length !== n) {
      console.warn(`rlvision: attribution chunk ${e} has ${raw.length} values, expected ${n}`);
      return null;
    }
    return new Int8Array(raw.buffer, raw.byteOffset, raw.length);
  };
  const ready = uint8Array(w.ready)?.data ?? null;
  return {
    E, T, H, W, C, K: C - 1, scales: scales.data,
    q: (e: number) => {
      if (e < 0 || e >= E) return null;
      if (chunks[e] === null) chunks[e] = decode(e);
      return chunks[e];
    },
    ready: (e: number, t: number) => (ready && ready.length === E * T ? ready[e * T + t] !== 0 : true),
  };
}
