"""Analysis cache (npz + JSON, no pickle) and the observation corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis.cache import AnalysisCache, cached_attribution, model_hash
from rlvision_widgets.files import array_hash, load_arrays, save_arrays
from rlvision_widgets.rollouts.corpus import Corpus, collect_corpus, corpus_from_trajectories


def test_model_hash_tracks_weights():
    torch.manual_seed(0)
    a = build_network("compact")
    h = model_hash(a)
    assert h == model_hash(a) and len(h) == 64
    with torch.no_grad():
        a.value.bias.add_(1e-3)
    assert model_hash(a) != h
    assert array_hash(np.zeros(4, np.uint8)) != array_hash(np.zeros(4, np.int8))


def test_key_depends_on_every_part():
    k = dict(model="m", layer="2b", output="value", method="ig", corpus="c", steps=10)
    base = AnalysisCache.key(**k)
    for field, other in [
        ("model", "m2"),
        ("layer", "2a"),
        ("output", "logit:1"),
        ("method", "grad"),
        ("corpus", "c2"),
        ("steps", 20),
    ]:
        assert AnalysisCache.key(**{**k, field: other}) != base


def test_round_trip_and_reload_instead_of_recompute(tmp_path):
    cache = AnalysisCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"note": "hi", "k": 3}

    key = cache.key(model="m", layer="2b", output="value", method="test", corpus="c")
    a1, m1 = cache.get_or_compute(key, compute)
    a2, m2 = cache.get_or_compute(key, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(a1["x"], a2["x"])
    assert m2 == {"note": "hi", "k": 3}
    # plain formats: JSON text and an npz that loads without pickle
    doc = json.loads((tmp_path / f"{key}.json").read_text())
    assert doc["meta"]["note"] == "hi"
    with np.load(tmp_path / f"{key}.npz", allow_pickle=False) as z:
        assert z["x"].shape == (2, 3)
    # a corrupted entry is recomputed
    (tmp_path / f"{key}.npz").write_bytes(b"garbage")
    cache.get_or_compute(key, compute)
    assert len(calls) == 2


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        save_arrays(tmp_path / "x", {"bad": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(FileNotFoundError):
        load_arrays(tmp_path / "missing")


def test_cached_attribution(tmp_path):
    torch.manual_seed(0)
    net = build_network("compact").eval()
    obs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    a = cached_attribution(tmp_path, net, obs, "3a", "logit:RIGHT", steps=4)
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".npz"]
    b = cached_attribution(tmp_path, net, obs, "3a", "logit:7", steps=4)  # same spec
    assert len(list(tmp_path.iterdir())) == 2
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert b.output == "logit:7" and b.steps == 4
    cached_attribution(tmp_path, net, obs, "3a", "value", steps=4)
    assert len(list(tmp_path.iterdir())) == 4


def test_corpus_from_trajectories_and_save(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 20, 64, 64, 3), dtype=np.uint8)
    seeds = np.arange(60).reshape(3, 20)
    c = corpus_from_trajectories(frames, every=8, level_seeds=seeds)
    assert len(c) == 9 and c.step.tolist()[:3] == [0, 8, 16]
    np.testing.assert_array_equal(c.obs[4], frames[1, 8])
    assert c.level_seed[4] == seeds[1, 8]
    c.save(tmp_path / "corpus")
    back = Corpus.load(tmp_path / "corpus")
    np.testing.assert_array_equal(back.obs, c.obs)
    assert back.hash == c.hash
    with pytest.raises(ValueError, match="uint8"):
        Corpus(np.zeros((2, 64, 64, 3), np.float32))


def test_collect_corpus_spacing():
    c = collect_corpus(None, num_obs=12, interval=4, num_envs=4, seed=0)
    assert c.obs.shape == (12, 64, 64, 3) and c.obs.dtype == np.uint8
    for e in np.unique(c.env):
        steps = np.sort(c.step[c.env == e])
        assert np.all(np.diff(steps) == 4)  # one observation per env every 4 steps
    assert c.meta["interval"] == 4 and c.meta["policy"] == "uniform random"
    torch.manual_seed(0)
    d = collect_corpus(build_network("compact").eval(), num_obs=4, interval=2, num_envs=2, seed=1)
    assert len(d) == 4 and d.meta["policy"] == "ConvAgent"
    with pytest.raises(ValueError, match="interval"):
        collect_corpus(None, num_obs=4, interval=0)


# -- damaged or crafted entries are a miss: recomputed with a warning, never a crash ----------
def _damage(kind: str, stem):
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if kind == "empty npz":
        npz.write_bytes(b"")
    elif kind == "truncated npz":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif kind == "single npy":
        np.save(open(npz, "wb"), np.zeros(3))
    elif kind == "list json":
        js.write_text("[1, 2, 3]")
    elif kind == "garbage json":
        js.write_bytes(b"\xff\xfe{not json")
    elif kind == "meta not a dict":
        doc = json.loads(js.read_text())
        js.write_text(json.dumps({**doc, "meta": [1]}))
    elif kind == "missing array":
        doc = json.loads(js.read_text())
        js.write_text(json.dumps({**doc, "arrays": doc["arrays"] + ["ghost"]}))
    elif kind == "wrong shape":
        np.savez(open(npz, "wb"), x=np.zeros((7, 7), np.float32))
    elif kind == "wrong dtype":
        np.savez(open(npz, "wb"), x=np.zeros((2, 3), np.int64))
    elif kind == "deep json":
        js.write_text("[" * 100000 + "]" * 100000)


DAMAGE = [
    "empty npz",
    "truncated npz",
    "single npy",
    "list json",
    "garbage json",
    "meta not a dict",
    "missing array",
    "wrong shape",
    "wrong dtype",
    "deep json",
]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_entries_are_recomputed(tmp_path, kind, caplog):
    cache = AnalysisCache(tmp_path)
    calls = []
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)

    def compute():
        calls.append(1)
        return {"x": x}, {"note": "hi"}

    expect = {"x": ("f", (2, 3))}
    cache.get_or_compute("k", compute, expect)
    _damage(kind, cache.path("k"))
    with caplog.at_level("WARNING", logger="rlvision_widgets.analysis.cache"):
        arrays, meta = cache.get_or_compute("k", compute, expect)
    assert len(calls) == 2, "a damaged entry must be recomputed"
    np.testing.assert_array_equal(arrays["x"], x)
    assert meta == {"note": "hi"}
    assert "recomputing" in caplog.text
    # the entry was overwritten with a sound one: the next call reads it
    arrays, _ = cache.get_or_compute("k", compute, expect)
    assert len(calls) == 2
    np.testing.assert_array_equal(arrays["x"], x)


def test_load_reports_the_defect(tmp_path):
    from rlvision_widgets.analysis.cache import CacheEntryError

    cache = AnalysisCache(tmp_path)
    cache.save("k", {"x": np.zeros((2, 3), np.float32)}, {})
    with pytest.raises(CacheEntryError, match=r"'x' has shape \(2, 3\), expected \(4, None\)"):
        cache.load("k", expect={"x": ("f", (4, None))})
    with pytest.raises(FileNotFoundError):
        cache.load("absent")


def test_cached_attribution_recomputes_a_stale_shape(tmp_path):
    torch.manual_seed(0)
    net = build_network("compact").eval()
    obs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    a = cached_attribution(tmp_path, net, obs, "3a", "value", steps=4)
    npz = next(tmp_path.glob("*.npz"))
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["attributions"] = arrays["attributions"][:2]  # wrong number of frames
    np.savez(open(npz, "wb"), **arrays)
    b = cached_attribution(tmp_path, net, obs, "3a", "value", steps=4)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert b.attributions.shape[0] == 3
