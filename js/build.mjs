// Bundles the TypeScript components with esbuild.
//
//   node js/build.mjs           one-shot production build
//   node js/build.mjs --watch   rebuild on change (use with ANYWIDGET_HMR=1 in the kernel)
//
// Outputs (rlvision_widgets/widgets/static/, git-ignored, shipped in wheels):
//   <component>.js          ESM, one per component, loaded by the Python anywidget classes
//   explorer.js             ESM of the composed explorer
//   standalone.js           IIFE (global `rlvisionWidgets`) with the explorer and a kernel-less
//                           model, inlined by Explorer.save_html() into self-contained pages
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdir = path.join(root, "rlvision_widgets", "widgets", "static");
const watch = process.argv.includes("--watch");

const common = {
  bundle: true,
  minify: !watch,
  sourcemap: false,
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  loader: { ".css": "text" },
  logLevel: "info",
  legalComments: "none",
};

const components = ["trajectory_viewer", "legend", "feature_grid", "controls", "edit_panel", "counterfactual_panel", "explorer"];

const esm = {
  ...common,
  entryPoints: Object.fromEntries(components.map((c) => [c, path.join(root, "js", `${c}.ts`)])),
  format: "esm",
  outdir,
};
const iife = {
  ...common,
  entryPoints: { standalone: path.join(root, "js", "standalone.ts") },
  format: "iife",
  globalName: "rlvisionWidgets",
  outdir,
};

if (watch) {
  const contexts = await Promise.all([esbuild.context(esm), esbuild.context(iife)]);
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all([esbuild.build(esm), esbuild.build(iife)]);
}
