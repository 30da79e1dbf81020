"""The explorer's scheduler: one background thread (or synchronous), newest request per job
key, priorities, cancellation at the next progress report, and a clean interpreter exit.

>>> class Owner:  # anything with hold_sync() and the status traits
...     busy, error, status, progress = False, "", "", 0.0
...     def hold_sync(self):
...         import contextlib
...         return contextlib.nullcontext()
>>> w = _Worker(Owner(), background=False)
>>> ran = []
>>> w.submit("grid", lambda report: ran.append(1))
>>> ran
[1]
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rlvision_widgets.widgets.explorer")


class _Superseded(Exception):
    """A newer request replaced the running job, or the worker was closed."""


class _Worker:
    """Runs analysis jobs one at a time, newest request per key, in priority order; in a
    background thread (keeps the kernel responsive) or synchronously.

    A job ``fn(report)`` calls ``report(fraction, message)`` between its steps; ``report``
    raises :class:`_Superseded` when a newer request of the same key arrived or the worker is
    closing, so a job stops at its next step and never publishes a stale result. A failed job
    is shown in the ``error``/``status`` traits and leaves the worker ready for the next one
    (synchronously its exception also reaches the caller, after the other pending jobs ran).
    """

    ORDER = ("collect", "analysis", "edit", "grid", "optvis", "rerun", "prefetch")

    def __init__(self, owner: Any, background: bool):
        self.owner = owner
        self.background = background
        self._cv = threading.Condition()
        self._pending: dict[str, tuple[int, Callable]] = {}
        self._gen: dict[str, int] = {}
        self._running: str | None = None
        self._thread: threading.Thread | None = None
        self._last_report = 0.0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, key: str, fn: Callable[[Callable[[float, str], None]], None]) -> None:
        with self._cv:
            if self._closed:
                return
            gen = self._gen.get(key, 0) + 1
            self._gen[key] = gen
            self._pending[key] = (gen, fn)
            if self.background:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._loop, daemon=True, name="rlvision-explorer"
                    )
                    self._thread.start()
                self._cv.notify_all()
            run_now = not self.background and self._running is None
        if run_now:
            self._drain()

    def _take(self) -> tuple[str, int, Callable] | None:
        for key in self.ORDER:
            if key in self._pending:
                gen, fn = self._pending.pop(key)
                return key, gen, fn
        return None

    def _next(self) -> tuple[str, int, Callable] | None:
        with self._cv:
            job = None if self._closed else self._take()
            self._running = None if job is None else job[0]
            if job is None:
                self._cv.notify_all()
            return job

    def _drain(self) -> None:
        """Run the pending jobs here (synchronous mode); re-raise the first failure at the end,
        with the worker ready again."""
        failed: BaseException | None = None
        try:
            while (job := self._next()) is not None:
                exc = self._run(*job)
                failed = failed or exc
        finally:
            with self._cv:
                self._running = None
                self._cv.notify_all()
        if failed is not None:
            raise failed

    def _loop(self) -> None:
        while True:
            with self._cv:
                job = self._next()
                while job is None and not self._closed:
                    self._cv.wait(timeout=1.0)
                    job = self._next()
                if job is None:  # closed
                    return
            self._run(*job)

    def _run(self, key: str, gen: int, fn: Callable) -> Exception | None:
        owner = self.owner
        quiet = key == "prefetch"

        def report(frac: float, msg: str = "") -> None:
            if self._closed or self._gen.get(key) != gen or (quiet and self._pending):
                raise _Superseded
            if quiet:
                return
            now = time.monotonic()
            if now - self._last_report >= 0.1 or frac >= 1.0:
                self._last_report = now
                if owner._on_progress is not None:
                    owner._on_progress(
                        float(min(1.0, max(0.0, frac))), f"{key}: {msg}" if msg else ""
                    )
                with owner.hold_sync():
                    owner.progress = float(min(1.0, max(0.0, frac)))
                    if msg:
                        owner.status = msg

        if not quiet:
            owner.busy = True
            owner.error = ""
        failed: Exception | None = None
        try:
            fn(report)
        except _Superseded:
            pass
        except Exception as exc:  # shown in the widget, logged with traceback
            failed = exc
            msg = f"{key} failed: {type(exc).__name__}: {exc}"
            log.error("rlvision explorer job %r failed", key, exc_info=True)
            if self.background:
                traceback.print_exc(file=sys.stderr)
            with owner.hold_sync():
                owner.error = msg
                owner.status = msg
        finally:
            with self._cv:
                idle = not (set(self._pending) - {"prefetch"})
            if idle and not quiet:
                with owner.hold_sync():
                    owner.busy = False
                    owner.progress = 1.0
        return failed

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or running (prefetch aside); False on timeout, or
        when called from inside a job (which would wait for itself)."""
        if not self.background:
            with self._cv:
                if self._running is not None:
                    return False  # called from a job: it cannot finish while we wait
                run = bool(self._pending) and not self._closed
            if run:
                self._drain()
            return True
        if self._thread is threading.current_thread():
            return False
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._closed and (
                {k for k in self._pending if k != "prefetch"}
                or self._running not in (None, "prefetch")
            ):
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(timeout=0.2 if left is None else min(0.2, left))
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Cancel pending work, stop the running job at its next step and join the thread;
        False when it is still running after ``timeout`` seconds."""
        with self._cv:
            self._closed = True
            self._pending.clear()
            self._cv.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()  # live explorers, closed at exit


@atexit.register
def _close_live_explorers() -> None:
    """At interpreter exit, stop and join every explorer's worker before torch and the
    interpreter tear down (a thread left inside torch aborts the process)."""
    live = list(_LIVE)
    for ex in live:  # cancel all first, then join: the jobs stop in parallel
        worker = getattr(ex, "_worker", None)
        if worker is not None:
            with worker._cv:
                worker._closed = True
                worker._pending.clear()
                worker._cv.notify_all()
    for ex in live:
        try:
            ex.close(timeout=120.0)
        except Exception:  # never fail the exit
            log.debug("closing an explorer at exit failed", exc_info=True)


def _in_kernel() -> bool:
    from IPython import get_ipython  # ipywidgets' dependency

    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None
