"""Render the widget bundles in headless Chromium (Playwright + /usr/bin/chromium) on a fake
anywidget model fed the real widget state, and read back real canvas pixels.

>>> with launch() as browser:                                   # doctest: +SKIP
...     page = browser.new_page()
...     mount(page, TrajectoryViewer(obs, values=v))
...     px = canvas_pixels(page, ".rlv-screen canvas")
"""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np

CHROMIUM = os.environ.get("RLVISION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
STATIC = ROOT / "rlvision_widgets" / "widgets" / "static"


def skip_reason() -> str | None:
    """Why browser tests cannot run here (None when they can)."""
    if not pathlib.Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (apt install chromium, or set RLVISION_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: pip install playwright"
    if not (STATIC / "explorer.js").is_file():
        return f"JS bundles not built in {STATIC}: run `npm ci && npm run build`"
    return None


@contextlib.contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium browser (closed on exit, only the one this context started)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# A fake anywidget model: Backbone-like get/set/on/off with change events, save_changes that
# records what would go to Python, send that records custom messages, and a way to push
# messages / state from the test.
FAKE_MODEL_JS = r"""
async ({ src, payload, component }) => {
  const b64 = (s) => { const bin = atob(s); const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i); return u; };
  const state = payload.state;
  for (const b of payload.buffers) {
    const u = b64(b.data);
    let o = state; for (let i = 0; i < b.path.length - 1; i++) o = o[b.path[i]];
    o[b.path[b.path.length - 1]] = new DataView(u.buffer);
  }
  const handlers = {};
  const dirty = new Set();
  const model = {
    state, saved: [], sent: [],
    get(k) { return state[k]; },
    set(k, v) { const old = state[k]; state[k] = v; dirty.add(k);
      if (old !== v) { (handlers["change:" + k] || []).slice().forEach((cb) => cb(model, v));
                       (handlers["change"] || []).slice().forEach((cb) => cb(model)); } },
    save_changes() { const o = {}; for (const k of dirty) o[k] = state[k]; dirty.clear();
      if (Object.keys(o).length) model.saved.push(o); },
    on(ev, cb) { for (const e of ev.split(/\s+/)) (handlers[e] = handlers[e] || []).push(cb); },
    off(ev, cb) { if (!ev) { for (const k in handlers) delete handlers[k]; return; }
      for (const e of ev.split(/\s+/)) handlers[e] = cb ? (handlers[e] || []).filter((x) => x !== cb) : []; },
    send(content, callbacks, buffers) { model.sent.push(content); },
    // test helpers: a change coming from Python, and a custom message from Python
    fromPython(changes) { for (const [k, v] of Object.entries(changes)) { state[k] = v; }
      for (const k of Object.keys(changes)) (handlers["change:" + k] || []).slice().forEach((cb) => cb(model, changes[k])); },
    emit(ev, ...args) { (handlers[ev] || []).slice().forEach((cb) => cb(...args)); },
    nHandlers() { return Object.values(handlers).reduce((a, l) => a + l.length, 0); },
  };
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const mod = await import(url);
  const el = document.getElementById("root");
  window.model = model;
  window.mod = mod;
  window.cleanup = mod.default.render({ model, el });
  window.el = el;
  return true;
}
"""


def payload(widget: Any) -> dict:
    from rlvision_widgets.widgets.export import widget_payload

    return widget_payload(widget)


def mount(page: Any, widget: Any, component: str | None = None, width: int = 1180) -> None:
    """Render ``widget`` (its own bundle unless ``component`` is given) into ``page``."""
    component = component or type(widget)._component
    src = (STATIC / f"{component}.js").read_text(encoding="utf-8")
    page.set_viewport_size({"width": width, "height": 1400})
    page.set_content(
        "<!DOCTYPE html><html><body style='margin:8px'><div id='root'></div></body></html>"
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.evaluate(FAKE_MODEL_JS, {"src": src, "payload": payload(widget), "component": component})
    page.wait_for_timeout(50)
    if errors:
        raise AssertionError(f"page errors: {errors}")


def canvas_pixels(page: Any, selector: str, index: int = 0) -> np.ndarray:
    """RGBA pixels (H, W, 4) of the index-th canvas matching ``selector`` (getImageData)."""
    data = page.evaluate(
        """([sel, i]) => { const c = document.querySelectorAll(sel)[i];
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let s = ''; const n = 0x8000;
             for (let k = 0; k < d.length; k += n) s += String.fromCharCode.apply(null, d.subarray(k, k + n));
             return { w: c.width, h: c.height, b64: btoa(s) }; }""",
        [selector, index],
    )
    px = np.frombuffer(base64.b64decode(data["b64"]), np.uint8)
    return px.reshape(data["h"], data["w"], 4)


def next_frame(page: Any, n: int = 2) -> None:
    """Let requestAnimationFrame-scheduled redraws run."""
    page.evaluate(
        "(n) => new Promise((r) => { let k = 0; const f = () => (++k >= n ? r() : "
        "requestAnimationFrame(f)); requestAnimationFrame(f); })",
        n,
    )


#: Representative screenshots (test-artifacts/<name>.png) and their names in docs/images/:
#: ``scripts/copy_screenshots.py`` copies them there (tests never write tracked files).
DOC_IMAGES = {
    "jupyter_lab_widget": "explorer-jupyterlab.png",
    "jupyter_lab_hover": "explorer-hover-isolation.png",
    "jupyter_lab_edited_widget": "explorer-feature-switched-off.png",
    "jupyter_notebook_explorer": "explorer-notebook7.png",
    "browser_feature_grid": "feature-grid.png",
    "browser_static_export": "static-export.png",
    "features_legend_icon_hover": "legend-icon-enlarged.png",
    "features_feature_grid": "feature-grid-examples.png",
    "features_explorer_1024": "explorer-1024px.png",
    "features_edited_other_trajectory": "explorer-edited-trajectory-2.png",
    "features_static_export_grid": "static-export-feature-grid.png",
    "features_optvis": "feature-grid-optimized-image.png",
    "counterfactual_panel_hidden_saw": "counterfactual-panel.png",
}


def screenshot(page: Any, name: str, selector: str | None = None) -> pathlib.Path:
    """Save a screenshot as test-artifacts/<name>.png (git-ignored) at the page's full size;
    ``scripts/copy_screenshots.py`` copies the representative ones (:data:`DOC_IMAGES`) into
    docs/images/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    return path
