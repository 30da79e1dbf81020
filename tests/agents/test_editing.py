"""Model editing by projecting a direction out of a layer (Appendix A)."""

import numpy as np
import pytest
import torch

from rlvision_widgets.agents import build_network
from rlvision_widgets.agents.editing import EditedAgent, projection
from rlvision_widgets.agents.registry import load_agent


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_network("compact").eval()


@pytest.fixture(scope="module")
def obs():
    return torch.randint(
        0, 256, (6, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_one_hot_weight_edit_equals_zeroing_input_channel(net, obs):
    i = 5
    v = np.zeros(32, np.float32)
    v[i] = 3.0
    edited = EditedAgent(net).add("2b", v, mode="weight")
    manual = EditedAgent(net)  # a copy we zero by hand
    with torch.no_grad():
        manual.agent.get_submodule("3a").conv.weight[:, i] = 0
    torch.testing.assert_close(edited(obs), manual(obs))
    # one-hot: the activation edit agrees too (L2 pooling acts per channel)
    act = EditedAgent(net).add("2b", v, mode="activation")
    torch.testing.assert_close(act(obs), edited(obs), rtol=1e-4, atol=1e-5)


def test_edit_changes_only_the_projected_direction(net, obs):
    rng = np.random.default_rng(0)
    v = rng.random(32).astype(np.float32)
    edited = EditedAgent(net).add("2b", v, mode="activation")
    a = net.forward_to(obs, "2b")
    P = projection(v)
    # downstream of the layer, the edited agent equals the original fed the projected activation
    expected = net.forward_from("2b", torch.einsum("nchw,dc->ndhw", a, P))
    torch.testing.assert_close(edited(obs), expected)
    # activations orthogonal to v are untouched: the edit is invisible to them
    vt = torch.from_numpy(v / np.linalg.norm(v))
    a_perp = a - torch.einsum("nchw,c->nhw", a, vt)[:, None] * vt[None, :, None, None]
    torch.testing.assert_close(
        torch.einsum("nchw,dc->ndhw", a_perp, P), a_perp, rtol=1e-5, atol=1e-5
    )
    # while the component along v is removed completely
    a_edit = torch.einsum("nchw,dc->ndhw", a, P)
    assert torch.einsum("nchw,c->nhw", a_edit, vt).abs().max() < 1e-4
    # strength 0 is the original; the original module is never modified
    torch.testing.assert_close(EditedAgent(net).add("2b", v, strength=0.0)(obs), net(obs))
    before = {k: t.clone() for k, t in net.state_dict().items()}
    EditedAgent(net).add("2b", v, mode="weight")
    for k, t in net.state_dict().items():
        torch.testing.assert_close(t, before[k])


def test_edits_are_reversible_and_saved(net, obs, tmp_path):
    v = np.random.default_rng(1).random(32)
    edited = (
        EditedAgent(net).add("2b", v, mode="weight", label="saw").add("2a", v, mode="activation")
    )
    assert not torch.allclose(edited(obs)[1], net(obs)[1])
    edited.save(tmp_path / "edited")
    loaded = load_agent(tmp_path / "edited")
    torch.testing.assert_close(loaded(obs), edited(obs))
    assert [e["label"] for e in loaded.checkpoint_config["edits"]] == ["saw", ""]
    edited.remove()
    torch.testing.assert_close(edited(obs), net(obs))


def test_bad_edits(net):
    with pytest.raises(ValueError, match="non-zero"):
        EditedAgent(net).add("2b", np.zeros(32))
    with pytest.raises(ValueError, match="strength"):
        EditedAgent(net).add("2b", np.ones(32), strength=2)
    with pytest.raises(KeyError, match="valid layers"):
        EditedAgent(net).add("9z", np.ones(32))
    with pytest.raises(ValueError, match="mode"):
        EditedAgent(net).add("2b", np.ones(32), mode="magic")
    with pytest.raises(ValueError, match="dense"):
        EditedAgent(net).add("4a", np.ones(32), mode="weight")
    with pytest.raises(ValueError, match="channels"):
        EditedAgent(net).add("2b", np.ones(16), mode="weight")
