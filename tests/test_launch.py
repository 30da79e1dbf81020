"""``rlvision explore`` gives a clean first run: it opens a scratch copy of the quick start (the
shipped notebook never changes, not even after JupyterLab saves the copy), JupyterLab starts
without a yarn error, a minified-JS dump, a build check or the news toast, and creating a CoinRun
environment prints no Gym deprecation banner.

    .venv/bin/python -m pytest tests/test_launch.py -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from rlvision_widgets import launch
from rlvision_widgets.launch import (
    LAB_OVERRIDES,
    QUICKSTART,
    find_notebook,
    jupyterlab_command,
    scratch_notebooks,
    shipped_notebooks_dir,
    stop_process_group,
    write_lab_settings,
)

ROOT = Path(__file__).resolve().parents[1]
TRACKED = ROOT / "notebooks" / QUICKSTART
GYM_BANNER = "Gym has been unmaintained"


def _quiet(msg: str) -> None:
    pass


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# -- the scratch copy -----------------------------------------------------------------------------
def test_quickstart_is_a_scratch_copy(tmp_path):
    before = {p.name: _snapshot(p) for p in TRACKED.parent.glob("*.ipynb")}
    nb = find_notebook(work_dir=tmp_path / "work", log=_quiet)
    assert nb == (tmp_path / "work" / QUICKSTART).resolve()
    assert ROOT not in nb.parents
    assert nb.read_bytes() == TRACKED.read_bytes()
    # every shipped notebook is copied, so JupyterLab's file browser shows them all
    assert sorted(p.name for p in nb.parent.glob("*.ipynb")) == sorted(before)
    nb.write_text(nb.read_text().replace("Quick start", "My quick start"))  # the user's edit
    assert find_notebook(work_dir=tmp_path / "work", log=_quiet) == nb  # a second run reuses
    assert "My quick start" in nb.read_text()
    # naming a shipped notebook opens its copy too
    named = find_notebook(
        TRACKED.parent / "02_attribution_and_nmf.ipynb", tmp_path / "work", _quiet
    )
    assert named.parent == nb.parent
    after = {p.name: _snapshot(p) for p in TRACKED.parent.glob("*.ipynb")}
    assert after == before, "a shipped notebook changed (bytes or mtime)"


def test_changed_shipped_notebook_refreshes_the_copy_and_keeps_edits(tmp_path):
    src = tmp_path / "shipped"
    src.mkdir()
    (src / QUICKSTART).write_text('{"v": 1}')
    work = tmp_path / "work"
    nb = scratch_notebooks(work, src, _quiet)
    assert nb.read_text() == '{"v": 1}'
    # unchanged shipped notebook, untouched copy: a new version replaces it without a backup
    (src / QUICKSTART).write_text('{"v": 2}')
    assert scratch_notebooks(work, src, _quiet).read_text() == '{"v": 2}'
    assert sorted(p.name for p in work.glob("*.ipynb")) == [QUICKSTART]
    # edited copy + new shipped version: refreshed, the edited copy kept beside it
    nb.write_text('{"v": 2, "mine": true}')
    (src / QUICKSTART).write_text('{"v": 3}')
    messages: list[str] = []
    assert scratch_notebooks(work, src, messages.append).read_text() == '{"v": 3}'
    kept = [p for p in work.glob("*.ipynb") if p.name != QUICKSTART]
    assert len(kept) == 1 and kept[0].read_text() == '{"v": 2, "mine": true}'
    assert kept[0].name in messages[0]


def test_own_notebook_opens_in_place_and_bad_paths_are_explained(tmp_path):
    mine = tmp_path / "mine.ipynb"
    mine.write_text("{}")
    assert find_notebook(mine, tmp_path / "work", _quiet) == mine.resolve()
    assert not (tmp_path / "work").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_notebook(tmp_path / "missing.ipynb", tmp_path / "work", _quiet)
    with pytest.raises(ValueError, match="shipped notebooks folder"):
        scratch_notebooks(TRACKED.parent, TRACKED.parent, _quiet)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        scratch_notebooks(tmp_path / "afile", TRACKED.parent, _quiet)


def test_installed_package_without_notebooks_gets_a_generated_quickstart(tmp_path):
    nb = scratch_notebooks(tmp_path / "work", None, _quiet)
    cells = json.loads(nb.read_text())["cells"]
    assert any("rv.explore()" in "".join(c["source"]) for c in cells)


def test_default_work_dir_is_outside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("RLVISION_WORK_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert launch.default_work_dir() == tmp_path / "data" / "rlvision_widgets" / "notebooks"
    monkeypatch.setenv("RLVISION_WORK_DIR", str(tmp_path / "elsewhere"))
    assert launch.default_work_dir() == tmp_path / "elsewhere"
    assert shipped_notebooks_dir() == TRACKED.parent


# -- JupyterLab options and settings --------------------------------------------------------------
def _schema(plugin: str) -> dict:
    import jupyterlab

    package, name = plugin.split(":")
    path = Path(jupyterlab.__file__).parent / "schemas" / package / f"{name}.json"
    return json.loads(path.read_text())


def test_lab_settings_turn_off_news_and_build_check(tmp_path, monkeypatch):
    # the environment's own overrides and page config are kept under the launcher's
    env_settings = tmp_path / "lab" / "settings"
    env_settings.mkdir(parents=True)
    (env_settings / "overrides.json").write_text(
        json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}})
    )
    (env_settings / "page_config.json").write_text(json.dumps({"lockedExtensions": {"x": True}}))
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "lab"))
    d = write_lab_settings(tmp_path / "settings")
    overrides = json.loads((d / "overrides.json").read_text())
    page = json.loads((d / "page_config.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert page["lockedExtensions"] == {"x": True}
    note = overrides["@jupyterlab/apputils-extension:notification"]
    assert note["fetchNews"] == "false" and note["checkForUpdates"] is False
    assert page["buildCheck"] is False and page["buildAvailable"] is False
    # the overridden settings exist in the installed JupyterLab's schema, with these values
    for plugin, values in LAB_OVERRIDES.items():
        props = _schema(plugin)["properties"]
        for key, value in values.items():
            assert key in props, f"{plugin} has no setting {key}"
            allowed = [c["const"] for c in props[key].get("oneOf", [])]
            assert not allowed or value in allowed


def test_lab_command_passes_the_quiet_settings(tmp_path):
    cmd = jupyterlab_command(tmp_path / "root", 8899, "127.0.0.1", "tok", tmp_path / "s")
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={tmp_path / 'root'}" in cmd
    assert f"--LabApp.app_settings_dir={tmp_path / 's'}" in cmd
    assert "--LabApp.news_url=None" in cmd
    assert "--LabApp.extension_manager=readonly" in cmd
    assert "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate" in cmd
    assert "--LanguageServerManager.autodetect=False" in cmd
    assert "--no-browser" in cmd and "--IdentityProvider.token=tok" in cmd


def _nearest_package_json(path: Path) -> Path | None:
    for d in path.parents:
        if (d / "package.json").is_file():
            return d / "package.json"
    return None


@pytest.mark.jupyter
def test_headless_start_is_clean_and_saves_only_the_copy(tmp_path):
    """Start JupyterLab with the launcher (a few seconds), load the page config and settings as
    the front end does, save the opened notebook through the contents API as autosave does, and
    read the server's stderr."""
    script = textwrap.dedent(
        f"""
        import json, sys, urllib.request
        from rlvision_widgets.launch import launch_jupyterlab, stop_process_group
        proc = launch_jupyterlab(port=0, wait=False, token="tok", work_dir={str(tmp_path / "work")!r})
        port = next(a.split("=")[1] for a in proc.args if a.startswith("--port="))
        print("PORT", port, flush=True)
        sys.stdin.readline()          # the test is done
        stop_process_group(proc)
        """
    )
    before = _snapshot(TRACKED)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        port = None
        for line in proc.stdout:
            if line.startswith("PORT "):
                port = line.split()[1]
                break
        assert port, "the launcher did not start JupyterLab"
        base, q = f"http://127.0.0.1:{port}", "?token=tok"

        def get(path: str) -> bytes:
            with urllib.request.urlopen(f"{base}{path}{q}", timeout=30) as r:
                return r.read()

        html = get(f"/lab/tree/{QUICKSTART}").decode()
        m = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', html, re.S)
        page = json.loads(m.group(1))
        assert page["buildCheck"] is False and page["buildAvailable"] is False
        assert page["news"] == {"disabled": True}
        settings = json.loads(get("/lab/api/settings/@jupyterlab/apputils-extension:notification"))
        assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"
        # autosave: JupyterLab writes the open notebook back through the contents API
        model = json.loads(get(f"/api/contents/{QUICKSTART}"))
        model["content"]["metadata"]["rlvision_test"] = "saved"
        req = urllib.request.Request(
            f"{base}/api/contents/{QUICKSTART}{q}",
            data=json.dumps(
                {"type": "notebook", "format": "json", "content": model["content"]}
            ).encode(),
            method="PUT",
        )
        urllib.request.urlopen(req, timeout=30).read()
        assert "rlvision_test" in (tmp_path / "work" / QUICKSTART).read_text()
    finally:
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stop_process_group(proc, grace_s=5)
            _, err = proc.communicate()
    assert _snapshot(TRACKED) == before, "the shipped quick start changed"
    noise = [
        line
        for line in err.splitlines()
        if re.search(r"yarn|Dynamic require|node-version-check|npm|not recognized|Traceback", line)
        or len(line) > 1000
    ]
    if noise:
        import jupyter_builder

        yarn = Path(jupyter_builder.__file__).parent / "yarn.js"
        pkg = _nearest_package_json(yarn)
        hint = ""
        if pkg is not None and json.loads(pkg.read_text()).get("type") == "module":
            hint = (
                f"\nNode runs {yarn} as an ES module because the nearest package.json, {pkg}, "
                'declares "type": "module" (JupyterLab runs yarn.js at import)'
            )
        pytest.fail(
            "JupyterLab's start-up printed:\n" + "\n".join(x[:300] for x in noise[:8]) + hint
        )


# -- the Gym banner ---------------------------------------------------------------------------------
def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_creating_a_coinrun_env_prints_no_gym_banner():
    gym = _run("import gym")
    if GYM_BANNER not in gym.stderr:
        pytest.skip("this gym version prints no banner")  # then there is nothing to drop
    out = _run(
        "import rlvision_widgets.environment.coinrun as c\n"
        "env = c.CoinRunEnv(c.EnvOptions(num_envs=2, rand_seed=0))\n"
        "print(env.observe()[0].shape)"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 64, 64, 3)"
    assert GYM_BANNER not in out.stderr + out.stdout
    assert "gymnasium" not in (out.stderr + out.stdout).lower()


def test_only_the_banner_is_dropped(tmp_path):
    """A stand-in procgen that imports the real gym (which prints its banner), writes another
    line to stderr and warns: the other line and the warning still reach stderr."""
    fake = tmp_path / "procgen"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import sys, warnings\nimport gym\n"
        "print('procgen: something else', file=sys.stderr)\n"
        "warnings.warn('a procgen warning', UserWarning)\n"
        "ProcgenGym3Env = None\n"
    )
    out = _run(
        "from rlvision_widgets.environment import coinrun\ncoinrun._import_procgen()\n",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    assert out.returncode == 0, out.stderr
    assert GYM_BANNER not in out.stderr
    assert "procgen: something else" in out.stderr
    assert "UserWarning: a procgen warning" in out.stderr


# -- in the browser -------------------------------------------------------------------------------
def _toasts_after_start(url: str) -> list[str]:
    from browser.harness import launch as launch_browser

    with launch_browser() as browser:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        page.wait_for_timeout(8_000)  # the news question comes a moment after start-up
        return page.locator(".Toastify__toast").all_inner_texts()


@pytest.mark.jupyter
@pytest.mark.browser
@pytest.mark.slow
def test_no_news_toast_in_the_browser(tmp_path, monkeypatch):
    """JupyterLab as the launcher starts it shows no toast; the same JupyterLab started plainly
    asks about Jupyter news (so the check sees the toast when there is one)."""
    from browser.harness import skip_reason

    if skip_reason():
        pytest.skip(skip_reason())
    # a fresh user: no saved settings or workspace
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "user-settings"))
    monkeypatch.setenv("JUPYTERLAB_WORKSPACES_DIR", str(tmp_path / "workspaces"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    proc = launch.launch_jupyterlab(port=0, wait=False, token="tok", work_dir=tmp_path / "work")
    try:
        port = next(a.split("=")[1] for a in proc.args if a.startswith("--port="))
        toasts = _toasts_after_start(f"http://127.0.0.1:{port}/lab/tree/{QUICKSTART}?token=tok")
    finally:
        stop_process_group(proc)
    assert toasts == []
    (tmp_path / "plain").mkdir()
    port = launch._free_port(0)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}"]
    cmd += ["--IdentityProvider.token=tok", f"--ServerApp.root_dir={tmp_path / 'plain'}"]
    cmd += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    plain = launch.serve(cmd, f"http://127.0.0.1:{port}/api/status?token=tok", wait=False)
    try:
        toasts = _toasts_after_start(f"http://127.0.0.1:{port}/lab?token=tok")
    finally:
        stop_process_group(plain)
    assert any("Jupyter news" in t for t in toasts), toasts
