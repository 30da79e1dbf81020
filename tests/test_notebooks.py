"""Execute every notebook in notebooks/ headless (nbclient), at reduced sizes, and fail on any
error; check that the stored notebooks are clean (no outputs), that no output shows Gym's
deprecation banner, and that after "Run All" the explorer is in the state the notebook's text
describes (``END_STATE``).

Sizes: the kernel gets ``RLVISION_NOTEBOOK_SMALL=1`` (every notebook's first code cell reads it),
unless the environment already sets it, e.g. ``RLVISION_NOTEBOOK_SMALL=0`` to run at full size.
Executed copies are written to ``test-artifacts/notebooks/`` (git-ignored) for inspection.

    .venv/bin/python -m pytest tests/test_notebooks.py -q
"""

from __future__ import annotations

import json
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
#: the explorer's settings after Run All, as each notebook's text describes them
END_STATE = {
    "01_quickstart": {"layer": "2b", "output": "value", "rank": 8},
    "02_attribution_and_nmf": {"layer": "3a", "output": "value", "rank": 8},
    "05_model_editing": {"layer": "2b", "output": "value", "rank": 8},
    "06_bring_your_own_model": {"layer": "stacks.2", "output": "value", "rank": 6},
    "07_training": {"output": "value"},
}
#: a cell appended to the executed copy: prints the explorer's settings as JSON
_PROBE = (
    "import json as _json\n"
    "print('RLVISION_END_STATE', _json.dumps({k: getattr(explorer, k) for k in "
    "('layer', 'output', 'rank', 'n_features')} if 'explorer' in globals() else None))"
)
GYM_BANNER = "Gym has been unmaintained"


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
        "08_diversity_hypothesis",
        "09_counterfactuals",
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
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    t0 = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    finally:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(OUT_DIR / path.name))
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")
    texts = [
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    ]
    banner = [i for i, t in enumerate(texts) if GYM_BANNER in t]
    assert not banner, f"{path.name}: an output shows Gym's deprecation banner"
    expected = END_STATE.get(path.stem)
    if expected is not None:
        line = next(t for t in reversed(texts) if "RLVISION_END_STATE" in t)
        state = json.loads(line.split("RLVISION_END_STATE", 1)[1])
        assert state is not None, f"{path.name}: no explorer at the end"
        got = {k: state[k] for k in expected}
        assert got == expected, f"{path.name}: after Run All the explorer is at {got}"
        if "rank" in expected:
            assert state["n_features"] == expected["rank"], state
