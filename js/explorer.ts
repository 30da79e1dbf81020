// Explorer: composes every component on one model so that hovering a legend entry isolates the
// feature in every view, and the timeline, bookmarks, grid and edits all move the same state.
import { Ctx, ensureStyle, h, widgetEntry } from "./model";
import { mountTrajectoryViewer } from "./trajectory_viewer";
import { mountLegend } from "./legend";
import { mountFeatureGrid } from "./feature_grid";
import { mountControls, mountStatus } from "./controls";
import { mountEditPanel } from "./edit_panel";

export function mountExplorer(ctx: Ctx, el: HTMLElement): Record<string, { redraw: () => void }> {
  ensureStyle();
  const model = ctx.model;
  const title = h("div", { class: "rlv-title" });
  const header = h("div", { class: "rlv-header" }, title);
  const root = h("div", { class: "rlv-explorer" }, header);
  el.append(root);
  mountStatus(ctx, header);
  const controls = mountControls(ctx, root);
  const main = h("div", { class: "rlv-main" });
  const left = h("div", { class: "rlv-main-left" });
  const right = h("div", { class: "rlv-main-right" });
  main.append(left, right);
  root.append(main);
  const viewer = mountTrajectoryViewer(ctx, left);
  const legend = mountLegend(ctx, right);
  const lower = h("div", { class: "rlv-lower" });
  root.append(lower);
  const grid = mountFeatureGrid(ctx, lower, { closable: true });
  const edit = mountEditPanel(ctx, lower);
  const drawTitle = () => {
    title.textContent = (model.get("title") as string) || "Understanding RL Vision · explorer";
  };
  ctx.watch(["title"], drawTitle);
  drawTitle();
  const api = { viewer, legend, grid, controls, edit };
  (el as HTMLElement & { rlv?: typeof api }).rlv = api;
  return api;
}

export default widgetEntry(mountExplorer);
