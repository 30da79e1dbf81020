// Entry point of the IIFE bundle inlined into static exports: `rlvisionWidgets.boot(el, payload)`
// renders a component on a StaticModel built from the embedded state.
import explorer from "./explorer";
import trajectory_viewer from "./trajectory_viewer";
import legend from "./legend";
import feature_grid from "./feature_grid";
import controls from "./controls";
import edit_panel from "./edit_panel";
import { StaticModel, StaticPayload } from "./static_model";
import type { RenderProps } from "./model";

const components: Record<string, { render: (p: RenderProps) => () => void }> = {
  explorer, trajectory_viewer, legend, feature_grid, controls, edit_panel,
};

export { StaticModel };

/** Render `component` (default: the explorer) into `el` from an embedded payload. */
export function boot(el: HTMLElement, payload: StaticPayload, component = "explorer"): StaticModel {
  const model = StaticModel.fromPayload(payload);
  const c = components[component];
  if (!c) throw new Error(`unknown component ${component}; choose one of ${Object.keys(components).join(", ")}`);
  c.render({ model, el });
  return model;
}
