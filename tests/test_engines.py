"""engines.py: one engine option for the large jobs, local or Ray, with the same results.

Tests that need Ray share one small local Ray (2 CPUs), started once for this module."""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pytest
import torch

from rlvision_widgets import engines
from rlvision_widgets.engines import (
    ENGINES,
    EngineUnavailable,
    check_engine,
    run_tasks,
    split,
    torch_threads,
)


# -- task functions (module level: Ray workers get them by value, see the fixture) -------------
def threads_and_value(value, delay=0.0):
    time.sleep(delay)
    return torch.get_num_threads(), value


def fail_on(value, bad):
    if value == bad:
        raise KeyError(f"no such thing as {value}")
    return value


def stop_like_a_trainer(role, folder, finish_s=1.0, run_s=60.0):
    """``"fail"`` raises once the other task is ready; ``"train"`` answers SIGINT (Ray's
    cancel) as the PPO trainer does: it finishes its "update" (``finish_s``), then writes its
    "checkpoint" file. ``finish_s=None``: it ignores the interrupt and runs for ``run_s``."""
    import signal
    from pathlib import Path

    folder = Path(folder)
    if role == "fail":
        t0 = time.monotonic()
        while not (folder / "ready").exists() and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        raise RuntimeError("this cell stopped")
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    (folder / "ready").write_text("")
    t0 = time.monotonic()
    while time.monotonic() - t0 < run_s and (finish_s is None or not stop):
        time.sleep(0.05)
    if stop and finish_s is not None:
        time.sleep(finish_s)
        (folder / "checkpoint").write_text("")
    return role


# -- split -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 33])
@pytest.mark.parametrize("parts", [1, 2, 3, 8, 50])
def test_split_is_contiguous_ordered_balanced_and_never_empty(n, parts):
    items = [f"x{i}" for i in range(n)]
    out = split(items, parts)
    assert [x for part in out for x in part] == items  # contiguous, in order, nothing lost
    assert len(out) == min(n, parts)
    assert all(part for part in out)
    if out:
        sizes = [len(p) for p in out]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("parts", [0, -1, 2.5, True, "2"])
def test_split_refuses_a_bad_number_of_parts(parts):
    with pytest.raises(ValueError, match="parts must be an integer >= 1"):
        split([1, 2, 3], parts)


# -- check_engine ------------------------------------------------------------------------------
def test_check_engine_names_the_fix():
    assert ENGINES == ("local", "ray")
    check_engine("local")
    with pytest.raises(ValueError, match="unknown engine 'dask': choose one of local, ray"):
        check_engine("dask")
    with pytest.raises(ValueError, match="use it with engine 'ray'"):
        check_engine("local", address="auto")
    with pytest.raises(ValueError, match="Ray cluster address"):
        check_engine("ray", address=" ")


def test_missing_ray_is_an_import_error_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    for call in (
        lambda: check_engine("ray"),
        lambda: run_tasks(threads_and_value, [{"value": 1}], engine="ray", progress=False),
        lambda: engines.workers("ray"),
    ):
        with pytest.raises(ImportError, match=r"pip install 'rlvision_widgets\[ray\]'") as info:
            call()
        assert isinstance(info.value, ValueError)  # the command line reports it as bad input
        assert isinstance(info.value, EngineUnavailable)


def test_ray_is_not_imported_by_the_package():
    import subprocess

    code = (
        "import sys, rlvision_widgets, rlvision_widgets.engines, rlvision_widgets.cli, "
        "rlvision_widgets.rollouts.evaluate, rlvision_widgets.studies.blindness; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# -- run_tasks, local --------------------------------------------------------------------------
def test_local_tasks_run_in_order_with_their_threads_which_are_restored():
    before = torch.get_num_threads()
    tasks = [{"value": v} for v in "abc"]
    out = run_tasks(threads_and_value, tasks, threads=1, progress=False)
    assert out == [(1, "a"), (1, "b"), (1, "c")]
    if before > 1:  # only observable where torch has more than one thread
        out = run_tasks(threads_and_value, tasks[:1], threads=2, progress=False)
        assert out == [(2, "a")]
    assert torch.get_num_threads() == before
    assert run_tasks(threads_and_value, [], progress=False) == []


def test_local_task_errors_name_the_task_and_keep_their_type():
    before = torch.get_num_threads()
    tasks = [{"value": v, "bad": 2} for v in range(4)]
    with pytest.raises(KeyError) as info:
        run_tasks(fail_on, tasks, progress=False, desc="demo", threads=1)
    text = str(info.value)
    assert "demo: task 2 of 4 (value=2, bad=2) failed" in text and "no such thing as 2" in text
    assert isinstance(info.value.__cause__, KeyError)  # the original, chained
    assert torch.get_num_threads() == before  # restored after a failure too


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(engine="spark"), ValueError, "unknown engine"),
        (dict(threads=0), ValueError, "threads must be an integer >= 1"),
        (dict(address="auto"), ValueError, "use it with engine 'ray'"),
    ],
)
def test_run_tasks_refuses_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        run_tasks(threads_and_value, [{"value": 1}], progress=False, **kwargs)
    with pytest.raises(TypeError, match="task 0 must be a mapping"):
        run_tasks(threads_and_value, [(1,)], progress=False)


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


# -- Ray ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pickler = pytest.importorskip("ray.cloudpickle")
    pickler.register_pickle_by_value(sys.modules[__name__])  # tests/ is not a package
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
    pickler.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_tasks_return_in_task_order_with_their_threads(ray_cluster):
    # the first task finishes last: results still come back in task order
    tasks = [{"value": "slow", "delay": 1.5}, {"value": "fast"}, {"value": "fast2"}]
    out = run_tasks(threads_and_value, tasks, engine="ray", threads=1, progress=False)
    assert out == [(1, "slow"), (1, "fast"), (1, "fast2")]
    assert run_tasks(threads_and_value, tasks[1:2], engine="ray", threads=2, progress=False) == [
        (2, "fast")
    ]
    assert engines.workers("ray", threads=1) == 2 and engines.workers("ray", threads=2) == 1
    with pytest.raises(ValueError, match="more than the Ray cluster's 2 CPUs"):
        run_tasks(threads_and_value, tasks, engine="ray", threads=3, progress=False)


def test_ray_task_errors_name_the_task_and_carry_the_worker_traceback(ray_cluster):
    tasks = [{"value": v, "bad": 1} for v in range(3)]
    with pytest.raises(KeyError) as info:
        run_tasks(fail_on, tasks, engine="ray", progress=False, desc="demo")
    assert "demo: task 1 of 3 (value=1, bad=1) failed" in str(info.value)
    assert "no such thing as 1" in str(info.value)
    assert "in fail_on" in str(info.value.__cause__)  # the worker's traceback, as text


def test_a_failed_ray_job_lets_its_cancelled_tasks_finish_cleanly(
    ray_cluster, tmp_path, monkeypatch
):
    # a stopped sweep cell must not take the other cell's last update with it
    tasks = [{"role": "train", "folder": str(tmp_path)}, {"role": "fail", "folder": str(tmp_path)}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every cancelled task ended within the grace
        with pytest.raises(RuntimeError, match="this cell stopped"):
            run_tasks(stop_like_a_trainer, tasks, engine="ray", threads=1, progress=False)
    assert (tmp_path / "checkpoint").exists()  # the interrupted task checkpointed before the raise
    # a task that ignores the interrupt is waited for CANCEL_GRACE_S, not for ever
    (tmp_path / "ready").unlink()
    monkeypatch.setattr(engines, "CANCEL_GRACE_S", 2.0)
    tasks[0].update(finish_s=None, run_s=20.0)
    t0 = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="this cell stopped"),
        pytest.warns(RuntimeWarning, match="1 cancelled Ray task"),
    ):
        run_tasks(stop_like_a_trainer, tasks, engine="ray", threads=1, progress=False)
    assert time.monotonic() - t0 < 15
    assert run_tasks(threads_and_value, [{"value": 1}], engine="ray", progress=False) == [(1, 1)]


def test_evaluate_on_ray_is_identical_to_the_local_run(ray_cluster):
    """Shipped agent by name, an edited agent through the object store, a list with repeats."""
    from rlvision_widgets.agents.editing import Edit, apply_edit
    from rlvision_widgets.agents.registry import load_agent
    from rlvision_widgets.rollouts.evaluate import evaluate

    levels = [5, 9, 5, 12, 9, 5, 30, 31]
    kw = dict(levels=levels, seed=3, num_envs=3, progress=False)
    edited = apply_edit(load_agent("coinrun"), Edit("2b", np.eye(32)[[4, 11]], mode="activation"))
    local = {}
    for name, agent in (("coinrun", "coinrun"), ("edited", edited)):
        local[name] = evaluate(agent, threads=1, **kw)
        on_ray = evaluate(agent, engine="ray", threads=1, **kw)  # 2 parts: one per worker
        assert on_ray.outcomes == local[name].outcomes
        assert np.array_equal(on_ray.lengths, local[name].lengths)
        assert np.array_equal(on_ray.level_seeds, local[name].level_seeds)
        assert on_ray.settings == local[name].settings
        assert len(set(local[name].lengths.tolist())) > 1  # the episodes really differ
    assert not np.array_equal(local["edited"].lengths, local["coinrun"].lengths)  # edit applied
    many = evaluate("coinrun", engine="ray", parts=5, **kw)
    assert many.outcomes == local["coinrun"].outcomes
    assert np.array_equal(many.lengths, local["coinrun"].lengths)
    with pytest.raises(ValueError, match="unknown agent"):  # refused here, before any task
        evaluate("no/such/agent", engine="ray", **kw)


def _without_timing(doc):
    """A sweep's results.json without what depends on the machine (timings)."""
    doc = dict(doc)
    doc["cells"] = [{k: v for k, v in c.items() if k != "timing"} for c in doc["cells"]]
    return doc


def test_tiny_sweep_gives_the_same_results_from_the_cli_locally_and_on_ray(ray_cluster, tmp_path):
    """`rlvision sweep` (local engine) and run_sweep on Ray train, evaluate and score the same
    agents: results.json agrees exactly but for timings; a second CLI run resumes from the
    folder's sweep.json and skips the done cells."""
    import json

    from rlvision_widgets.cli import main
    from rlvision_widgets.studies.sweep import SweepConfig, run_sweep

    tiny = SweepConfig.smoke()
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny.to_json()))
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    published = tmp_path / "published"
    assert main(["sweep", str(local), "--config", str(config), "--publish", str(published)]) == 0
    run_sweep(tiny, on_ray, engine="ray", threads=1, progress=False)
    a = json.loads((local / "results.json").read_text())
    b = json.loads((on_ray / "results.json").read_text())
    assert len(a["cells"]) == 2 and _without_timing(a) == _without_timing(b)
    assert (local / "success.png").stat().st_size > 0
    assert json.loads((published / "results.json").read_text()) == a
    assert len(list((published / "agents").glob("*/model.safetensors"))) == 2
    done = {p: p.stat().st_mtime_ns for p in local.glob("*/result.json")}
    assert main(["sweep", str(local)]) == 0  # settings from local/sweep.json
    assert {p: p.stat().st_mtime_ns for p in local.glob("*/result.json")} == done
