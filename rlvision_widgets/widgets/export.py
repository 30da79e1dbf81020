"""Self-contained static HTML export of any rlvision widget.

The page inlines the IIFE bundle (``static/standalone.js``) and the widget state (binary buffers
as base64) and renders the component on a kernel-less model: nothing is fetched from the
internet, display settings (hover isolation, gain, blur, scale, timeline, playback) keep
working, and controls that need Python are disabled.

>>> from rlvision_widgets.widgets import TrajectoryViewer
>>> save_html(TrajectoryViewer(), "viewer.html")                 # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
import pathlib
import re
from collections.abc import Callable
from typing import Any

from ipywidgets.widgets.widget import _remove_buffers

from ..files import write_text_atomic

#: ``progress(fraction, message)``: how long work reports where it is
Progress = Callable[[float, str], None]

_SKIP = {
    "_esm",
    "_css",
    "_anywidget_id",
    "_dom_classes",
    "layout",
    "tabbable",
    "tooltip",
    "_model_module",
    "_model_module_version",
    "_model_name",
    "_view_count",
    "_view_module",
    "_view_module_version",
    "_view_name",
}

STATIC = pathlib.Path(__file__).parent / "static"  # the built JS bundles

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rlvision_widgets {version}">
<title>{title}</title>
<style>body {{ margin: 12px; background: #fff; }}</style>
</head>
<body>
<div id="rlv-root"></div>
<script id="rlv-state" type="application/json">{state}</script>
<script>{bundle}</script>
<script>
(function () {{
  var el = document.getElementById("rlv-root");
  try {{
    var payload = JSON.parse(document.getElementById("rlv-state").textContent);
    window.rlvModel = rlvisionWidgets.boot(el, payload, {component});
  }} catch (e) {{
    el.textContent = "rlvision_widgets: could not render this export: " + e;
    throw e;
  }}
}})();
</script>
</body>
</html>
"""


def widget_payload(widget: Any) -> dict[str, Any]:
    """The widget's synced state as JSON with base64 buffers (what the static page boots)."""
    state = widget.get_state()
    state = {k: v for k, v in state.items() if k not in _SKIP}
    for k, v in (("busy", False), ("status", ""), ("progress", 1.0), ("grid_busy", False)):
        if k in state:
            state[k] = v  # a snapshot: nothing is running in the exported page
    stripped, paths, buffers = _remove_buffers(state)
    return {
        "state": stripped,
        "buffers": [
            {"path": list(p), "data": base64.b64encode(bytes(b)).decode("ascii")}
            for p, b in zip(paths, buffers)
        ],
    }


def _escape_json_for_script(text: str) -> str:
    """JSON that cannot end its <script> element early ("<" written as \\u003c)."""
    return text.replace("<", "\\u003c")


def _script_safe(text: str) -> str:
    """JavaScript source that cannot end its <script> element early."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def save_html(
    widget: Any,
    path: str | pathlib.Path,
    title: str | None = None,
    progress: Progress | None = None,
) -> pathlib.Path:
    """Write ``widget`` (any rlvision widget) to one self-contained HTML file; returns the path.

    Every widget also has ``widget.save_html(path)``. ``progress(fraction, message)`` is told
    about each stage (state, page, write).

    >>> import os, tempfile
    >>> from rlvision_widgets.widgets import Controls
    >>> path = save_html(Controls(), os.path.join(tempfile.mkdtemp(), "controls.html"))
    >>> path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    True
    >>> save_html(explorer, "explorer.html", title="CoinRun")           # doctest: +SKIP
    """
    from .. import __version__

    bundle = STATIC / "standalone.js"
    if not bundle.is_file():
        raise FileNotFoundError(
            f"{bundle} is missing: build the bundles with "
            "`npm ci && npm run build` (or reinstall the package)"
        )
    report = progress or (lambda _f, _m: None)
    report(0.0, "encoding the widget state…")
    payload = widget_payload(widget)
    report(0.5, "writing the page…")
    component = getattr(type(widget), "_component", "explorer")
    title = title or getattr(widget, "title", "") or "rlvision_widgets export"
    page = _TEMPLATE.format(
        version=__version__,
        title=html.escape(title),
        state=_escape_json_for_script(json.dumps(payload, separators=(",", ":"))),
        bundle=_script_safe(bundle.read_text(encoding="utf-8")),
        component=json.dumps(component),
    )
    out = write_text_atomic(path, page)
    report(1.0, f"wrote {out} ({len(page) / 2**20:.1f} MiB)")
    return out


def __getattr__(name: str) -> object:
    from .._compat import moved_names

    return moved_names(__name__, {"export_explorer": "widgets.explorer:export_explorer"})(name)
