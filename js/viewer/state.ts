// The state the trajectory viewer's parts share: the view's context and data, the viewer's root
// element, and navigation (which trajectory and step are shown, seeking, episode boundaries).
import { AnyModel, Ctx } from "../model";
import { Attr, DataStore } from "../data";

/** What every part of one trajectory viewer reads: built once by `viewerState`. */
export interface Viewer {
  ctx: Ctx;
  model: AnyModel;
  data: DataStore;
  root: HTMLElement; // .rlv-viewer (focusable, receives hotkeys)
  host: HTMLElement; // the element the viewer was mounted into
  frame(): number; // the shown step
  traj(): number; // the shown trajectory
  nSteps(): number; // steps per trajectory
  seek(t: number, ms?: number): void; // show step t (clamped), synced throttled to ms
  boundaries(e: number): number[]; // steps of trajectory e that start a new episode (t ≥ 1)
  jumpEpisode(dir: number): void; // to the previous (dir < 0) or next episode start
  attrFor(e: number): { a: Attr | null; tag: string }; // edited attribution if any, else original
}

export function viewerState(ctx: Ctx, data: DataStore, root: HTMLElement, host: HTMLElement): Viewer {
  const model = ctx.model;
  const frame = () => model.get("frame") ?? 0;
  const traj = () => model.get("trajectory") ?? 0;
  const nSteps = () => data.steps()?.T ?? model.get("n_steps") ?? 0;
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
  const attrFor = (e: number): { a: Attr | null; tag: string } => {
    const ed = data.editedFor(e);
    if (ed && ed.attr) return { a: ed.attr, tag: "edited" };
    return { a: data.attr(), tag: "" };
  };
  return { ctx, model, data, root, host, frame, traj, nSteps, seek, boundaries, jumpEpisode, attrFor };
}
