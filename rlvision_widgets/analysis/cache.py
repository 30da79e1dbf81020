"""On-disk cache of analysis results: npz arrays + a JSON sidecar, never pickle.

Results are keyed by (model hash, layer, output, method, corpus hash) plus any parameters
(e.g. IG steps, NMF rank). The model hash is the sha256 of the state dict's names, dtypes,
shapes and bytes; the corpus hash is the sha256 of the observation array.

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
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["AnalysisCache", "array_hash", "cached_attribution", "load_arrays", "model_hash",
           "save_arrays"]

FORMAT = "rlvision-analysis-cache"
VERSION = 1


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
        h.update(json.dumps([e.to_dict() if hasattr(e, "to_dict") else repr(e) for e in edits],
                            sort_keys=True).encode())
    return h.hexdigest()


def array_hash(x: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (e.g. a corpus of observations), hex.

    >>> array_hash(np.zeros(3, np.uint8))[:12]
    'ec61eee2026e'
    """
    x = np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(str(x.dtype).encode())
    h.update(str(x.shape).encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``path.npz`` (arrays) and ``path.json`` (metadata) atomically; returns the stem.

    >>> import tempfile, os
    >>> p = save_arrays(os.path.join(tempfile.mkdtemp(), "r"), {"a": np.ones(2)}, {"k": 1})
    >>> load_arrays(p)[1]["k"]
    1
    """
    stem = Path(path)
    if stem.suffix in (".npz", ".json"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; only plain numeric arrays are "
                            "cached (no pickle)")
    fd, tmp = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, stem.with_suffix(".npz"))
    doc = {"format": FORMAT, "version": VERSION, "arrays": sorted(arrays),
           "meta": _jsonable(dict(meta or {}))}
    fd, tmp = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, stem.with_suffix(".json"))
    return stem


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save_arrays` wrote (``allow_pickle=False``): (arrays, meta).

    >>> import tempfile, os
    >>> stem = save_arrays(os.path.join(tempfile.mkdtemp(), "x"), {"a": np.arange(3)})
    >>> load_arrays(stem)[0]["a"].tolist()
    [0, 1, 2]
    """
    stem = Path(path)
    if stem.suffix in (".npz", ".json"):
        stem = stem.with_suffix("")
    jpath, npath = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not jpath.is_file() or not npath.is_file():
        raise FileNotFoundError(f"no cached result at {stem} (need {npath.name} and {jpath.name})")
    doc = json.loads(jpath.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{jpath} is not an rlvision analysis result (format {doc.get('format')!r})")
    with np.load(npath, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    missing = set(doc.get("arrays", [])) - set(arrays)
    if missing:
        raise ValueError(f"{npath} is incomplete: missing arrays {sorted(missing)}")
    return arrays, doc.get("meta", {})


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
    def key(*, model: nn.Module | str, layer: str, output: str, method: str,
            corpus: np.ndarray | str, **params: Any) -> str:
        """Cache key: sha256 over (model hash, layer, output, method, corpus hash, params).

        ``model`` / ``corpus`` may be given as objects or as precomputed hashes.
        """
        parts = {
            "model": model if isinstance(model, str) else model_hash(model),
            "layer": layer, "output": output, "method": method,
            "corpus": corpus if isinstance(corpus, str) else array_hash(corpus),
            "params": _jsonable(params),
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

    def save(self, key: str, arrays: Mapping[str, np.ndarray],
             meta: Mapping[str, Any] | None = None) -> Path:
        """Store arrays + JSON metadata under ``key``."""
        return save_arrays(self.path(key), arrays, meta)

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta) stored under ``key``."""
        return load_arrays(self.path(key))

    def get_or_compute(self, key: str,
                       compute: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
                       ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Load ``key`` if cached, else ``compute()`` -> (arrays, meta), save and return it."""
        if self.has(key):
            try:
                return self.load(key)
            except (ValueError, OSError, KeyError):
                pass  # corrupted entry: recompute and overwrite
        arrays, meta = compute()
        self.save(key, arrays, meta)
        return {k: np.asarray(v) for k, v in arrays.items()}, _jsonable(dict(meta))


def cached_attribution(cache: AnalysisCache | str | os.PathLike, agent: nn.Module, obs: np.ndarray,
                       layer: str, output: str = "value", steps: int = 10, **kwargs: Any):
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
    key = cache.key(model=agent, layer=layer, output=spec, method="integrated_gradients",
                    corpus=obs, steps=steps)

    def compute():
        return integrated_gradients(agent, obs, layer, spec, steps, **kwargs).to_arrays()

    arrays, meta = cache.get_or_compute(key, compute)
    return Attribution.from_arrays(arrays, meta)
