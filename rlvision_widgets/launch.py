"""Start JupyterLab (headless) on the quick-start notebook: ``rlvision explore``.

>>> launch_jupyterlab(port=8888)   # doctest: +SKIP  (blocks; prints the URL to open)
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
    for port in [preferred, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def launch_jupyterlab(
    notebook: str | os.PathLike | None = None,
    port: int = 8888,
    ip: str = "127.0.0.1",
    token: str | None = None,
    wait: bool = True,
) -> subprocess.Popen:
    """Start JupyterLab without a browser on ``notebook``; print and return once it answers."""
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
    proc = subprocess.Popen(cmd)
    status = f"http://{ip}:{port}/api/status?token={token}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(status, timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    rel = nb.relative_to(root).as_posix()
    url = f"http://{ip}:{port}/lab/tree/{rel}?token={token}"
    print(
        f"\nrlvision explore: JupyterLab is running (headless). Open:\n\n    {url}\n\n"
        f"Run the notebook's cells (Shift+Enter) to open the explorer. Ctrl+C stops the server.",
        flush=True,
    )
    if wait:
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(10)
    return proc
