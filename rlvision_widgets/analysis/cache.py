"""On-disk cache of analysis results: npz arrays + a JSON sidecar, never pickle.

Results are keyed by (model hash, layer, output, method, corpus hash) plus any parameters
(e.g. IG steps, NMF rank). The model hash is the sha256 of the state dict's names, dtypes,
shapes and bytes; the corpus hash is the sha256 of the observation array.

Cache files are untrusted (docs/threat-model.md): an entry that cannot be read, is not in the
format, misses arrays, or holds arrays of the wrong dtype or shape for what the caller expects
(``expect``) is a miss: it is recomputed and overwritten, with a logged warning. Never a crash,
never wrong data.

>>> import tempfile
>>> from rlvision_widgets.agents import build_network
>>> cache = AnalysisCache(tempfile.mkdtemp())
>>> key = cache.key(model=build_network("compact"), layer="2b", output="value",
...                 method="integrated_gradients", corpus=np.zeros((2, 64, 64, 3), np.uint8),
...                 steps=10)
>>> calls = []
>>> def compute():
...     calls.append(1)
...     return {"x": np.arange(3)}, {"note": "demo"}
>>> arrays, meta = cache.get_or_compute(key, compute)
>>> arrays, meta = cache.get_or_compute(key, compute)      # reloaded, not recomputed
>>> len(calls), arrays["x"].tolist(), meta["note"]
(1, [0, 1, 2], 'demo')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import array_hash, json_safe, load_arrays, save_arrays

__all__ = ["AnalysisCache", "CacheEntryError", "cached_attribution", "model_hash"]

log = logging.getLogger(__name__)

#: What a caller expects of an entry: array name -> (dtype kind(s), shape) with ``None`` for
#: any length (e.g. ``{"x": ("f", (10, None))}``), or a function ``(arrays, meta) -> None``
#: that raises ``ValueError`` / ``KeyError`` / ``TypeError`` on a mismatch.
Expectation = Mapping[str, tuple[str, tuple[int | None, ...]]] | Callable[[dict, dict], Any]


class CacheEntryError(ValueError):
    """A cache entry is damaged, not in the cache format, or not what the caller expects."""


def _read_entry(stem: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``stem.json`` + ``stem.npz`` with the one strict reader
    (:func:`~rlvision_widgets.files.load_arrays`); any defect is a :class:`CacheEntryError`."""
    try:
        return load_arrays(stem)
    except (ValueError, FileNotFoundError) as e:
        raise CacheEntryError(str(e)) from None


def _check_expected(arrays: dict, meta: dict, expect: Expectation | None) -> None:
    if expect is None:
        return
    if callable(expect):
        try:
            expect(arrays, meta)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CacheEntryError(f"not what the caller expects: {e}") from None
        return
    for name, (kinds, shape) in expect.items():
        if name not in arrays:
            raise CacheEntryError(f"array {name!r} is missing")
        a = arrays[name]
        if a.dtype.kind not in kinds:
            raise CacheEntryError(f"array {name!r} has dtype {a.dtype}, expected kind {kinds!r}")
        if len(shape) != a.ndim or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            raise CacheEntryError(f"array {name!r} has shape {a.shape}, expected {shape}")


def model_hash(model: nn.Module) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes and bytes) and of its recorded
    ``edits`` (an :class:`~rlvision_widgets.agents.editing.EditedAgent`'s), hex. Forward hooks
    added at run time (e.g. :meth:`LayerAccess.add_edit`) are not part of the hash.

    >>> from rlvision_widgets.agents import build_network
    >>> len(model_hash(build_network("compact")))
    64
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    edits = getattr(model, "edits", None)
    if edits:
        h.update(
            json.dumps(
                [e.to_dict() if hasattr(e, "to_dict") else repr(e) for e in edits], sort_keys=True
            ).encode()
        )
    return h.hexdigest()


class AnalysisCache:
    """A folder of cached results, one ``<key>.npz`` + ``<key>.json`` pair per result.

    >>> import tempfile
    >>> c = AnalysisCache(tempfile.mkdtemp())
    >>> k = c.key(model="abc", layer="2b", output="value", method="ig", corpus="def")
    >>> _ = c.save(k, {"a": np.zeros(2)}, {}); c.has(k)
    True
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(
        *,
        model: nn.Module | str,
        layer: str,
        output: str,
        method: str,
        corpus: np.ndarray | str,
        **params: Any,
    ) -> str:
        """Cache key: sha256 over (model hash, layer, output, method, corpus hash, params).

        ``model`` / ``corpus`` may be given as objects or as precomputed hashes.
        """
        parts = {
            "model": model if isinstance(model, str) else model_hash(model),
            "layer": layer,
            "output": output,
            "method": method,
            "corpus": corpus if isinstance(corpus, str) else array_hash(corpus),
            "params": json_safe(params),
        }
        blob = json.dumps(parts, sort_keys=True).encode()
        return f"{method}-{layer}-{hashlib.sha256(blob).hexdigest()[:32]}".replace("/", "_")

    def path(self, key: str) -> Path:
        """File stem of a key (``.npz`` and ``.json`` are added)."""
        return self.root / key

    def has(self, key: str) -> bool:
        """Whether both files of ``key`` exist."""
        p = self.path(key)
        return p.with_suffix(".npz").is_file() and p.with_suffix(".json").is_file()

    def save(
        self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
    ) -> Path:
        """Store arrays + JSON metadata under ``key``."""
        return save_arrays(self.path(key), arrays, meta)

    def load(
        self, key: str, expect: Expectation | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta) stored under ``key``; :class:`CacheEntryError` if the entry is
        damaged or not what ``expect`` describes, ``FileNotFoundError`` if it is absent.

        >>> import tempfile
        >>> c = AnalysisCache(tempfile.mkdtemp())
        >>> _ = c.save("k", {"a": np.zeros((2, 3), np.float32)})
        >>> c.load("k", expect={"a": ("f", (2, None))})[0]["a"].shape
        (2, 3)
        """
        if not self.has(key):
            raise FileNotFoundError(f"no cache entry {key!r} in {self.root}")
        arrays, meta = _read_entry(self.path(key))
        _check_expected(arrays, meta, expect)
        return arrays, meta

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]],
        expect: Expectation | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Load ``key`` if cached and sound, else ``compute()`` -> (arrays, meta), save and
        return it. A damaged entry, or one that does not match ``expect`` (see
        :data:`Expectation`), is recomputed and overwritten with a logged warning.

        >>> import tempfile
        >>> c = AnalysisCache(tempfile.mkdtemp())
        >>> _ = c.save("k", {"a": np.zeros(3)})
        >>> arrays, _ = c.get_or_compute("k", lambda: ({"a": np.ones(5)}, {}),
        ...                              expect={"a": ("f", (5,))})      # (3,) is stale
        >>> arrays["a"].tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0]
        """
        if self.has(key):
            try:
                return self.load(key, expect)
            except CacheEntryError as e:
                log.warning("analysis cache entry %s is unusable (%s); recomputing it", key, e)
        arrays, meta = compute()
        self.save(key, arrays, meta)
        return {k: np.asarray(v) for k, v in arrays.items()}, json_safe(dict(meta))


def cached_attribution(
    cache: AnalysisCache | str | os.PathLike,
    agent: nn.Module,
    obs: np.ndarray,
    layer: str,
    output: str = "value",
    steps: int = 10,
    **kwargs: Any,
):
    """:func:`~rlvision_widgets.analysis.integrated_gradients` through the cache.

    >>> import tempfile
    >>> from rlvision_widgets.agents import build_network
    >>> net, obs = build_network("compact"), np.zeros((2, 64, 64, 3), np.uint8)
    >>> a = cached_attribution(tempfile.mkdtemp(), net, obs, "4a")
    >>> a.attributions.shape
    (2, 4, 4, 32)
    """
    from .integrated_gradients import Attribution, integrated_gradients
    from .outputs import parse_output

    cache = cache if isinstance(cache, AnalysisCache) else AnalysisCache(cache)
    spec = parse_output(output).name
    key = cache.key(
        model=agent,
        layer=layer,
        output=spec,
        method="integrated_gradients",
        corpus=obs,
        steps=steps,
    )

    def compute():
        return integrated_gradients(agent, obs, layer, spec, steps, **kwargs).to_arrays()

    n = len(obs)

    def expect(arrays: dict, meta: dict) -> None:
        _check_expected(
            arrays,
            meta,
            {
                "attributions": ("f", (n, None, None, None)),
                "activations": ("f", (n, None, None, None)),
                "outputs": ("f", (n,)),
                "baseline_outputs": ("f", (n,)),
                "delta": ("f", (n,)),
            },
        )
        if arrays["attributions"].shape != arrays["activations"].shape:
            raise ValueError("attributions and activations differ in shape")
        if meta.get("layer") != layer or meta.get("output") != spec:
            raise ValueError(f"entry is for layer {meta.get('layer')!r} / {meta.get('output')!r}")
        Attribution.from_arrays(arrays, meta)

    arrays, meta = cache.get_or_compute(key, compute, expect)
    return Attribution.from_arrays(arrays, meta)
