"""Non-negative matrix factorization of attributions (or activations) over channels.

The article flattens frames and spatial positions into rows (one row per frame *per position*,
one column per channel) and, because attributions are signed, stacks their positive and
negative parts along the row axis. :class:`AttributionNMF` does the same, with three additions:

* **Interactive rank.** The objective ``||X - W H||^2`` is a sum over rows of
  ``min_{w >= 0} ||x_i - w H||^2``, which is homogeneous of degree 2 in ``x_i``. ``fit`` draws a
  weighted coreset once: every non-zero row is kept with probability proportional to its squared
  norm (rows heavier than the threshold are always kept, with weight 1), sampled systematically
  with the seed, and reweighted by ``1 / probability`` (folded into the rows as
  ``sqrt(weight)``). The coreset's objective is an unbiased estimate of the full one for every
  ``H``; fitting (or refitting for another rank with :meth:`AttributionNMF.refit`) touches only
  the coreset, and exactly reproduces a full fit when the matrix has no more non-zero rows than
  ``coreset_size``. :meth:`AttributionNMF.reconstruction_error` evaluates any fit exactly on
  the full matrix.
* **Stable colours.** Components are ordered by the total attribution mass they explain
  (largest first), so feature 0 is the most important at every rank.
* **Exact per-frame reduction.** :meth:`AttributionNMF.reduce` gives K signed features in
  attribution units plus a residual, with ``features.sum(-1) + residual == attribution.sum(-1)``
  at every position.

The solver is HALS (exact coordinate descent, like scikit-learn's ``cd``) from an NNDSVDa start,
in torch float32 with float64 bookkeeping.

>>> rng = np.random.default_rng(0)
>>> attr = rng.normal(size=(8, 6, 6, 12)).astype(np.float32)
>>> nmf = AttributionNMF(n_components=4, seed=0).fit(attr)
>>> nmf.components_.shape
(4, 12)
>>> red = nmf.reduce(attr)
>>> bool(np.allclose(red.features.sum(-1) + red.residual, attr.sum(-1), atol=1e-4))
True
>>> _ = nmf.refit(6)          # new rank from the same coreset, no pass over the data
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin  # get_params / set_params / clone

from ..files import load_arrays, save_arrays

__all__ = ["AttributionNMF", "NMFFileError", "Reduction", "nnls_rows", "stack_signed_rows"]

SOURCES = ("attribution", "activation")
_CHUNK_ROWS = 1 << 20
_META_NUMBERS = (
    "reconstruction_err",
    "relative_error",
    "residual_share",
    "n_rows",
    "n_nonzero_rows",
    "coreset_rows",
    "n_iter",
    "x_norm",
)


class NMFFileError(ValueError):
    """A saved NMF (``AttributionNMF.save``) is unreadable, incomplete or inconsistent."""


def _check_finite(X: np.ndarray, what: str = "input") -> None:
    """scikit-learn's ``check_array`` rule: refuse NaN / inf, saying which and how many."""
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        nan = int(np.isnan(X).sum())
        inf = int(np.isinf(X).sum())
        raise ValueError(
            f"{what} contains {nan} NaN and {inf} infinite value(s) of {X.size}; NMF needs "
            "finite numbers (clean or drop those frames first, e.g. with np.nan_to_num)"
        )


@dataclass
class Reduction:
    """Per-frame reduction of attributions (or activations) onto the NMF features.

    ``features`` (F, H, W, K): signed, in attribution units (feature k's share of the total);
    ``residual`` (F, H, W): total minus the features' sum; ``total`` (F, H, W): the input summed
    over channels; ``reconstruction_error`` per frame (Frobenius norm of the channel-space
    error over the stacked positive and negative parts) and ``relative_error`` (divided by the
    input's norm); ``residual_share`` per frame: sum |residual| / sum |attribution| over
    positions and channels.

    >>> attr = np.random.default_rng(0).normal(size=(2, 4, 4, 6)).astype(np.float32)
    >>> red = AttributionNMF(3).fit(attr).reduce(attr)
    >>> red.feature_totals.shape, red.residual_totals.shape
    ((2, 3), (2,))
    """

    features: np.ndarray
    residual: np.ndarray
    total: np.ndarray
    reconstruction_error: np.ndarray
    relative_error: np.ndarray
    residual_share: np.ndarray

    @property
    def feature_totals(self) -> np.ndarray:
        """Features summed over positions, (F, K) (the article's "attribution totals")."""
        return self.features.sum((1, 2))

    @property
    def residual_totals(self) -> np.ndarray:
        """Residual summed over positions, (F,)."""
        return self.residual.sum((1, 2))


def stack_signed_rows(x: np.ndarray) -> np.ndarray:
    """The article's trick: rows of ``max(x, 0)`` followed by rows of ``max(-x, 0)``.

    >>> stack_signed_rows(np.array([[1.0, -2.0]]))
    array([[1., 0.],
           [0., 2.]])
    """
    flat = x.reshape(-1, x.shape[-1])
    return np.concatenate([np.maximum(flat, 0), np.maximum(-flat, 0)], axis=0)


def _as_float_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def nnls_rows(
    x: np.ndarray | torch.Tensor,
    components: np.ndarray | torch.Tensor,
    max_iter: int = 200,
    tol: float = 1e-5,
) -> torch.Tensor:
    """Solve ``min_{w >= 0} ||x_i - w H||^2`` for every row (coordinate descent, H fixed).

    ``x``: (n, C) non-negative; ``components``: (K, C). Returns (n, K) float32. Starts from the
    clipped unconstrained least-squares solution; stops when a sweep moves no coefficient by
    more than ``tol`` times the largest coefficient.

    >>> H = np.eye(2, 3, dtype=np.float32)
    >>> nnls_rows(np.array([[1.0, -1.0, 5.0]], np.float32), H).numpy()
    array([[1., 0.]], dtype=float32)
    """
    X = x if isinstance(x, torch.Tensor) else _as_float_tensor(x)
    H = components if isinstance(components, torch.Tensor) else _as_float_tensor(components)
    X, H = X.float(), H.float()
    n, k = X.shape[0], H.shape[0]
    if n == 0:
        return torch.zeros(0, k)
    G64 = H.double() @ H.double().T
    G = G64.float()
    HX = H @ X.T  # (K, n), contiguous rows
    diag = G.diagonal().clamp_min(1e-12)
    # start from the clipped unconstrained least-squares solution (coefficients as rows)
    Ginv = torch.linalg.inv(G64 + 1e-10 * torch.eye(k, dtype=torch.float64)).float()
    Wt = (Ginv @ HX).clamp_min_(0)
    if k == 1:
        return (HX / diag[0]).clamp_min_(0).T.contiguous()
    for _ in range(max_iter):
        prev = Wt.clone()
        for j in range(k):
            Wt[j].add_(HX[j] - G[j] @ Wt, alpha=float(1.0 / diag[j])).clamp_min_(0)
        if float((Wt - prev).abs().max()) <= tol * max(1e-30, float(Wt.max())):
            break
    return Wt.T.contiguous()


def _hals(
    X: torch.Tensor, W: torch.Tensor, H: torch.Tensor, max_iter: int, tol: float, xx: float
) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """HALS on ``X`` (m, C) from (W (m, K), H (K, C)); returns (W, H, iterations, objective).

    W is kept transposed (K, m) so every coordinate update touches contiguous memory.
    """
    k = H.shape[0]
    eps = 1e-12
    Xt = X.T.contiguous()  # (C, m)
    Wt = W.T.contiguous()  # (K, m)
    prev = math.inf
    obj = math.inf
    it = 0
    for it in range(1, max_iter + 1):
        # W update (columns of W = rows of Wt)
        HHt = H @ H.T
        HXt = H @ Xt  # (K, m)
        for j in range(k):
            step = HXt[j] - HHt[j] @ Wt
            Wt[j].add_(step, alpha=1.0 / max(float(HHt[j, j]), eps)).clamp_min_(0)
        # H update
        WtW = Wt @ Wt.T
        WtX = Wt @ X  # (K, C)
        for j in range(k):
            H[j] = (H[j] + (WtX[j] - WtW[j] @ H) / max(float(WtW[j, j]), eps)).clamp_min_(0)
        if it % 5 == 0 or it == max_iter:
            # objective = ||X||^2 - 2 <W, X H^T> + <W^T W, H H^T>, with the current H
            HXt = H @ Xt
            HHt = H @ H.T
            obj = (
                xx
                - 2.0 * float((Wt.double() * HXt.double()).sum())
                + float((WtW.double() * HHt.double()).sum())
            )
            if math.isfinite(prev) and prev - obj <= tol * max(abs(prev), 1e-30):
                break
            prev = obj
    return Wt.T.contiguous(), H, it, max(obj, 0.0)


def _nndsvda(
    X: torch.Tensor, k: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """NNDSVD initialisation with zeros filled by the mean (sklearn's ``nndsvda``)."""
    Xd = X.double()
    U, S, Vt = torch.linalg.svd(Xd, full_matrices=False)
    m, c = X.shape
    W = torch.zeros(m, k, dtype=torch.float64)
    H = torch.zeros(k, c, dtype=torch.float64)
    W[:, 0] = S[0].sqrt() * U[:, 0].abs()
    H[0] = S[0].sqrt() * Vt[0].abs()
    for j in range(1, k):
        if j >= S.shape[0]:
            break
        x, y = U[:, j], Vt[j]
        xp, xn, yp, yn = x.clamp_min(0), (-x).clamp_min(0), y.clamp_min(0), (-y).clamp_min(0)
        xpn, ypn, xnn, ynn = xp.norm(), yp.norm(), xn.norm(), yn.norm()
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / max(float(xpn), 1e-30), yp / max(float(ypn), 1e-30), mp
        else:
            u, v, sigma = xn / max(float(xnn), 1e-30), yn / max(float(ynn), 1e-30), mn
        lbd = (S[j] * sigma).sqrt()
        W[:, j] = lbd * u
        H[j] = lbd * v
    avg = float(Xd.mean())
    W[W < 1e-12] = avg
    H[H < 1e-12] = avg
    # break exact ties between components that started identical (rank-deficient data)
    H += 1e-6 * avg * torch.from_numpy(rng.random(H.shape))
    return W.float().contiguous(), H.float().contiguous()


class AttributionNMF(TransformerMixin, BaseEstimator):
    """NMF over channels of attributions (positive and negative parts stacked on the batch axis)
    or of activations, with components ordered by explained attribution mass.

    Parameters: ``n_components`` (rank K, 1 <= K <= channels), ``seed``, ``source``
    ("attribution" for signed attributions, "activation" for non-negative activations),
    ``coreset_size`` (rows of the weighted coreset; larger is slower and closer to the full
    fit), ``max_iter`` / ``tol`` (HALS), ``exact_error`` (also compute the exact reconstruction
    error on the full matrix in ``fit``; one pass over the data), ``n_threads`` (torch threads
    for the fit and the NNLS passes, restored afterwards; None: torch's current setting, see
    ``torch.set_num_threads``. The coreset fit's matrices are small, so on a busy machine one
    thread can be much faster than several).

    Fitted attributes: ``components_`` (K, C) unit-norm NMF directions, ordered;
    ``component_mass_`` (K,) estimated total mass explained by each; ``reconstruction_err_``
    Frobenius norm of the error (coreset estimate, or exact if ``exact_error``);
    ``relative_error_`` (divided by ``||X||``); ``residual_share_`` (sum over rows of
    |channel-summed residual| / total mass, as :attr:`Reduction.residual_share`); ``n_rows_``, ``n_nonzero_rows_``, ``coreset_rows_``, ``n_iter_``.

    >>> acts = np.random.default_rng(1).random((4, 5, 5, 8)).astype(np.float32)
    >>> nmf = AttributionNMF(3, source="activation").fit(acts)
    >>> nmf.transform(acts).shape
    (4, 5, 5, 3)
    """

    def __init__(
        self,
        n_components: int = 8,
        *,
        seed: int = 0,
        source: str = "attribution",
        coreset_size: int = 32768,
        max_iter: int = 400,
        tol: float = 1e-5,
        exact_error: bool = False,
        n_threads: int | None = None,
    ):
        self.n_components = n_components
        self.seed = seed
        self.source = source
        self.coreset_size = coreset_size
        self.max_iter = max_iter
        self.tol = tol
        self.exact_error = exact_error
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks
    def _check_params(self, n_channels: int | None = None) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components (rank) must be an integer in [1, channels], got {k!r}")
        if n_channels is not None and k > n_channels:
            raise ValueError(
                f"n_components (rank) {k} out of range: valid ranks are 1..{n_channels} "
                f"(the number of channels)"
            )
        t = self.n_threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1):
            raise ValueError(f"n_threads must be None or a positive integer, got {t!r}")
        if int(self.coreset_size) < 16:
            raise ValueError(f"coreset_size must be >= 16, got {self.coreset_size!r}")

    def _check_input(self, X: Any, fitted: bool = False) -> np.ndarray:
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        if not isinstance(X, np.ndarray):
            raise TypeError(f"expected a numpy array (..., channels), got {type(X).__name__}")
        if X.ndim < 2 or X.shape[-1] < 1 or X.size == 0:
            raise ValueError(
                f"expected a non-empty array (..., channels), e.g. frames x H x W x C; "
                f"got shape {X.shape}"
            )
        if not np.issubdtype(X.dtype, np.floating):
            raise TypeError(f"expected a float array, got dtype {X.dtype}")
        _check_finite(X)
        if fitted and X.shape[-1] != self.components_.shape[1]:
            raise ValueError(
                f"expected {self.components_.shape[1]} channels (as in fit), got {X.shape[-1]}"
            )
        if self.source == "activation" and not fitted and float(X.min()) < 0:
            raise ValueError(
                "source='activation' needs non-negative input (post-ReLU "
                "activations); use source='attribution' for signed attributions"
            )
        return X

    # -------------------------------------------------------------- row access
    def _row_chunks(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the fit matrix's rows in chunks (positive part, then negative part)."""
        flat = X.reshape(-1, X.shape[-1])
        signs = (1.0, -1.0) if self.source == "attribution" else (1.0,)
        for sign in signs:
            for s in range(0, flat.shape[0], _CHUNK_ROWS):
                chunk = flat[s : s + _CHUNK_ROWS].astype(np.float32, copy=False)
                yield (
                    np.maximum(chunk * sign, 0)
                    if self.source == "attribution"
                    else np.maximum(chunk, 0)
                )

    # --------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> AttributionNMF:
        """Draw the coreset from ``X`` (..., C) and fit ``n_components`` components.

        >>> X = np.abs(np.random.default_rng(0).normal(size=(100, 6))).astype(np.float32)
        >>> AttributionNMF(2, source="activation").fit(X).components_.shape
        (2, 6)
        """
        X = self._check_input(X)
        self._check_params(X.shape[-1])
        self._build_coreset(X)
        self._fit_coreset()
        if self.exact_error:
            err = self.reconstruction_error(X)
            self.reconstruction_err_ = err
            self.relative_error_ = err / max(self.x_norm_, 1e-30)
        return self

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def refit(self, n_components: int) -> AttributionNMF:
        """Refit at a new rank from the coreset drawn by the last :meth:`fit` (no data pass).

        >>> X = np.abs(np.random.default_rng(0).normal(size=(200, 6))).astype(np.float32)
        >>> nmf = AttributionNMF(2, source="activation").fit(X)
        >>> nmf.refit(4).components_.shape
        (4, 6)
        """
        if not hasattr(self, "_coreset"):
            raise RuntimeError("call fit(X) before refit(n_components)")
        old = self.n_components
        self.n_components = n_components
        try:
            self._check_params(self._coreset.shape[1])
        except ValueError:
            self.n_components = old
            raise
        self._fit_coreset()
        return self

    def _build_coreset(self, X: np.ndarray) -> None:
        c = X.shape[-1]
        norms = np.concatenate(
            [np.einsum("ij,ij->i", ch, ch, dtype=np.float64) for ch in self._row_chunks(X)]
        )
        self.n_rows_ = int(norms.size)
        nz = np.flatnonzero(norms > 0)
        self.n_nonzero_rows_ = int(nz.size)
        self.x_norm_ = float(math.sqrt(norms.sum()))
        m = int(self.coreset_size)
        if nz.size == 0:
            raise ValueError("cannot fit NMF: every row of the input is zero")
        q = norms[nz]
        if nz.size <= m:
            idx, weights = nz, np.ones(nz.size)
        else:
            # inclusion probabilities pi = min(1, q / tau) with sum(pi) = m
            qs = np.sort(q)[::-1]
            csum = np.cumsum(qs[::-1])[::-1]  # csum[j] = sum of qs[j:]
            j = np.arange(qs.size)
            # tau such that j rows are certain and the rest share m - j samples
            tau_j = csum / np.maximum(m - j, 1e-12)
            ok = (m - j > 0) & (qs <= tau_j)
            first = int(np.argmax(ok))
            tau = tau_j[first]
            pi = np.minimum(1.0, q / tau)
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(nz.size)
            cum = np.cumsum(pi[perm])
            u = rng.random()
            picks = np.searchsorted(
                cum, np.arange(int(np.floor(cum[-1] - u)) + 1) + u, side="right"
            )
            picks = np.unique(picks[picks < nz.size])
            sel = perm[picks]
            idx, weights = nz[sel], 1.0 / pi[sel]
        order = np.argsort(idx)
        idx, weights = idx[order], weights[order]
        rows = self._gather_rows(X, idx)
        rows *= np.sqrt(weights)[:, None].astype(np.float32)
        self._coreset = torch.from_numpy(np.ascontiguousarray(rows, np.float32))
        self._coreset_weights = weights
        self.coreset_rows_ = int(idx.size)
        self._n_channels = c

    def _gather_rows(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        flat = X.reshape(-1, X.shape[-1])
        n = flat.shape[0]
        if self.source == "attribution":
            neg = idx >= n
            rows = flat[np.where(neg, idx - n, idx)].astype(np.float32)
            rows[neg] *= -1
            return np.maximum(rows, 0)
        return np.maximum(flat[idx].astype(np.float32), 0)

    def _fit_coreset(self) -> None:
        k = int(self.n_components)
        Xc = self._coreset
        with _threads(self.n_threads):
            rng = np.random.default_rng(self.seed)
            W, H = _nndsvda(Xc, k, rng)
            xx = float((Xc.double() ** 2).sum())
            W, H, it, obj = _hals(Xc, W, H, int(self.max_iter), float(self.tol), xx)
        # normalise components to unit L2 norm, W absorbs the scale
        norms = H.norm(dim=1).clamp_min(1e-30)
        H = H / norms[:, None]
        W = W * norms[None, :]
        # total mass explained by each component (sqrt(weight) is already folded into rows)
        sw = torch.from_numpy(np.sqrt(self._coreset_weights)).float()
        mass = (W * sw[:, None]).sum(0).double() * H.sum(1).double()
        order = torch.argsort(mass, descending=True)
        self.components_ = H[order].numpy().astype(np.float32)
        self.component_mass_ = mass[order].numpy()
        # channel-summed residual per row (what reduce() reports), weighted back to the data
        resid = Xc.double().sum(1) - (W.double() @ H.double().sum(1))
        total_mass = float((Xc.double().sum(1) * sw.double()).sum())
        self.residual_share_ = float((resid.abs() * sw.double()).sum() / max(total_mass, 1e-30))
        self.reconstruction_err_ = float(math.sqrt(obj))
        self.relative_error_ = self.reconstruction_err_ / max(self.x_norm_, 1e-30)
        self.n_iter_ = int(it)
        self.n_features_in_ = self._n_channels

    # --------------------------------------------------------------- transform
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("this AttributionNMF is not fitted yet; call fit(X) first")

    def _nnls(self, rows: np.ndarray) -> np.ndarray:
        """NNLS coefficients for non-negative rows (n, C), zero rows skipped."""
        out = np.zeros((rows.shape[0], self.components_.shape[0]), np.float32)
        nz = np.flatnonzero(rows.any(axis=1))
        if nz.size:
            H = torch.from_numpy(self.components_)
            with _threads(self.n_threads):
                for s in range(0, nz.size, _CHUNK_ROWS):
                    sel = nz[s : s + _CHUNK_ROWS]
                    out[sel] = nnls_rows(_as_float_tensor(rows[sel]), H).numpy()
        return out

    def transform(self, X: Any) -> np.ndarray:
        """NNLS coefficients on the (unit-norm) components, shape ``X.shape[:-1] + (K,)``.

        Non-negative input (e.g. activations) gives non-negative coefficients; signed input
        gives ``coef(max(X, 0)) - coef(max(-X, 0))`` (the original tool's ``transform_attr``).

        >>> X = np.abs(np.random.default_rng(0).normal(size=(50, 4))).astype(np.float32)
        >>> AttributionNMF(2, source="activation").fit(X).transform(X).shape
        (50, 2)
        """
        self._check_fitted()
        X = self._check_input(X, fitted=True)
        flat = X.reshape(-1, X.shape[-1]).astype(np.float32, copy=False)
        coef = self._nnls(np.maximum(flat, 0))
        if (flat < 0).any():
            coef = coef - self._nnls(np.maximum(-flat, 0))
        return coef.reshape(X.shape[:-1] + (coef.shape[-1],))

    def inverse_transform(self, W: np.ndarray) -> np.ndarray:
        """Channel-space reconstruction ``W @ components_``.

        >>> X = np.abs(np.random.default_rng(0).normal(size=(30, 4))).astype(np.float32)
        >>> nmf = AttributionNMF(2, source="activation").fit(X)
        >>> nmf.inverse_transform(nmf.transform(X)).shape
        (30, 4)
        """
        self._check_fitted()
        return np.asarray(W, np.float32) @ self.components_

    def reduce(self, X: Any) -> Reduction:
        """Reduce (F, H, W, C) attributions (or activations) to K signed features + residual.

        ``features[..., k] = (coef_pos - coef_neg)[k] * sum(components_[k])`` (attribution
        units); ``residual = X.sum(-1) - features.sum(-1)``.

        >>> attr = np.random.default_rng(0).normal(size=(2, 3, 3, 5)).astype(np.float32)
        >>> red = AttributionNMF(2).fit(attr).reduce(attr)
        >>> red.features.shape, red.residual.shape
        ((2, 3, 3, 2), (2, 3, 3))
        """
        self._check_fitted()
        X = self._check_input(X, fitted=True)
        if X.ndim != 4:
            raise ValueError(f"reduce expects (frames, H, W, channels), got shape {X.shape}")
        f, h, w, c = X.shape
        flat = X.reshape(-1, c).astype(np.float32, copy=False)
        pos, neg = np.maximum(flat, 0), np.maximum(-flat, 0)
        cp, cn = self._nnls(pos), self._nnls(neg)
        Hc = self.components_
        scale = Hc.sum(1)
        features = ((cp - cn) * scale[None, :]).reshape(f, h, w, -1)
        total = X.sum(-1, dtype=np.float64).astype(np.float32)
        residual = (total - features.sum(-1, dtype=np.float64)).astype(np.float32)
        err2 = np.zeros(flat.shape[0], np.float64)
        with torch.no_grad():
            Ht = torch.from_numpy(Hc)
            for part, coef in ((pos, cp), (neg, cn)):
                r = torch.from_numpy(part) - torch.from_numpy(coef) @ Ht
                err2 += (r * r).sum(1).double().numpy()
        err = np.sqrt(err2.reshape(f, -1).sum(1))
        norm = np.sqrt(np.einsum("ij,ij->i", flat, flat).reshape(f, -1).sum(1, dtype=np.float64))
        abs_total = np.abs(X).sum((1, 2, 3), dtype=np.float64)
        share = np.abs(residual).sum((1, 2), dtype=np.float64) / np.maximum(abs_total, 1e-30)
        return Reduction(
            features.astype(np.float32),
            residual,
            total,
            err.astype(np.float32),
            (err / np.maximum(norm, 1e-30)).astype(np.float32),
            share.astype(np.float32),
        )

    # --------------------------------------------------------------- scoring
    def reconstruction_error(self, X: Any) -> float:
        """Exact Frobenius error ``||X_rows - W H||`` of this fit on the full matrix built from
        ``X`` (optimal non-negative W per row, components fixed). One pass over the data.

        >>> X = np.abs(np.random.default_rng(0).normal(size=(300, 5))).astype(np.float32)
        >>> nmf = AttributionNMF(2, source="activation").fit(X)
        >>> nmf.reconstruction_error(X) > 0
        True
        """
        self._check_fitted()
        X = self._check_input(X, fitted=True)
        H = torch.from_numpy(self.components_)
        total = 0.0
        with _threads(self.n_threads):
            for rows in self._row_chunks(X):
                nz = rows.any(axis=1)
                if not nz.any():
                    continue
                R = _as_float_tensor(rows[nz])
                W = nnls_rows(R, H)
                total += float(((R - W @ H).double() ** 2).sum())
        return math.sqrt(total)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative exact reconstruction error (higher is better, sklearn convention)."""
        return -self.reconstruction_error(X)

    # ----------------------------------------------------------------- saving
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as arrays + JSON metadata (no pickle), for the analysis cache."""
        self._check_fitted()
        arrays = {"components": self.components_, "component_mass": self.component_mass_}
        meta = {
            "params": self.get_params(),
            "reconstruction_err": self.reconstruction_err_,
            "relative_error": self.relative_error_,
            "residual_share": self.residual_share_,
            "n_rows": self.n_rows_,
            "n_nonzero_rows": self.n_nonzero_rows_,
            "coreset_rows": self.coreset_rows_,
            "n_iter": self.n_iter_,
            "x_norm": self.x_norm_,
        }
        return arrays, meta

    @classmethod
    def from_directions(cls, directions: np.ndarray) -> AttributionNMF:
        """An estimator that reduces onto given (K, C) non-negative ``directions`` (e.g. an
        Analysis' ``directions``): no fit statistics, no coreset.

        >>> AttributionNMF.from_directions(np.eye(2, 3)).components_.shape
        (2, 3)
        """
        comps = np.asarray(directions, np.float32)
        meta = {"params": {"n_components": int(comps.shape[0])}, **dict.fromkeys(_META_NUMBERS, 0)}
        return cls.from_arrays({"components": comps, "component_mass": np.ones(len(comps))}, meta)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> AttributionNMF:
        """Inverse of :meth:`to_arrays` (a fitted estimator without its coreset). Raises
        :class:`NMFFileError` naming what is wrong when the arrays or metadata are damaged or
        inconsistent (components must be finite, non-negative, (K, C) with K = n_components).

        >>> est = AttributionNMF.from_arrays(
        ...     {"components": np.eye(2, 3, dtype=np.float32), "component_mass": np.ones(2)},
        ...     {"params": {"n_components": 2}, "reconstruction_err": 0.0, "relative_error": 0.0,
        ...      "residual_share": 0.0, "n_rows": 4, "n_nonzero_rows": 4, "coreset_rows": 4,
        ...      "n_iter": 1, "x_norm": 1.0})
        >>> est.components_.shape
        (2, 3)
        """

        def bad(msg: str) -> NMFFileError:
            return NMFFileError(f"not a saved AttributionNMF: {msg}")

        if not isinstance(arrays, dict) or not isinstance(meta, dict):
            raise bad("arrays and metadata must be mappings")
        params = meta.get("params")
        if not isinstance(params, dict):
            raise bad(f"metadata 'params' must be an object, got {type(params).__name__}")
        unknown = sorted(set(params) - set(cls().get_params()))
        if unknown:
            raise bad(f"unknown parameter(s) {unknown}")
        for name in ("components", "component_mass"):
            if name not in arrays:
                raise bad(f"array {name!r} is missing")
        comp, mass = np.asarray(arrays["components"]), np.asarray(arrays["component_mass"])
        if comp.ndim != 2 or comp.shape[0] < 1 or comp.shape[1] < 1 or comp.dtype.kind not in "fiu":
            raise bad(
                f"components must be a non-empty (K, C) float array, got {comp.dtype} {comp.shape}"
            )
        if not np.isfinite(comp).all():
            raise bad(f"components hold {int((~np.isfinite(comp)).sum())} NaN/inf value(s)")
        if (comp < 0).any():
            raise bad(
                f"components hold {int((comp < 0).sum())} negative value(s); NMF "
                "components are non-negative"
            )
        if (
            mass.shape != (comp.shape[0],)
            or mass.dtype.kind not in "fiu"
            or not np.isfinite(mass).all()
        ):
            raise bad(
                f"component_mass must be {comp.shape[0]} finite numbers (one per "
                f"component), got {mass.dtype} {mass.shape}"
            )
        if params.get("n_components", comp.shape[0]) != comp.shape[0]:
            raise bad(
                f"n_components is {params.get('n_components')!r} but there are "
                f"{comp.shape[0]} components"
            )
        values = {}
        for k in _META_NUMBERS:
            v = meta.get(k)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
            ):
                raise bad(f"metadata {k!r} must be a finite non-negative number, got {v!r}")
            values[k] = v
        est = cls(**params)
        try:
            est._check_params(comp.shape[1])
        except (ValueError, TypeError) as e:
            raise bad(f"bad parameters: {e}") from None
        est.components_ = comp.astype(np.float32)
        est.component_mass_ = mass.astype(np.float64)
        for k, v in values.items():
            setattr(est, k + "_", v)
        est.n_features_in_ = est.components_.shape[1]
        return est

    def save(self, path: str | os.PathLike) -> Path:
        """Save to ``path.npz`` + ``path.json``.

        >>> import tempfile, os
        >>> X = np.abs(np.random.default_rng(0).normal(size=(40, 4))).astype(np.float32)
        >>> nmf = AttributionNMF(2, source="activation").fit(X)
        >>> p = nmf.save(os.path.join(tempfile.mkdtemp(), "nmf"))
        >>> AttributionNMF.load(p).components_.shape
        (2, 4)
        """
        arrays, meta = self.to_arrays()
        return save_arrays(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AttributionNMF:
        """Load an estimator saved by :meth:`save` (never unpickled). A missing file raises
        ``FileNotFoundError``; anything damaged, crafted or inconsistent raises
        :class:`NMFFileError` (a ``ValueError``) naming the problem."""
        try:
            arrays, meta = load_arrays(path)
        except FileNotFoundError:
            raise
        except Exception as e:  # any read/format failure of an untrusted file: one error type
            raise NMFFileError(
                f"cannot read a saved AttributionNMF at {path}: {type(e).__name__}: {e}"
            ) from None
        if not isinstance(meta, dict):
            raise NMFFileError(f"{path}: metadata must be an object, got {type(meta).__name__}")
        return cls.from_arrays(arrays, meta)


class _threads:
    """Run torch with ``n`` threads (None: leave the setting alone), restoring it afterwards."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self) -> None:
        self._old = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc: Any) -> None:
        if self.n is not None:
            torch.set_num_threads(self._old)
