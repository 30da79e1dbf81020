// Explorer: composes every component on one model so that hovering a legend entry isolates the
// feature in every view, and the timeline, bookmarks, grid and edits all move the same state.
import { Ctx, ensureStyle, h, widgetEntry } from "./model";
import { mountTrajectoryViewer } from "./trajectory_viewer";
import { mountLegend } from "./legend";
import { mountFeatureGrid } from "./feature_grid";
import { mountControls, mountStatus } from "./controls";
import { mountEditPanel } from "./edit_panel";
import { mountCounterfactualPanel } from "./counterfactual_panel";

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
  // counterfactual frames (edit the game): when the Python side carries the cf_* traits
  // (its own full-width row: two 320-px frames side by side would squeeze the feature grid)
  const cfRow = h("div", { class: "rlv-lower rlv-cf-row" });
  const counterfactual = (model as any).get("cf_objects") !== undefined ? mountCounterfactualPanel(ctx, cfRow) : null;
  if (counterfactual) root.append(cfRow);
  const drawTitle = () => {
    title.textContent = (model.get("title") as string) || "Understanding RL Vision · explorer";
  };
  ctx.watch(["title"], drawTitle);
  drawTitle();
  const api = { viewer, legend, grid, controls, edit, ...(counterfactual ? { counterfactual } : {}) };
  (el as HTMLElement & { rlv?: typeof api }).rlv = api;
  return api;
}

export default widgetEntry(mountExplorer);
