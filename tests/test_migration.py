"""Issue 10, requirement 4: what the 0.1 layout wrote still loads, and every moved public name
still works for one release, with a FutureWarning. The files in tests/data/legacy-0.1/ were
written by the 0.1 code (tests/data/make_legacy_0_1.py, run on commit 47125cb)."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

LEGACY = Path(__file__).parent / "data" / "legacy-0.1"
REPO = Path(__file__).resolve().parents[1]


def test_trajectories_written_by_0_1_load():
    from rlvision_widgets.rollouts import Trajectories

    traj = Trajectories.load(LEGACY / "trajectories.npz")
    assert traj.obs.shape == (2, 24, 64, 64, 3)
    assert len(traj.episodes) >= 2 and set(traj.episodes["cause"]) <= {
        "success",
        "saw",
        "enemy_left",
        "enemy_right",
        "lava",
        "multiple",
        "timeout",
        "unknown",
        "unfinished",
    }
    # the stored advantages are the one GAE's on the stored arrays
    from rlvision_widgets.rollouts.gae import gae_advantages

    adv = gae_advantages(
        traj.rewards,
        traj.values,
        traj.firsts,
        last_values=traj.last_values,
        last_firsts=traj.last_firsts,
    )
    np.testing.assert_allclose(adv, traj.advantages, atol=1e-5)
    frame = traj.render_full(0, 3)  # the engine state re-renders
    assert frame.shape == (512, 512, 3) and frame.std() > 0


def test_nmf_written_by_0_1_loads_and_transforms_the_same():
    from rlvision_widgets.analysis.nmf import AttributionNMF

    nmf = AttributionNMF.load(LEGACY / "nmf")
    x = np.load(LEGACY / "nmf_input.npy")
    assert nmf.components_.shape == (3, 8)
    refit = AttributionNMF(3, source="activation", seed=0).fit(x)
    np.testing.assert_allclose(nmf.components_, refit.components_, rtol=1e-4, atol=1e-6)


def test_checkpoint_written_by_0_1_loads_and_computes_the_same():
    from rlvision_widgets.agents import load_checkpoint

    model, config = load_checkpoint(LEGACY / "checkpoint")
    assert config["steps"] == 123
    io = np.load(LEGACY / "checkpoint_io.npz")
    with torch.no_grad():
        logits, value = model(torch.from_numpy(io["obs"]))
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-5)
    np.testing.assert_allclose(value.numpy(), io["value"], atol=1e-5)


def test_the_committed_reference_run_still_resumes(tmp_path):
    """The newest checkpoint of runs/reference loads into a Trainer for resuming (copied, so
    a live training job is never touched)."""
    from rlvision_widgets.training import Trainer

    run = REPO / "runs" / "reference"
    latest = json.loads((run / "latest.json").read_text())["checkpoint"]
    copy = tmp_path / "reference"
    copy.mkdir()
    shutil.copytree(run / latest, copy / latest)
    shutil.copy(run / "latest.json", copy / "latest.json")
    trainer = Trainer(copy, resume=True, progress=False)
    try:
        assert trainer.steps == latest_steps(copy)
        # the stored budget is kept, also for a finished run whose last update passed it
        stored = json.loads((copy / latest / "config.json").read_text())["training"]
        assert trainer.config.total_steps == stored["total_steps"]
        assert trainer.env.num_envs == 64
    finally:
        trainer.env.close()
        trainer._lock.close()


def latest_steps(run: Path) -> int:
    return int(json.loads((run / "latest.json").read_text())["steps"])


OLD_MODULES = {
    "rlvision_widgets.trajectories": ("Trajectories", "collect_trajectories"),
    "rlvision_widgets.trajectories.storage": ("Trajectories",),
    "rlvision_widgets.trajectories.collect": ("collect_trajectories",),
    "rlvision_widgets.analysis.evaluation": ("evaluate", "EvaluationResult"),
    "rlvision_widgets.analysis.corpus": ("collect_corpus", "Corpus"),
    "rlvision_widgets.analysis.stats": ("wilson_interval",),
    "rlvision_widgets.analysis.experiments": (
        "run_blindness_experiments",
        "prepare_edit",
        "compare_results",
        "strict_json",
    ),
    "rlvision_widgets.analysis.failures": ("list_failures", "hallucination_search"),
}


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_old_module_paths_warn_and_work(old):
    for name in [m for m in sys.modules if m == old]:
        del sys.modules[name]
    with pytest.warns(FutureWarning, match="moved to"):
        module = importlib.import_module(old)
        for name in OLD_MODULES[old]:  # some names warn again (moved a second time)
            assert callable(getattr(module, name)), f"{old}.{name}"


@pytest.mark.parametrize(
    "module,name,new",
    [
        ("rlvision_widgets.analysis", "collect_corpus", "rlvision_widgets.rollouts.corpus"),
        ("rlvision_widgets.analysis", "gae_advantages", "rlvision_widgets.rollouts.gae"),
        ("rlvision_widgets.analysis.bookmarks", "gae_advantages", "rlvision_widgets.rollouts.gae"),
        ("rlvision_widgets.training", "gae", "rlvision_widgets.rollouts.gae"),
        ("rlvision_widgets.rollouts", "resolve_agent", "rlvision_widgets.agents.registry"),
    ],
)
def test_moved_names_warn_and_are_the_new_objects(module, name, new):
    with pytest.warns(FutureWarning, match=name):
        old = getattr(importlib.import_module(module), name)
    assert old is getattr(importlib.import_module(new), name)


def test_unknown_names_still_raise_attribute_error():
    import rlvision_widgets.analysis as analysis

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = analysis.no_such_name
