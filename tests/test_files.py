"""files.py: atomic writes, strict JSON, npz array pairs (the base layer)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rlvision_widgets.files import (
    atomic_open,
    json_safe,
    load_arrays,
    save_arrays,
    write_json_atomic,
)


def test_json_safe_is_strict_json():
    doc = {"nan": float("nan"), "inf": np.float32("inf"), "n": np.int64(3), "t": (1, 2)}
    text = json.dumps(json_safe(doc), allow_nan=False)
    assert json.loads(text) == {"nan": None, "inf": None, "n": 3, "t": [1, 2]}


def test_atomic_open_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary left behind


def test_write_json_atomic_refuses_nothing_valid(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"a": [np.float64("nan")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [None]}


@pytest.mark.parametrize(
    "damage",
    [
        lambda stem: stem.with_suffix(".json").write_text("[1, 2]"),
        lambda stem: stem.with_suffix(".json").write_text("{not json"),
        lambda stem: stem.with_suffix(".npz").write_bytes(b""),
        lambda stem: stem.with_suffix(".npz").write_bytes(
            stem.with_suffix(".npz").read_bytes()[:40]
        ),
        lambda stem: np.save(open(stem.with_suffix(".npz"), "wb"), np.zeros(3)),
    ],
    ids=["list-json", "bad-json", "empty-npz", "truncated-npz", "single-array"],
)
def test_damaged_array_pairs_raise_value_error(tmp_path, damage):
    stem = save_arrays(tmp_path / "r", {"a": np.arange(4)}, {"k": 1})
    damage(stem)
    with pytest.raises(ValueError, match=r"r\.(npz|json)"):
        load_arrays(stem)


def test_object_arrays_are_never_saved(tmp_path):
    with pytest.raises(TypeError, match="no pickle"):
        save_arrays(tmp_path / "o", {"a": np.array([{}], dtype=object)})
