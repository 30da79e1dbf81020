"""The analysis's one set of defaults: NMF settings and integrated-gradient steps.

:func:`~rlvision_widgets.analysis.pipeline.analyze`, the explorer (``widgets._engine.fit_nmf``)
and feature identification (:func:`~rlvision_widgets.analysis.features.identify_features`) all
fit their attribution NMF with :data:`NMF_SETTINGS`, so the features a researcher sees in the
widget are the ones the studies edit. The values were chosen by measurement
(``benchmarks/bench_nmf_settings.py``, table in ``docs/analysis.md``): a rank change refits
from the coreset well under a second, and the exact reconstruction error stays within 1% of a
fit on every row with a tight tolerance.

>>> nmf = make_nmf(4, seed=0)
>>> (nmf.n_components, nmf.coreset_size) == (4, NMF_SETTINGS["coreset_size"])
True
"""

from __future__ import annotations

from typing import Any

from .nmf import AttributionNMF

__all__ = ["IG_STEPS", "NMF_SETTINGS", "make_nmf"]

#: coreset rows, HALS iteration cap and tolerance of every attribution NMF the package fits
NMF_SETTINGS: dict[str, Any] = {"coreset_size": 8192, "max_iter": 200, "tol": 1e-4}

#: right-Riemann steps of integrated gradients (the article's 10)
IG_STEPS = 10


def make_nmf(rank: int, seed: int = 0, **overrides: Any) -> AttributionNMF:
    """An unfitted :class:`~rlvision_widgets.analysis.nmf.AttributionNMF` of ``rank``
    components with :data:`NMF_SETTINGS` (``overrides`` replace single settings, e.g.
    ``n_threads=1``).

    >>> make_nmf(3, n_threads=1).get_params()["n_threads"]
    1
    """
    return AttributionNMF(rank, seed=seed, **{**NMF_SETTINGS, **overrides})
