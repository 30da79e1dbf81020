// The one TypeScript type of the widget model's state: every synced trait a component reads or
// writes, by name, with the type it has in the browser (array kinds: widgets/_arrays.py, decoded
// by arrays.ts). Mirrors rlvision_widgets/widgets/_traits.py
// (a trait renamed or added there must be renamed or added here; `npm run typecheck` then points
// at every use). Traits are absent (undefined) when a component is rendered alone on a model that
// lacks them, so `AnyModel.get` returns `ModelState[K] | undefined`.

/**
 * Bytes inside a serialized trait: a DataView over a websocket buffer in Jupyter and in static
 * exports; read it with decode.ts (`bytesOf`) or the decoders of arrays.ts.
 */
export type Binary = DataView | ArrayBuffer | Uint8Array;

/** `ArrayTrait` (widgets/_arrays.py): a little-endian array of one dtype; decode with arrays.ts. */
export interface ArrayWire {
  dtype: "float32" | "int32" | "int8" | "uint8";
  shape: number[];
  data: Binary;
}

/** `PngFrames`: frames (E, T, S, S, C) as a PNG strip per trajectory (S wide, S·T tall). */
export interface FramesWire {
  format: "png";
  shape: number[]; // [E, T, S, S, C]
  offsets: number[]; // E + 1 byte offsets into data
  data: Binary;
}

/** `PngTiles`: K images (K, h, w, C) side by side in one PNG. */
export interface TilesWire {
  format: "png";
  shape: number[]; // [K, h, w, C]
  data: Binary;
}

/** `MosaicTrait`: K mosaics side by side in one PNG and the source of every cell. */
export interface MosaicWire {
  format: "png";
  shape: number[]; // [K, rows, cols, cell pixels]
  density: number; // cells per side it was computed at (0: unknown)
  data: Binary;
  sources: ArrayWire; // int32 (K, rows, cols, 2)
}

/** `AttributionMaps`: zlib(int8 (T, H, W, C)) per trajectory, x = q · scale / 127. */
export interface AttributionWire {
  shape: number[]; // [E, T, H, W, K+1]
  offsets: number[]; // E + 1 byte offsets into data (an empty chunk: not computed)
  data: Binary;
  scales: ArrayWire; // float32 (E, T, K+1)
  ready: ArrayWire | null; // uint8 (E, T); null: every frame ready
}

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

/** `optvis_info`: the optimized image of one feature (widgets/explorer.py `_job_optvis`). */
export interface OptvisInfo {
  state?: "computing" | "ready" | "error";
  feature?: number;
  layer?: string;
  rank?: number;
  steps?: number;
  method?: string;
  value?: number; // the objective (projection on the direction, mean over positions) on the image
  best_real?: number; // the same on the best real frame of the explorer's data
  best_frame?: number[]; // [trajectory, frame] of that frame
  ratio?: number | null; // value / best_real
  cell_value?: number; // the strongest position's projection on the image
  best_cell?: number; // the strongest dataset example's (position) projection
  cell_ratio?: number | null;
  n_frames?: number;
  seconds?: number;
  cached?: boolean;
  caption?: string;
  message?: string; // state "error"
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
  observations: FramesWire | null; // (E, T, S, S, 3)
  values: ArrayWire | null; // float32 (E, T)
  advantages: ArrayWire | null; // float32 (E, T)
  rewards: ArrayWire | null; // float32 (E, T)
  actions: ArrayWire | null; // uint8 (E, T)
  firsts: ArrayWire | null; // uint8 (E, T)
  logits: ArrayWire | null; // float32 (E, T, A)
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
  attributions: AttributionWire | null; // (E, T, H, W, K+1)
  attr_layer: string;
  // EditedTraits
  edited_trajectory: number;
  edited_values: ArrayWire | null; // float32 (T,)
  edited_logits: ArrayWire | null; // float32 (T, A)
  edited_attributions: AttributionWire | null; // (1, T, H, W, K+1)
  rerun_frames: FramesWire | null; // (1, T, S, S, 3)
  rerun_values: ArrayWire | null; // float32 (T,)
  rerun_actions: ArrayWire | null; // uint8 (T,)
  rerun_rewards: ArrayWire | null; // float32 (T,)
  rerun_firsts: ArrayWire | null; // uint8 (T,)
  rerun_info: RerunInfo;
  // EditTraits
  edit_strengths: number[];
  edit_off: boolean[];
  // LegendTraits
  thumbnails: TilesWire | null; // (K, s, s, 4)
  feature_examples: Example[][];
  // GridTraits
  grid_feature: number;
  grid_density: number;
  grid_zoom: number;
  grid: MosaicWire | null; // the mosaic of grid_feature computed on request (K = 1)
  grid_source_frames: FramesWire | null; // (1, N, S, S, 3): what (-2, i) cells point to
  grid_busy: boolean;
  mosaics: MosaicWire | null; // every feature's mosaic at one density
  optvis_image: TilesWire | null; // (1, S, S, 3): the optimized image of optvis_info.feature
  optvis_info: OptvisInfo;
  optvis_enabled: boolean; // a live explorer answers the "optimize" button
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
