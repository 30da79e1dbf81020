"""Attribution NMF: agreement with scikit-learn, exact reduction, ordering, refits, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import NMF as SklearnNMF

from rlvision_widgets.analysis.nmf import AttributionNMF, nnls_rows, stack_signed_rows


def _attributions(
    frames: int = 48, size: int = 8, channels: int = 16, k: int = 5, seed: int = 0
) -> np.ndarray:
    """Sparse signed attributions built from k near-one-hot directions of distinct mass."""
    rng = np.random.default_rng(seed)
    dirs = np.abs(rng.normal(size=(k, channels))) ** 4
    dirs /= dirs.sum(1, keepdims=True)
    scale = np.linspace(3.0, 0.5, k)  # distinct masses: stable order
    coef = (
        rng.exponential(size=(frames, size, size, k))
        * scale
        * (rng.random((frames, size, size, k)) < 0.15)
        * rng.choice([-1.0, 1.0], size=(frames, size, size, k), p=[0.3, 0.7])
    )
    noise = 0.01 * rng.normal(size=(frames, size, size, channels))
    return (coef @ dirs + noise).astype(np.float32)


@pytest.fixture(scope="module")
def attr() -> np.ndarray:
    return _attributions()


def test_stacking_is_the_articles_trick():
    x = np.array([[[[1.0, -2.0]]]], np.float32)
    np.testing.assert_array_equal(stack_signed_rows(x), [[1, 0], [0, 2]])


@pytest.mark.parametrize("k", [3, 6])
def test_error_close_to_sklearn(attr, k):
    X = stack_signed_rows(attr)
    sk = SklearnNMF(k, init="nndsvda", random_state=0, max_iter=400).fit(X)
    # coreset smaller than the non-zero rows: exercises the weighted sampling
    ours = AttributionNMF(k, seed=0, coreset_size=2048).fit(attr)
    assert ours.coreset_rows_ < ours.n_nonzero_rows_
    exact = ours.reconstruction_error(attr)
    assert exact <= 1.01 * sk.reconstruction_err_
    # the coreset estimate of the error is close to the exact one
    assert abs(ours.reconstruction_err_ - exact) < 0.05 * exact
    # with every row in the coreset the fit is a plain full-data fit
    full = AttributionNMF(k, seed=0, coreset_size=10**6).fit(attr)
    assert full.coreset_rows_ == full.n_nonzero_rows_
    assert full.reconstruction_error(attr) <= 1.01 * sk.reconstruction_err_


def test_features_plus_residual_equal_total(attr):
    nmf = AttributionNMF(4, seed=0).fit(attr)
    red = nmf.reduce(attr[:6])
    assert red.features.shape == (6, 8, 8, 4) and red.residual.shape == (6, 8, 8)
    np.testing.assert_allclose(
        red.features.sum(-1) + red.residual, attr[:6].sum(-1), rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(red.total, attr[:6].sum(-1), atol=1e-5)
    assert np.all((red.residual_share >= 0) & (red.residual_share <= 1))
    # the fit's (coreset-estimated) residual share is the same quantity over the whole input
    whole = nmf.reduce(attr)
    overall = np.abs(whole.residual).sum() / np.abs(attr).sum()
    assert abs(nmf.residual_share_ - overall) < 0.05
    assert np.all(red.relative_error < 0.5)
    np.testing.assert_allclose(red.feature_totals, red.features.sum((1, 2)), rtol=1e-6)


def test_features_are_signed_attribution_units(attr):
    nmf = AttributionNMF(5, seed=0, coreset_size=10**6).fit(attr)
    red = nmf.reduce(attr)
    assert (red.features < 0).any() and (red.features > 0).any()
    # five true directions, five components: almost everything is explained
    assert float(np.median(red.residual_share)) < 0.05


def test_components_ordered_by_mass_and_stable_across_ranks(attr):
    nmf = AttributionNMF(3, seed=0).fit(attr)
    prev = nmf.components_.copy()
    assert np.all(np.diff(nmf.component_mass_) <= 0)
    np.testing.assert_allclose(np.linalg.norm(nmf.components_, axis=1), 1.0, rtol=1e-5)
    for k in (4, 5):
        nmf.refit(k)
        assert np.all(np.diff(nmf.component_mass_) <= 0)
        cos = (nmf.components_[: k - 1] * prev).sum(1)
        assert np.all(cos > 0.95), f"rank {k}: colours moved (cosines {cos})"
        prev = nmf.components_.copy()


def test_refit_equals_fresh_fit(attr):
    a = AttributionNMF(3, seed=1, coreset_size=1024).fit(attr).refit(5)
    b = AttributionNMF(5, seed=1, coreset_size=1024).fit(attr)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-6)
    c = AttributionNMF(5, seed=2, coreset_size=1024).fit(attr)
    assert c.coreset_rows_ > 0  # another seed draws another coreset (still valid)


def test_activation_source_and_transform():
    rng = np.random.default_rng(1)
    acts = np.maximum(rng.normal(size=(10, 6, 6, 8)), 0).astype(np.float32)
    nmf = AttributionNMF(3, source="activation").fit(acts)
    coef = nmf.transform(acts)
    assert coef.shape == (10, 6, 6, 3) and coef.min() >= 0
    red = nmf.reduce(acts)
    np.testing.assert_allclose(red.features.sum(-1) + red.residual, acts.sum(-1), atol=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        AttributionNMF(3, source="activation").fit(acts - 1)


def test_nnls_rows_is_optimal():
    rng = np.random.default_rng(2)
    H = np.abs(rng.normal(size=(3, 6))).astype(np.float32)
    X = np.abs(rng.normal(size=(20, 6))).astype(np.float32)
    W = nnls_rows(X, H).numpy()
    from scipy.optimize import nnls

    for i in range(20):
        w, _ = nnls(H.T.astype(np.float64), X[i].astype(np.float64))
        assert np.linalg.norm(X[i] - W[i] @ H) <= np.linalg.norm(X[i] - w @ H) + 1e-4


def test_save_load_roundtrip(attr, tmp_path):
    nmf = AttributionNMF(4, seed=0).fit(attr)
    nmf.save(tmp_path / "nmf")
    back = AttributionNMF.load(tmp_path / "nmf")
    np.testing.assert_array_equal(back.components_, nmf.components_)
    np.testing.assert_allclose(back.reduce(attr[:2]).features, nmf.reduce(attr[:2]).features)
    assert back.get_params() == nmf.get_params()


def test_sklearn_conventions(attr):
    from sklearn.base import clone

    nmf = AttributionNMF(4, seed=3)
    assert clone(nmf).get_params()["seed"] == 3
    assert nmf.set_params(n_components=2).n_components == 2


@pytest.mark.parametrize("k", [0, 17, -1, 2.5])
def test_rank_out_of_range(attr, k):
    with pytest.raises(ValueError, match=r"valid ranks are 1\.\.16|\[1, channels\]"):
        AttributionNMF(k).fit(attr)


def test_refit_rank_out_of_range_keeps_fit(attr):
    nmf = AttributionNMF(3).fit(attr)
    with pytest.raises(ValueError, match="1..16"):
        nmf.refit(40)
    assert nmf.n_components == 3 and nmf.components_.shape == (3, 16)


def test_other_errors(attr):
    with pytest.raises(ValueError, match="source must be one of"):
        AttributionNMF(2, source="gradients").fit(attr)
    with pytest.raises(RuntimeError, match="fit"):
        AttributionNMF(2).reduce(attr)
    with pytest.raises(ValueError, match="channels"):
        AttributionNMF(2).fit(attr).reduce(attr[..., :5])
    with pytest.raises(ValueError, match="every row"):
        AttributionNMF(2).fit(np.zeros((4, 4, 4, 8), np.float32))


def test_thread_count_is_the_callers_choice(attr, monkeypatch):
    calls: list[int] = []
    real = torch.set_num_threads

    def spy(n: int) -> None:
        calls.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", spy)
    before = torch.get_num_threads()
    AttributionNMF(3, seed=0).fit(attr).reduce(attr[:2])
    assert calls == []  # default: torch's own setting, untouched
    nmf = AttributionNMF(3, seed=0, n_threads=1).fit(attr)
    nmf.reduce(attr[:2])
    assert calls and calls[0::2] == [1] * (len(calls) // 2)  # 1 thread inside, then restored
    assert calls[1::2] == [before] * (len(calls) // 2) and torch.get_num_threads() == before
    assert AttributionNMF.from_arrays(*nmf.to_arrays()).n_threads == 1
    with pytest.raises(ValueError, match="n_threads"):
        AttributionNMF(3, n_threads=0).fit(attr)


# -- untrusted input: non-finite data and crafted saved files ---------------------------------
@pytest.mark.parametrize("bad,label", [(np.nan, "2 NaN and 0 infinite"), (np.inf, "0 NaN and 2")])
def test_non_finite_input_is_refused_like_sklearn(bad, label):
    from sklearn.utils import check_array

    x = np.abs(np.random.default_rng(0).normal(size=(20, 6))).astype(np.float32)
    x[3, 2] = x[7, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):  # scikit-learn refuses it too
        check_array(x)
    with pytest.raises(ValueError, match=f"input contains {label}"):
        AttributionNMF(2, source="activation").fit(x)
    fitted = AttributionNMF(2, source="activation").fit(np.nan_to_num(x, posinf=0.0))
    with pytest.raises(ValueError, match=f"input contains {label}"):
        fitted.transform(x)


def _saved(tmp_path):
    from rlvision_widgets.files import load_arrays

    x = np.abs(np.random.default_rng(1).normal(size=(40, 5))).astype(np.float32)
    stem = AttributionNMF(2, source="activation").fit(x).save(tmp_path / "nmf")
    return stem, *load_arrays(stem)


CRAFTED = {
    "nan component": lambda a, m: ({**a, "components": a["components"] * np.nan}, m),
    "negative component": lambda a, m: ({**a, "components": -a["components"]}, m),
    "1-d components": lambda a, m: ({**a, "components": a["components"][0]}, m),
    "mass length": lambda a, m: ({**a, "component_mass": np.ones(5)}, m),
    "rank mismatch": lambda a, m: (a, {**m, "params": {**m["params"], "n_components": 4}}),
    "params list": lambda a, m: (a, {**m, "params": [1, 2]}),
    "unknown param": lambda a, m: (a, {**m, "params": {**m["params"], "evil": 1}}),
    "missing number": lambda a, m: (a, {k: v for k, v in m.items() if k != "n_iter"}),
    "string number": lambda a, m: (a, {**m, "x_norm": "big"}),
    "missing array": lambda a, m: ({"components": a["components"]}, m),
}


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_crafted_saved_nmf_raises_one_clear_error(tmp_path, kind):
    from rlvision_widgets.analysis.nmf import NMFFileError
    from rlvision_widgets.files import save_arrays

    stem, arrays, meta = _saved(tmp_path)
    AttributionNMF.load(stem)  # the untouched file loads
    arrays, meta = CRAFTED[kind](arrays, meta)
    bad = save_arrays(tmp_path / "bad", arrays, meta)
    with pytest.raises(NMFFileError, match="not a saved AttributionNMF"):
        AttributionNMF.load(bad)


@pytest.mark.parametrize("damage", ["empty npz", "list json", "json meta list", "truncated"])
def test_damaged_saved_nmf_raises_one_clear_error(tmp_path, damage):
    import json

    from rlvision_widgets.analysis.nmf import NMFFileError

    stem, _, _ = _saved(tmp_path)
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if damage == "empty npz":
        npz.write_bytes(b"")
    elif damage == "list json":
        js.write_text("[]")
    elif damage == "json meta list":
        js.write_text(json.dumps({**json.loads(js.read_text()), "meta": [1]}))
    else:
        npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(NMFFileError):
        AttributionNMF.load(stem)
    with pytest.raises(FileNotFoundError):
        AttributionNMF.load(tmp_path / "absent")
