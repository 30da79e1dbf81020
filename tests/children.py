"""Running test code in a child process: for code that loads edited states into the engine
(procgen can abort the whole interpreter on a bad state) or drives a browser session.

``run_child(code, *args)`` runs ``python -c code args...`` from the repository root with the
package and ``tests/`` importable and one OpenMP thread, fails the test with the child's
stderr when it exits non-zero, and returns its stdout; ``result_of(stdout)`` reads the JSON
the child printed on a line starting with ``RESULT ``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_child(code: str, *args: str | os.PathLike, timeout: float = 600) -> str:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = ``args``); its stdout."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def result_of(stdout: str) -> Any:
    """The JSON a child printed as ``RESULT <json>``."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])
