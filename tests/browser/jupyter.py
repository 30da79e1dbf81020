"""Start a real JupyterLab 4 / Notebook 7 server for end-to-end widget tests, drive it with
Playwright, and read Python state by attaching a kernel client to the notebook's kernel.

Only the server this module starts is stopped (its own process group: server + kernels).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    app: str  # "lab" or "notebook"
    url: str
    token: str
    root: pathlib.Path
    runtime: pathlib.Path
    proc: subprocess.Popen

    def api(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def notebook_url(self, name: str) -> str:
        if self.app == "lab":
            return f"{self.url}/lab/tree/{name}?reset&token={self.token}"
        return f"{self.url}/notebooks/{name}?token={self.token}"


def write_notebook(path: pathlib.Path, cells: list[str]) -> None:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": c,
                "id": f"c{i}",
                "outputs": [],
                "execution_count": None,
            }
            for i, c in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb, indent=1))


@contextlib.contextmanager
def jupyter_server(app: str = "lab", timeout: float = 90.0) -> Iterator[Server]:
    """A JupyterLab (``app="lab"``) or Notebook 7 (``"notebook"``) server in a temp folder."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"rlv-{app}-"))
    root, cfg, data, runtime = (tmp / n for n in ("root", "config", "data", "runtime"))
    for d in (root, cfg, data, runtime):
        d.mkdir()
    (cfg / "labconfig").mkdir()
    (cfg / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(cfg),
        JUPYTER_DATA_DIR=str(data),
        JUPYTER_RUNTIME_DIR=str(runtime),
        PYTHONWARNINGS="ignore",
        PYTHONPATH=os.pathsep.join(
            [str(pathlib.Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    env.pop("ANYWIDGET_HMR", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--expose-app-in-browser",
    ]
    if app == "lab":
        cmd += [
            f"--LabApp.workspaces_dir={tmp / 'ws'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    else:
        cmd += [f"--JupyterNotebookApp.workspaces_dir={tmp / 'ws'}"]
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(app, f"http://127.0.0.1:{port}", token, root, runtime, proc)
    try:
        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter {app} exited: {(tmp / 'server.log').read_text()[-2000:]}"
                )
            try:
                server.api("/api/status")
                break
            except Exception as e:
                if time.monotonic() > end:
                    raise TimeoutError(f"jupyter {app} did not start in {timeout} s") from e
                time.sleep(0.3)
        yield server
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started, then anything left in its own process group (kernels)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this module created with the server
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class KernelProbe:
    """Evaluate expressions in the notebook's kernel from a second client."""

    def __init__(self, server: Server, timeout: float = 60.0):
        from jupyter_client import BlockingKernelClient

        end = time.monotonic() + timeout
        kernels = []
        while not kernels:
            kernels = server.api("/api/kernels")
            if not kernels:
                if time.monotonic() > end:
                    raise TimeoutError("no kernel started")
                time.sleep(0.3)
        cf = server.runtime / f"kernel-{kernels[0]['id']}.json"
        while not cf.exists():
            if time.monotonic() > end:
                raise TimeoutError(f"no connection file {cf}")
            time.sleep(0.2)
        self.kc = BlockingKernelClient()
        self.kc.load_connection_file(str(cf))
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=timeout)

    def eval(self, expr: str, timeout: float = 30.0) -> str:
        """repr() of ``expr`` evaluated in the kernel."""
        msg_id = self.kc.execute("", silent=True, user_expressions={"v": expr})
        end = time.monotonic() + timeout
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, end - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        v = reply["content"]["user_expressions"]["v"]
        if v.get("status") != "ok":
            raise RuntimeError(
                f"{expr!r} failed in the kernel: {v.get('ename')}: {v.get('evalue')}"
            )
        return v["data"]["text/plain"]

    def wait_for(self, expr: str, timeout: float = 60.0, interval: float = 0.25) -> str:
        """Poll until ``expr`` is truthy in the kernel; returns its last repr."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            last = self.eval(f"bool({expr})")
            if last == "True":
                return last
            time.sleep(interval)
        raise TimeoutError(f"{expr!r} still false after {timeout} s")

    def close(self) -> None:
        self.kc.stop_channels()


def open_notebook(page: Any, server: Server, name: str, timeout: float = 60_000) -> None:
    """Open a notebook in the app, wait until it is ready, and run all its cells."""
    page.goto(server.notebook_url(name))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout)
    page.wait_for_function("() => window.jupyterapp.started !== undefined", timeout=timeout)
    page.evaluate("() => window.jupyterapp.restored")
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   const s = w && w.sessionContext;
                   return !!(s && s.session && s.session.kernel && s.session.kernel.status === 'idle'); }""",
        timeout=timeout,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
