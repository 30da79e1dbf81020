// TrajectoryViewer: observation with positive / negative (or combined) attribution overlays, the
// policy as a bar over actions, step information, video controls with hotkeys, and a timeline
// (compressed filmstrip scrubber + value, advantage, selected-output and feature-attribution
// graphs with axes and episode boundaries). This module composes the parts in js/viewer/:
//
//   state.ts      the shared Viewer (context, data, root, navigation)
//   screens.ts    observation + attribution canvases and overlays
//   info.ts       step information rows
//   policy.ts     policy bars
//   transport.ts  play/pause, step, hotkeys, trajectory and episode navigation
//   timeline.ts   filmstrip and charts, episode boundaries, bookmark markers, scrubbing
//
// and schedules their drawing (one redraw per animation frame on any change).
import { Ctx, ensureStyle, h, scheduler, widgetEntry } from "./model";
import { dataOf } from "./data";
import { viewerState } from "./viewer/state";
import { mountScreens } from "./viewer/screens";
import { mountInfo } from "./viewer/info";
import { mountPolicy } from "./viewer/policy";
import { mountTransport } from "./viewer/transport";
import { mountTimeline } from "./viewer/timeline";

/** The handle of a mounted viewer (also set as `.rlv` on its root element, for benchmarks). */
export interface TrajectoryViewerApi {
  redraw: () => void;
  drawScreens: () => void;
}

/** Mount the trajectory viewer into `host`; returns a redraw function (for benchmarks). */
export function mountTrajectoryViewer(ctx: Ctx, host: HTMLElement): TrajectoryViewerApi {
  ensureStyle();
  const data = dataOf(ctx);
  const root = h("div", { class: "rlv-viewer", tabindex: "0", "data-lm-suppress-shortcuts": "true",
    title: "" });
  root.setAttribute("aria-label", "Trajectory viewer: ← → step, space play/pause, Home/End, [ ] episodes");
  host.append(root);
  const v = viewerState(ctx, data, root, host);

  // Layout: .rlv-top (screens | side: info, policy), then transport, then timeline.
  const top = h("div", { class: "rlv-top" });
  root.append(top);
  const screens = mountScreens(v, top);
  const side = h("div", { class: "rlv-side" });
  top.append(side);
  const info = mountInfo(v, side);
  const policy = mountPolicy(v, side);
  const transport = mountTransport(v, root);
  const timeline = mountTimeline(v, root, () => transport.setPlaying(false));

  // Orchestration: the shown step only moves the playhead; anything else rebuilds the timeline.
  const frameDraw = () => {
    screens.draw();
    info.draw();
    policy.draw();
    transport.draw();
    timeline.draw();
  };
  const sched = scheduler(frameDraw);
  const rebuild = () => {
    timeline.invalidate();
    sched.request();
  };
  ctx.watch(["frame"], () => sched.request());
  ctx.watch(["trajectory"], rebuild);
  ctx.watch(["gain", "blur", "scale_mode", "show_residual", "overlay_mode", "grey_underlay", "full_res", "isolated_feature", "screen_size"], rebuild);
  ctx.watch(["output", "output_label", "bookmarks", "action_names", "action_glyphs", "trajectory_labels", "show_all_actions", "noop_actions"], rebuild);
  ctx.listen("data", rebuild);
  ctx.listen("hover", rebuild);
  if (typeof ResizeObserver !== "undefined") {
    const ro = new ResizeObserver(rebuild);
    ro.observe(root);
    ctx.onDispose(() => ro.disconnect());
  }
  ctx.onDispose(() => sched.cancel());
  frameDraw();
  const api: TrajectoryViewerApi = {
    redraw: () => frameDraw(),
    drawScreens: () => screens.draw(),
  };
  (root as HTMLElement & { rlv?: TrajectoryViewerApi }).rlv = api;
  return api;
}

export default widgetEntry(mountTrajectoryViewer);

/** The display maths (also used by tests and for custom renderings). */
export * as display from "./display";
