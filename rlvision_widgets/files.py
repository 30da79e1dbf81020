"""Files, the one way: atomic writes, strict JSON, npz array pairs, hashes.

The base of every layer (it imports nothing from the package). Everything here writes through a
temporary file in the destination folder and ``os.replace``, so a reader never sees a
half-written file, and nothing is ever pickled.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> write_json_atomic(os.path.join(d, "a.json"), {"x": float("nan"), "n": np.int64(3)})
>>> open(os.path.join(d, "a.json")).read().replace(" ", "").replace("\\n", "")
'{"n":3,"x":null}'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "ARRAYS_FORMAT",
    "array_hash",
    "atomic_open",
    "copy_file_atomic",
    "json_safe",
    "load_arrays",
    "save_arrays",
    "sha256_file",
    "write_json_atomic",
    "write_text_atomic",
]

ARRAYS_FORMAT = "rlvision-analysis-cache"  # the sidecar format name of save_arrays (unchanged)
ARRAYS_VERSION = 1


def json_safe(x: Any) -> Any:
    """``x`` as strict JSON: numpy scalars and arrays to Python, non-finite floats to ``None``,
    tuples to lists, mapping keys to strings (recursively).

    >>> json_safe({"a": np.float32(1.5), "b": [float("inf"), np.bool_(True)], 3: (1, 2)})
    {'a': 1.5, 'b': [None, True], '3': [1, 2]}
    """
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``
    (``os.replace``), on any error it is removed and ``path`` is untouched.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with atomic_open(p, "w") as f:
    ...     _ = f.write("hello")
    >>> open(p).read()
    'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path.

    >>> import tempfile, os
    >>> write_text_atomic(os.path.join(tempfile.mkdtemp(), "a.txt"), "hi").read_text()
    'hi'
    """
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike, *, fsync: bool = True) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (a reader never sees half a file); returns
    ``dst``.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> copy_file_atomic(write_text_atomic(os.path.join(d, "a"), "hi"), os.path.join(d, "b")).read_text()
    'hi'
    """
    with open(src, "rb") as fin, atomic_open(dst, "wb", fsync=fsync) as fout:
        shutil.copyfileobj(fin, fout)
    return Path(dst)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON (:func:`json_safe`) to ``path`` atomically, fsynced.

    >>> import tempfile, os, json
    >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_json_atomic(p, {"steps": np.int64(5)}); json.load(open(p))
    {'steps': 5}
    """
    with atomic_open(path, "w", fsync=True) as f:
        json.dump(json_safe(obj), f, indent=indent, sort_keys=True, allow_nan=False)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, hex.

    >>> import tempfile, os
    >>> sha256_file(write_text_atomic(os.path.join(tempfile.mkdtemp(), "e"), ""))[:12]
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
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


def _stem(path: str | os.PathLike) -> Path:
    stem = Path(path)
    return stem.with_suffix("") if stem.suffix in (".npz", ".json") else stem


def save_arrays(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``path.npz`` (arrays) and ``path.json`` (metadata) atomically; returns the stem.

    >>> import tempfile, os
    >>> p = save_arrays(os.path.join(tempfile.mkdtemp(), "r"), {"a": np.ones(2)}, {"k": 1})
    >>> load_arrays(p)[1]["k"]
    1
    """
    stem = _stem(path)
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(
                f"array {name!r} has dtype object; only plain numeric arrays are saved (no pickle)"
            )
    with atomic_open(stem.with_suffix(".npz"), "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    doc = {
        "format": ARRAYS_FORMAT,
        "version": ARRAYS_VERSION,
        "arrays": sorted(arrays),
        "meta": json_safe(dict(meta or {})),
    }
    with atomic_open(stem.with_suffix(".json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    return stem


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save_arrays` wrote (``allow_pickle=False``): (arrays, meta). The one
    strict reader: the sidecar must be this format, its ``arrays`` exactly the archive's names,
    every array numeric; any defect is a ``ValueError`` naming the file (a missing pair is a
    ``FileNotFoundError``).

    >>> import tempfile, os
    >>> stem = save_arrays(os.path.join(tempfile.mkdtemp(), "x"), {"a": np.arange(3)})
    >>> load_arrays(stem)[0]["a"].tolist()
    [0, 1, 2]
    """
    stem = _stem(path)
    jpath, npath = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not jpath.is_file() or not npath.is_file():
        raise FileNotFoundError(f"no saved arrays at {stem} (need {npath.name} and {jpath.name})")
    try:
        doc = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(
            f"{jpath} is not readable JSON ({e}); delete the pair and recompute"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != ARRAYS_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{jpath} is not an rlvision array file (format {found!r})")
    names, meta = doc.get("arrays", []), doc.get("meta", {})
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{jpath} is malformed: 'arrays' must be a list of names")
    if not isinstance(meta, dict):
        raise ValueError(f"{jpath} is malformed: 'meta' must be an object")
    try:
        with np.load(npath, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError(f"{npath} holds a single array, not an npz archive")
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # OSError, zipfile/zlib errors, truncated members: a damaged file
        raise ValueError(
            f"{npath} is damaged ({type(e).__name__}: {e}); delete the pair and recompute"
        ) from None
    if sorted(arrays) != sorted(names):
        raise ValueError(
            f"{npath} holds arrays {sorted(arrays)}, its sidecar {jpath.name} lists {sorted(names)}"
        )
    for k, a in arrays.items():
        if a.dtype.hasobject or a.dtype.kind not in "biufc":
            raise ValueError(f"{npath}: array {k!r} has dtype {a.dtype}, not numeric")
    return arrays, meta
