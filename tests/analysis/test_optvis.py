"""Optimization-based feature visualization (issue 15, requirements 1, 2 and 4).

Ground truth used here: the agent's own uint8 path (LayerAccess) for activations, exact
inverse transforms for the parameterizations, analytic gradients for the objectives, and a
512-frame corpus the shipped agent saw for the requirement that an optimized image reaches at
least the best real frame's objective value; for the quantification (requirement 4), a
brute-force nearest-neighbour search and planted object maps.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import numpy as np
import pytest
import torch

import rlvision_widgets as rv
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis import features as rlvision_widgets_features
from rlvision_widgets.analysis import optvis
from rlvision_widgets.analysis.layers import LayerAccess
from rlvision_widgets.analysis.optvis import (
    Caricature,
    Channel,
    Direction,
    FourierImage,
    ImageNetwork,
    Jitter,
    MacoImage,
    Neuron,
    PixelImage,
    RandomRotate,
    RandomScale,
    Transforms,
    coinrun_statistics,
    compare_with_dataset,
    estimate_statistics,
    frames_to_tensor,
    images_to_frames,
    nmf_objectives,
    objective_values,
    optimize,
    quantify,
)
from rlvision_widgets.analysis.optvis.statistics import to_logits
from rlvision_widgets.rollouts.corpus import collect_corpus


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tests share a 2-core machine (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def agent():
    return load_agent("coinrun")


@pytest.fixture(scope="module")
def corpus(agent) -> np.ndarray:
    """512 frames the shipped agent saw (a different seed from the shipped statistics')."""
    return collect_corpus(agent, num_obs=512, interval=4, num_envs=64, seed=7).obs


# ------------------------------------------------------------------ statistics / parameterization
def test_estimated_colour_matrix_recovers_a_known_covariance():
    rng = np.random.default_rng(0)
    a = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, 0.4, 0.5]])
    z = rng.normal(size=(64, 32, 32, 3)) @ a.T * 0.8 + np.array([0.2, -0.1, 0.0])
    frames = np.round(255 / (1 + np.exp(-z))).astype(np.uint8)
    stats = estimate_statistics(frames)
    cov = stats.colour @ stats.colour.T
    np.testing.assert_allclose(cov, 0.64 * a @ a.T, atol=0.03)
    np.testing.assert_allclose(stats.mean, [0.2, -0.1, 0.0], atol=0.02)


def test_shipped_statistics_whiten_held_out_coinrun_frames(corpus):
    """Colour: decorrelated logits have identity covariance; spectrum: coefficients of held-out
    frames have flat power across frequencies, where the raw power spans orders of magnitude."""
    stats = coinrun_statistics()
    assert stats.meta["agent"] == "coinrun" and stats.meta["frames"] == 4096
    img = FourierImage.from_frames(corpus[:256])
    dec = img.decorrelated().detach().double()
    cov = torch.cov(dec.permute(1, 0, 2, 3).reshape(3, -1)).numpy()
    evals = np.linalg.eigvalsh(cov)
    raw = np.linalg.eigvalsh(np.cov(to_logits(corpus[:256]).reshape(-1, 3), rowvar=False))
    assert raw.max() / raw.min() > 30, raw  # raw CoinRun colours: strongly correlated
    assert evals.min() > 0.5 and evals.max() < 1.6, evals  # whitened: near identity
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.25, cov
    power = torch.view_as_complex(img.coeffs.detach()).abs().pow(2).mean(dim=(0, 1)).numpy()
    raw_power = stats.spectrum**2
    fy = np.abs(np.fft.fftfreq(64))[:, None]
    fx = np.fft.rfftfreq(64)[None, :]
    radius = np.hypot(fy, fx)
    bands = [(radius > lo) & (radius <= hi) for lo, hi in ((0, 0.05), (0.05, 0.15), (0.15, 0.5))]
    white = [power[b].mean() for b in bands]
    assert all(0.4 < w < 2.5 for w in white), white
    assert raw_power[bands[0]].mean() / raw_power[bands[2]].mean() > 30


@pytest.mark.parametrize("cls", [FourierImage, PixelImage])
def test_parameterization_round_trip(cls, corpus):
    frames = corpus[:4]
    back = images_to_frames(cls.from_frames(frames)())
    assert np.abs(back.astype(int) - frames).max() <= 1


def test_maco_keeps_the_coinrun_magnitude_while_optimizing():
    img = MacoImage(2, seed=0)
    opt = torch.optim.Adam(img.parameters(), lr=0.1)
    for _ in range(3):
        loss = -img()[:, 0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    amp = torch.fft.rfft2(img.decorrelated(), norm="ortho").abs()[..., 1:-1]
    torch.testing.assert_close(amp, img.spectrum[..., 1:-1].expand_as(amp), rtol=1e-3, atol=1e-4)
    assert img().min() > 0 and img().max() < 1


def test_random_starts_are_seeded():
    a, b, c = FourierImage(2, seed=3)(), FourierImage(2, seed=3)(), FourierImage(2, seed=4)()
    assert torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------------------- transforms
def test_transforms_shapes_and_seeding():
    x = torch.rand(5, 3, 64, 64)
    t = Transforms([Jitter(8), RandomScale((0.9, 1.1)), RandomRotate(10)])
    y1 = t(x, torch.Generator().manual_seed(1))
    y2 = t(x, torch.Generator().manual_seed(1))
    y3 = t(x, torch.Generator().manual_seed(2))
    assert y1.shape == x.shape
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)


@pytest.mark.parametrize("pixels", [2, 8])
def test_jitter_is_an_exact_integer_shift(pixels):
    x = torch.rand(16, 3, 64, 64)
    gen = torch.Generator().manual_seed(0)
    m = Jitter(pixels).matrices(16, 64, torch.Generator().manual_seed(0))
    y = Transforms([Jitter(pixels)])(x, gen)
    shifts = m[:, :2, 2].round().long()
    assert shifts.abs().max() <= pixels and shifts.abs().max() > 0
    p = pixels
    for k in range(16):
        dx, dy = (int(v) for v in shifts[k])
        want = torch.roll(x[k], shifts=(dy, dx), dims=(1, 2))[:, p:-p, p:-p]
        torch.testing.assert_close(y[k][:, p:-p, p:-p], want, atol=1e-5, rtol=0)


def test_transform_errors():
    with pytest.raises(ValueError, match="whole number"):
        Jitter(1.5)
    with pytest.raises(ValueError, match="low <= high"):
        RandomScale((1.2, 0.8))
    with pytest.raises(TypeError, match="Transform objects"):
        Transforms([lambda x: x])


# ------------------------------------------------------------------------------- objectives
def test_objective_gradients_are_analytic():
    acts = torch.rand(1, 4, 3, 5, requires_grad=True)
    v = torch.tensor([0.5, -1.0, 2.0, 0.0])
    ref = torch.rand(1, 4, 3, 5)
    cases = [
        (Channel("2b", 2), torch.zeros(1, 4, 3, 5).index_fill_(1, torch.tensor([2]), 1 / 15)),
        (
            Neuron("2b", 1, 2, 4),
            torch.zeros(1, 4, 3, 5).index_put_(
                (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([4])),
                torch.tensor(1.0),
            ),
        ),
        (
            Neuron("2b", 3),
            torch.zeros(1, 4, 3, 5).index_put_(
                (torch.tensor([0]), torch.tensor([3]), torch.tensor([1]), torch.tensor([2])),
                torch.tensor(1.0),
            ),
        ),
        (Direction("2b", v), v.view(1, 4, 1, 1).expand(1, 4, 3, 5) / 15),
        (Caricature("2b", np.zeros((64, 64, 3), np.uint8)).bind(ref), ref / 15),
    ]
    for obj, want in cases:
        (g,) = torch.autograd.grad(obj(acts).sum(), acts)
        torch.testing.assert_close(g, want, msg=repr(obj))


def test_objective_errors_name_the_problem(agent):
    with pytest.raises(ValueError, match="valid layers"):
        optimize(agent, [Channel("9z", 0)], steps=1, progress=False)
    with pytest.raises(ValueError, match="32 channels"):
        optimize(agent, [Channel("2b", 40)], steps=1, progress=False)
    with pytest.raises(ValueError, match="length 3"):
        optimize(agent, [Direction("2b", [1, 0, 0])], steps=1, progress=False)
    with pytest.raises(ValueError, match="layer:channel"):
        optimize(agent, ["channel five"], steps=1, progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        optimize(agent, ["2b:0"], steps=1, method="deepdream", progress=False)
    with pytest.raises(ValueError, match="input size"):
        optimize(agent, ["2b:0"], steps=1, size=128, progress=False)
    with pytest.raises(ValueError, match="at least one objective"):
        optimize(agent, [], steps=1, progress=False)


# ------------------------------------------------------------------------------ the network
def test_image_network_matches_the_agents_own_path(agent, corpus):
    net = ImageNetwork(agent)
    frames = corpus[:8]
    acts = net.run(frames_to_tensor(frames), ["1a", "2b"])
    access = LayerAccess(agent)
    for layer in ("1a", "2b"):
        torch.testing.assert_close(acts[layer], access.activations_nchw(frames, layer))
    redirected = net.run(frames_to_tensor(frames), ["2b"], redirect_relu=True)["2b"]
    assert torch.equal(redirected, acts["2b"])


def test_redirected_relu_reaches_a_unit_dead_on_the_start_image(agent):
    net = ImageNetwork(agent)
    x = FourierImage(8, seed=0)().detach().requires_grad_(True)
    c = int(net.run(x, ["2b"])["2b"].amax(dim=(0, 2, 3)).argmin())  # the deadest channel
    for redirect, nonzero in ((False, False), (True, True)):
        acts = net.run(x, ["2b"], redirect_relu=redirect)["2b"]
        if acts[:, c].abs().sum() > 0:
            pytest.skip("no dead channel on this start image")
        (g,) = torch.autograd.grad(-acts[:, c].mean(), x)  # a loss, as optimize() minimizes
        assert bool(g.abs().sum() > 0) is nonzero


# ------------------------------------------------------------------------ the optimization
def test_optimize_is_seeded_and_reports_progress(agent, capsys):
    a = optimize(agent, ["2b:3", "2b:4@8,8"], steps=6, seed=5, progress=True)
    b = optimize(agent, ["2b:3", "2b:4@8,8"], steps=6, seed=5, progress=False)
    c = optimize(agent, ["2b:3", "2b:4@8,8"], steps=6, seed=6, progress=False)
    assert "optvis" in capsys.readouterr().err
    assert np.array_equal(a.images, b.images) and np.array_equal(a.history, b.history)
    assert not np.array_equal(a.images, c.images)
    assert a.settings["seed"] == 5 and a.history.shape == (6, 2)


def test_values_are_the_objectives_on_the_images_as_observations(agent):
    objs = [Channel("2b", 1), Neuron("2b", 2)]
    r = optimize(agent, objs, steps=8, progress=False)
    np.testing.assert_allclose(r.values, np.diag(objective_values(agent, objs, r.images)))


def test_l2_penalty_lowers_first_layer_activations(agent):
    objs = [Channel("2b", c) for c in (0, 11)]
    plain = optimize(agent, objs, steps=32, progress=False)
    pen = optimize(agent, objs, steps=32, l2_penalty=0.5, progress=False)
    net = ImageNetwork(agent)

    def first_layer_energy(images: np.ndarray) -> float:
        with torch.no_grad():
            return float(net.run(frames_to_tensor(images), ["1a"])["1a"].pow(2).mean())

    assert first_layer_energy(pen.images) < first_layer_energy(plain.images)


def test_caricature_reaches_its_frames_own_value(agent, corpus):
    frame = corpus[100]
    car = Caricature("2b", frame)
    r = optimize(agent, [car], steps=64, lr=0.1, progress=False)
    own = objective_values(agent, [car], frame[None])[0, 0]
    assert r.values[0] >= own > 0


def test_optimized_images_beat_the_best_real_frame(agent, corpus):
    """Requirement 2: on the shipped agent at 2b, each optimized image, shown as an observation,
    reaches at least the best of 512 real frames (mean over the positions it covers)."""
    analysis = rv.analyze(agent, corpus[:128], rank=4)
    objs = [Channel("2b", c) for c in (0, 5, 11, 23)] + nmf_objectives(analysis.directions[:2])
    objs.append(Neuron("2b", 14))
    # 128 steps (the default is 256): at 64 the centre neuron of the 25M-step agent reached
    # 0.64 of its best real frame in this batch (3.0 alone), at 128 every ratio is >= 2
    r = optimize(agent, objs, steps=128, lr=0.1, seed=0, progress=False)
    c = r.compare(agent, corpus)
    assert (c.best_real > 0).all(), c.table()
    assert (c.ratio >= 1).all(), c.table()
    again = compare_with_dataset(agent, objs, r.images, corpus)
    np.testing.assert_allclose(again.optimized, c.optimized)


def test_feature_accentuation_starts_from_the_frame(agent, corpus):
    frame = corpus[3]
    r0 = optimize(agent, ["2b:5"], steps=1, lr=1e-6, init=frame, progress=False)
    assert np.abs(r0.images[0].astype(int) - frame).max() <= 1
    r = optimize(agent, ["2b:5"], steps=32, init=frame, progress=False)
    assert r.values[0] > objective_values(agent, [Channel("2b", 5)], frame[None])[0, 0]


# ------------------------------------------------------------------------------ docstrings
def test_public_api_has_docstrings_with_examples():
    for name in optvis.__all__:
        obj = getattr(optvis, name)
        if callable(obj):
            doc = inspect.getdoc(obj) or ""
            assert ">>>" in doc, f"optvis.{name} has no docstring example"


@pytest.mark.parametrize(
    "module", ["objectives", "transforms", "statistics", "param", "maco", "quantify"]
)
def test_module_doctests_pass(module):
    mod = importlib.import_module(f"rlvision_widgets.analysis.optvis.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_jitter_fast_path_agrees_with_the_affine_resampling():
    x = torch.rand(6, 3, 64, 64)
    fast = Transforms([Jitter(8)])(x, torch.Generator().manual_seed(3))
    affine = Transforms([Jitter(8), RandomRotate(0)])(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(fast[..., 8:-8, 8:-8], affine[..., 8:-8, 8:-8], atol=1e-5, rtol=0)


def test_linear_weights_give_the_objective_values():
    acts = torch.rand(3, 4, 5, 6)
    objs = [
        Channel("2b", 2),
        Neuron("2b", 1),
        Neuron("2b", 3, 4, 0),
        Direction("2b", [0.3, -1.0, 0.0, 2.0]),
        Direction("2b", [1.0, 0.0, 0.5, 0.0], y=1, x=5),
        Caricature("2b", np.zeros((64, 64, 3), np.uint8)).bind(torch.rand(1, 4, 5, 6)),
    ]
    for o in objs:
        w = o.weights((4, 5, 6))
        torch.testing.assert_close((acts * w).sum(dim=(1, 2, 3)), o(acts), msg=repr(o))


def test_any_module_of_any_convolutional_agent(agent):
    """A dotted module name (the pre-ReLU conv of 2b) on the shipped agent, and a plain torch
    agent without the ConvAgent fast paths: the float path matches LayerAccess's hooks."""

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 4, 4), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1)
            )
            self.head = torch.nn.Linear(8, 16)

        def forward(self, obs):
            x = obs.permute(0, 3, 1, 2).float() / 255
            h = self.body(x).mean(dim=(2, 3))
            out = self.head(h)
            return out[:, :15], out[:, 15]

    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    for model, layer in ((agent, "2b.0"), (Plain().eval(), "body.2")):
        net = ImageNetwork(model)
        got = net.run(frames_to_tensor(frames), [layer])[layer]
        torch.testing.assert_close(got, LayerAccess(model).activations_nchw(frames, layer))
        r = optimize(model, [Channel(layer, 1)], steps=8, progress=False)
        start_image = images_to_frames(FourierImage(1, seed=0)())  # optimize()'s start
        start = objective_values(model, [Channel(layer, 1)], start_image)[0, 0]
        assert r.values[0] > start


# ------------------------------------------------------------------ quantification (requirement 4)
def _brute_nearest(acts, query, k):
    """Per frame the cell of largest cosine to ``query`` (> 0), frames by it, best ``k``."""
    best = []
    qn = query / np.linalg.norm(query)
    for f in range(acts.shape[0]):
        cand = []
        for y in range(acts.shape[1]):
            for x in range(acts.shape[2]):
                v = acts[f, y, x].astype(np.float64)
                n = np.linalg.norm(v)
                cand.append((float(v @ qn / n) if n > 0 else 0.0, y, x))
        s, y, x = max(cand, key=lambda t: t[0])
        if s > 0:
            best.append((s, f, y, x))
    best.sort(key=lambda t: -t[0])
    return best[:k]


def test_nearest_real_patches_equal_a_brute_force_search(agent, corpus):
    frames = corpus[:24]
    rng = np.random.default_rng(3)
    v = rng.random(32)
    objs = [Channel("2b", 3), Neuron("2b", 5, 4, 11), Direction("2b", v, name="dir")]
    images = np.stack([corpus[100], rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), corpus[5]])
    p = quantify.nearest_real_patches(agent, objs, images, frames, k=5)
    acts = LayerAccess(agent).activations(frames, "2b").numpy().astype(np.float64)
    img_acts = LayerAccess(agent).activations(images, "2b").numpy().astype(np.float64)
    # the query cell: the image's strongest cell for the objective among the cells it covers
    per_pos = [img_acts[0, ..., 3], None, img_acts[2] @ v]
    for i in range(3):
        if per_pos[i] is None:
            yq, xq = 4, 11
        else:
            yq, xq = np.unravel_index(np.argmax(per_pos[i]), per_pos[i].shape)
        assert p.query[i, 0].tolist() == [yq, xq]
        q = img_acts[i, yq, xq]
        expect = _brute_nearest(acts, q, 5)
        sims = [e[0] for e in expect]
        np.testing.assert_allclose(p.similarity[i, : len(expect)], sims, 1e-6)
        # the same cells, but where cells tie (identical patches in several frames) any of
        # them may fill a rank: each cell given is its frame's best and has that rank's cosine
        got = p.cells[i, : len(expect)].tolist()
        assert len({f for f, _, _ in got}) == len(got)  # one cell per frame
        for (f, y, x), s in zip(got, sims):
            cos = acts[f] @ q / np.maximum(np.linalg.norm(acts[f], axis=-1), 1e-30)
            cos /= np.linalg.norm(q)
            assert abs(cos[y, x] - s) <= 1e-6 and abs(cos.max() - s) <= 1e-6
        ties = sum(sims.count(s) > 1 for s in sims)
        if not ties:  # without ties, exactly the brute-force cells
            assert got == [[f, y, x] for _, f, y, x in expect]
    # an image that is a corpus frame finds itself at cosine 1, unless k other frames hold a
    # cell at cosine 1 too (the cut among ties is arbitrary)
    qy, qx = p.query[2, 0].tolist()
    ones = p.cells[2][np.isclose(p.similarity[2], 1.0)].tolist()
    assert [5, qy, qx] in ones or len(ones) == 5
    # dataset examples: the objective's strongest real cells, one per frame, strongest first
    chan = acts[..., 3]
    order = np.argsort(-chan.reshape(24, -1).max(1), kind="stable")
    expect = [
        [f, *np.unravel_index(np.argmax(chan[f]), (16, 16))] for f in order if chan[f].max() > 0
    ]
    assert p.examples[0, : len(expect)].tolist() == [[int(a) for a in e] for e in expect][:32]
    neuron = acts[:, 4, 11, 5]
    top = np.argsort(-neuron, kind="stable")[: int((neuron > 0).sum())]
    assert p.examples[1, : len(top), 0].tolist() == top.tolist()
    assert (p.examples[1, : len(top), 1:] == [4, 11]).all()
    # the same with precomputed activations (as Analysis.activations)
    q = quantify.nearest_real_patches(
        agent, objs, images, np.zeros((1, 64, 64, 3), np.uint8), k=5, activations=acts
    )
    np.testing.assert_array_equal(q.cells, p.cells)


def test_objective_maps_sum_to_the_objective_values(agent, corpus):
    objs = [Channel("2b", 2), Neuron("2b", 7), Direction("2b", np.arange(32.0), name="d")]
    m = quantify.objective_maps(agent, objs, corpus[:10])
    np.testing.assert_allclose(
        m.sum((2, 3)), objective_values(agent, objs, corpus[:10]), rtol=1e-4, atol=1e-6
    )


def test_objectness_of_a_planted_case():
    classes = ("coin", "saw", "wall")
    maps = np.zeros((6, 16, 16, 3), np.float32)
    maps[:, 3, 3, 0] = 1  # a coin at (3, 3) in every frame
    maps[:, 10, 10, 1] = 1  # a saw at (10, 10) in every frame
    # nearest cells: 2 on the coin, 1 next to it (counted, near=1), 1 two cells away (not)
    cells = np.array([[[0, 3, 3], [1, 3, 3], [2, 4, 4], [3, 5, 5]]])
    # examples: 3 on the saw, 1 on a frame marked invalid (left out)
    examples = np.array([[[0, 10, 10], [1, 10, 10], [2, 10, 11], [5, 0, 0]]])
    p = quantify.NearestPatches(
        ["x"], "2b", np.zeros((1, 1, 2), int), cells, np.ones((1, 4)), examples, np.ones((1, 4))
    )
    valid = np.array([1, 1, 1, 1, 1, 0], bool)
    o = quantify.objectness(p, maps, valid=valid, classes=classes, objects=("coin", "saw"))
    np.testing.assert_allclose(o.nearest[0], [0.75, 0.0, 0.0])
    np.testing.assert_allclose(o.examples[0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(o.base, [9 / 256, 9 / 256, 0.0])
    assert o.counts.tolist() == [[4, 3]]
    np.testing.assert_allclose(o.object_share, [[0.75, 1.0]])
    assert o.best_class(0) == ("saw", pytest.approx(256 / 9))
    assert "| x | saw | 1.00 (28.4x) | 0.00 (0.0x) |" in o.table()
    strict = quantify.objectness(p, maps, valid=valid, classes=classes, objects=("coin",), near=0)
    np.testing.assert_allclose(strict.nearest[0], [0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="class_maps must be"):
        quantify.objectness(p, maps[..., :2], classes=classes, objects=("coin",))
    with pytest.raises(ValueError, match="outside the class maps"):
        quantify.objectness(p, maps[:3], classes=classes, objects=("coin",))
    with pytest.raises(ValueError, match="not among the classes"):
        quantify.objectness(p, maps, classes=classes, objects=("crate",))


def test_frame_class_maps_follow_the_observation_order():
    traj = rv.collect_trajectories("random", num_envs=2, num_steps=5, seed=1, progress=False)
    maps, valid = quantify.frame_class_maps(traj, 16)
    ref, kept = rlvision_widgets_features.trajectory_class_maps(traj, 16)
    assert valid.all() and len(kept) == 10
    for (e, t), m in zip(kept, ref):
        np.testing.assert_array_equal(maps[e * 5 + t], m)


def test_patch_distances_and_appearance_statistics(agent, corpus):
    images = corpus[[7, 9]]
    p = quantify.nearest_real_patches(agent, ["2b:1", "2b:4"], images, corpus[:32], k=4)
    d = quantify.patch_distances(p, images, corpus[:32])
    assert d[0, 0] >= 0 and np.isfinite(d).all()

    def crop(img, y, x):
        padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="edge")
        return padded[4 * y : 4 * y + 12, 4 * x : 4 * x + 12].astype(float)

    for i in range(2):
        yq, xq = p.query[i, 0]
        mine = crop(images[i], yq, xq)
        rms = [np.sqrt(((mine - crop(corpus[f], y, x)) ** 2).mean()) for f, y, x in p.cells[i]]
        assert d[i, 0] == pytest.approx(np.mean(rms))
    # an image that is a corpus frame: its own cell (cosine 1) bounds the nearest
    assert p.similarity[0, 0] == pytest.approx(1.0)

    red = np.zeros((1, 64, 64, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((1, 64, 64, 3), 128, np.uint8)
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[None, ..., None]
    ramp = np.broadcast_to(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 64, 3))
    s = quantify.appearance_statistics(
        np.concatenate([red, grey, np.repeat(checker, 3, -1), ramp[None]])
    )
    np.testing.assert_allclose(s["saturation"], [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(s["extreme"][:3], [1.0, 0.0, 1.0])
    assert s["high_frequency"][2] == pytest.approx(1.0) and s["high_frequency"][3] < 0.05


def test_quantify_errors_name_the_problem(agent, corpus):
    with pytest.raises(ValueError, match="one optimized image per objective"):
        quantify.nearest_real_patches(agent, ["2b:0", "2b:1"], corpus[:1], corpus[:4])
    with pytest.raises(ValueError, match="one layer"):
        quantify.nearest_real_patches(agent, ["2b:0", "1a:1"], corpus[:2], corpus[:4])
    with pytest.raises(ValueError, match="k must be an integer"):
        quantify.nearest_real_patches(agent, ["2b:0"], corpus[:1], corpus[:4], k=0)
    with pytest.raises(ValueError, match="activations must be"):
        quantify.nearest_real_patches(
            agent, ["2b:0"], corpus[:1], corpus[:4], activations=np.zeros((4, 8, 8, 32))
        )
    with pytest.raises(ValueError, match="uint8"):
        quantify.appearance_statistics(np.zeros((1, 64, 64, 3)))
