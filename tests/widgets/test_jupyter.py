"""End to end in real JupyterLab 4 and Notebook 7 (Playwright + /usr/bin/chromium): the explorer
renders non-blank canvases; scrubbing and hotkeys change ``frame`` in the kernel; changing the
rank changes the number of legend entries; hovering a legend entry changes overlay pixels;
switching a feature off changes the value graph; the static export renders offline."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from browser.harness import ARTIFACTS, canvas_pixels, launch, screenshot, skip_reason

pytestmark = [
    pytest.mark.jupyter,
    pytest.mark.browser,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

NOTEBOOK = """\
import warnings; warnings.filterwarnings("ignore")
import torch; torch.manual_seed(0)
from rlvision_widgets.widgets import Explorer
ex = Explorer(num_envs=2, num_steps=40, rank=4, seed=0)   # the shipped agent (random if none)
ex"""

OBS = ".rlv-screen:nth-child(1) canvas"
POS = ".rlv-screen:nth-child(2) canvas"
TIMELINE = ".rlv-timeline-canvas"


def _wait_changed(page, selector: str, before: np.ndarray, timeout: float = 30.0) -> np.ndarray:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = canvas_pixels(page, selector)
        if now.shape != before.shape or np.abs(now.astype(int) - before.astype(int)).sum() > 500:
            return now
        page.wait_for_timeout(150)
    raise AssertionError(f"{selector} did not change in {timeout} s")


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_explorer_end_to_end(app, tmp_path):
    from browser.jupyter import KernelProbe, jupyter_server, open_notebook, write_notebook

    with jupyter_server(app) as srv, launch() as browser:
        write_notebook(srv.root / "explorer.ipynb", [NOTEBOOK])
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        open_notebook(page, srv, "explorer.ipynb")
        probe = KernelProbe(srv)
        try:
            # --- renders, computes in the background, non-blank canvases
            page.wait_for_selector(".rlv-legend[data-entries='4']", timeout=180_000)
            probe.wait_for("ex.n_features == 4 and not ex.busy", timeout=180)
            page.locator(".rlv-explorer").scroll_into_view_if_needed()
            assert canvas_pixels(page, OBS).std() > 5
            assert canvas_pixels(page, POS).std() > 5
            assert canvas_pixels(page, TIMELINE).std() > 5
            screenshot(page, f"jupyter_{app}_explorer")
            screenshot(page, f"jupyter_{app}_widget", ".rlv-explorer")

            # --- scrubbing the timeline and the ←/→ hotkeys move `frame` in the kernel
            box = page.locator(TIMELINE).bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 20, steps=5)
            page.mouse.up()
            js_frame = page.evaluate("() => +document.querySelector('.rlv-viewer').dataset.frame")
            assert 15 <= js_frame <= 27
            probe.wait_for(f"ex.frame == {js_frame}", timeout=30)
            page.keyboard.press("ArrowRight")
            probe.wait_for(f"ex.frame == {js_frame + 1}", timeout=30)
            probe.eval("setattr(ex, 'frame', 3)")  # and Python moves the view
            page.wait_for_function(
                "() => document.querySelector('.rlv-viewer').dataset.frame === '3'"
            )

            # --- hovering a legend entry isolates the feature (overlay pixels change)
            before = canvas_pixels(page, POS)
            page.hover(".rlv-legend-item[data-feature='1']")
            _wait_changed(page, POS, before, timeout=5)
            screenshot(page, f"jupyter_{app}_hover", ".rlv-main")
            page.mouse.move(5, 5)

            # --- rank slider: number of legend entries follows (Python recomputes the NMF)
            page.locator(".rlv-controls input[type=range]").first.fill("3")
            page.wait_for_selector(".rlv-legend[data-entries='3']", timeout=60_000)
            probe.wait_for("ex.rank == 3 and ex.n_features == 3 and not ex.busy", timeout=60)
            assert page.locator(".rlv-legend-item").count() == 4  # 3 + residual

            # --- switching a feature off changes the value graph
            timeline = canvas_pixels(page, TIMELINE)
            page.locator(".rlv-edit-row[data-feature='0'] input[type=checkbox]").check()
            probe.wait_for("ex.edited_trajectory == 0 and ex.edited_values is not None", timeout=60)
            _wait_changed(page, TIMELINE, timeline, timeout=15)
            probe.wait_for("not ex.busy", timeout=60)
            screenshot(page, f"jupyter_{app}_edited")
            screenshot(page, f"jupyter_{app}_edited_widget", ".rlv-explorer")

            # --- static export renders offline, without a kernel
            out = tmp_path / f"export_{app}.html"
            probe.eval(f"ex.save_html({str(out)!r})")
            static = browser.new_page()
            static.route(
                "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
            )
            static.goto(out.as_uri())
            static.wait_for_selector(".rlv-legend[data-entries='3']")
            static.wait_for_timeout(200)
            assert canvas_pixels(static, OBS).std() > 5
            assert canvas_pixels(static, POS).std() > 5
            screenshot(static, f"jupyter_{app}_static_export")
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(out, ARTIFACTS / out.name)
            static.close()
            unexpected = [e for e in errors if "schema" not in e]  # Notebook 7's own error
            assert not unexpected, unexpected
        finally:
            probe.close()
