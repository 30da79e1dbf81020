"""The explorer's worker: failed jobs, newest-request-wins under rapid changes, caches that a
running job does not depend on, ``wait`` with a timeout, and ``close``/interpreter exit that
stop and join the thread (issue 14, items 3, 4 and 8). Small data: a random-weight compact
network on 2 x 8 random frames."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from rlvision_widgets.widgets import Explorer
from rlvision_widgets.widgets import _engine as eng
from rlvision_widgets.widgets import explorer as xm
from rlvision_widgets.widgets.controls import output_label

E, T = 2, 8


def _traj(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.integers(0, 255, (E, T, 64, 64, 3), dtype=np.uint8),
        "rewards": np.zeros((E, T), np.float32),
        "firsts": np.zeros((E, T), bool),
    }


def _agent():
    import torch

    from rlvision_widgets.agents import build_network

    torch.manual_seed(0)
    return build_network("compact").eval()


def _explorer(background: bool, **kw) -> Explorer:
    kw.setdefault("rank", 3)
    return Explorer(
        _agent(), _traj(), background=background, suggest_labels=False, ig_steps=4, **kw
    )


def _shows_controls(ex: Explorer) -> None:
    """The display (attribution layer, feature count, status summary, cached analysis)
    matches the controls."""
    assert ex.error == "" and not ex.busy
    assert ex.attr_layer == ex.layer
    assert ex.n_features == ex.rank == len(ex.feature_labels)
    assert ex.attributions.shape[-1] == ex.rank + 1
    assert ex.status.startswith(f"{ex.rank} features at {ex.layer} · {output_label(ex.output)}")
    cur = ex._current
    assert (cur["layer"], cur["output"], cur["rank"]) == (ex.layer, ex.output, ex.rank)
    assert cur["features"].shape[-1] == ex.rank and cur["directions"].shape[0] == ex.rank


def _fail_once(monkeypatch, message: str = "boom") -> list[int]:
    calls: list[int] = []
    real = eng.reduce

    def reduce(nmf, attr):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(message)
        return real(nmf, attr)

    monkeypatch.setattr(eng, "reduce", reduce)
    return calls


# ----------------------------------------------------------------- item 3: failed jobs
def test_sync_failed_job_is_reported_and_the_worker_stays_ready(monkeypatch):
    ex = _explorer(background=False)
    try:
        _shows_controls(ex)
        _fail_once(monkeypatch, "reduce exploded")
        with pytest.raises(RuntimeError, match="reduce exploded"):
            ex.rank = 2  # synchronously, the caller gets the exception ...
        # ... and the widget shows it, with the worker ready again
        assert ex.error == "analysis failed: RuntimeError: reduce exploded"
        assert ex.status == ex.error and ex.busy is False
        assert ex._worker._running is None
        assert ex.wait(timeout=5) is True
        ex.rank = 4  # later changes are analysed
        _shows_controls(ex)
        ex.layer = "1a"
        _shows_controls(ex)
        assert ex.wait() is True
    finally:
        ex.close()


def test_background_failed_job_is_reported_and_later_changes_analysed(monkeypatch):
    ex = _explorer(background=True, prefetch=False)
    try:
        assert ex.wait(timeout=120)
        _shows_controls(ex)
        _fail_once(monkeypatch, "background boom")
        ex.rank = 2
        assert ex.wait(timeout=120) is True
        assert ex.error == "analysis failed: RuntimeError: background boom"
        assert ex.status == ex.error and ex.n_features == 3  # the display kept the old one
        ex.rank = 4
        assert ex.wait(timeout=120) is True
        _shows_controls(ex)
    finally:
        ex.close()


def test_wait_times_out_while_a_job_runs_and_returns_after():
    ex = _explorer(background=True, prefetch=False)
    release = threading.Event()

    def slow(report):
        while not release.wait(0.02):
            report(0.5, "waiting")

    try:
        assert ex.wait(timeout=120)
        ex._worker.submit("grid", slow)
        t0 = time.monotonic()
        assert ex.wait(timeout=0.3) is False
        assert time.monotonic() - t0 < 5
        release.set()
        assert ex.wait(timeout=30) is True
    finally:
        release.set()
        ex.close()


# ------------------------------------------------------- item 4: caches, newest wins
def _reference_features(layer: str, output: str, rank: int) -> np.ndarray:
    ex = _explorer(background=False, layer=layer, output=output, rank=rank)
    try:
        return ex.features()[0]
    finally:
        ex.close()


def test_analysis_survives_cache_eviction_under_the_running_job(monkeypatch):
    """The issue's KeyError: every cache entry evicted while the analysis runs (inside each
    reduction); the job still finishes with the same features as without eviction."""
    want = _reference_features("3a", "logit:7", 3)
    ex = _explorer(background=False)
    real = eng.reduce

    def evicting_reduce(nmf, attr):
        ex._ig.clear()
        ex._acts.clear()
        return real(nmf, attr)

    try:
        monkeypatch.setattr(eng, "reduce", evicting_reduce)
        with ex.hold_trait_notifications():
            ex.layer, ex.output = "3a", "logit:7"
        _shows_controls(ex)
        np.testing.assert_allclose(ex.features()[0], want, rtol=1e-5, atol=1e-6)
    finally:
        ex.close()


def test_analysis_when_its_own_cache_entry_is_evicted():
    """The issue's ``KeyError: ('3a', 'value', 0)``: layer 3a was fitted before (its NMF is
    cached, so no refit recomputes attributions); trajectory 0's value attribution there is
    the oldest entry of a full cache, trajectory 1's is missing; computing the missing one
    evicts the cached one while the job still needs it."""
    ref = _explorer(background=False)
    try:
        ref.layer, ref.rank = "3a", 2
        ref.rank = 3
        want = ref.features()[0]
    finally:
        ref.close()
    ex = _explorer(background=False)
    try:
        ex.layer, ex.rank = "3a", 2  # fits the NMF of 3a
        ex.layer = "2b"
        ex._ig.clear()
        for key in [
            ("3a", "value", 0),
            ("2b", "logit:7", 0),
            ("2b", "logit:7", 1),
            ("1a", "value", 0),
            ("1a", "value", 1),
            ("2b", "value", 0),
        ]:
            ex._ig_traj(*key)
        assert len(ex._ig) == 3 * E and next(iter(ex._ig)) == ("3a", "value", 0)
        with ex.hold_trait_notifications():
            ex.layer, ex.rank = "3a", 3
        _shows_controls(ex)
        np.testing.assert_allclose(ex.features()[0], want, rtol=1e-5, atol=1e-6)
    finally:
        ex.close()


def test_analysis_without_any_cache_capacity(monkeypatch):
    """With caches that keep nothing, every job computes on a miss: same result."""
    want = _reference_features("2a", "value", 2)
    monkeypatch.setattr(xm._Data, "IG_SETS", 0)
    ex = _explorer(background=False, layer="2a", rank=2)
    try:
        assert len(ex._ig) == 0
        _shows_controls(ex)
        np.testing.assert_allclose(ex.features()[0], want, rtol=1e-5, atol=1e-6)
    finally:
        ex.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rapid_changes_end_with_the_display_matching_the_controls(seed):
    """Many rapid layer/output/rank changes while the background worker analyses (and
    prefetches): once it is done, what is shown is what the controls say, without error."""
    rng = np.random.default_rng(seed)
    outputs = ["value", "logit:7", "logprob:0", "group:right"]
    ex = _explorer(background=True, prefetch=True)
    try:
        for _ in range(30):
            what = rng.integers(3)
            if what == 0:
                ex.layer = str(rng.choice(ex.layers))
            elif what == 1:
                ex.output = str(rng.choice(outputs))
            else:
                ex.rank = int(rng.integers(1, ex.rank_max + 1))
            time.sleep(float(rng.uniform(0, 0.05)))
        assert ex.wait(timeout=300) is True
        _shows_controls(ex)
        f, r = ex.features()
        assert f.shape == (E, T, *f.shape[2:4], ex.rank) and r.shape == f.shape[:-1]
    finally:
        ex.close()


# ------------------------------------------------------------- item 8: close and exit
def test_close_stops_and_joins_the_worker():
    ex = _explorer(background=True, prefetch=True)
    stopped, started = threading.Event(), threading.Event()

    def endless(report):
        started.set()
        try:
            while True:
                report(0.5, "working")
                time.sleep(0.01)
        finally:
            stopped.set()

    ex._worker.submit("rerun", endless)
    assert started.wait(120), "the job never started"  # after the first analysis
    thread = ex._worker._thread
    assert thread is not None and thread.is_alive()
    t0 = time.monotonic()
    ex.close()
    assert time.monotonic() - t0 < 60
    assert stopped.is_set() and not thread.is_alive()
    ran: list[int] = []
    ex._worker.submit("grid", lambda report: ran.append(1))  # closed: nothing runs
    assert ex.wait(timeout=1) is True and ran == []
    assert ex not in xm._LIVE


_EXIT_SCRIPT = textwrap.dedent(
    """
    import numpy as np, torch
    from rlvision_widgets.agents import build_network
    from rlvision_widgets.widgets import Explorer
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    traj = {"obs": rng.integers(0, 255, (2, 16, 64, 64, 3), dtype=np.uint8),
            "rewards": np.zeros((2, 16), np.float32), "firsts": np.zeros((2, 16), bool)}
    ex = Explorer(build_network("compact").eval(), traj, rank=3, background=True,
                  prefetch=True, suggest_labels=False)
    ex.layer = "1a"  # work under way (analysis, then prefetch) as the script ends
    print("running" if ex._worker._thread.is_alive() else "idle", flush=True)
    """
)


def test_exit_during_background_work_is_clean():
    """Leaving the interpreter while the worker runs used to abort (exit 134, "terminate
    called without an active exception"); the atexit hook stops and joins it."""
    for _ in range(2):
        p = subprocess.run(
            [sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 0, p.stderr[-2000:]
        assert "terminate called" not in p.stderr
        assert p.stdout.strip() == "running"
