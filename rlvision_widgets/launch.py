"""Start JupyterLab (headless) on the quick-start notebook: ``rlvision explore``.

The server runs in its own process group; SIGTERM or SIGINT (Ctrl+C) to ``rlvision explore``
stops the whole group (SIGTERM, then SIGKILL after a grace period) before exiting, so no server
is left holding the port.

>>> launch_jupyterlab(port=8888)   # blocks; prints the URL to open  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUICKSTART_CELLS = [
    (
        "markdown",
        "# rlvision_widgets quick start\n\nThe explorer on the shipped reference agent. "
        "Hover a legend entry to isolate a feature; press ←/→/space on the viewer.",
    ),
    ("code", "import rlvision_widgets as rv\nexplorer = rv.explore()\nexplorer"),
]


def _write_quickstart(path: Path) -> None:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "cell_type": t,
                "metadata": {},
                "source": s,
                "id": f"c{i}",
                **({"outputs": [], "execution_count": None} if t == "code" else {}),
            }
            for i, (t, s) in enumerate(QUICKSTART_CELLS)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))


def find_notebook(notebook: str | os.PathLike | None = None) -> Path:
    """The notebook to open: the given one, the repository's quick start, or a generated one."""
    if notebook is not None:
        p = Path(notebook)
        if not p.is_file():
            raise FileNotFoundError(f"notebook {p} does not exist")
        return p.resolve()
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        p = base / "notebooks" / "01_quickstart.ipynb"
        if p.is_file():
            return p
    p = Path.cwd() / "rlvision_quickstart.ipynb"
    if not p.exists():
        _write_quickstart(p)
    return p.resolve()


def _free_port(preferred: int) -> int:
    if isinstance(preferred, bool) or not isinstance(preferred, int) or not 0 <= preferred <= 65535:
        raise ValueError(
            f"port must be an integer in 1..65535 (0 = any free port), got {preferred!r}"
        )
    for port in [preferred, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop ``proc`` and every process of its group (it must lead its own group, as
    :func:`serve` starts it): SIGTERM, then SIGKILL for whatever is left after ``grace_s``.

    >>> import subprocess, sys
    >>> proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
    ...                         start_new_session=True)
    >>> stop_process_group(proc); proc.returncode
    -15
    """
    pgid = proc.pid

    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return False

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not signal_group(0):
            break
        time.sleep(0.05)
    else:
        signal_group(signal.SIGKILL)
    proc.wait()


def serve(
    cmd: list[str],
    status_url: str,
    *,
    wait: bool = True,
    timeout_s: float = 120.0,
    on_ready: Callable[[], None] | None = None,
) -> subprocess.Popen:
    """Run a server command in its own process group and wait until ``status_url`` answers
    (then call ``on_ready``); with ``wait``, block until the server exits. SIGTERM or SIGINT
    stop the server's whole group, then exit (SystemExit 128 + signal number); an error while
    starting stops it too.

    >>> proc = serve(["jupyter", "lab", "--port=8888"], "http://127.0.0.1:8888/api/status",
    ...              wait=False)                                  # doctest: +SKIP
    """
    stoppable = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    old = {}
    try:
        for sig in stoppable:
            old[sig] = signal.signal(sig, on_signal)
    except ValueError:  # not the main thread: the caller handles signals
        pass
    proc = None
    try:
        proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}: {cmd[:4]}")
            try:
                with urllib.request.urlopen(status_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server did not answer {status_url} within {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.25)
        if on_ready is not None:
            on_ready()
        if wait:
            proc.wait()
        return proc
    except _Stopped as stop:
        if proc is not None:
            stop_process_group(proc)
        print(f"\nstopped ({signal.Signals(stop.signum).name}); the server has exited.", flush=True)
        raise SystemExit(128 + stop.signum) from None
    except BaseException:
        if proc is not None and proc.poll() is None:
            stop_process_group(proc)
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def launch_jupyterlab(
    notebook: str | os.PathLike | None = None,
    port: int = 8888,
    ip: str = "127.0.0.1",
    token: str | None = None,
    wait: bool = True,
) -> subprocess.Popen:
    """Start JupyterLab without a browser on ``notebook``; print the URL once it answers.

    With ``wait`` it blocks until the server exits; SIGTERM/SIGINT stop the server (its whole
    process group) and exit. Without, it returns the running server (stop it with
    :func:`stop_process_group`).

    >>> proc = launch_jupyterlab(port=8888, wait=False)      # doctest: +SKIP
    >>> stop_process_group(proc)                              # doctest: +SKIP
    """
    nb = find_notebook(notebook)
    root = nb.parent.parent if nb.parent.name == "notebooks" else nb.parent
    port = _free_port(port)
    token = token or secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ip={ip}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    rel = nb.relative_to(root).as_posix()
    url = f"http://{ip}:{port}/lab/tree/{rel}?token={token}"

    def announce() -> None:
        print(
            f"\nrlvision explore: JupyterLab is running (headless). Open:\n\n    {url}\n\n"
            "Run the notebook's cells (Shift+Enter) to open the explorer. Ctrl+C stops the "
            "server.",
            flush=True,
        )

    status = f"http://{ip}:{port}/api/status?token={token}"
    return serve(cmd, status, wait=wait, on_ready=announce)
