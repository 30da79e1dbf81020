// The one TypeScript type of the widget model's state: every synced trait a component reads or
// writes, by name, with the type it has in the browser. Mirrors rlvision_widgets/widgets/_traits.py
// (a trait renamed or added there must be renamed or added here; `npm run typecheck` then points
// at every use). Traits are absent (undefined) when a component is rendered alone on a model that
// lacks them, so `AnyModel.get` returns `ModelState[K] | undefined`.

/**
 * A `traitlets.Bytes` trait sent with ipywidgets' `bytes_serialization`: a DataView over a
 * websocket buffer in Jupyter and in static exports; read it with decode.ts (`bytesOf`, `f32`).
 */
export type Binary = DataView | ArrayBuffer | Uint8Array;

/** One bookmark (widgets/_engine.py): a (trajectory, frame) the timeline can jump to. */
export interface Bookmark {
  trajectory: number;
  frame: number;
  kind?: string; // "high" | "low" | "spike" | "failure" | other
  score?: number;
  label?: string;
  detail?: string;
}

/** `label_evidence`: why a label is suggested for a feature (widgets/_traits.py). */
export interface LabelEvidence {
  label?: string;
  confirmed?: boolean; // passes the identification test
  duplicate?: boolean; // another feature has the same label
  share?: number; // share of the feature's strongest cells on the object
  base_rate?: number;
  [key: string]: unknown;
}

/** One dataset example of a feature (`feature_examples`). */
export interface Example {
  trajectory: number;
  frame: number;
  y: number;
  x: number;
  value: number;
  box: number[]; // [top, left, side] in observation pixels
}

/** `rerun_info`: what the last re-run with edits did (empty before any). */
export interface RerunInfo {
  trajectory?: number;
  start?: number;
  level_seed?: number;
  steps?: number;
  edits?: number[];
  outcome?: string;
  original_outcome?: string;
  message?: string;
}

/** An entry of `outputs`: an output spec, or [spec, label, group]. */
export type OutputOption = string | [string, string] | [string, string, string];

/** Every synced trait, by name (see the trait groups of widgets/_traits.py). */
export interface ModelState {
  // NavTraits
  trajectory: number;
  frame: number;
  // TrajectoryTraits
  title: string;
  n_trajectories: number;
  n_steps: number;
  obs_size: number;
  obs_png: Binary; // concatenated PNG strips, one per trajectory
  obs_offsets: number[];
  values: Binary; // float32 (E·T)
  advantages: Binary; // float32 (E·T)
  rewards: Binary; // float32 (E·T)
  actions: Binary; // uint8 (E·T)
  firsts: Binary; // uint8 (E·T)
  logits: Binary; // float32 (E·T·A)
  action_names: string[];
  action_glyphs: string[];
  action_groups: Record<string, number[]>;
  trajectory_labels: string[];
  screen_size: number;
  noop_actions: number[]; // actions that do nothing (grouped in the policy, hidden in menus)
  show_all_actions: boolean;
  // OutputTraits
  output: string;
  output_label: string;
  bookmarks: Bookmark[];
  // DisplayTraits
  gain: number;
  blur: number | null; // null: scaled to the shown layer
  scale_mode: "trajectory" | "frame";
  show_residual: boolean;
  overlay_mode: "split" | "combined";
  grey_underlay: boolean;
  full_res: boolean;
  // FeatureTraits
  n_features: number;
  feature_labels: string[];
  suggested_labels: string[];
  label_evidence: LabelEvidence[];
  isolated_feature: number;
  // AttributionTraits
  attr_maps: Binary; // zlib(int8 (E, T, H, W, K+1)), one chunk per trajectory
  attr_offsets: number[];
  attr_scales: Binary; // float32 (E·T·(K+1))
  attr_shape: number[]; // [E, T, H, W, K+1]
  attr_ready: Binary; // uint8 (E, T); empty = all ready
  attr_layer: string;
  // EditedTraits
  edited_trajectory: number;
  edited_values: Binary;
  edited_logits: Binary;
  edited_attr_maps: Binary;
  edited_attr_offsets: number[];
  edited_attr_scales: Binary;
  edited_attr_shape: number[];
  edited_attr_ready: Binary;
  rerun_png: Binary;
  rerun_values: Binary;
  rerun_actions: Binary;
  rerun_rewards: Binary;
  rerun_firsts: Binary;
  rerun_info: RerunInfo;
  // EditTraits
  edit_strengths: number[];
  edit_off: boolean[];
  // LegendTraits
  thumbnails_png: Binary;
  thumbnail_size: number;
  feature_examples: Example[][];
  // GridTraits
  grid_feature: number;
  grid_density: number;
  grid_zoom: number;
  grid_png: Binary;
  grid_shape: number[]; // [rows, cols, cell pixels]
  grid_sources: Binary; // int32 (rows·cols, 2)
  grid_source_png: Binary;
  grid_busy: boolean;
  mosaics_png: Binary; // K mosaics side by side
  mosaics_shape: number[]; // [K, rows, cols, cell pixels, density]
  mosaics_sources: Binary; // int32 (K·rows·cols·2)
  // ControlTraits
  layers: string[];
  layer: string;
  outputs: OutputOption[];
  rank: number;
  rank_max: number;
  // StatusTraits
  busy: boolean;
  progress: number;
  status: string;
  error: string;
  // Not a trait: set by static_model.ts in kernel-less exports.
  _static: boolean;
}

/** The name of a synced trait. */
export type TraitName = keyof ModelState;

/** A custom message to Python (`model.send`). */
export interface Message {
  type: string;
  [key: string]: unknown;
}
