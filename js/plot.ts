// Small canvas plotting helpers: crisp HiDPI canvases, nice ticks, line charts over time with
// axes, episode boundaries and a playhead.

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Size a canvas for the device pixel ratio; returns a context in CSS pixels. */
export function fitCanvas(c: HTMLCanvasElement, w: number, h: number): CanvasRenderingContext2D {
  const dpr = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
  const W = Math.max(1, Math.round(w * dpr));
  const H = Math.max(1, Math.round(h * dpr));
  if (c.width !== W || c.height !== H) {
    c.width = W;
    c.height = H;
  }
  c.style.width = `${w}px`;
  c.style.height = `${h}px`;
  const g = c.getContext("2d")!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return g;
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 4): number[] {
  if (!isFinite(lo) || !isFinite(hi)) return [];
  if (hi - lo < 1e-12) {
    hi = lo + 1;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-6; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

export function fmt(v: number): string {
  if (!isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, "");
  if (a >= 1) return v.toFixed(2).replace(/0$/, "").replace(/\.$/, "");
  if (a >= 0.01) return v.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
  return v.toExponential(1);
}

export interface Series {
  data: ArrayLike<number>;
  color: string;
  width?: number;
  dash?: number[];
  label?: string;
}

export interface ChartOptions {
  T: number;
  box: Box; // plot area in CSS px (axes drawn outside it on the left/bottom)
  title: string;
  series: Series[];
  boundaries?: number[]; // steps where a new episode starts
  playhead?: number;
  zeroLine?: boolean;
  xAxis?: boolean;
  markers?: { t: number; color: string }[];
  ticksOut?: number[]; // filled with the y tick values drawn (tests, layout checks)
}

export function xOf(t: number, T: number, box: Box): number {
  return box.x + ((t + 0.5) / Math.max(1, T)) * box.w;
}

export function tOf(x: number, T: number, box: Box): number {
  return Math.max(0, Math.min(T - 1, Math.floor(((x - box.x) / box.w) * T)));
}

/** Range of finite values over several series (with a small margin). */
export function rangeOf(series: Series[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.data.length; i++) {
      const v = s.data[i];
      if (!isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!isFinite(lo)) return [0, 1];
  if (hi - lo < 1e-9) {
    const d = Math.abs(lo) * 0.1 || 0.5;
    return [lo - d, hi + d];
  }
  const m = (hi - lo) * 0.06;
  return [lo - m, hi + m];
}

/** Draw one line chart over time with its y axis, boundaries, playhead and title. */
export function drawChart(g: CanvasRenderingContext2D, o: ChartOptions): [number, number] {
  const { box, T } = o;
  const [lo, hi] = rangeOf(o.series);
  const y = (v: number) => box.y + box.h - ((v - lo) / (hi - lo)) * box.h;
  g.save();
  g.fillStyle = "#fafafa";
  g.fillRect(box.x, box.y, box.w, box.h);
  // Gridlines and y ticks.
  g.font = "10px system-ui, sans-serif";
  g.textAlign = "right";
  g.textBaseline = "middle";
  // a y scale needs at least two labelled ticks inside the chart: ask for more until it has
  const inside = (v: number) => {
    const yy = Math.round(y(v)) + 0.5;
    return yy >= box.y - 1 && yy <= box.y + box.h + 1;
  };
  const want = Math.max(2, Math.floor(box.h / 22));
  let ticks: number[] = [];
  for (const c of [want, want + 1, want + 2, want + 4]) {
    ticks = niceTicks(lo, hi, c).filter(inside);
    if (ticks.length >= 2) break;
  }
  for (const v of ticks) {
    const yy = Math.round(y(v)) + 0.5;
    g.strokeStyle = v === 0 && o.zeroLine ? "#999" : "#e6e6e6";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(box.x, yy);
    g.lineTo(box.x + box.w, yy);
    g.stroke();
    g.fillStyle = "#666";
    g.fillText(fmt(v), box.x - 4, yy);
    o.ticksOut?.push(v);
  }
  // Episode boundaries.
  g.strokeStyle = "#b0b0b0";
  g.setLineDash([3, 3]);
  for (const t of o.boundaries ?? []) {
    const xx = Math.round(box.x + (t / T) * box.w) + 0.5;
    g.beginPath();
    g.moveTo(xx, box.y);
    g.lineTo(xx, box.y + box.h);
    g.stroke();
  }
  g.setLineDash([]);
  // Series.
  g.beginPath();
  g.rect(box.x, box.y, box.w, box.h);
  g.clip();
  for (const s of o.series) {
    g.strokeStyle = s.color;
    g.lineWidth = s.width ?? 1.5;
    g.setLineDash(s.dash ?? []);
    g.beginPath();
    let pen = false;
    const n = Math.min(T, s.data.length);
    for (let t = 0; t < n; t++) {
      const v = s.data[t];
      if (!isFinite(v)) {
        pen = false;
        continue;
      }
      const xx = xOf(t, T, box);
      if (pen) g.lineTo(xx, y(v));
      else g.moveTo(xx, y(v));
      pen = true;
    }
    g.stroke();
  }
  g.setLineDash([]);
  for (const m of o.markers ?? []) {
    g.fillStyle = m.color;
    const xx = xOf(m.t, T, box);
    g.beginPath();
    g.moveTo(xx - 4, box.y);
    g.lineTo(xx + 4, box.y);
    g.lineTo(xx, box.y + 6);
    g.fill();
  }
  g.restore();
  // Frame, title.
  g.strokeStyle = "#c8c8c8";
  g.lineWidth = 1;
  g.strokeRect(box.x + 0.5, box.y + 0.5, box.w - 1, box.h - 1);
  g.fillStyle = "#333";
  g.font = "600 10.5px system-ui, sans-serif";
  g.textAlign = "left";
  g.textBaseline = "top";
  g.fillText(o.title, box.x + 4, box.y + 2);
  if (o.playhead !== undefined && o.playhead >= 0) {
    const xx = Math.round(xOf(o.playhead, T, box)) + 0.5;
    g.strokeStyle = "#d62728";
    g.lineWidth = 1.5;
    g.beginPath();
    g.moveTo(xx, box.y);
    g.lineTo(xx, box.y + box.h);
    g.stroke();
  }
  if (o.xAxis) drawXAxis(g, T, box);
  return [lo, hi];
}

export function drawXAxis(g: CanvasRenderingContext2D, T: number, box: Box): void {
  g.fillStyle = "#666";
  g.font = "10px system-ui, sans-serif";
  g.textAlign = "center";
  g.textBaseline = "top";
  g.strokeStyle = "#999";
  for (const v of niceTicks(0, T - 1, Math.max(2, Math.floor(box.w / 70)))) {
    const xx = Math.round(xOf(v, T, box)) + 0.5;
    g.beginPath();
    g.moveTo(xx, box.y + box.h);
    g.lineTo(xx, box.y + box.h + 3);
    g.stroke();
    g.fillText(String(Math.round(v)), xx, box.y + box.h + 4);
  }
  g.textAlign = "right";
  g.fillText("step", box.x + box.w, box.y + box.h + 15);
}
