"""Checkpoints as untrusted files (non-finite weights, crafted configs) and under kills."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rlvision_widgets.agents import build_network
from rlvision_widgets.agents import checkpoint as ck
from rlvision_widgets.agents.checkpoint import (
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from rlvision_widgets.files import sha256_file, write_json_atomic


def net(seed: int):
    torch.manual_seed(seed)
    return build_network("compact")


def first_weight(model) -> torch.Tensor:
    return next(iter(model.state_dict().values())).clone()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    folder = save_checkpoint(tmp_path / "ckpt-0", net(0), {"steps": 0})
    state = {k: v.clone() for k, v in net(0).state_dict().items()}
    name = sorted(state)[3]
    state[name].view(-1)[:2] = bad
    save_file(state, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["files"]["model.safetensors"] = sha256_file(folder / "model.safetensors")
    write_json_atomic(folder / "config.json", config)  # a consistent, tampered checkpoint
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' .* has 2 non-finite value"):
        load_checkpoint(folder)


def test_non_finite_resume_tensors_are_refused(tmp_path):
    extra = {"adam.exp_avg.0": torch.tensor([1.0, float("nan")])}
    folder = save_checkpoint(tmp_path / "ckpt-0", net(0), {"steps": 0}, extra)
    load_checkpoint(folder)  # the weights are fine
    with pytest.raises(CheckpointError, match="'adam.exp_avg.0'.*1 non-finite"):
        load_checkpoint(folder, with_extra=True)


@pytest.mark.parametrize(
    "latest",
    [[], {"checkpoint": 5}, {"checkpoint": "../elsewhere"}, {"checkpoint": ".ckpt-0.old"}, {}],
)
def test_crafted_latest_json_is_a_clear_error(tmp_path, latest):
    save_checkpoint(tmp_path / "ckpt-0", net(0), {"steps": 0})
    (tmp_path / "latest.json").write_text(json.dumps(latest))
    with pytest.raises(CheckpointError, match="latest.json is corrupted"):
        load_checkpoint(tmp_path)


def test_crafted_config_is_a_clear_error(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt-0", net(0), {"steps": 0})
    config = json.loads((folder / "config.json").read_text())
    for network, files in (([1, 2], config["files"]), (config["network"], [1])):
        write_json_atomic(folder / "config.json", {**config, "network": network, "files": files})
        with pytest.raises(CheckpointError):
            load_checkpoint(folder)


# -- kills -----------------------------------------------------------------------------------
class Killed(BaseException):
    """A simulated SIGKILL: raised at one file-system operation, and by every later one (a
    dead process neither renames nor cleans up)."""


def install_kill(monkeypatch, at: int) -> dict:
    """Make the ``at``-th rename/replace/unlink/rmtree (1-based) and all later ones raise."""
    state = {"calls": 0, "dead": False}

    def wrap(fn):
        def inner(*args, **kwargs):
            state["calls"] += 1
            if state["dead"] or state["calls"] == at:
                state["dead"] = True
                raise Killed(fn.__name__)
            return fn(*args, **kwargs)

        return inner

    for mod, name in ((os, "replace"), (os, "rename"), (os, "unlink"), (shutil, "rmtree")):
        monkeypatch.setattr(mod, name, wrap(getattr(mod, name)))
    return state


def trainer_checkpoint(run: Path, model, steps: int) -> None:
    """What the trainer does per checkpoint: the folder, then latest.json."""
    name = f"ckpt-{steps:012d}"
    save_checkpoint(run / name, model, {"steps": steps}, {"opt.step": torch.tensor([steps])})
    write_json_atomic(run / "latest.json", {"checkpoint": name, "steps": steps})


def count_ops(tmp_path: Path, steps_new: int) -> int:
    run = tmp_path / "count"
    trainer_checkpoint(run, net(0), 100)
    mp = pytest.MonkeyPatch()
    try:
        state = install_kill(mp, at=10**9)
        trainer_checkpoint(run, net(1), steps_new)
    finally:
        mp.undo()
    shutil.rmtree(run)
    return state["calls"]


@pytest.mark.parametrize("steps_new", [100, 200], ids=["same-step rewrite", "next step"])
def test_a_kill_at_any_point_leaves_a_loadable_latest(tmp_path, monkeypatch, steps_new):
    old, new = first_weight(net(0)), first_weight(net(1))
    n_ops = count_ops(tmp_path, steps_new)
    assert n_ops >= 4
    for at in range(1, n_ops + 1):
        run = tmp_path / f"run-{at}"
        trainer_checkpoint(run, net(0), 100)
        mp = pytest.MonkeyPatch()
        try:
            install_kill(mp, at)
            with pytest.raises(Killed):
                trainer_checkpoint(run, net(1), steps_new)
        finally:
            mp.undo()
        model, config, extra = load_checkpoint(run, with_extra=True)  # before any cleanup
        w = first_weight(model)
        assert torch.equal(w, old) or torch.equal(w, new), f"kill at op {at}"
        assert int(extra["opt.step"]) == config["steps"]
        acted = remove_stale_temporaries(run)
        leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
        assert leftovers == [], (at, leftovers, acted)
        model2, config2 = load_checkpoint(run)
        assert torch.equal(first_weight(model2), w) and config2["steps"] == config["steps"]
        # and the next checkpoint after the restart succeeds
        trainer_checkpoint(run, net(2), 300)
        assert torch.equal(first_weight(load_checkpoint(run)[0]), first_weight(net(2)))


def test_remove_stale_temporaries_restores_and_cleans(tmp_path):
    run = tmp_path
    trainer_checkpoint(run, net(0), 100)
    folder = run / "ckpt-000000000100"
    # a kill between the two renames of a same-step rewrite
    os.replace(folder, run / ".ckpt-000000000100.old")
    (run / ".ckpt-000000000100.tmpXYZ").mkdir()
    (run / ".ckpt-000000000100.tmpXYZ" / "model.safetensors").write_bytes(b"partial")
    (run / ".latest.json.abc.tmp").write_text("{")
    assert torch.equal(first_weight(load_checkpoint(run)[0]), first_weight(net(0)))
    acted = sorted(p.name for p in remove_stale_temporaries(run))
    assert acted == [".ckpt-000000000100.old", ".ckpt-000000000100.tmpXYZ", ".latest.json.abc.tmp"]
    assert sorted(p.name for p in run.iterdir()) == ["ckpt-000000000100", "latest.json"]
    assert torch.equal(first_weight(load_checkpoint(run)[0]), first_weight(net(0)))
    assert remove_stale_temporaries(run) == []
    # a half-deleted .old next to a complete folder is just deleted
    (run / ".ckpt-000000000100.old").mkdir()
    assert [p.name for p in remove_stale_temporaries(run)] == [".ckpt-000000000100.old"]
    assert ck._is_complete(folder)
