"""The command line: bad input ends in one clear line and exit code 2, never a traceback;
results are written before anything that can fail after them; ``explore`` stops its server."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvision_widgets import cli
from rlvision_widgets.cli import main


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``rlvision argv`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explore", "--port", "70000"], "argument --port: must be an integer in 1..65535"),
        (["explore", "--port", "http"], "argument --port: expected an integer"),
        (["train", "x", "--threads", "-1"], "argument --threads: must be an integer >= 0"),
        (["train", "x", "--device", "nonsense"], "argument --device: expected 'auto', 'cpu'"),
        (["train", "x", "--lr", "nan"], "argument --lr: must be a finite number > 0"),
        (["train", "x", "--steps", "0"], "argument --steps: must be an integer >= 1"),
        (["evaluate", "--threads", "-1"], "argument --threads: must be an integer >= 0"),
        (["evaluate", "--levels", "0"], "argument --levels: must be an integer >= 1"),
        (["evaluate", "--seed", "-3"], "argument --seed: must be an integer in 0..2147483647"),
        (["evaluate", "--rank", "2.7"], "argument --rank: expected an integer, got '2.7'"),
        (["evaluate", "--rank", "0"], "argument --rank: must be an integer >= 1"),
        (["evaluate", "--edit-strength", "1.5"], "argument --edit-strength: must be a finite"),
        (["evaluate", "--engine", "spark"], "argument --engine: invalid choice: 'spark'"),
        (["evaluate", "--parts", "0"], "argument --parts: must be an integer >= 1"),
        (["export", "--rank", "-5"], "argument --rank: must be an integer in 1..16"),
        (["export", "--rank", "1000"], "argument --rank: must be an integer in 1..16"),
        (["export", "--rank", "2.7"], "argument --rank: expected an integer"),
        (["export", "--num-envs", "0"], "argument --num-envs: must be an integer >= 1"),
    ],
)
def test_bad_options_are_refused_when_parsed(argv, message, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert f"rlvision {argv[0]}: error: {message}" in err
    assert "Traceback" not in err


def _bad_runtime_inputs(tmp):
    not_a_folder = tmp / "file.txt"
    not_a_folder.write_text("x")
    (tmp / "folder").mkdir()
    return [
        (["evaluate", "--agent", "random", "--edit", "saw", "--levels", "2"], "has no layers"),
        (["export", str(tmp / "a.html"), "--agent", "random"], "has no layers"),
        (["export", str(tmp / "folder")], "is a folder; give a file path"),
        (["export", str(tmp / "b.html"), "--layer", "nope"], "unknown layer 'nope'"),
        (["evaluate", "--csv", str(tmp / "folder")], "--csv " + str(tmp / "folder")),
        (["evaluate", "--csv", str(not_a_folder / "x.csv")], "is not a folder"),
        (["evaluate", "--chart", "/sys/rlvision-chart.png"], "cannot be written"),
        (["evaluate", "--agent", "no-such-agent", "--levels", "1"], "unknown agent"),
        (["evaluate", "--address", "auto", "--levels", "1"], "use it with engine 'ray'"),
        (["train", "--resume", str(tmp / "missing")], "has no latest.json"),
        (["train", str(tmp / "r"), "--num-minibatches", "9", "--num-steps", "1", "--num-envs",
          "8"], "num_minibatches 9 is more than the 8 samples"),
        (["train", str(tmp / "r2"), "--resume", str(tmp / "r3")], "give the run folder once"),
    ]  # fmt: skip


def test_bad_inputs_end_in_one_line_not_a_traceback(tmp_path, capsys):
    for argv, message in _bad_runtime_inputs(tmp_path):
        started = time.monotonic()
        code, out, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert err.startswith(f"rlvision {argv[0]}: error: "), (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err
        assert time.monotonic() - started < 60  # refused before any evaluation or analysis
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder"]  # no <dir>.tmp


def test_unwritable_output_is_refused_before_evaluating(capsys):
    code, out, err = run_cli(
        ["evaluate", "--agent", "random", "--levels", "500", "--csv", "/sys/levels.csv"], capsys
    )
    assert code == 2 and "cannot be written (Permission denied in /sys)" in err
    assert err.count("\n") == 1  # one line, no progress bar: nothing was evaluated


def test_the_result_is_printed_before_outputs_that_can_fail(tmp_path, capsys, monkeypatch):
    from rlvision_widgets.rollouts.evaluate import EvaluationResult

    def disk_full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(EvaluationResult, "write_csv", disk_full)
    argv = ["evaluate", "--agent", "random", "--levels", "2", "--json"]
    code, out, err = run_cli(argv + ["--csv", str(tmp_path / "l.csv")], capsys)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    result = json.loads(out)  # the evaluation is not lost
    assert result["levels"] == 2 and result["settings"]["seed"] == 0


def test_evaluate_engine_options(monkeypatch, capsys):
    """--parts splits the levels (the code path of --engine ray) with the plain run's result;
    --engine ray without Ray says what to install, before any work."""
    argv = ["evaluate", "--agent", "random", "--levels", "3", "--start-level", "9", "--json"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    code, out_split, err = run_cli(argv + ["--parts", "2", "--per-level"], capsys)
    assert code == 0, err
    plain, split = json.loads(out), json.loads(out_split)
    assert [r["level_seed"] for r in split.pop("per_level")] == [9, 10, 11]
    assert split == plain
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, out, err = run_cli(argv + ["--engine", "ray"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err == (
        "rlvision evaluate: error: engine 'ray' needs Ray, which is not installed: "
        "pip install 'rlvision_widgets[ray]' (or use engine 'local')\n"
    )


def test_export_has_help_for_every_argument():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    export = sub.choices["export"]
    args = [a for a in export._actions if a.dest != "help"]
    assert {a.dest for a in args} == {
        "out", "agent", "num_envs", "num_steps", "seed", "layer", "output", "rank"
    }  # fmt: skip
    for a in args:
        assert a.help and len(a.help) > 10, a.dest
    assert "progress" in export.description.lower()


def test_export_reports_progress_on_stderr(tmp_path, capsys, monkeypatch):
    """With an export function that reports progress, each stage is one stderr line; stdout
    keeps the one result line."""
    import rlvision_widgets.widgets as widgets

    def fake_export(path, agent=None, progress=None, **kwargs):
        for f, m in ((0.1, "collecting"), (0.12, "collecting"), (0.5, "fitting NMF")):
            progress(f, m)
        Path(path).write_text("<html></html>")
        return Path(path)

    monkeypatch.setattr(widgets, "export_explorer", fake_export)
    code, out, err = run_cli(["export", str(tmp_path / "e.html")], capsys)
    assert code == 0, err
    lines = [x for x in err.splitlines() if x.startswith("rlvision export:")]
    assert lines == [
        "rlvision export:  10% collecting",
        "rlvision export:  50% fitting NMF",
        "rlvision export: 100% done",
    ]
    assert out.startswith("wrote ") and out.count("\n") == 1


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_explore", bug)  # build_parser looks it up in main()
    with pytest.raises(RuntimeError, match="a bug"):
        main(["explore"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


LAUNCHER = """
import sys
from rlvision_widgets.launch import serve
port, pids = int(sys.argv[1]), sys.argv[2]
server = (
    "import http.server, os, subprocess, sys\\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\\n"
    f"open({pids!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\\n"
    f"http.server.HTTPServer(('127.0.0.1', {port}), "
    "http.server.SimpleHTTPRequestHandler).serve_forever()"
)
serve([sys.executable, "-c", server], f"http://127.0.0.1:{port}/",
      on_ready=lambda: print("READY", flush=True))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_explore_stopped_by_a_signal_stops_its_server(tmp_path, sig):
    """What ``rlvision explore`` does with JupyterLab, with a small HTTP server standing in
    for it (a server process with a child of its own, like Jupyter and its kernels)."""
    port, pids = _free_port(), tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(port), str(pids)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
        server, child = map(int, pids.read_text().split())
        assert _alive(server) and _alive(child)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 128 + sig
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while (_alive(server) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(server) and not _alive(child)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # the port is free again


def test_stop_process_group_kills_what_ignores_sigterm():
    from rlvision_widgets.launch import stop_process_group

    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", stubborn], start_new_session=True)
    time.sleep(0.5)  # let it install its handler
    started = time.monotonic()
    stop_process_group(proc, grace_s=1.0)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert not os.path.exists(f"/proc/{proc.pid}/status") or not _alive(proc.pid)


def test_a_stopped_sweep_exits_130_with_one_line(monkeypatch, tmp_path, capsys):
    from rlvision_widgets.studies import sweep

    def stopped(cfg, out, **kwargs):
        raise sweep.SweepStopped("cell c stopped at 128 of 256 steps; run the sweep again")

    monkeypatch.setattr(sweep, "run_sweep", stopped)
    assert main(["sweep", str(tmp_path / "s"), "--smoke"]) == 130
    err = capsys.readouterr().err
    assert (
        err == "rlvision sweep: stopped: cell c stopped at 128 of 256 steps; run the sweep again\n"
    )


def test_a_stopped_cell_is_reported_without_the_engines_task_wrapping(
    monkeypatch, tmp_path, capsys
):
    from rlvision_widgets.engines import run_tasks
    from rlvision_widgets.studies import sweep

    def cell(levels):
        raise sweep.SweepStopped(f"cell {levels} stopped at 128 of 256 steps")

    def stopped(cfg, out, **kwargs):  # the engine re-raises a task's error, wrapped
        run_tasks(cell, [{"levels": 100}], engine="local", progress=False, desc="sweep")

    monkeypatch.setattr(sweep, "run_sweep", stopped)
    assert main(["sweep", str(tmp_path / "s"), "--smoke"]) == 130
    assert (
        capsys.readouterr().err == "rlvision sweep: stopped: cell 100 stopped at 128 of 256 steps\n"
    )


def test_sweep_smoke_picks_the_smoke_config_and_excludes_config(monkeypatch, tmp_path, capsys):
    from rlvision_widgets.studies import sweep
    from rlvision_widgets.studies.sweep import SweepConfig

    class Ran(Exception):
        pass

    def fake_run_sweep(cfg, out, **kwargs):
        raise Ran(cfg, kwargs)

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    with pytest.raises(Ran) as ran:
        main(["sweep", str(tmp_path / "s"), "--smoke", "--engine", "local", "--threads", "2"])
    cfg, kwargs = ran.value.args
    assert cfg == SweepConfig.smoke() and kwargs["threads"] == 2
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(tmp_path / "s"), "--smoke", "--config", str(tmp_path / "c.json")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_sweep_extra_cells_replace_the_saved_list(monkeypatch, tmp_path, capsys):
    from rlvision_widgets.studies import sweep
    from rlvision_widgets.studies.sweep import SweepConfig

    class Ran(Exception):
        pass

    def fake_run_sweep(cfg, out, **kwargs):
        raise Ran(cfg)

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    out = tmp_path / "s"
    out.mkdir()
    saved = SweepConfig(levels=(100, 1000), extra_cells=[(100, 1)], eval_levels=50)
    (out / "sweep.json").write_text(json.dumps(saved.to_json()))
    with pytest.raises(Ran) as ran:
        main(["sweep", str(out), "--extra-cells", "1000:1,unbounded:2"])
    (cfg,) = ran.value.args
    assert cfg == saved.replace(extra_cells=((1000, 1), (0, 2)))
    assert [(c.levels, c.seed) for c in cfg.cells()][-3:] == [(1000, 0), (1000, 1), (0, 2)]
    for bad in ("1000", "1000:x", "-5:1"):
        with pytest.raises(SystemExit) as exc:
            main(["sweep", str(out), "--extra-cells", bad])
        assert exc.value.code == 2
        assert "--extra-cells" in capsys.readouterr().err
