"""The bundles in headless Chromium on a fake anywidget model fed real widget state: real canvas
pixels (getImageData), browser-side display maths against a numpy reference, interaction, and
the static export offline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from browser.harness import canvas_pixels, launch, mount, next_frame, screenshot, skip_reason

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

OBS_CANVAS = ".rlv-screen:nth-child(1) canvas"
POS_CANVAS = ".rlv-screen:nth-child(2) canvas"


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


@pytest.fixture()
def page(browser):
    p = browser.new_page()
    yield p
    p.close()


@pytest.fixture(scope="module")
def explorer():
    import torch

    from rlvision_widgets.agents.registry import resolve_agent
    from rlvision_widgets.rollouts import collect_trajectories
    from rlvision_widgets.widgets import Explorer

    torch.manual_seed(0)
    agent = resolve_agent(None)  # the shipped reference agent
    traj = collect_trajectories(agent, num_envs=2, num_steps=24, seed=1, progress=False)
    ex = Explorer(agent, traj, rank=4, background=False, suggest_labels=False)
    ex.frame = 7
    yield ex
    ex.close()


def _viewer(E=2, T=8, K=3, seed=0):
    from rlvision_widgets.widgets import TrajectoryViewer

    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 255, (E, T, 64, 64, 3), dtype=np.uint8)
    feats = np.zeros((E, T, 16, 16, K), np.float32)
    for e in range(E):
        for t in range(T):
            for k in range(K):  # one sparse blob per feature and frame
                y, x = rng.integers(2, 14, 2)
                feats[e, t, y, x, k] = rng.normal() * 2
    v = TrajectoryViewer(
        obs,
        values=rng.normal(size=(E, T)),
        advantages=rng.normal(size=(E, T)),
        actions=rng.integers(0, 15, (E, T)),
        logits=rng.normal(size=(E, T, 15)),
        firsts=np.eye(1, T, dtype=bool).repeat(E, 0),
        features=feats,
    )
    return v, obs, feats


# ------------------------------------------------------------------ numpy reference maths
def hue_to_rgb(ang: float) -> np.ndarray:
    cols = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], float)
    cols /= np.linalg.norm(cols, axis=1, keepdims=True)
    ang = ang - 360 * math.floor(ang / 360)
    R = 60.0
    n = int(ang // R)
    D = (ang - n * R) / R
    adj = lambda x: math.sin(x * math.pi / 2)  # noqa: E731
    D = adj(D) if n % 2 == 0 else 1 - adj(1 - D)
    v = (1 - D) * cols[n] + D * cols[(n + 1) % 6]
    return v / np.linalg.norm(v)


def reference_overlay(
    maps: np.ndarray,
    sign: int,
    scale: float,
    gain: float,
    isolate: int,
    residual: bool,
    blur: float,
) -> np.ndarray:
    """The article's display maths on one frame (H, W, K+1) -> RGBA float in [0, 255]."""
    H, W, C = maps.shape
    K = C - 1
    part = {1: lambda x: np.maximum(x, 0), -1: lambda x: np.maximum(-x, 0), 0: np.abs}[sign]
    colors = np.stack([hue_to_rgb(360 * i / K) for i in range(K)])
    x = part(maps) * gain / scale
    use = np.zeros(C, bool)
    if isolate < 0:
        use[:K] = True
        use[K] = residual
    else:
        use[isolate] = True
    rgb = x[..., :K][..., use[:K]] @ colors[use[:K]]
    if use[K]:
        rgb = rgb + x[..., K : K + 1]
    if blur > 0:  # unnormalised exp(-r/b) disc of radius 7b, zero padding
        R = int(math.floor(7 * blur + 1e-9))
        out = np.zeros_like(rgb)
        pad = np.pad(rgb, ((R, R), (R, R), (0, 0)))
        for dy in range(-R, R + 1):
            for dx in range(-R, R + 1):
                r = math.hypot(dx, dy)
                if r <= 7 * blur + 1e-9:
                    out += math.exp(-r / blur) * pad[R + dy : R + dy + H, R + dx : R + dx + W]
        rgb = out
    norm = np.linalg.norm(rgb, axis=-1, keepdims=True)
    alpha = np.minimum(1, norm)
    col = np.divide(rgb, alpha, out=np.zeros_like(rgb), where=alpha > 0)
    return np.concatenate([np.clip(col, 0, 1) * 255, alpha * 255], -1)


def test_display_maths_match_reference(page):
    v, _, _ = _viewer()
    mount(page, v)
    rng = np.random.default_rng(3)
    K, H, W = 5, 12, 12
    maps = (rng.normal(size=(H, W, K + 1)) * (rng.random((H, W, K + 1)) > 0.8)).astype(np.float32)
    for sign, iso, res, blur, gain in [
        (1, -1, False, 1.0, 1.0),
        (-1, -1, True, 1.0, 2.0),
        (0, 2, False, 0.0, 1.0),
        (1, K, False, 0.5, 1.0),
    ]:
        got = page.evaluate(
            """([maps, H, W, K, o]) => {
                 const d = window.mod.display;
                 const out = d.overlayRGBA(Float32Array.from(maps), H, W, K, {
                   sign: o.sign, scale: 1.5, gain: o.gain, isolate: o.iso, residual: o.res,
                   colors: d.featureColors(K), kernel: d.blurKernel(o.blur) });
                 return Array.from(out); }""",
            [
                maps.ravel().tolist(),
                H,
                W,
                K,
                {"sign": sign, "gain": gain, "iso": iso, "res": res, "blur": blur},
            ],
        )
        got = np.asarray(got, float).reshape(H, W, 4)
        want = reference_overlay(maps, sign, 1.5, gain, iso, res, blur)
        assert np.abs(got - want).max() <= 1.01, (sign, iso, res, blur)
    # the article's per-trajectory scale: median over frames of each frame's max
    s = page.evaluate("() => window.mod.display.trajectoryScale([3, 1, 2, 10])")
    assert s == 2.5


def test_display_maths_match_analysis_display(page):
    """The browser's overlays equal rlvision_widgets.analysis.display (the shared pure
    functions) at layer resolution, for the article's disc blur (radius 7), the default disc
    scaled to the layer (7 H / 32 = 3.5 here) and without blur."""
    display = pytest.importorskip("rlvision_widgets.analysis.display")
    v, _, _ = _viewer()
    mount(page, v)
    rng = np.random.default_rng(5)
    K, H, W = 4, 16, 16
    maps = (rng.normal(size=(H, W, K + 1)) * (rng.random((H, W, K + 1)) > 0.85)).astype(np.float32)
    feats = maps[None, ..., :K]
    scale = display.trajectory_scale(feats)
    # (sign, residual, Python blur, Python radius, the widget's blur trait: None = auto)
    for sign, residual, blur, radius, trait in [
        ("positive", False, "disc", 7, 1.0),
        ("negative", True, "disc", 7, 1.0),
        ("positive", True, "disc", None, None),
        ("negative", False, "disc", None, None),
        ("absolute", False, None, None, 0.0),
    ]:
        want = display.attribution_to_rgba(
            feats,
            display.feature_colors(K),
            scale,
            1.5,
            sign=sign,
            blur=blur,
            radius=radius,
            residual=maps[None, ..., K] if residual else None,
        )[0]
        got = page.evaluate(
            """([maps, H, W, K, o]) => { const d = window.mod.display;
                 return Array.from(d.overlayRGBA(Float32Array.from(maps), H, W, K, {
                   sign: o.sign, scale: o.scale, gain: 1.5, isolate: -1, residual: o.res,
                   colors: d.featureColors(K), kernel: d.blurKernel(d.effectiveBlur(o.blur, H)) })); }""",
            [
                maps.ravel().tolist(),
                H,
                W,
                K,
                {
                    "sign": {"positive": 1, "negative": -1, "absolute": 0}[sign],
                    "scale": scale,
                    "res": residual,
                    "blur": trait,
                },
            ],
        )
        got = np.asarray(got, float).reshape(H, W, 4) / 255
        want = np.clip(want, 0, 1)
        assert np.abs(got - want).max() <= 1.01 / 255, (sign, radius)
    assert page.evaluate("() => window.mod.display.effectiveBlur(null, 16)") == 0.5
    assert page.evaluate("() => window.mod.display.effectiveBlur(1, 16)") == 1
    assert page.evaluate("() => window.mod.display.effectiveBlur(null, 32)") == 1


def test_viewer_draws_observation_and_overlays(page):
    v, obs, feats = _viewer()
    v.frame = 3
    mount(page, v)
    px = canvas_pixels(page, OBS_CANVAS)
    S = px.shape[0]
    ys = (np.arange(8) * 8 + 3) * S // 64
    for y in ys:
        for x in ys:
            assert np.array_equal(px[y, x, :3], obs[0, 3, y * 64 // S, x * 64 // S]), (y, x)
    pos = canvas_pixels(page, POS_CANVAS)
    assert pos.std() > 5  # not blank
    assert not np.array_equal(pos[..., :3], px[..., :3])  # overlay drawn over the frame
    assert page.locator(".rlv-legend").count() == 0  # viewer alone: no legend
    screenshot(page, "browser_viewer")


def test_scrub_hotkeys_and_playback_update_frame(page):
    v, _, _ = _viewer(T=20)
    mount(page, v)
    box = page.locator(".rlv-timeline-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 20, steps=4)
    page.mouse.up()
    f = page.evaluate("() => window.model.get('frame')")
    assert 12 <= f <= 16
    saved = page.evaluate(
        "() => window.model.saved.map((s) => s.frame).filter((x) => x !== undefined)"
    )
    assert saved and saved[-1] == f  # synced to Python
    page.focus(".rlv-viewer")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowLeft")
    assert page.evaluate("() => window.model.get('frame')") == f + 1 - 10
    obs_before = canvas_pixels(page, OBS_CANVAS)
    page.keyboard.press(" ")  # play
    page.wait_for_function(f"() => window.model.get('frame') >= {f - 9 + 3}", timeout=5000)
    page.keyboard.press(" ")  # pause
    next_frame(page)
    assert not np.array_equal(obs_before, canvas_pixels(page, OBS_CANVAS))


def test_display_settings_apply_without_kernel(page):
    v, _, _ = _viewer()
    mount(page, v)
    before = canvas_pixels(page, POS_CANVAS)
    page.evaluate("() => { window.model.set('gain', 4); }")
    next_frame(page)
    brighter = canvas_pixels(page, POS_CANVAS)
    assert brighter[..., :3].astype(int).sum() != before[..., :3].astype(int).sum()
    page.evaluate("() => { window.model.set('grey_underlay', true); window.model.set('blur', 0); }")
    next_frame(page)
    grey = canvas_pixels(page, POS_CANVAS)
    assert not np.array_equal(grey, brighter)
    page.evaluate("() => window.model.set('overlay_mode', 'combined')")
    next_frame(page)
    assert page.locator(".rlv-screen:nth-child(4)").is_visible()
    assert not page.locator(".rlv-screen:nth-child(2)").is_visible()
    assert page.evaluate("() => window.model.sent.length") == 0  # nothing asked of Python


def test_blur_scales_with_layer_and_control_shows_radius(page, explorer):
    """Default blur: the article's radius 7 on 32 x 32 scaled to the layer (3.5 on the
    compact network's 16 x 16 layer 2b); the control shows the radius in use, radius 7 stays
    available, and "auto" returns to the scaled default."""
    assert explorer.blur is None and explorer.attributions.shape[2] == 16
    mount(page, explorer)
    val = page.locator(".rlv-controls .rlv-blur-val")
    slider = ".rlv-controls input.rlv-blur"
    assert val.inner_text() == "3.5"
    assert page.locator(".rlv-controls .rlv-blur-auto").get_attribute("aria-pressed") == "true"
    assert page.eval_on_selector(slider, "el => el.value") == "3.5"
    auto_px = canvas_pixels(page, POS_CANVAS)
    page.eval_on_selector(
        slider,
        """el => { el.value = "7";
        el.dispatchEvent(new Event("input", { bubbles: true })); }""",
    )
    next_frame(page)
    assert page.evaluate("() => window.model.get('blur')") == 1.0  # b = 7 / 7: the article
    assert val.inner_text() == "7.0"
    assert page.locator(".rlv-controls .rlv-blur-auto").get_attribute("aria-pressed") == "false"
    wide_px = canvas_pixels(page, POS_CANVAS)
    assert not np.array_equal(auto_px, wide_px)  # a wider disc is drawn
    page.click(".rlv-controls .rlv-blur-auto")
    next_frame(page)
    assert page.evaluate("() => window.model.get('blur')") is None
    assert val.inner_text() == "3.5"
    assert np.array_equal(canvas_pixels(page, POS_CANVAS), auto_px)


def test_explorer_hover_isolates_in_every_view(page, explorer):
    mount(page, explorer)
    assert page.locator(".rlv-legend-item").count() == explorer.n_features + 1
    obs = canvas_pixels(page, OBS_CANVAS)
    before = canvas_pixels(page, POS_CANVAS)
    assert obs.std() > 5 and before.std() > 5
    tl_before = canvas_pixels(page, ".rlv-timeline-canvas")
    page.hover(".rlv-legend-item[data-feature='1']")
    next_frame(page)
    after = canvas_pixels(page, POS_CANVAS)
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 1000
    assert not np.array_equal(tl_before, canvas_pixels(page, ".rlv-timeline-canvas"))
    assert page.locator(".rlv-legend-item.rlv-dim").count() == explorer.n_features
    screenshot(page, "browser_explorer_hover", ".rlv-main")
    page.mouse.move(0, 0)
    next_frame(page)
    assert np.array_equal(canvas_pixels(page, POS_CANVAS), before)
    # click opens the feature grid (a request to Python), label edits sync back
    page.click(".rlv-legend-item[data-feature='2'] .rlv-swatch")
    assert page.evaluate("() => window.model.get('grid_feature')") == 2
    page.click(".rlv-legend-item[data-feature='0'] .rlv-label-edit")  # editing is explicit
    page.fill(".rlv-legend-item[data-feature='0'] .rlv-label-input", "coin")
    page.keyboard.press("Enter")
    assert page.evaluate("() => window.model.get('feature_labels')[0]") == "coin"
    screenshot(page, "browser_explorer")


def test_rank_change_from_python_updates_legend(page, explorer):
    mount(page, explorer)
    assert page.locator(".rlv-legend").get_attribute("data-entries") == str(explorer.n_features)
    from rlvision_widgets.widgets.export import widget_payload

    rank = explorer.rank
    try:
        explorer.rank = 2
        new = widget_payload(explorer)
    finally:
        explorer.rank = rank
    names = ["attributions", "n_features", "feature_labels", "thumbnails", "rank"]
    page.evaluate(
        """([p, names]) => { const b64 = (s) => { const bin = atob(s); const u = new Uint8Array(bin.length);
             for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i); return new DataView(u.buffer); };
           const ch = {}; for (const n of names) ch[n] = p.state[n];
           for (const b of p.buffers) if (names.includes(b.path[0])) {  // nested: data, scales.data
             let o = ch; for (let i = 0; i < b.path.length - 1; i++) o = o[b.path[i]];
             o[b.path[b.path.length - 1]] = b64(b.data); }
           window.model.fromPython(ch); }""",
        [new, names],
    )
    next_frame(page)
    assert page.locator(".rlv-legend-item").count() == 3
    assert page.locator(".rlv-edit-row").count() == 2


def test_edited_values_redraw_value_graph(page, explorer):
    mount(page, explorer)
    before = canvas_pixels(page, ".rlv-timeline-canvas")
    T = explorer.n_steps
    edited = (np.linspace(-3, 3, T)).astype("<f4").tobytes()
    page.evaluate(
        """(b) => { const u = Uint8Array.from(b);
        const edited_values = { dtype: "float32", shape: [u.length / 4], data: new DataView(u.buffer) };
        window.model.fromPython({ edited_values, edited_trajectory: 0 }); }""",
        list(edited),
    )
    next_frame(page)
    after = canvas_pixels(page, ".rlv-timeline-canvas")
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 1000
    assert "→" in page.locator(".rlv-info").inner_text()  # original → edited value


def test_cleanup_removes_listeners(page):
    v, _, _ = _viewer()
    mount(page, v)
    assert page.evaluate("() => window.model.nHandlers()") > 0
    page.evaluate("() => window.cleanup()")
    assert page.evaluate("() => window.model.nHandlers()") == 0


def test_static_export_renders_offline(browser, explorer, tmp_path):
    path = explorer.save_html(tmp_path / "explorer.html")
    page = browser.new_page()
    requests: list[str] = []

    def block(route):
        requests.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", block)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".rlv-legend-item")
    next_frame(page)
    assert not errors, errors
    assert [u for u in requests if not u.startswith(("file://", "data:", "blob:"))] == []
    assert canvas_pixels(page, OBS_CANVAS).std() > 5
    before = canvas_pixels(page, POS_CANVAS)
    page.hover(".rlv-legend-item[data-feature='0']")
    next_frame(page)
    assert not np.array_equal(before, canvas_pixels(page, POS_CANVAS))  # still interactive
    assert page.locator(".rlv-controls select").first.is_disabled()  # needs a kernel
    screenshot(page, "browser_static_export")
    page.close()


def test_feature_grid_patch_shows_source_and_moves_timeline(page, explorer):
    explorer.grid_feature = 0
    try:
        mount(page, explorer)
        assert page.locator(".rlv-grid").is_visible()
        mosaic = canvas_pixels(page, ".rlv-mosaic")
        assert mosaic[..., 3].max() > 0  # opaque cells exist
        rows, cols = explorer.grid.rows, explorer.grid.cols
        src = explorer.grid.sources[0]
        r, c = np.argwhere(src[..., 1] >= 0)[0]
        box = page.locator(".rlv-mosaic").bounding_box()
        page.mouse.click(
            box["x"] + (c + 0.5) * box["width"] / cols, box["y"] + (r + 0.5) * box["height"] / rows
        )
        info = page.locator(".rlv-grid-src-info").inner_text()
        assert f"Trajectory {src[r, c, 0] + 1}, step {src[r, c, 1]}" in info
        assert canvas_pixels(page, ".rlv-grid-src").std() > 5
        page.click(".rlv-grid .rlv-btn:has-text('Show in timeline')")
        assert page.evaluate(
            "() => [window.model.get('trajectory'), window.model.get('frame')]"
        ) == [int(src[r, c, 0]), int(src[r, c, 1])]
        page.locator(".rlv-grid input[type=range]").first.fill("3")  # zoom is local
        assert page.evaluate("() => window.model.get('grid_zoom')") == 3
        screenshot(page, "browser_feature_grid", ".rlv-grid")
    finally:
        explorer.grid_feature = -1


def test_bookmarks_move_timeline_and_rerun_asks_python(page, explorer):
    mount(page, explorer)
    first = explorer.bookmarks[0]
    page.click(".rlv-bm >> nth=0")
    assert page.evaluate("() => [window.model.get('trajectory'), window.model.get('frame')]") == [
        first["trajectory"],
        first["frame"],
    ]
    page.click(".rlv-edit .rlv-primary")  # re-run with edits
    assert {"type": "rerun"} in page.evaluate("() => window.model.sent")


def test_full_resolution_frames_on_demand(page, explorer):
    from rlvision_widgets.widgets import _encode as enc

    mount(page, explorer)
    page.evaluate("() => window.model.set('full_res', true)")
    next_frame(page)
    req = [m for m in page.evaluate("() => window.model.sent") if m.get("type") == "full_frame"]
    assert req and req[-1]["frame"] == explorer.frame
    low = canvas_pixels(page, OBS_CANVAS)
    # answer like Python does: a PNG of the 512 x 512 frame in the message's buffer
    full = np.zeros((512, 512, 3), np.uint8)
    full[::2, ::2] = 255  # a pattern no 64 px frame has
    png = enc.encode_png(full)
    page.evaluate(
        """([m, b]) => { const u = Uint8Array.from(b);
        window.model.emit('msg:custom', m, [new DataView(u.buffer)]); }""",
        [req[-1], list(png)],
    )
    next_frame(page)
    assert not np.array_equal(low, canvas_pixels(page, OBS_CANVAS))
