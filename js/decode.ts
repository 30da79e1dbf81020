// Binary decoding of widget buffers: bytes of a buffer, zlib, and a small synchronous PNG decoder
// (8-bit grey / grey+alpha / RGB / RGBA, non-interlaced: what Pillow writes), so frames decode
// once per data change with no asynchronous image decode inside change handlers.
import { unzlibSync } from "fflate";

/** Bytes that arrived as DataView / ArrayBuffer / typed array (or nothing); typed views of the
 * array traits are made by arrays.ts. */
export function bytesOf(v: unknown): Uint8Array {
  if (!v) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return new Uint8Array(0);
}

/** zlib-inflate (RFC 1950) bytes. */
export function inflate(b: Uint8Array): Uint8Array {
  return unzlibSync(b);
}

export interface RGBAImage {
  width: number;
  height: number;
  data: Uint8ClampedArray; // width * height * 4
}

const PNG_SIG = [137, 80, 78, 71, 13, 10, 26, 10];

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  if (pb <= pc) return b;
  return c;
}

/** Decode a PNG synchronously into RGBA pixels. Throws on unsupported formats. */
export function decodePNG(png: Uint8Array): RGBAImage {
  for (let i = 0; i < 8; i++) if (png[i] !== PNG_SIG[i]) throw new Error("not a PNG");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Uint8Array[] = [];
  let idatLen = 0;
  while (pos + 8 <= png.length) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(png[pos + 4], png[pos + 5], png[pos + 6], png[pos + 7]);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(pos + 8);
      height = dv.getUint32(pos + 12);
      const depth = png[pos + 16];
      colorType = png[pos + 17];
      const interlace = png[pos + 20];
      if (depth !== 8 || interlace !== 0 || ![0, 2, 4, 6].includes(colorType)) {
        throw new Error(`unsupported PNG (depth ${depth}, colour type ${colorType}, interlace ${interlace})`);
      }
    } else if (type === "IDAT") {
      idat.push(data);
      idatLen += len;
    } else if (type === "IEND") break;
    pos += 12 + len;
  }
  const z = new Uint8Array(idatLen);
  let o = 0;
  for (const c of idat) {
    z.set(c, o);
    o += c.length;
  }
  const raw = unzlibSync(z);
  const bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType as 0 | 2 | 4 | 6];
  const stride = width * bpp;
  const cur = new Uint8Array(stride);
  const prev = new Uint8Array(stride);
  const out = new Uint8ClampedArray(width * height * 4);
  let rp = 0;
  for (let y = 0; y < height; y++) {
    const filter = raw[rp++];
    for (let x = 0; x < stride; x++) {
      const r = raw[rp++];
      const a = x >= bpp ? cur[x - bpp] : 0;
      const b = prev[x];
      const c = x >= bpp ? prev[x - bpp] : 0;
      let v: number;
      switch (filter) {
        case 0: v = r; break;
        case 1: v = r + a; break;
        case 2: v = r + b; break;
        case 3: v = r + ((a + b) >> 1); break;
        case 4: v = r + paeth(a, b, c); break;
        default: throw new Error(`bad PNG filter ${filter}`);
      }
      cur[x] = v & 255;
    }
    let q = y * width * 4;
    for (let x = 0; x < width; x++, q += 4) {
      const s = x * bpp;
      if (colorType === 2) {
        out[q] = cur[s]; out[q + 1] = cur[s + 1]; out[q + 2] = cur[s + 2]; out[q + 3] = 255;
      } else if (colorType === 6) {
        out[q] = cur[s]; out[q + 1] = cur[s + 1]; out[q + 2] = cur[s + 2]; out[q + 3] = cur[s + 3];
      } else if (colorType === 0) {
        out[q] = out[q + 1] = out[q + 2] = cur[s]; out[q + 3] = 255;
      } else {
        out[q] = out[q + 1] = out[q + 2] = cur[s]; out[q + 3] = cur[s + 1];
      }
    }
    prev.set(cur);
  }
  return { width, height, data: out };
}

/** Slice `bytes` by an offsets list (n+1 entries) into n parts. */
export function split(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let i = 0; i + 1 < offsets.length; i++) parts.push(bytes.subarray(offsets[i], offsets[i + 1]));
  return parts;
}

/** Base64 → bytes (static export). */
export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
