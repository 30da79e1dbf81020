"""Start JupyterLab (headless) on a scratch copy of the quick-start notebook: ``rlvision explore``.

The shipped notebooks are never opened in place: :func:`scratch_notebooks` copies them into a
work directory (``$RLVISION_WORK_DIR``, else ``$XDG_DATA_HOME/rlvision_widgets/notebooks``,
i.e. ``~/.local/share/rlvision_widgets/notebooks``), and JupyterLab serves that directory, so
autosave and Run All never touch the checkout. A later run reuses the copies (your edits and
outputs stay); when a shipped notebook has changed since it was copied, the copy is refreshed
and an edited copy is kept beside it as ``<name>.<timestamp>.ipynb``.

JupyterLab starts quietly (:func:`jupyterlab_command`): no build check (it runs Node.js, and a
prebuilt JupyterLab needs no build), the read-only extension manager (no PyPI queries), no news
feed and no "get Jupyter news?" toast (settings overrides in a directory the launcher writes,
:func:`write_lab_settings`), no update check, no search for Node.js language servers.

The server runs in its own process group; SIGTERM or SIGINT (Ctrl+C) to ``rlvision explore``
stops the whole group (SIGTERM, then SIGKILL after a grace period) before exiting, so no server
is left holding the port.

>>> launch_jupyterlab(port=8888)   # blocks; prints the URL to open  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
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


#: the notebook ``rlvision explore`` opens
QUICKSTART = "01_quickstart.ipynb"
#: JupyterLab settings overrides the launcher applies (defaults only: a user's own settings win)
LAB_OVERRIDES: dict[str, dict[str, Any]] = {
    # "Never": no request to the news feed and no "get official Jupyter news?" toast
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
#: page configuration: no front-end build check (it shells out to Node.js; the lab is prebuilt)
LAB_PAGE_CONFIG: dict[str, Any] = {"buildCheck": False, "buildAvailable": False}
#: options that keep JupyterLab's start quiet and offline (besides the settings directory)
LAB_OPTIONS = [
    "--LabApp.extension_manager=readonly",
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    # jupyter_lsp would run `npm prefix -g` looking for language servers (JupyterLab's LSP is
    # off by default); configured servers still load
    "--LanguageServerManager.autodetect=False",
]
_MANIFEST = ".rlvision-sources.json"


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


def _data_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) if xdg else Path.home() / ".local" / "share"


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def default_work_dir() -> Path:
    """Where ``rlvision explore`` keeps its notebook copies: ``$RLVISION_WORK_DIR``, else
    ``$XDG_DATA_HOME/rlvision_widgets/notebooks`` (``~/.local/share/...``).

    >>> "RLVISION_WORK_DIR" in os.environ or default_work_dir().parts[-2:] == (
    ...     "rlvision_widgets", "notebooks")
    True
    """
    env = os.environ.get("RLVISION_WORK_DIR")
    if env:
        return Path(env).expanduser()
    return _data_home() / "rlvision_widgets" / "notebooks"


def shipped_notebooks_dir() -> Path | None:
    """The repository's ``notebooks/`` folder (the one holding the quick start), or None when
    the package is installed without it.

    >>> d = shipped_notebooks_dir(); d is None or (d / QUICKSTART).is_file()
    True
    """
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        d = base / "notebooks"
        if (d / QUICKSTART).is_file():
            return d.resolve()
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_one(src: Path, work: Path, manifest: dict[str, str], log: Callable[[str], None]) -> Path:
    """Copy ``src`` into ``work`` unless an up-to-date copy is there (see the module doc)."""
    dst = work / src.name
    src_hash = _sha256(src)
    if dst.exists():
        copied_from = manifest.get(src.name)
        dst_hash = _sha256(dst)
        if copied_from == src_hash or dst_hash == src_hash:
            manifest[src.name] = src_hash
            return dst  # shipped notebook unchanged: keep the copy with the user's work
        if dst_hash != copied_from:  # an edited copy (or a file of the user's by that name)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            keep = dst.with_name(f"{dst.stem}.{stamp}{dst.suffix}")
            n = 1
            while keep.exists():
                n += 1
                keep = dst.with_name(f"{dst.stem}.{stamp}-{n}{dst.suffix}")
            dst.replace(keep)
            log(f"{src.name} has changed since it was copied; your copy is kept as {keep.name}")
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    manifest[src.name] = src_hash
    return dst


def scratch_notebooks(
    work_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Copy the shipped notebooks into ``work_dir`` (default :func:`default_work_dir`) and
    return the quick start's copy. The shipped files are only read.

    Without a ``notebooks/`` folder (an installed package), a minimal quick start is written.
    An existing copy is kept while its shipped notebook is unchanged; when the shipped one
    changes, the copy is replaced, and an edited copy is first renamed
    ``<name>.<timestamp>.ipynb``.

    >>> import tempfile
    >>> nb = scratch_notebooks(tempfile.mkdtemp(), log=lambda m: None)
    >>> nb.name
    '01_quickstart.ipynb'
    """
    work = Path(work_dir).expanduser() if work_dir is not None else default_work_dir()
    src_dir = Path(source_dir) if source_dir is not None else shipped_notebooks_dir()
    if work.exists() and not work.is_dir():
        raise NotADirectoryError(
            f"work directory {work} is a file; pass a directory (or set RLVISION_WORK_DIR)"
        )
    work.mkdir(parents=True, exist_ok=True)
    if src_dir is not None and work.resolve() == Path(src_dir).resolve():
        raise ValueError(
            f"work directory {work} is the shipped notebooks folder; choose another directory "
            "so that the shipped notebooks are never edited"
        )
    quick = work / QUICKSTART
    if src_dir is None:
        if not quick.exists():
            _write_quickstart(quick)
        return quick.resolve()
    manifest_path = work / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    for src in sorted(Path(src_dir).glob("*.ipynb")):
        _copy_one(src, work, manifest, log)
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(manifest_path)
    return quick.resolve()


def find_notebook(
    notebook: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The notebook to open: a scratch copy of the quick start (or of a shipped notebook when
    ``notebook`` names one), or the user's own ``notebook`` in place.

    >>> import tempfile
    >>> find_notebook(work_dir=tempfile.mkdtemp(), log=lambda m: None).name
    '01_quickstart.ipynb'
    """
    shipped = shipped_notebooks_dir()
    if notebook is None:
        return scratch_notebooks(work_dir, shipped, log)
    p = Path(notebook).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"notebook {p} does not exist")
    p = p.resolve()
    if shipped is not None and p.parent == shipped:
        return scratch_notebooks(work_dir, shipped, log).with_name(p.name)
    return p


def _default_lab_settings_dir() -> Path:
    lab = os.environ.get("JUPYTERLAB_DIR")
    return (Path(lab) if lab else Path(sys.prefix) / "share" / "jupyter" / "lab") / "settings"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_lab_settings(settings_dir: str | os.PathLike | None = None) -> Path:
    """Write the JupyterLab application settings directory the launcher passes as
    ``--LabApp.app_settings_dir``: the environment's own ``overrides.json`` and
    ``page_config.json`` (if any) with :data:`LAB_OVERRIDES` and :data:`LAB_PAGE_CONFIG` on top.

    >>> import json, tempfile
    >>> d = write_lab_settings(tempfile.mkdtemp())
    >>> json.loads((d / "page_config.json").read_text())["buildCheck"]
    False
    """
    d = (
        Path(settings_dir)
        if settings_dir is not None
        else (_cache_home() / "rlvision_widgets" / "jupyterlab-settings")
    )
    d.mkdir(parents=True, exist_ok=True)
    base = _default_lab_settings_dir()
    overrides = _read_json(base / "overrides.json") if base.resolve() != d.resolve() else {}
    for plugin, values in LAB_OVERRIDES.items():
        overrides.setdefault(plugin, {}).update(values)
    page = _read_json(base / "page_config.json") if base.resolve() != d.resolve() else {}
    page.update(LAB_PAGE_CONFIG)
    for name, data in (("overrides.json", overrides), ("page_config.json", page)):
        tmp = d / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(d / name)
    return d


def jupyterlab_command(
    root: str | os.PathLike,
    port: int,
    ip: str,
    token: str,
    settings_dir: str | os.PathLike,
) -> list[str]:
    """The command line that starts JupyterLab headless on ``root`` with the launcher's quiet
    settings (:data:`LAB_OPTIONS`, the settings directory from :func:`write_lab_settings`).

    >>> cmd = jupyterlab_command("/tmp", 8888, "127.0.0.1", "t", "/tmp/s")
    >>> "--LabApp.app_settings_dir=/tmp/s" in cmd and "--LabApp.news_url=None" in cmd
    True
    """
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
        f"--LabApp.app_settings_dir={settings_dir}",
        *LAB_OPTIONS,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


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
    work_dir: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start JupyterLab without a browser on a scratch copy of the quick start (or on
    ``notebook``; see :func:`find_notebook`) and print the URL once it answers.

    The copies live in ``work_dir`` (default :func:`default_work_dir`), which is JupyterLab's
    root. With ``wait`` it blocks until the server exits; SIGTERM/SIGINT stop the server (its
    whole process group) and exit. Without, it returns the running server (stop it with
    :func:`stop_process_group`).

    >>> proc = launch_jupyterlab(port=8888, wait=False)      # doctest: +SKIP
    >>> stop_process_group(proc)                              # doctest: +SKIP
    """
    nb = find_notebook(notebook, work_dir)
    root = nb.parent
    port = _free_port(port)
    token = token or secrets.token_hex(16)
    cmd = jupyterlab_command(root, port, ip, token, write_lab_settings())
    rel = nb.relative_to(root).as_posix()
    url = f"http://{ip}:{port}/lab/tree/{rel}?token={token}"

    def announce() -> None:
        print(
            f"\nrlvision explore: JupyterLab is running (headless). Open:\n\n    {url}\n\n"
            f"Notebooks: {root} (copies; the shipped notebooks are not changed).\n"
            "Run the notebook's cells (Shift+Enter) to open the explorer. Ctrl+C stops the "
            "server.",
            flush=True,
        )

    status = f"http://{ip}:{port}/api/status?token={token}"
    return serve(cmd, status, wait=wait, on_ready=announce)
