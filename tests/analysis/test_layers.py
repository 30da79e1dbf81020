"""Layer access, activation edits, output specs and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis.layers import LayerAccess, check_observations, get_layer
from rlvision_widgets.analysis.outputs import parse_output, valid_outputs
from rlvision_widgets.environment import ACTION_GROUPS, ACTION_NAMES, NUM_ACTIONS


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return build_network("compact").eval()


def _obs(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_layer_names_and_get_layer(net):
    acc = LayerAccess(net)
    assert acc.layer_names == ["1a", "2a", "2b", "3a", "4a"]
    assert isinstance(get_layer(net, "2b.0"), nn.Conv2d)
    with pytest.raises(KeyError, match="valid layers"):
        get_layer(net, "nope")


def test_generic_model_layer_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    names = LayerAccess(model).layer_names
    assert names == ["0", "1"]


def test_activations_nhwc_and_forward_from(net):
    acc = LayerAccess(net)
    obs = _obs(3)
    acts = acc.activations(obs, "2b")
    assert tuple(acts.shape) == (3, 16, 16, 32)
    assert acc.layer_shape("2b") == (16, 16, 32)
    logits, value = acc.forward_from("2b", acc.activations_nchw(obs, "2b"))
    with torch.no_grad():
        ref_logits, ref_value = net(torch.from_numpy(obs))
    torch.testing.assert_close(logits.detach(), ref_logits)
    torch.testing.assert_close(value.detach(), ref_value)


def test_hook_forward_from_replaces_layer_output(net):
    acc = LayerAccess(net)
    obs = _obs(2)
    a = acc.activations_nchw(obs, "2b.0")  # a non-fast (hook) layer: pre-ReLU conv
    logits, value = acc.forward_from("2b.0", a)
    with torch.no_grad():
        _, ref_value = net(torch.from_numpy(obs))
    torch.testing.assert_close(value.detach(), ref_value)
    with pytest.raises(ValueError, match="must have shape"):
        acc.forward_from("2b.0", torch.zeros(2, 3, 5, 5))


def test_edits_apply_and_remove(net):
    acc = LayerAccess(net)
    obs = _obs(2)
    before = acc.outputs(obs)[1]
    handle = acc.add_edit("2b", lambda a: torch.zeros_like(a))
    assert float(acc.activations(obs, "2b").abs().sum()) == 0.0
    zeroed = acc.outputs(obs)[1]
    # with 2b zeroed, the value equals F(0) at 2b
    torch.testing.assert_close(
        zeroed, acc.forward_from("2b", torch.zeros(2, 32, 16, 16))[1].detach()
    )
    # edits at an earlier layer reach later activations and forward_from
    handle.remove()
    torch.testing.assert_close(acc.outputs(obs)[1], before)
    with acc.edited({"1a": lambda a: a * 0}):
        assert not torch.equal(acc.outputs(obs)[1], before)
    torch.testing.assert_close(acc.outputs(obs)[1], before)
    with pytest.raises(ValueError, match="same shape|shape"):
        with acc.add_edit("2b", lambda a: a[:, :1]):
            acc.outputs(obs)


def test_observation_checks():
    with pytest.raises(TypeError, match="uint8"):
        check_observations(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        check_observations(np.zeros((1, 64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="at least one frame"):
        check_observations(np.zeros((0, 64, 64, 3), np.uint8))
    assert tuple(check_observations(np.zeros((64, 64, 3), np.uint8)).shape) == (1, 64, 64, 3)


def test_output_specs_compute_the_right_scalars():
    logits = torch.randn(4, NUM_ACTIONS)
    value = torch.randn(4)
    torch.testing.assert_close(parse_output("value")(logits, value), value)
    torch.testing.assert_close(parse_output("logit:RIGHT")(logits, value), logits[:, 7])
    torch.testing.assert_close(parse_output("logit:7")(logits, value), logits[:, 7])
    torch.testing.assert_close(
        parse_output("group:left")(logits, value), logits[:, list(ACTION_GROUPS["left"])].sum(-1)
    )
    torch.testing.assert_close(
        parse_output("logprob:left+up")(logits, value), torch.log_softmax(logits, -1)[:, 2]
    )
    assert parse_output("logit:noop").actions == (ACTION_NAMES.index("NOOP"),)
    assert "group:noop" in valid_outputs() and f"logprob:{NUM_ACTIONS - 1}" in valid_outputs()


@pytest.mark.parametrize(
    "spec,match",
    [
        ("reward", "valid outputs"),
        ("logit:99", "0-14"),
        ("logit:JUMP", "one of LEFT"),
        ("group:sideways", "valid groups"),
        ("logprob:", "one of LEFT"),
    ],
)
def test_output_errors_list_choices(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_output(spec)


def test_edited_agent_wrapper_is_supported(net):
    from rlvision_widgets.agents.editing import EditedAgent
    from rlvision_widgets.analysis.cache import model_hash
    from rlvision_widgets.analysis.integrated_gradients import integrated_gradients

    edited = EditedAgent(net)
    acc = LayerAccess(edited)
    assert acc.fast and acc.layer_names == ["1a", "2a", "2b", "3a", "4a"]
    obs = _obs(2)
    before = integrated_gradients(edited, obs, "3a").attributions
    h0 = model_hash(edited)
    direction = np.zeros(32, np.float32)
    direction[:4] = 1.0
    edited.add("2b", direction, 1.0)  # activation-space projection
    assert model_hash(edited) != h0
    after = integrated_gradients(edited, obs, "3a").attributions
    assert not np.allclose(before, after)
    # projected out: the edited 2b activation has no component along the direction
    a = acc.activations(obs, "2b").numpy()
    assert np.abs(a @ direction).max() < 1e-4
    with acc.add_edit("2b.1", lambda t: t * 0):  # dotted names reach the inner agent
        assert float(acc.activations(obs, "2b.1").abs().sum()) == 0.0


def test_network_paths_and_hook_paths(net):
    acc = LayerAccess(net)
    assert acc.uses_network_paths("2b") and not acc.uses_network_paths("2b.0")
    obs = _obs(2)
    a = acc.activations_nchw(obs, "2b.1")  # hook path: the same tensor as forward_to
    torch.testing.assert_close(a, net.forward_to(torch.from_numpy(obs), "2b"))
    l1, v1 = acc.forward_from("2b.1", a)
    l2, v2 = net(torch.from_numpy(obs))
    torch.testing.assert_close(v1, v2)
    hooks = [len(m._forward_hooks) for m in net.modules()]
    assert sum(hooks) == 0


def test_forward_from_a_module_the_forward_pass_skips():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 2), nn.Linear(2, 2)

        def forward(self, obs):
            h = self.used(obs.float().mean((1, 2)))
            return h, h[:, 0]

    acc = LayerAccess(Skips())
    with pytest.raises(RuntimeError, match="'unused' was not called"):
        acc.forward_from("unused", torch.zeros(1, 2))
