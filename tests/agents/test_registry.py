"""The one agent resolver: modules as they are, names and paths through load_agent, and an
unknown name or a broken checkpoint is an error (never a stand-in network)."""

import json

import pytest
import torch

from rlvision_widgets.agents import (
    CheckpointError,
    RandomAgent,
    agent_names,
    build_network,
    resolve_agent,
    save_checkpoint,
)
from rlvision_widgets.agents.networks import NetworkConfig, compact_config
from rlvision_widgets.environment.actions import NUM_ACTIONS


def test_modules_names_and_paths(tmp_path):
    net = build_network("compact")
    assert resolve_agent(net) is net
    assert isinstance(resolve_agent("random"), RandomAgent)
    folder = save_checkpoint(tmp_path / "ckpt", net, {"steps": 0})
    loaded = resolve_agent(folder)
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert resolve_agent(str(folder)).checkpoint_config["steps"] == 0


def test_unknown_name_names_the_known_agents():
    with pytest.raises(ValueError, match="no-such-agent") as err:
        resolve_agent("no-such-agent")
    for name in agent_names():
        assert repr(name) in str(err.value)


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        resolve_agent(42)


def test_corrupted_weights_are_a_checkpoint_error(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", build_network("compact"), {"steps": 0})
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        resolve_agent(folder)
    # without the recorded hash the bytes themselves are checked
    weights.write_bytes(b"\x00" * 64)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["files"].pop("model.safetensors")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="safetensors"):
        resolve_agent(folder)


def test_a_folder_that_is_not_a_checkpoint_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_agent(tmp_path / "empty")


def test_saving_writes_no_stray_files_and_a_failed_save_keeps_the_old(tmp_path):
    net = build_network("compact")
    folder = save_checkpoint(
        tmp_path / "ckpt", net, {"steps": 1}, {"adam.0.step": torch.tensor(3.0)}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
    ]
    with pytest.raises(AttributeError):
        save_checkpoint(tmp_path / "ckpt", net, {"steps": 2}, {"bad": "not a tensor"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert resolve_agent(folder).checkpoint_config["steps"] == 1


def test_networks_use_the_action_table():
    assert compact_config().num_actions == NUM_ACTIONS
    assert NetworkConfig(name="x", convs=compact_config().convs).num_actions == NUM_ACTIONS
    logits, _ = RandomAgent()(torch.zeros(3, 64, 64, 3, dtype=torch.uint8))
    assert logits.shape == (3, NUM_ACTIONS)
