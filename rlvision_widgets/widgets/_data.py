"""The explorer's per-trajectories state: the arrays and the caches computed from them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np


class _Data:
    """One set of trajectories and the caches computed from it (attributions, activations,
    NMF fits). ``load_trajectories`` replaces it, never clears it, so a job holding one sees
    only its own entries; a job keeps references to what it uses, so an entry evicted from a
    cache under a running job stays alive in that job (compute on miss, never a KeyError)."""

    IG_SETS = 3  # (layer, output) attribution sets kept per trajectory

    def __init__(self, arrays: dict[str, np.ndarray], bookmarks: list[dict] | None = None):
        self.arrays = arrays
        self.bookmarks = bookmarks or []  # analysis.bookmarks.bookmark_list of these arrays
        self.ig: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self.acts: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.nmf: dict[tuple[str, int], Any] = {}  # (layer, rank) -> fitted NMF
        # (layer, rank, feature, steps) -> (optimized image, info): the grid's "optimize"
        self.optvis: dict[tuple[str, int, int, int], tuple[np.ndarray, dict]] = {}
        self.lock = threading.RLock()

    @property
    def n_trajectories(self) -> int:
        return int(self.arrays["obs"].shape[0]) if "obs" in self.arrays else 0

    def get_ig(self, key: tuple[str, str, int]) -> np.ndarray | None:
        with self.lock:
            hit = self.ig.get(key)
            if hit is not None:
                self.ig.move_to_end(key)
            return hit

    def put_ig(self, key: tuple[str, str, int], attr: np.ndarray, acts: np.ndarray) -> None:
        with self.lock:
            self.ig[key] = attr
            self.acts[(key[0], key[2])] = acts
            self.acts.move_to_end((key[0], key[2]))
            cap = self.IG_SETS * max(1, self.n_trajectories)
            while len(self.ig) > cap:
                self.ig.popitem(last=False)
            while len(self.acts) > cap:
                self.acts.popitem(last=False)
