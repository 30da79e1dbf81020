"""Python side of the widgets: traits, validation, binary encodings, the Explorer's state and
its engine binding (small data: a random-weight compact network, a few steps)."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from rlvision_widgets.widgets import (
    AttributionLegend,
    Controls,
    EditPanel,
    Explorer,
    FeatureGrid,
    TrajectoryViewer,
    output_options,
)
from rlvision_widgets.widgets import _arrays as arr
from rlvision_widgets.widgets import _encode as enc
from rlvision_widgets.widgets.export import STATIC


def _obs(E=2, T=6, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (E, T, 64, 64, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ encodings
def test_png_strips_round_trip():
    obs = _obs(3, 5)
    frames = arr.Frames.encode(obs)
    assert frames.shape == (3, 5, 64, 64, 3)
    assert len(frames.offsets) == 4 and frames.offsets[-1] == len(frames.data)
    for e in range(3):
        img = enc.decode_png(frames.data[frames.offsets[e] : frames.offsets[e + 1]])
        assert img.shape == (5 * 64, 64, 3)
        assert np.array_equal(img.reshape(5, 64, 64, 3), obs[e])
    assert np.array_equal(frames.decode(), obs)


def test_attribution_quantisation_error_and_layout():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 4, 8, 8, 3)).astype(np.float32)
    r = rng.normal(size=(2, 4, 8, 8)).astype(np.float32)
    maps = arr.encode_attribution(f, r)
    assert maps.shape == (2, 4, 8, 8, 4) and maps.ready is None
    back = maps.decode()
    full = np.concatenate([f, r[..., None]], -1)
    scale = np.abs(full).max(axis=(2, 3), keepdims=True)
    assert np.all(np.abs(back - full) <= scale / 254 + 1e-6)
    # one zlib stream per trajectory, int8 inside
    off = maps.offsets
    raw = zlib.decompress(maps.data[off[1] : off[2]])
    assert len(raw) == 4 * 8 * 8 * 4


def test_progressive_payload_marks_ready_frames():
    p = arr.AttributionPayload(2, 5, 4, 4, 3)
    p.set(1, np.ones((5, 4, 4, 3), np.float32), frames=[0, 2])
    maps = p.value()
    assert maps.ready.astype(int)[1].tolist() == [1, 0, 1, 0, 0] and not maps.ready[0].any()
    assert maps.offsets[1] == 0  # trajectory 0 not computed: empty chunk
    p.set(1, np.ones((5, 4, 4, 3), np.float32), frames=[1])
    assert maps.ready[1].tolist() == [True, False, True, False, False]  # a snapshot


# ------------------------------------------------------------------------ typed traits
class _Typed(traitlets.HasTraits):
    values = arr.ArrayTrait("float32", ("trajectory", "step"))
    actions = arr.ArrayTrait("uint8", ("trajectory", "step"))
    observations = arr.PngFrames()
    thumbnails = arr.PngTiles()
    mosaics = arr.MosaicTrait()
    attributions = arr.AttributionMaps()


def _wire(obj, name):
    """A trait's value as it travels: JSON with its buffers out, then back as the browser's
    memoryviews (what ipywidgets does both ways)."""
    trait = obj.traits()[name]
    state, paths, buffers = _remove_buffers({name: trait.to_json(getattr(obj, name), obj)})
    json.dumps(state)  # no bytes left in the JSON part
    value = json.loads(json.dumps(state))[name]
    for path, buf in zip(paths, buffers):
        target = value
        for key in path[1:-1]:
            target = target[key]
        target[path[-1]] = memoryview(bytes(buf))
    return trait.from_json(value, obj), sum(len(bytes(b)) for b in buffers)


def test_array_trait_validates_dtype_axes_and_names_the_trait():
    w = _Typed(values=np.arange(6, dtype=np.float64).reshape(2, 3), actions=[[0, 1, 14]])
    assert w.values.dtype == np.float32 and w.actions.dtype == np.uint8
    with pytest.raises(
        traitlets.TraitError,
        match=r"_Typed.values: expected a float32 array "
        r"with axes \(trajectory, step\), got shape \(6,\)",
    ):
        w.values = np.zeros(6)
    with pytest.raises(traitlets.TraitError, match=r"_Typed.values: .* got dtype <U1"):
        w.values = [["a"]]
    with pytest.raises(traitlets.TraitError, match=r"_Typed.actions: .*non-integral"):
        w.actions = [[0.5]]
    with pytest.raises(traitlets.TraitError, match=r"_Typed.actions: .*negative"):
        w.actions = [[-1]]
    with pytest.raises(traitlets.TraitError, match=r"_Typed.observations: expected uint8"):
        w.observations = np.zeros((2, 4, 8, 8, 3), np.float32)
    with pytest.raises(traitlets.TraitError, match=r"_Typed.mosaics: expected Mosaics"):
        w.mosaics = np.zeros((1, 8, 8, 4), np.uint8)
    assert w.values.tolist() == [[0, 1, 2], [3, 4, 5]]  # refused values leave the old one


def test_typed_traits_round_trip_over_the_wire_as_raw_buffers():
    rng = np.random.default_rng(3)
    obs = _obs(2, 3)
    w = _Typed(
        values=rng.normal(size=(2, 3)),
        actions=rng.integers(0, 15, (2, 3)),
        observations=obs,
        thumbnails=rng.integers(0, 255, (3, 8, 8, 4), dtype=np.uint8),
        mosaics=arr.Mosaics.encode(
            rng.integers(0, 255, (2, 20, 20, 4), dtype=np.uint8),
            rng.integers(-1, 9, (2, 2, 2, 2)),
            2,
        ),
        attributions=rng.normal(size=(2, 3, 4, 4, 3)).astype(np.float32),
    )
    values, n = _wire(w, "values")
    assert np.array_equal(values, w.values) and n == 2 * 3 * 4  # raw float32, no base64
    actions, n = _wire(w, "actions")
    assert np.array_equal(actions, w.actions) and n == 6
    frames, n = _wire(w, "observations")
    assert np.array_equal(frames.decode(), obs) and n == len(w.observations.data)
    tiles, _ = _wire(w, "thumbnails")
    assert np.array_equal(tiles.decode(), w.thumbnails.decode())
    mos, _ = _wire(w, "mosaics")
    assert (mos.K, mos.rows, mos.cols, mos.cell, mos.density) == (2, 2, 2, 10, 2)
    assert np.array_equal(mos.sources, w.mosaics.sources)
    assert np.array_equal(mos.tiles.decode(), w.mosaics.tiles.decode())
    maps, n = _wire(w, "attributions")
    assert np.array_equal(maps.decode(), w.attributions.decode())
    assert n == len(w.attributions.data) + 2 * 3 * 3 * 4  # zlib chunks + float32 scales
    for name in ("values", "observations", "mosaics", "attributions"):
        setattr(w, name, None)
        assert _wire(w, name) == (None, 0)


# ------------------------------------------------------------------------- components
def test_trajectory_viewer_accepts_arrays():
    E, T = 2, 6
    v = TrajectoryViewer(
        _obs(E, T),
        values=np.arange(E * T).reshape(E, T),
        actions=np.ones((E, T), int),
        firsts=np.zeros((E, T), bool),
        logits=np.zeros((E, T, 15)),
        features=np.ones((E, T, 16, 16, 3), np.float32),
    )
    assert (v.n_trajectories, v.n_steps, v.n_features) == (E, T, 3)
    assert v.attributions.shape == (E, T, 16, 16, 4)
    assert v.values.ravel().tolist() == list(range(E * T)) and v.values.dtype == np.float32
    assert v.logits.shape == (E, T, 15) and v.actions.dtype == np.uint8
    seen = []
    v.observe(lambda ch: seen.append(ch["new"]), "frame")
    v.frame = 5
    assert seen == [5]
    with pytest.raises(traitlets.TraitError):
        v.frame = T
    with pytest.raises(traitlets.TraitError):
        v.trajectory = E
    with pytest.raises(traitlets.TraitError):
        v.gain = 0
    with pytest.raises(traitlets.TraitError):
        v.blur = -1
    # blur: by default the article's radius 7 on 32 x 32 scaled to the layer (7 H / 32)
    assert v.blur is None and v.blur_radius() == 3.5
    v.blur = 1.0  # the article's radius, explicitly
    assert v.blur_radius() == 7.0
    v.blur = None
    with pytest.raises(ValueError, match="values must have shape"):
        v.set_trajectories(_obs(E, T), values=np.zeros(T + 1))
    with pytest.raises(TypeError, match="uint8"):
        v.set_trajectories(np.zeros((T, 64, 64, 3), np.float32))


def test_single_trajectory_and_binary_traits_are_bytes():
    v = TrajectoryViewer(
        _obs(1, 4)[0], values=np.zeros(4), features=np.zeros((4, 8, 8, 2), np.float32)
    )
    assert v.n_trajectories == 1 and v.observations.shape == (1, 4, 64, 64, 3)
    state, paths, _ = _remove_buffers(v.get_state())
    for path in (["observations", "data"], ["values", "data"], ["attributions", "data"]):
        assert path in paths, path  # raw buffers, not JSON lists
    assert state["values"] == {"dtype": "float32", "shape": [1, 4]}
    json.dumps({k: x for k, x in state.items() if k not in ("_esm", "_css")})


def test_loose_array_traits_are_gone_and_typed_ones_are_keywords():
    """Each logical array is one typed trait: the old loose names are unknown keywords."""
    for cls, old in [
        (TrajectoryViewer, "obs_png"),
        (TrajectoryViewer, "attr_shape"),
        (EditPanel, "rerun_png"),
        (AttributionLegend, "thumbnails_png"),
        (FeatureGrid, "mosaics_shape"),
    ]:
        with pytest.raises(TypeError, match=f"unknown keyword argument.*'{old}'"):
            cls(**{old: b""})
    grid = FeatureGrid(
        mosaics=arr.Mosaics.encode(np.zeros((2, 8, 8, 4), np.uint8), np.zeros((2, 2, 2, 2), int))
    )
    assert grid.mosaics.K == 2
    panel = EditPanel(rerun_values=np.arange(3.0))
    assert panel.rerun_values.dtype == np.float32
    with pytest.raises(traitlets.TraitError, match=r"EditPanel.rerun_values: expected"):
        EditPanel(rerun_values=np.zeros((2, 3)))


def test_component_widgets_construct_and_validate():
    legend = AttributionLegend(np.zeros((3, 8, 8, 3), np.uint8), labels=["a", "b", "c"])
    assert legend.n_features == 3 and legend.thumbnails.shape == (3, 8, 8, 4)
    img = enc.decode_png(legend.thumbnails.data)
    assert img.shape == (8, 24, 4)
    grid = FeatureGrid(np.zeros((64, 64, 4), np.uint8), np.zeros((2, 2, 2), int), grid_feature=0)
    assert (grid.grid.K, grid.grid.rows, grid.grid.cols, grid.grid.cell) == (1, 2, 2, 32)
    with pytest.raises(traitlets.TraitError):
        grid.grid_density = 0
    panel = EditPanel(n_features=3)
    assert panel.edit_strengths == [0.0] * 3 and panel.edit_off == [False] * 3
    with pytest.raises(traitlets.TraitError):
        panel.edit_strengths = [0.0, 1.5, 0.0]
    c = Controls(layers=["2a", "2b"], layer="2b")
    specs = [o[0] for o in c.outputs]
    assert (
        specs[0] == "value"
        and "logit:7" in specs
        and "group:right" in specs
        and "logprob:0" in specs
    )
    assert output_options()[8][1].endswith("RIGHT")
    for cls in (TrajectoryViewer, AttributionLegend, FeatureGrid, Controls, EditPanel, Explorer):
        bundle = STATIC / f"{cls._component}.js"
        if bundle.is_file():  # each widget loads its own component bundle
            assert str(cls._esm) == bundle.read_text(encoding="utf-8")
        else:
            assert "npm run build" in str(cls._esm)


# ---------------------------------------------------------------------------- explorer
@pytest.fixture(scope="module")
def explorer():
    import torch

    from rlvision_widgets.agents import build_network
    from rlvision_widgets.rollouts import collect_trajectories

    torch.manual_seed(0)
    agent = build_network("compact").eval()
    traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=0, progress=False)
    ex = Explorer(agent, traj, rank=4, background=False, suggest_labels=False)
    yield ex
    ex.close()


def test_explorer_initial_state(explorer):
    ex = explorer
    assert ex.layer == "2b" and ex.layers == ["1a", "2a", "2b", "3a", "4a"]
    assert (ex.n_trajectories, ex.n_steps, ex.n_features) == (2, 24, 4)
    assert ex.attributions.shape == (2, 24, 16, 16, 5) and ex.attributions.ready is None
    assert ex.blur is None and ex.blur_radius() == 3.5  # 7 x 16 / 32 on the 16 x 16 layer 2b
    assert len(ex.feature_labels) == 4 and ex.edit_strengths == [0.0] * 4
    assert ex.thumbnails.shape[1] > 0 and ex.busy is False and ex.error == ""
    f, r = ex.features()
    assert f.shape == (2, 24, 16, 16, 4) and r.shape == (2, 24, 16, 16)
    # the browser receives what the engine computed (up to int8 quantisation)
    back = ex.attributions.decode()
    assert np.abs(back[..., :4] - f).max() <= np.abs(f).max() / 100
    kinds = {b["kind"] for b in ex.bookmarks}
    assert {"high", "low"} <= kinds


def test_explorer_state_settable_and_observable(explorer):
    ex = explorer
    seen = []
    ex.observe(lambda ch: seen.append(ch["new"]), "frame")
    ex.frame = 10
    ex.trajectory = 1
    assert seen == [10] and ex.frame == 10
    ex.trajectory = 0


def test_explorer_rank_output_grid_edit(explorer):
    ex = explorer
    ex.rank = 3
    assert ex.n_features == 3 and ex.attributions.shape[-1] == 4 and len(ex.feature_labels) == 3
    # the status ends with the analysis summary (not a follow-up "edits cleared")
    assert ex.status.startswith("3 features at 2b · value") and "residual share" in ex.status
    assert "edits cleared" not in ex.status
    for bad in (99, 0, -5):  # refused, never clamped: the error names the valid range
        with pytest.raises(traitlets.TraitError, match=r"rank must be in \[1, 16\].*got"):
            ex.rank = bad
        assert ex.rank == 3
    with pytest.raises(traitlets.TraitError):
        ex.rank = 2.7
    ex.output = "logit:RIGHT"
    assert ex.output == "logit:7" and "RIGHT" in ex.output_label
    assert ex.status.startswith("3 features at 2b · logit → RIGHT") and "edits" not in ex.status
    with pytest.raises(traitlets.TraitError, match="valid outputs"):
        ex.output = "bogus"
    with pytest.raises(traitlets.TraitError, match="valid layers"):
        ex.layer = "9z"
    assert ex.output == "logit:7" and ex.layer == "2b"
    ex.output = "value"
    ex.grid_feature = 1
    rows, cols, cell = ex.grid.rows, ex.grid.cols, ex.grid.cell
    assert rows == cols == ex.grid_density and cell > 0 and ex.grid.K == 1
    src = ex.grid.sources.reshape(-1, 2)
    assert ((src[:, 0] >= -1) & (src[:, 0] < 2)).all() and (src[:, 1] < 24).all()
    ex.grid_feature = -1
    # switching a feature off changes the shown trajectory's value (the value graph)
    ex.frame = 5
    ex.edit_off = [True, False, False]
    assert ex.edited_trajectory == 0
    edited = ex.edited_values
    original = ex.values[0]
    assert edited.shape == (24,) and not np.allclose(edited, original)
    assert ex.edited_logits.shape == (24, 15)
    assert ex.edited_attributions.shape == (1, 24, 16, 16, 4)
    assert ex.edited_attributions.ready is None
    ex.edit_off = [False, False, False]
    assert ex.edited_trajectory == -1 and ex.edited_values is None
    assert ex.edited_attributions is None
    assert ex.status == "edits cleared"
    # new features (rank change) reset active edits; the status keeps the analysis summary
    ex.edit_off = [True, False, False]
    ex.rank = 4
    assert ex.edit_off == [False] * 4 and ex.edited_trajectory == -1
    assert ex.status.startswith("4 features at 2b") and "edits" not in ex.status


def test_explorer_payload_is_binary_and_small(explorer):
    sizes = explorer.payload_bytes()
    assert sizes["observations"] > 0 and sizes["attributions"] > 0
    # every buffer of the state is counted, nothing else
    _, _, buffers = _remove_buffers(explorer.get_state())
    assert sizes["total"] == sum(len(bytes(b)) for b in buffers)
    per_frame = sizes["total"] / (2 * 24)
    assert per_frame < 7000  # 8 x 512 frames at this rate stay far below 30 MB


def test_payload_8x512_within_30mb():
    """Observations of 8 x 512 real CoinRun steps plus dense (worst-case, incompressible)
    attribution maps for K = 8 at 16 x 16 stay under 30 MB."""
    from rlvision_widgets.rollouts import collect_trajectories

    traj = collect_trajectories("random", num_envs=8, num_steps=512, seed=0, progress=False)
    frames = arr.Frames.encode(traj.obs)
    feats = np.random.default_rng(0).normal(size=(8, 512, 16, 16, 8)).astype(np.float32)
    maps = arr.encode_attribution(feats, feats[..., 0])
    series = 8 * 512 * (4 * 4 + 2 + 15 * 4)
    total = len(frames.data) + len(maps.data) + maps.scales.nbytes + series
    assert total < 30e6, f"payload {total / 1e6:.1f} MB"


def test_save_html_is_self_contained(explorer, tmp_path):
    if not (STATIC / "standalone.js").is_file():
        pytest.skip("JS bundles not built (npm ci && npm run build)")
    path = explorer.save_html(tmp_path / "ex.html")
    html = path.read_text()
    assert "rlvisionWidgets" in html and '"observations":{"format":"png"' in html
    assert not re.search(r"<script[^>]+src=", html), "no external scripts"
    assert not re.search(r"<link[^>]+href=", html), "no external stylesheets"
    assert "cdn." not in html and "unpkg" not in html


def test_explorer_answers_full_frame_and_rerun(explorer):
    sent = []
    explorer.send = lambda content, buffers=None: sent.append((content, buffers))
    try:
        explorer._on_msg(explorer, {"type": "full_frame", "trajectory": 1, "frame": 3}, [])
    finally:
        del explorer.send
    ((content, buffers),) = sent
    assert content == {"type": "full_frame", "trajectory": 1, "frame": 3}
    assert enc.decode_png(buffers[0]).shape == (512, 512, 3)
    explorer.trajectory, explorer.frame = 1, 10
    n = explorer.n_features
    explorer.edit_off = [False, True] + [False] * (n - 2)
    explorer._on_msg(explorer, {"type": "rerun"}, [])
    info = explorer.rerun_info
    assert info["trajectory"] == 1 and info["steps"] == 24 - info["start"]
    assert explorer.rerun_values.shape == (info["steps"],)
    assert explorer.rerun_actions.shape == (info["steps"],)
    assert explorer.rerun_frames.decode().shape == (1, info["steps"], 64, 64, 3)
    assert info["outcome"] and "level" in info["message"]
    explorer.edit_off = [False] * n
    explorer.trajectory, explorer.frame = 0, 0


# ------------------------------------------------------- optimized image (issue 15, R3)
@pytest.fixture()
def one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine: ~100x slower steps
    yield
    torch.set_num_threads(old)


def test_explorer_optimizes_a_feature_on_request(explorer, monkeypatch, one_thread):
    """The grid's "optimize": the image's objective, recomputed independently (LayerAccess
    activations projected on the NMF direction, mean over positions), is the reported value and
    beats every real frame; progress is reported; a second request is a cache hit."""
    from rlvision_widgets.analysis import optvis
    from rlvision_widgets.analysis.layers import LayerAccess
    from rlvision_widgets.widgets.explorer import OPTVIS_STEPS

    ex = explorer
    calls = []
    real_optimize = optvis.optimize
    monkeypatch.setattr(
        optvis, "optimize", lambda *a, **kw: calls.append(kw["steps"]) or real_optimize(*a, **kw)
    )
    assert ex.optvis_enabled and ex.optvis_image is None
    statuses: list[tuple[float, str]] = []
    ex.observe(lambda ch: statuses.append((ex.progress, ch["new"])), "status")
    k = 1
    ex.optimize_feature(k)  # synchronous worker: done on return
    ex.unobserve_all("status")
    info = ex.optvis_info
    assert calls == [OPTVIS_STEPS] and info["state"] == "ready" and not info["cached"]
    assert (info["feature"], info["layer"], info["rank"]) == (k, ex.layer, ex.n_features)
    steps_seen = [p for p, m in statuses if re.search(r"step \d+/128", m)]
    assert steps_seen and all(0 < p < 1 for p in steps_seen)  # the progress bar moved
    image = ex.optvis_image.decode()[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 0
    # ground truth, independently: activations of the image and of every real frame
    access = LayerAccess(ex.agent)
    v = ex.directions[k]
    proj = access.activations(image[None], ex.layer).numpy()[0] @ v  # (H, W)
    obs = ex._arrays["obs"].reshape(-1, 64, 64, 3)
    real = access.activations(obs, ex.layer).numpy() @ v  # (N, H, W)
    assert info["value"] == pytest.approx(float(proj.mean()), rel=1e-4, abs=1e-6)
    assert info["best_real"] == pytest.approx(float(real.mean(axis=(1, 2)).max()), rel=1e-4)
    assert info["cell_value"] == pytest.approx(float(proj.max()), rel=1e-4)
    assert info["best_cell"] == pytest.approx(float(real.max()), rel=1e-4)
    assert info["value"] > info["best_real"] > 0
    assert info["ratio"] == pytest.approx(info["value"] / info["best_real"])
    e, t = info["best_frame"]
    assert real.mean(axis=(1, 2))[e * ex.n_steps + t] == pytest.approx(info["best_real"])
    assert info["n_frames"] == len(obs) and "not a real frame" in info["caption"]
    # another feature runs; asking again (from the browser) for the first is a cache hit
    ex.optimize_feature(2, steps=8)
    assert calls == [OPTVIS_STEPS, 8] and ex.optvis_info["feature"] == 2
    ex._on_msg(ex, {"type": "optvis", "feature": k}, [])
    assert calls == [OPTVIS_STEPS, 8] and ex.optvis_info["cached"] is True
    assert np.array_equal(ex.optvis_image.decode()[0], image)
    assert ex.optvis_info["value"] == info["value"] and "cached" in ex.status
    # bad requests name the problem
    for bad in ("x", -1, ex.n_features, True):
        ex._on_msg(ex, {"type": "optvis", "feature": bad}, [])
        assert ex.status.startswith("optvis refused") and calls == [OPTVIS_STEPS, 8]
    with pytest.raises(ValueError, match=r"feature must be an integer in \[0, "):
        ex.optimize_feature(99)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        ex.optimize_feature(0, steps=0)


def test_superseded_optimization_publishes_nothing_and_leaves_the_agent(explorer, one_thread):
    from rlvision_widgets.widgets.explorer import _Superseded

    ex = explorer
    before = (ex.optvis_image, dict(ex.optvis_info))
    hooks = {n: len(m._forward_hooks) for n, m in ex.agent.named_modules()}
    n = [0]

    def report(frac: float, msg: str = "") -> None:  # a newer request arrives at step 8
        n[0] += 1
        if "step 8/" in msg:
            raise _Superseded

    with pytest.raises(_Superseded):
        ex._job_optvis(report, 0, 64)
    assert n[0] >= 3 and (ex.optvis_image, ex.optvis_info) == before
    assert not any(key[2] == 0 and key[3] == 64 for key in ex._data.optvis)  # nothing cached
    assert {n: len(m._forward_hooks) for n, m in ex.agent.named_modules()} == hooks


# ------------------------------------------------------------------------ agent, threads
def test_explorer_unknown_agent_is_an_error_not_a_random_network():
    with pytest.raises(ValueError, match=r"unknown agent 'no-such-agent'.*'coinrun'"):
        Explorer("no-such-agent", background=False)


def test_explorer_broken_checkpoint_is_an_error(tmp_path):
    from rlvision_widgets.agents.checkpoint import CheckpointError

    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        Explorer(tmp_path, background=False)


def test_explorer_broken_shipped_agent_is_an_error(tmp_path, monkeypatch):
    """No random-weight stand-in when the shipped agent cannot be loaded."""
    from rlvision_widgets.agents import registry
    from rlvision_widgets.agents.checkpoint import CheckpointError

    broken = tmp_path / "coinrun"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"\0" * 16)
    monkeypatch.setattr(registry, "reference_agents", lambda: {"coinrun": broken})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Explorer(None, background=False)


def test_explorer_shows_the_shipped_agent_by_default():
    from rlvision_widgets.agents.registry import load_agent

    traj = {
        "obs": _obs(1, 4),
        "rewards": np.zeros((1, 4), np.float32),
        "firsts": np.zeros((1, 4), bool),
    }
    ex = Explorer(None, traj, rank=2, background=False, suggest_labels=False, prefetch=False)
    try:
        ref = load_agent("coinrun")
        for a, b in zip(ex.agent.state_dict().values(), ref.state_dict().values()):
            assert np.array_equal(a.numpy(), b.numpy())
        assert "coinrun agent" in ex.title and not ex.error
    finally:
        ex.close()


def test_explorer_leaves_torch_threads_to_the_caller(explorer):
    import os

    import torch

    old = torch.get_num_threads()
    want = (os.cpu_count() or 1) + 1  # more than any core count the library would pick
    seen: list[int] = []
    torch.set_num_threads(want)
    try:
        explorer._worker.submit("prefetch", lambda report: seen.append(torch.get_num_threads()))
        assert seen == [want] and torch.get_num_threads() == want
    finally:
        torch.set_num_threads(old)


def test_explorer_edit_is_the_one_editing_mechanism(explorer):
    """Issue 11, requirement 3: the explorer's edit is ``apply_edit`` (the weight edit by
    default, as ``rlvision evaluate --edit`` and the blindness study), on a copy: the caller's
    module keeps its weights and no hooks."""
    import torch

    from rlvision_widgets.agents.editing import Edit, apply_edit

    ex = explorer
    before = {k: v.clone() for k, v in ex._agent.state_dict().items()}
    ex.rank = 3
    directions = ex._current["directions"]
    ex.edit_off = [True, True, False]
    try:
        shown = ex.edited_values
        same = apply_edit(ex._agent, Edit("2b", directions[[0, 1]]))
        assert [e.mode for e in same.edits] == ["weight"]
        with torch.no_grad():
            _, values = same(torch.from_numpy(ex._arrays["obs"][ex.edited_trajectory]))
        np.testing.assert_allclose(shown, values.numpy(), atol=1e-4)
        assert "weight edit" in ex.status
    finally:
        ex.edit_off = [False, False, False]
    for name, value in ex._agent.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in ex._agent.modules())


# ------------------------------------------------------- browser -> kernel (issue 14, item 7)
def _browser(widget, monkeypatch):
    """Deliver comm messages as the front end does (``_handle_msg``) and record what the
    kernel sends back."""
    sent: list[dict] = []
    monkeypatch.setattr(
        widget.comm, "send", lambda data=None, metadata=None, buffers=None: sent.append(data)
    )

    def deliver(state: dict) -> list[dict]:
        sent.clear()
        widget._handle_msg(
            {
                "content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                "buffers": [],
            }
        )
        return list(sent)

    return deliver


def _updates(msgs: list[dict]) -> dict:
    out: dict = {}
    for m in msgs:
        if m["method"] == "update":
            out.update(m["state"])
    return out


def test_browser_invalid_values_are_corrected_back(explorer, monkeypatch):
    ex = explorer
    deliver = _browser(ex, monkeypatch)
    ex.trajectory, ex.frame = 0, 4
    layer, rank = ex.layer, ex.rank
    # a mixed message: the valid field is applied, the invalid one keeps its value and the
    # kernel re-sends it so the browser's state matches
    msgs = deliver({"frame": -1, "trajectory": 1})
    assert ex.trajectory == 1 and ex.frame == 4
    assert _updates(msgs) == {"frame": 4}
    assert any(m["method"] == "echo_update" and m["state"] == {"trajectory": 1} for m in msgs)
    for bad in ({"layer": "nope"}, {"rank": 99}, {"rank": 0}, {"frame": "x"}, {"gain": 0}):
        msgs = deliver(bad)
        (name,) = bad
        assert _updates(msgs) == {name: getattr(ex, name)}, bad
    assert (ex.layer, ex.rank, ex.frame, ex.gain) == (layer, rank, 4, 1.0)
    # a valid value the kernel canonicalises is sent back canonical; a plain valid one is not
    # re-sent (only echoed)
    assert _updates(deliver({"output": "logit:RIGHT"}))["output"] == "logit:7"
    assert ex.output == "logit:7"
    assert "output" not in _updates(deliver({"output": "value"}))
    assert ex.output == "value" and ex.status.startswith(f"{rank} features at {layer} · value")
    assert _updates(deliver({"frame": 5})) == {} and ex.frame == 5
    ex.trajectory, ex.frame = 0, 0


def test_component_widget_corrects_invalid_browser_values(monkeypatch):
    v = TrajectoryViewer(_obs(1, 4), values=np.zeros(4))
    deliver = _browser(v, monkeypatch)
    msgs = deliver({"gain": -3, "blur": 1.0, "frame": 9})
    assert v.blur == 1.0 and v.gain == 1.0 and v.frame == 0
    assert _updates(msgs) == {"gain": 1.0, "frame": 0}


def test_malformed_custom_messages_are_refused(explorer, monkeypatch):
    sent = []
    monkeypatch.setattr(explorer, "send", lambda content, buffers=None: sent.append(content))
    for msg in (
        {"type": "full_frame", "trajectory": "x", "frame": 0},
        {"type": "full_frame", "trajectory": 0, "frame": -1},
        {"type": "full_frame", "trajectory": 7, "frame": 0},
    ):
        explorer._on_msg(explorer, msg, [])
        assert explorer.status.startswith("full_frame refused")
    explorer._on_msg(explorer, {"type": "nonsense"}, [])
    explorer._on_msg(explorer, ["not", "a", "dict"], [])
    assert sent == []


@pytest.mark.parametrize("cls", [Controls, TrajectoryViewer, AttributionLegend, FeatureGrid])
def test_unknown_keyword_arguments_raise_type_error(cls):
    """Issue 11, requirement 5: a misspelt setting is an error, not silently ignored."""
    with pytest.raises(TypeError, match=r"'framee' \(did you mean 'frame'\?\)"):
        cls(framee=3)
    assert cls(frame=3).frame == 3


def test_explorer_unknown_keyword_argument_raises_type_error():
    from rlvision_widgets.agents import build_network

    with pytest.raises(TypeError, match="rnak"):
        Explorer(build_network("compact"), None, rnak=4, background=False)


def test_explorer_shows_what_the_headless_analysis_computes():
    """Issue 11, requirement 2 (its test): for the same agent, trajectories and settings,
    ``rv.analyze`` gives the directions and features the explorer shows."""
    import torch

    import rlvision_widgets as rv
    from rlvision_widgets.agents import build_network
    from rlvision_widgets.rollouts import collect_trajectories

    torch.manual_seed(0)
    agent = build_network("compact").eval()
    traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=0, progress=False)
    ex = Explorer(agent, traj, rank=4, background=False, suggest_labels=False, prefetch=False)
    try:
        headless = rv.analyze(agent, traj, rank=4, seed=0, suggest_labels=False)
        shown = ex.analysis
        assert isinstance(shown, rv.Analysis)
        np.testing.assert_allclose(shown.directions, headless.directions, atol=1e-6)
        np.testing.assert_allclose(ex.directions, headless.directions, atol=1e-6)
        features, residual = ex.features()
        np.testing.assert_allclose(features, headless.features, atol=1e-6)
        np.testing.assert_allclose(residual, headless.residual, atol=1e-6)
        for name in ("attributions", "activations", "values", "logits", "outputs", "advantages"):
            np.testing.assert_allclose(getattr(shown, name), getattr(headless, name), atol=1e-5)
        # the legend shows the analysis' dataset examples, the controls its bookmarks
        np.testing.assert_array_equal(shown.example_thumbnails, headless.example_thumbnails)
        np.testing.assert_array_equal(shown.example_frames, headless.example_frames)
        import io

        from PIL import Image

        strip = np.asarray(Image.open(io.BytesIO(ex.thumbnails.data)))
        K, S = shown.example_thumbnails.shape[:2]
        np.testing.assert_array_equal(
            strip, shown.example_thumbnails.transpose(1, 0, 2, 3).reshape(S, K * S, 4)
        )
        assert [(b["env"], b["step"], b["kind"]) for b in shown.bookmarks] == [
            (b["env"], b["step"], b["kind"]) for b in headless.bookmarks
        ]
        assert [(b["trajectory"], b["frame"]) for b in ex.bookmarks] == [
            (b["env"], b["step"]) for b in headless.bookmarks
        ]
        same = ("layer", "output", "rank", "seed", "ig_steps", "nmf", "agent_hash")
        assert {k: shown.settings[k] for k in same} == {k: headless.settings[k] for k in same}
    finally:
        ex.close()


def test_export_reports_progress(tmp_path):
    """``export_explorer(progress=...)`` (what ``rlvision export`` shows) hears every job."""
    from rlvision_widgets.agents import build_network
    from rlvision_widgets.widgets.explorer import export_explorer

    seen = []
    out = export_explorer(
        tmp_path / "x.html",
        build_network("compact"),
        num_envs=1,
        num_steps=8,
        rank=2,
        suggest_labels=False,
        progress=lambda f, m: seen.append((f, m)),
    )
    assert out.is_file()
    assert seen and all(0.0 <= f <= 1.0 for f, _ in seen)
    assert any(m.startswith("analysis:") for _, m in seen) and seen[-1][0] == 1.0
    with pytest.raises(TypeError, match="on_progress"):
        Explorer(build_network("compact"), num_envs=1, num_steps=4, on_progress=3)


# --------------------------------------------------------------- feature gallery (issue 12)
def _planted(E=2, T=24, H=16, K=2, seed=0):
    """Activations (E, T, H, H, K) = feature maps on the unit directions, with planted peaks."""
    rng = np.random.default_rng(seed)
    acts = rng.random((E, T, H, H, K)).astype(np.float32) * 0.1
    peaks = {0: [(1, 5, 3, 4, 9.0), (0, 2, 8, 8, 8.0)], 1: [(0, 7, 12, 2, 7.0)]}
    for k, items in peaks.items():
        for e, t, y, x, v in items:
            acts[e, t, y, x, k] = v
    return acts, peaks


def test_examples_from_an_analysis_strongest_first_with_their_crop():
    from rlvision_widgets.analysis.featureviz import ReceptiveField
    from rlvision_widgets.analysis.pipeline import _THUMB, _dataset_examples
    from rlvision_widgets.widgets import _engine as eng

    E, T = 2, 24
    acts, peaks = _planted(E, T)
    field = {"size": 20, "stride": 4.0, "center0": 2.0}
    _, frames, strengths = _dataset_examples(
        np.eye(2, dtype=np.float32), acts, _obs(E, T), 120, dict(_THUMB, patch=20), field
    )
    rf = ReceptiveField(20, 4, 2.0)
    ex = eng.examples_from_frames(frames, strengths, rf=rf)
    assert len(ex) == 2
    for k, items in peaks.items():
        top = sorted(items, key=lambda p: -p[-1])
        for (e, t, y, x, v), got in zip(top, ex[k]):  # the planted peaks lead, strongest first
            assert (got["trajectory"], got["frame"], got["y"], got["x"]) == (e, t, y, x)
            assert got["value"] == pytest.approx(v)
            assert got["box"] == [2 + 4 * y - 10, 2 + 4 * x - 10, 20]  # centred on the field
        values = [i["value"] for i in ex[k]]
        assert values == sorted(values, reverse=True) and len(ex[k]) == (frames[k, :, 0] >= 0).sum()
    legend = AttributionLegend(n_features=2)
    legend.set_examples(ex)
    assert legend.feature_examples[0][0]["frame"] == 5
    with pytest.raises(ValueError, match="trajectory, frame and box"):
        legend.set_examples([[{"frame": 1}]])
    with pytest.raises(ValueError, match=r"frames must be \(K, n, 4\)"):
        eng.examples_from_frames(frames[..., :2], strengths)


def test_feature_mosaics_cells_are_receptive_field_crops_of_their_source():
    from rlvision_widgets.agents.networks import compact_config
    from rlvision_widgets.analysis.featureviz import checkerboard, receptive_field
    from rlvision_widgets.widgets import _engine as eng

    E, T = 2, 24
    acts, peaks = _planted(E, T)
    obs = _obs(E, T, seed=4)
    rf = receptive_field(compact_config(), "2b")
    images, src = eng.feature_mosaics(np.eye(2, dtype=np.float32), acts, obs, density=8, rf=rf)
    assert images.shape == (2, 8 * 20, 8 * 20, 4)
    assert src.shape == (2, 8, 8, 2) and (src[..., 1] >= 0).all()
    for k in range(2):
        for r, c in [(0, 0), (3, 5), (7, 7)]:
            e, t = src[k, r, c]
            cy = rf.center0 + ((r + 0.5) * 2 - 0.5) * rf.stride  # cell centre, 64-px pixels
            cx = rf.center0 + ((c + 0.5) * 2 - 0.5) * rf.stride
            y0, x0 = int(round(cy - 10)), int(round(cx - 10))
            want = checkerboard(20, 20, y0 + 10, x0 + 10)
            ya, yb, xa, xb = max(0, y0), min(64, y0 + 20), max(0, x0), min(64, x0 + 20)
            want[ya - y0 : yb - y0, xa - x0 : xb - x0] = obs[e, t, ya:yb, xa:xb]
            tile = images[k, r * 20 : (r + 1) * 20, c * 20 : (c + 1) * 20, :3]
            assert np.array_equal(tile, want)
    # the planted strongest example (trajectory 1, step 5 at layer (3, 4)) fills its cell (1, 2)
    assert tuple(src[0, 1, 2]) == (1, 5)
    # one feature alone (the grid's on-demand density) is the same mosaic
    one, one_src = eng.mosaic(
        np.eye(2, dtype=np.float32)[0],
        acts.reshape(E * T, 16, 16, 2),
        obs.reshape(-1, 64, 64, 3),
        8,
        rf,
    )
    assert np.array_equal(one, images[0]) and np.array_equal(
        one_src, src[0, ..., 0] * T + src[0, ..., 1]
    )
    # the widget carries them all (a static export has every feature's mosaic)
    grid = FeatureGrid()
    grid.set_mosaics(images, src, 8)
    m = grid.mosaics
    assert (m.K, m.rows, m.cols, m.cell, m.density) == (2, 8, 8, 20, 8)
    assert np.array_equal(enc.decode_png(m.tiles.data)[:, 160:], images[1])
    assert np.array_equal(m.tiles.decode(), images) and np.array_equal(m.sources, src)
    with pytest.raises(ValueError, match="mosaic sources must be"):
        grid.set_mosaics(images, src[:1], 8)


def test_label_suggestions_strings_or_evidence():
    legend = AttributionLegend(n_features=3)
    legend.set_label_suggestions(
        ["coin (20/32 on)", {"label": "saw", "confirmed": False}, {"label": "saw", "share": 0.5}]
    )
    assert legend.suggested_labels == ["coin (20/32 on)", "saw", "saw"]
    assert legend.label_evidence[1] == {"label": "saw", "confirmed": False, "duplicate": True}
    assert legend.label_evidence[0] == {"label": "coin (20/32 on)", "duplicate": False}
    with pytest.raises(TypeError, match="strings or dicts"):
        legend.set_label_suggestions([3])


def test_save_html_reports_its_stages(tmp_path):
    from rlvision_widgets.widgets.export import save_html

    if not (STATIC / "standalone.js").is_file():
        pytest.skip("JS bundles not built")
    seen: list[tuple[float, str]] = []
    save_html(Controls(), tmp_path / "c.html", progress=lambda f, m: seen.append((f, m)))
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[0] == 0.0 and fr[-1] == 1.0 and "wrote" in seen[-1][1]


def test_explorer_and_analyze_default_to_the_same_layer_on_any_model():
    """One default layer (``analysis.features.object_layer``) for the explorer, ``analyze`` and
    the CLI; on a model without a config it is the middle non-activation layer."""
    import torch
    from torch import nn

    import rlvision_widgets as rv
    from rlvision_widgets.analysis.features import object_layer

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1 = nn.Conv2d(3, 8, 3, stride=2), nn.ReLU()
            self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, stride=2), nn.ReLU()
            self.conv3, self.relu3 = nn.Conv2d(8, 8, 3, stride=2), nn.ReLU()
            self.head = nn.Linear(8, 16)

        def forward(self, obs):
            x = obs.permute(0, 3, 1, 2).float() / 255
            x = self.relu3(self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))))
            out = self.head(x.mean((2, 3)))
            return out[:, :15], out[:, 15]

    torch.manual_seed(0)
    net = Net().eval()
    obs = np.random.default_rng(0).integers(0, 255, (1, 4, 64, 64, 3), dtype=np.uint8)
    layer = object_layer(net)
    assert "relu" not in layer
    ex = Explorer(net, {"obs": obs}, rank=2, background=False, suggest_labels=False)
    try:
        assert ex.layer == layer == rv.analyze(net, obs, rank=2).settings["layer"]
    finally:
        ex.close()
