"""The shipped reference agent loads offline, has a consistent model card, and plays well."""

import json

import pytest
import torch

from rlvision_widgets.agents.registry import agent_names, load_agent, model_card, reference_agents
from rlvision_widgets.files import sha256_file
from rlvision_widgets.rollouts.evaluate import evaluate


def test_shipped_agent_is_small_and_loads_offline():
    refs = reference_agents()
    assert "coinrun" in refs and "coinrun" in agent_names()
    folder = refs["coinrun"]
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["files"]["model.safetensors"] == sha256_file(folder / "model.safetensors")
    agent = load_agent("coinrun")
    logits, value = agent(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))
    assert logits.shape == (2, 15) and value.shape == (2,)
    assert agent.layer_names == ["1a", "2a", "2b", "3a", "4a"]


def test_model_card_is_consistent():
    card = model_card("coinrun")
    ev = card["evaluation"]
    assert ev["levels"] >= 1000
    assert round(ev["success_rate"] * ev["levels"]) + sum(ev["failures"].values()) == ev["levels"]
    assert ev["ci95"][0] <= ev["success_rate"] <= ev["ci95"][1]
    assert card["steps"] > 0 and card["wall_time_s"] > 0 and card["network"] == "compact"
    assert card["env"]["paint_vel_info"] is True and card["env"]["num_levels"] == 0
    assert (reference_agents()["coinrun"] / "learning_curve.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="shipped"):
        model_card("nope")
    with pytest.raises(ValueError, match="unknown agent"):
        load_agent("no-such-agent")


def test_shipped_agent_beats_random_on_the_same_levels():
    trained = evaluate(load_agent("coinrun"), levels=32, start_level=10_000, seed=0, progress=False)
    rand = evaluate(load_agent("random"), levels=32, start_level=10_000, seed=0, progress=False)
    assert trained.success_rate > rand.success_rate + 0.15
