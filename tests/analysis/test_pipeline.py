"""The headless analysis: ``analyze(agent, trajectories) -> Analysis`` (issue 11, requirement 1).

Checked against what each step guarantees, computed independently: the network's own outputs
(completeness of integrated gradients), scipy's NNLS (the per-feature reduction), the
feature-visualization module (dataset examples), the trajectories' own advantages and episode
table (bookmarks), and a fresh fit (rank changes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from torch import nn

import rlvision_widgets as rv
from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis import NMF_SETTINGS
from rlvision_widgets.analysis.cache import model_hash
from rlvision_widgets.analysis.featureviz import feature_maps, legend_thumbnails, receptive_field
from rlvision_widgets.analysis.integrated_gradients import integrated_gradients
from rlvision_widgets.analysis.pipeline import FORMAT_VERSION, Analysis, AnalysisFileError, analyze
from rlvision_widgets.files import array_hash, save_arrays


def _random_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = build_network("compact").eval()
    with torch.no_grad():  # non-zero biases: a less degenerate random network
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.normal_(0, 0.05)
    return net


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return _random_net()


@pytest.fixture(scope="module")
def obs() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 10, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def analysis(net, obs) -> Analysis:
    return analyze(net, obs, rank=3, seed=0)


def test_shapes_and_settings(net, obs, analysis):
    a = analysis
    assert rv.analyze is analyze and rv.Analysis is Analysis
    assert a.attributions.shape == a.activations.shape == (2, 10, 16, 16, 32)
    assert a.directions.shape == (3, 32) and a.n_features == 3
    assert a.features.shape == (2, 10, 16, 16, 3) and a.residual.shape == (2, 10, 16, 16)
    assert a.values.shape == a.outputs.shape == (2, 10) and a.logits.shape == (2, 10, 15)
    assert a.example_thumbnails.shape == (3, 120, 120, 4) and a.example_frames.shape == (3, 9, 4)
    assert a.value_attributions is None  # the output is the value: the NMF saw `attributions`
    assert a.advantages is None  # plain observations carry no rewards
    assert a.suggested_labels == []  # and no engine states
    s = a.settings
    assert (s["layer"], s["output"], s["rank"], s["seed"], s["ig_steps"]) == (
        "2b",
        "value",
        3,
        0,
        10,
    )
    assert s["nmf"] == NMF_SETTINGS
    assert s["agent_hash"] == model_hash(net) and s["observations_hash"] == array_hash(obs)
    assert s["package_version"] == rv.__version__
    text = repr(a)
    assert "2 trajectories x 10 steps" in text and "'2b'" in text and "rank 3" in text


def test_attributions_are_integrated_gradients_and_complete(net, obs, analysis):
    np.testing.assert_array_equal(
        analysis.attributions[1], integrated_gradients(net, obs[1], "2b").attributions
    )
    # completeness, from the network itself: sum of attributions -> F(x) - F(baseline)
    a = analyze(net, obs[:1, :4], rank=2, ig_steps=128)
    with torch.no_grad():
        _, value = net(torch.from_numpy(obs[0, :4]))
        base = float(net.forward_from("2b", torch.zeros(1, 32, 16, 16))[1])
    np.testing.assert_allclose(a.outputs[0], value.numpy(), rtol=1e-5, atol=1e-6)
    diff = value.numpy() - base
    gap = np.abs(a.attributions[0].sum((1, 2, 3)) - diff)
    assert float(np.median(gap / np.abs(diff))) < 0.02
    coarse = np.abs(analysis.attributions[0, :4].sum((1, 2, 3)) - diff)
    assert gap.mean() < coarse.mean()  # more steps, closer to exact


def test_features_and_residual_reconstruct_the_attribution(analysis):
    a = analysis
    total = a.attributions.sum(-1)
    np.testing.assert_allclose(
        a.features.sum(-1) + a.residual, total, atol=1e-5 * np.abs(total).max()
    )
    D = a.directions
    assert (D >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, rtol=1e-5)
    # each feature is (NNLS coefficient of the positive part - of the negative part) x the
    # direction's channel sum, per position (scipy's NNLS as the reference)
    rng = np.random.default_rng(0)
    flat = a.attributions.reshape(-1, D.shape[1])
    feats = a.features.reshape(-1, D.shape[0])
    for i in rng.choice(flat.shape[0], 40, replace=False):
        cp = nnls(D.T.astype(np.float64), np.maximum(flat[i], 0).astype(np.float64))[0]
        cn = nnls(D.T.astype(np.float64), np.maximum(-flat[i], 0).astype(np.float64))[0]
        want = (cp - cn) * D.sum(1)
        np.testing.assert_allclose(feats[i], want, atol=1e-3 * np.abs(flat).max() + 1e-7)


def test_nmf_is_fitted_on_the_value_whatever_the_output(net, obs, analysis):
    a = analyze(net, obs, output="logit:RIGHT", rank=3, seed=0)
    assert a.settings["output"] == "logit:7"
    np.testing.assert_array_equal(a.directions, analysis.directions)
    np.testing.assert_array_equal(a.value_attributions, analysis.attributions)
    np.testing.assert_array_equal(
        a.attributions[0], integrated_gradients(net, obs[0], "2b", "logit:7").attributions
    )
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(obs.reshape(-1, 64, 64, 3)))
    np.testing.assert_allclose(a.outputs.reshape(-1), logits[:, 7].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.features.sum(-1) + a.residual, a.attributions.sum(-1), atol=1e-4)


def test_dataset_examples_are_the_legend_thumbnails_and_point_at_their_frames(net, obs, analysis):
    a = analysis
    acts = a.activations.reshape(-1, 16, 16, 32)
    # the legend icons: 3 x 3 receptive-field crops (20 px at 2b on the compact network)
    rf = receptive_field(net, "2b")
    assert a.settings["thumbnail"]["patch"] == rf.size == 20
    np.testing.assert_array_equal(
        a.example_thumbnails,
        legend_thumbnails(
            a.directions,
            acts,
            obs.reshape(-1, 64, 64, 3),
            size=120,
            grid=3,
            patch=20,
            expand=1.0,
            rf=rf,
        ),
    )
    maps = feature_maps(acts, directions=a.directions, method="project").reshape(2, 10, 16, 16, 3)
    for k in range(3):
        for (e, t, y, x), s in zip(a.example_frames[k], a.example_strengths[k]):
            if e < 0:
                continue
            assert maps[e, t, y, x, k] == pytest.approx(s, rel=1e-6)
            assert s >= np.sort(maps[..., k].ravel())[-200]  # among the strongest cells


def test_same_seed_gives_an_identical_analysis(net, obs, analysis):
    again = analyze(net, obs, rank=3, seed=0)
    assert again == analysis
    other = analyze(net, obs, rank=3, seed=1)
    assert other.settings["seed"] == 1 and other != analysis


def test_save_load_round_trip(tmp_path, analysis):
    stem = analysis.save(tmp_path / "a")
    assert (tmp_path / "a.npz").is_file() and (tmp_path / "a.json").is_file()
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["format"] == "rlvision-analysis" and doc["format_version"] == FORMAT_VERSION
    back = Analysis.load(stem)
    assert back == analysis
    assert Analysis.load(tmp_path / "a.npz") == analysis
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # plain arrays, no pickle
        assert "features" in z.files


def test_broken_files_raise_clear_errors(tmp_path, analysis):
    with pytest.raises(FileNotFoundError, match="no saved analysis"):
        Analysis.load(tmp_path / "missing")
    stem = analysis.save(tmp_path / "a")
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    good_npz, good_js = npz.read_bytes(), js.read_text()

    npz.write_bytes(good_npz[: len(good_npz) // 2])
    with pytest.raises(AnalysisFileError, match="corrupted"):
        Analysis.load(stem)
    npz.write_bytes(good_npz)

    js.write_text(good_js[:50])
    with pytest.raises(AnalysisFileError, match="not valid JSON"):
        Analysis.load(stem)

    doc = json.loads(good_js)
    js.write_text(json.dumps(dict(doc, format_version=FORMAT_VERSION + 1)))
    with pytest.raises(AnalysisFileError, match="newer"):
        Analysis.load(stem)

    save_arrays(tmp_path / "other", {"x": np.zeros(3)})  # a valid file of another kind
    with pytest.raises(AnalysisFileError, match="not an rlvision analysis file"):
        Analysis.load(tmp_path / "other")

    # a consistent pair whose arrays disagree with the listed shapes
    js.write_text(json.dumps(dict(doc, arrays=dict(doc["arrays"], features={"shape": [1]}))))
    with pytest.raises(AnalysisFileError, match="features"):
        Analysis.load(stem)
    js.write_text(good_js)
    assert Analysis.load(stem) == analysis


def test_bad_arguments_raise_clear_errors(net, obs):
    with pytest.raises(ValueError, match="unknown layer 'nope'.*valid layers"):
        analyze(net, obs, layer="nope")
    with pytest.raises(ValueError, match="unknown output"):
        analyze(net, obs, output="velocity")
    for rank in (0, 33, 2.5, True):
        with pytest.raises(ValueError, match=r"rank must be an integer in 1\.\.32"):
            analyze(net, obs, rank=rank)
    with pytest.raises(ValueError, match="uint8"):
        analyze(net, obs.astype(np.float32))
    with pytest.raises(ValueError, match="ig_steps"):
        analyze(net, obs, ig_steps=0)
    with pytest.raises(TypeError, match="trajectories must be"):
        analyze(net, [1, 2, 3])
    with pytest.raises(ValueError, match="needs recorded Trajectories"):
        analyze(net, obs, suggest_labels=True)
    with pytest.raises(ValueError, match="rank must be"):
        Analysis.with_rank(analyze(net, obs[:1, :2], rank=1), 40)


def test_with_rank_matches_a_fresh_analysis(tmp_path, net, obs, analysis):
    fresh = analyze(net, obs, rank=5, seed=0)
    for changed in (
        analysis.with_rank(5),
        Analysis.load(analysis.save(tmp_path / "a")).with_rank(5),
    ):
        assert changed.settings["rank"] == 5
        np.testing.assert_allclose(changed.directions, fresh.directions, atol=1e-5)
        np.testing.assert_allclose(
            changed.features, fresh.features, atol=1e-4 * np.abs(fresh.features).max()
        )
        np.testing.assert_array_equal(changed.attributions, fresh.attributions)
        assert changed.bookmarks == fresh.bookmarks


def test_agent_is_left_as_it_was(obs):
    net = _random_net(1)
    before = model_hash(net)
    analyze(net, obs[:1, :3], rank=2)
    assert model_hash(net) == before
    hooks = [m._forward_hooks for m in net.modules()] + [
        m._forward_pre_hooks for m in net.modules()
    ]
    assert not any(hooks)


def test_progress_is_reported_and_can_stop_the_analysis(net, obs):
    seen = []
    analyze(net, obs[:1, :3], rank=2, progress=lambda f, msg: seen.append((f, msg)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0

    class Stop(Exception):
        pass

    def stop(f, msg):
        if f > 0.5:
            raise Stop

    with pytest.raises(Stop):
        analyze(net, obs[:1, :3], rank=2, progress=stop)


@pytest.fixture(scope="module")
def recorded():
    agent = rv.load_agent("coinrun")
    return agent, rv.collect_trajectories(agent, num_envs=2, num_steps=48, seed=1, progress=False)


def test_recorded_trajectories_give_labels_and_bookmarks(recorded, tmp_path):
    agent, traj = recorded
    a = analyze(agent, traj, rank=4)
    assert a.settings["layer"] == "2b" and a.settings["suggest_labels"]
    np.testing.assert_allclose(a.values, traj.values, atol=1e-4)  # the agent's own values
    np.testing.assert_allclose(a.advantages, traj.advantages)
    assert len(a.suggested_labels) == 4 and all(isinstance(x, str) for x in a.suggested_labels)
    # every label comes with its evidence; a label is only given when the test passed
    assert [e["feature"] for e in a.label_evidence] == [0, 1, 2, 3]
    for name, e in zip(a.suggested_labels, a.label_evidence):
        assert e["status"] in ("identified", "duplicate", "weak", "unidentified")
        assert e["describe"]
        if name:
            assert e["confirmed"] and e["share"] >= 0.5 and e["lift"] >= 3
        else:
            assert not e["confirmed"]
    assert a.bookmarks, "a real rollout has advantage extremes"
    fails = {(int(r["env"]), int(r["stop"])) for r in traj.failed_episodes()}
    for b in a.bookmarks:
        assert 0 <= b["env"] < 2 and 0 <= b["step"] < 48
        if b["kind"] in ("high", "low"):
            assert a.advantages[b["env"], b["step"]] == pytest.approx(b["score"])
        if b["kind"] == "failure":  # shown from 8 steps before the episode's last frame
            assert (b["env"], b["last_step"] + 1) in fails
            assert b["last_step"] - 7 <= b["step"] <= b["last_step"]
            assert b["label"].endswith(f"·{b['step']}")  # the chip names the step it shows
    assert len([b for b in a.bookmarks if b["kind"] == "failure"]) == min(len(fails), 24)
    # a rank change keeps the bookmarks and relabels from the same engine states
    a3 = a.with_rank(3)
    assert a3.bookmarks == a.bookmarks and len(a3.suggested_labels) == 3
    assert len(a3.label_evidence) == 3
    back = Analysis.load(a.save(tmp_path / "labelled"))  # labels and evidence are kept
    assert back == a and back.label_evidence == a.label_evidence
