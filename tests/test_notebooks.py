"""Execute every notebook in notebooks/ headless (nbclient), at reduced sizes, and fail on any
error; check that the stored notebooks are clean (no outputs).

Sizes: the kernel gets ``RLVISION_NOTEBOOK_SMALL=1`` (every notebook's first code cell reads it),
unless the environment already sets it, e.g. ``RLVISION_NOTEBOOK_SMALL=0`` to run at full size.
Executed copies are written to ``test-artifacts/notebooks/`` (git-ignored) for inspection.

    .venv/bin/python -m pytest tests/test_notebooks.py -q
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
OUT_DIR = ROOT / "test-artifacts" / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
#: seconds per cell (reduced sizes take a few seconds; full sizes a few minutes at most)
CELL_TIMEOUT = int(os.environ.get("RLVISION_NOTEBOOK_CELL_TIMEOUT", "600"))


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RLVISION_NOTEBOOK_SMALL", "1")
    # the kernel imports the package from this checkout even when it is not pip-installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    env.setdefault("TQDM_DISABLE", "1")
    # one torch/OpenMP thread: on a shared 2-core machine a second thread mostly spins, and
    # small PPO updates and IG batches ran up to ~9x slower with two (RLVISION_NOTEBOOK_THREADS)
    env.setdefault("OMP_NUM_THREADS", os.environ.get("RLVISION_NOTEBOOK_THREADS", "1"))
    return env


def test_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for prefix in (
        "01_quickstart",
        "02_attribution_and_nmf",
        "03_feature_visualization",
        "04_dissecting_failure",
        "05_model_editing",
        "06_bring_your_own_model",
        "07_training",
    ):
        assert any(n.startswith(prefix) for n in names), f"missing notebook {prefix}*.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean(path: Path):
    """Stored without outputs, and the first code cell reads the size parameter."""
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "RLVISION_NOTEBOOK_SMALL" in first.source, (
        f"{path.name}: the first code cell must read RLVISION_NOTEBOOK_SMALL"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    """Runs top to bottom in a fresh python3 kernel without an error."""
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(NB_DIR)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    finally:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(OUT_DIR / path.name))
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")
