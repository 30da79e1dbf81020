"""Where the large jobs run: one engine option, ``"local"`` (this process) or ``"ray"`` (Ray).

A job is a list of tasks, each a mapping of keyword arguments to one module-level function;
:func:`run_tasks` returns ``fn(**task)`` for every task, in task order, on either engine. Torch
threads are set per task (``threads``, restored afterwards) on both engines, so a job split over
Ray workers gives the results of the same tasks run here one after another. Jobs that split
levels (:func:`rlvision_widgets.rollouts.evaluate.evaluate`, the blindness study) cut their
level list with :func:`split`.

Ray is an optional extra (``pip install 'rlvision_widgets[ray]'``) and is imported only when a
job runs on it: ``address`` joins a running cluster (``"auto"``, ``"host:6379"`` or
``"ray://host:10001"``; every node needs this package installed), otherwise a local Ray is
started with this machine's CPUs and kept for the rest of the process (``ray.shutdown()``
stops it). A Ray that is already initialised in this process is used as it is.

>>> split(list(range(7)), 3)
[[0, 1, 2], [3, 4], [5, 6]]
>>> run_tasks(pow, [{"base": 2, "exp": 10}, {"base": 3, "exp": 2}], progress=False)
[1024, 9]
>>> run_tasks(pow, [{"base": 2, "exp": 10}], engine="ray")             # doctest: +SKIP
[1024]
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "check_engine",
    "run_tasks",
    "split",
    "torch_threads",
    "workers",
]

T = TypeVar("T")

#: the engines a large job can run on
ENGINES = ("local", "ray")

#: seconds a failed Ray job waits for its cancelled tasks to end (a training cell finishes its
#: update and checkpoints on the interrupt; about a minute at one thread)
CANCEL_GRACE_S = 300.0

INSTALL_RAY = "pip install 'rlvision_widgets[ray]'"


class EngineUnavailable(ImportError, ValueError):
    """The engine asked for is not installed here (an ImportError, and a ValueError so that
    the command line reports it as bad input)."""


def check_engine(engine: str, address: str | None = None) -> None:
    """Refuse an unknown engine, an ``address`` without Ray, or Ray when it is not installed,
    with a ValueError that names the fix (before any work; Ray is not imported).

    >>> check_engine("local")
    >>> check_engine("spark")
    Traceback (most recent call last):
    ...
    ValueError: unknown engine 'spark': choose one of local, ray
    >>> check_engine("local", address="auto")
    Traceback (most recent call last):
    ...
    ValueError: address 'auto' joins a Ray cluster: use it with engine 'ray' (--engine ray)
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise ValueError(
                f"address must be a Ray cluster address such as 'auto', 'host:6379' or "
                f"'ray://host:10001', got {address!r}"
            )
        if engine != "ray":
            raise ValueError(
                f"address {address!r} joins a Ray cluster: use it with engine 'ray' (--engine ray)"
            )
    if engine == "ray" and not _ray_installed():
        raise EngineUnavailable(
            f"engine 'ray' needs Ray, which is not installed: {INSTALL_RAY} (or use engine 'local')"
        )


def _ray_installed() -> bool:
    """Whether ``import ray`` can work, without importing it."""
    if "ray" in sys.modules:
        return sys.modules["ray"] is not None
    return importlib.util.find_spec("ray") is not None


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` cut into ``min(parts, len(items))`` contiguous parts, in order, none empty,
    sizes differing by at most one (the first parts are the larger).

    >>> split("abcde", 2)
    [['a', 'b', 'c'], ['d', 'e']]
    >>> split([1, 2], 5)
    [[1], [2]]
    >>> split([], 3)
    []
    """
    if isinstance(parts, (bool, np.bool_)) or not isinstance(parts, (int, np.integer)):
        raise ValueError(f"parts must be an integer >= 1, got {parts!r}")
    if parts < 1:
        raise ValueError(f"parts must be an integer >= 1, got {parts!r}")
    items = list(items)
    k = min(int(parts), len(items))
    if k == 0:
        return []
    size, extra = divmod(len(items), k)
    out, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the old setting is restored.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    _check_threads(threads)
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_threads(threads: Any) -> None:
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise ValueError(
            f"threads must be an integer >= 1 (torch threads per task), got {threads!r}"
        )
    if threads < 1:
        raise ValueError(f"threads must be an integer >= 1 (torch threads per task), got {threads}")


def workers(engine: str = "local", address: str | None = None, threads: int = 1) -> int:
    """How many tasks of ``threads`` torch threads the engine runs at once: 1 locally, the
    Ray cluster's CPUs // ``threads`` on Ray (starting or joining Ray). Jobs split their levels
    into this many parts unless told otherwise.

    >>> workers("local")
    1
    """
    check_engine(engine, address)
    _check_threads(threads)
    if engine == "local":
        return 1
    ray = _ray(address)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // int(threads))


def _ray(address: str | None) -> Any:
    """The ``ray`` module, initialised: joined to ``address``, else a local Ray."""
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailable(f"engine 'ray' needs Ray: {INSTALL_RAY} ({exc})") from exc
    if not ray.is_initialized():
        quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
        if address is not None:
            ray.init(address=address, ignore_reinit_error=True, **quiet)
        else:
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                ignore_reinit_error=True,
                **quiet,
            )
    return ray


def _short(value: Any) -> str:
    """A short description of one task argument (for error messages)."""
    if value is None or isinstance(value, (bool, int, float, np.integer, np.floating)):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, (list, tuple, np.ndarray)):
        n = len(value)
        if n and all(isinstance(v, (int, np.integer)) for v in list(value[:1]) + list(value[-1:])):
            return f"[{n} items {value[0]}..{value[-1]}]"
        return f"[{n} items]"
    return type(value).__name__


def _describe(task: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={_short(v)}" for k, v in task.items())
    return text if len(text) <= 240 else text[:237] + "..."


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a Ray worker, as text (chained as the cause)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _task_error(
    kind: type, message: str, index: int, task: Mapping[str, Any], n: int, desc: str
) -> Exception:
    """An exception of the task's own type (a RuntimeError if that type cannot be built from
    one message) whose message names the task; ``task_message`` keeps the task's own words
    (on either engine)."""
    text = f"{desc}: task {index} of {n} ({_describe(task)}) failed: {message}"
    err: Exception = RuntimeError(text)
    try:
        built = kind(text)
        if isinstance(built, Exception):
            err = built
    except Exception:
        pass
    err.task_message = message  # type: ignore[attr-defined]
    return err


def _call(fn: Callable[..., Any], threads: int, keys: list[str], *values: Any) -> tuple:
    """Run one task in a worker: ``("ok", result)`` or ``("error", type, message, traceback)``."""
    try:
        with torch_threads(threads):
            return ("ok", fn(**dict(zip(keys, values))))
    except Exception as exc:
        return ("error", type(exc), str(exc), traceback.format_exc())


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[Mapping[str, Any]],
    *,
    engine: str = "local",
    address: str | None = None,
    threads: int = 1,
    progress: bool = True,
    desc: str = "tasks",
) -> list:
    """``[fn(**task) for task in tasks]`` on ``engine``, results in task order.

    ``fn`` must be a module-level (importable) function. ``"local"`` runs the tasks one after
    another in this process; ``"ray"`` makes each task a remote call with ``num_cpus=threads``
    (see the module doc for ``address``). Each task runs under
    ``torch.set_num_threads(threads)``. An argument object shared by several tasks (an agent)
    is put into Ray's object store once; arguments and results travel between our processes
    in memory (Ray's serialisation), never through files. A tqdm bar (``desc``) advances as
    tasks finish. An exception in a task is raised here with the task's index and arguments
    in its message, of the task's exception type (its cause: the original, or on Ray the
    worker's traceback); the remaining Ray tasks are cancelled (an interrupt in their worker,
    which a trainer answers by checkpointing) and waited for, up to :data:`CANCEL_GRACE_S`.

    >>> run_tasks(pow, [{"base": 2, "exp": 10}, {"base": 3, "exp": 2}], progress=False)
    [1024, 9]
    >>> run_tasks(pow, [{"base": 2, "exp": 3}, {"base": 0, "exp": -1}], progress=False, desc="demo")
    Traceback (most recent call last):
    ...
    ZeroDivisionError: demo: task 1 of 2 (base=0, exp=-1) failed: 0.0 cannot be raised to a negative power
    """
    check_engine(engine, address)
    _check_threads(threads)
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    tasks = list(tasks)
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise TypeError(
                f"task {i} must be a mapping of keyword arguments, got {type(task).__name__}"
            )
    if not tasks:
        return []
    if engine == "local":
        return _run_local(fn, tasks, int(threads), progress, desc)
    return _run_ray(fn, tasks, address, int(threads), progress, desc)


def _run_local(
    fn: Callable[..., Any], tasks: list[Mapping[str, Any]], threads: int, progress: bool, desc: str
) -> list:
    results = []
    with tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress) as bar:
        for i, task in enumerate(tasks):
            try:
                with torch_threads(threads):
                    results.append(fn(**task))
            except Exception as exc:
                raise _task_error(type(exc), str(exc), i, task, len(tasks), desc) from exc
            bar.update(1)
    return results


def _run_ray(
    fn: Callable[..., Any],
    tasks: list[Mapping[str, Any]],
    address: str | None,
    threads: int,
    progress: bool,
    desc: str,
) -> list:
    ray = _ray(address)
    cpus = ray.cluster_resources().get("CPU", 0)
    if threads > cpus:  # such a task would wait for a worker that never comes
        raise ValueError(
            f"threads={threads} per task is more than the Ray cluster's {cpus:g} CPUs: "
            "lower threads (--threads)"
        )
    remote = ray.remote(_call).options(num_cpus=threads)
    uses: dict[int, int] = {}
    for task in tasks:
        for v in task.values():
            if not isinstance(v, (str, bytes, bool, int, float, type(None))):
                uses[id(v)] = uses.get(id(v), 0) + 1
    shared: dict[int, Any] = {}

    def arg(v: Any) -> Any:
        if uses.get(id(v), 0) < 2:
            return v
        if id(v) not in shared:  # once into the object store, not once per task
            shared[id(v)] = ray.put(v)
        return shared[id(v)]

    refs = [remote.remote(fn, threads, list(t), *[arg(v) for v in t.values()]) for t in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(tasks)
    pending = list(refs)
    with tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the worker died or the result did not come back
                    _cancel(ray, pending)
                    raise RuntimeError(
                        f"{desc}: task {i} of {len(tasks)} ({_describe(tasks[i])}) failed on "
                        f"Ray: {exc}"
                    ) from exc
                if out[0] == "error":
                    _cancel(ray, pending)
                    _, kind, message, tb = out
                    err = _task_error(kind, message, i, tasks[i], len(tasks), desc)
                    raise err from _RemoteTraceback(tb)
                results[i] = out[1]
                bar.update(1)
    return results


def _cancel(ray: Any, refs: list) -> None:
    """Cancel ``refs`` (SIGINT in a running task's worker) and wait for them to end, up to
    :data:`CANCEL_GRACE_S`, so that a task that stops cleanly (a trainer checkpoints) is not
    killed halfway when this process exits."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref)
    if not refs:
        return
    try:
        _, running = ray.wait(list(refs), num_returns=len(refs), timeout=CANCEL_GRACE_S)
    except Exception:  # Ray is gone: nothing left to wait for
        return
    if running:
        warnings.warn(
            f"{len(running)} cancelled Ray task(s) still running after {CANCEL_GRACE_S:g} s; "
            "they are stopped when this process ends, without finishing cleanly",
            RuntimeWarning,
            stacklevel=3,
        )
