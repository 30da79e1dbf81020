"""The one editing mechanism (Appendix A): ``apply_edit(agent, Edit(...))`` on a copy."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rlvision_widgets.agents import build_network
from rlvision_widgets.agents.editing import (
    Edit,
    EditedAgent,
    EditFallbackWarning,
    apply_edit,
    projection,
)
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


def _hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _positive(seed: int, k: int = 1, c: int = 32) -> np.ndarray:
    """NMF-like (non-negative, far from orthogonal) directions."""
    return (
        np.random.default_rng(seed).random((k, c)).astype(np.float32).squeeze(0 if k == 1 else None)
    )


def _plus(direction: np.ndarray, alpha: float = 5.0, seed: int = 0):
    """A forward hook adding ``alpha * direction`` (times a positive spatial map) to an output."""
    v = torch.as_tensor(np.atleast_2d(direction), dtype=torch.float32)

    def hook(_m, _i, out):
        g = torch.Generator().manual_seed(seed)
        maps = torch.rand((out.shape[0], len(v), *out.shape[2:]), generator=g)
        return out + alpha * torch.einsum("nkhw,kc->nchw", maps, v)

    return hook


def test_the_users_module_is_never_modified_nor_hooked(net, obs):
    before = {k: t.clone() for k, t in net.state_dict().items()}
    out_before = net(obs)
    v = _positive(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EditFallbackWarning)
        edited = [
            apply_edit(net, Edit("2b", v)),
            apply_edit(net, Edit("2b", v, mode="activation")),
            apply_edit(net, [Edit("2a", v, mode="activation"), Edit("4a", v)]),  # fallback
        ]
    for e in edited:
        e(obs)
        e.to(torch.float64).to(torch.float32)  # moving the copy leaves the source where it is
    assert _hooks(edited[1].agent) == 1 and _hooks(edited[2].agent) == 2  # the copies are hooked
    assert _hooks(net) == 0
    assert not any(k.startswith("source") for k in edited[0].state_dict())
    after = net.state_dict()
    assert after.keys() == before.keys()
    for k, t in after.items():
        assert torch.equal(t, before[k]), k
    torch.testing.assert_close(net(obs), out_before, rtol=0, atol=0)
    assert edited[0].agent.get_submodule("3a").conv.weight.data_ptr() != (
        net.get_submodule("3a").conv.weight.data_ptr()
    )


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_one_hot_weight_edit_equals_the_activation_edit(net, obs, strength):
    i, v = 5, np.zeros(32, np.float32)
    v[i] = 3.0
    weight = apply_edit(net, Edit("2b", v, strength))
    assert weight.edits[0].mode == "weight"
    manual = apply_edit(net, [])  # an unedited copy, edited by hand: scale input channel i
    with torch.no_grad():
        manual.agent.get_submodule("3a").conv.weight[:, i] *= 1 - strength
    torch.testing.assert_close(weight(obs), manual(obs))
    act = apply_edit(net, Edit("2b", v, strength, mode="activation"))
    # L2 pooling acts per channel: equal up to the pool's eps (sqrt(1e-8) on a zeroed channel)
    torch.testing.assert_close(act(obs), weight(obs), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(weight(obs)[1], net(obs)[1], atol=1e-4)  # the edit did something


@pytest.mark.parametrize("mode", ["weight", "activation"])
def test_strength_zero_is_the_identity(net, obs, mode):
    edited = apply_edit(net, Edit("2b", _positive(1, k=2), strength=0.0, mode=mode))
    torch.testing.assert_close(edited(obs), net(obs))


def test_activation_edit_is_the_projected_activation(net, obs):
    v = _positive(2)
    edited = apply_edit(net, Edit("2b", v, mode="activation"))
    a = net.forward_to(obs, "2b")
    vt = torch.from_numpy(v / np.linalg.norm(v))
    projected = a - torch.einsum("nchw,c->nhw", a, vt)[:, None] * vt[None, :, None, None]
    torch.testing.assert_close(edited(obs), net.forward_from("2b", projected))


def test_projecting_out_makes_the_next_layer_blind_to_the_direction(net, obs):
    v = _positive(3)
    one_hot = np.eye(32, dtype=np.float32)[7]
    for mode, direction, at in [
        ("activation", v, "2b"),  # the layer itself no longer passes v on
        ("weight", one_hot, "2b"),  # one-hot: pooling keeps it in its channel
        ("weight", v, "pool_2b"),  # any v: 3a reads the pooled activation without v
    ]:
        edited = apply_edit(net, Edit("2b", direction, mode=mode))
        ref = edited(obs)
        edited.agent.get_submodule(at).register_forward_hook(_plus(direction), prepend=True)
        torch.testing.assert_close(edited(obs), ref, rtol=1e-5, atol=1e-4)
        # the unedited network does see the added direction (the check can fail)
        copy = apply_edit(net, [])
        copy.agent.get_submodule(at).register_forward_hook(_plus(direction))
        assert (copy(obs)[0] - net(obs)[0]).abs().max() > 1e-2
    # pooling is nonlinear: the weight edit of a non-one-hot v leaves 3a seeing v added at 2b
    edited = apply_edit(net, Edit("2b", v))
    ref = edited(obs)
    edited.agent.get_submodule("2b").register_forward_hook(_plus(v), prepend=True)
    assert (edited(obs)[0] - ref[0]).abs().max() > 1e-3


def test_several_directions_are_projected_out_together(net, obs):
    V = _positive(4, k=2)
    # an independent formula for the projector onto the complement of the rows' span
    expected = np.eye(32) - V.T.astype(np.float64) @ np.linalg.solve(V @ V.T, V).astype(np.float64)
    np.testing.assert_allclose(projection(V).numpy(), expected, atol=1e-5)
    together = apply_edit(net, Edit("2b", V, mode="activation"))
    ref = together(obs)
    together.agent.get_submodule("2b").register_forward_hook(_plus(V), prepend=True)
    torch.testing.assert_close(together(obs), ref, rtol=1e-5, atol=1e-4)
    # one after the other is not the same: non-orthogonal directions leak back in
    seq = apply_edit(
        net, [Edit("2b", V[0], mode="activation"), Edit("2b", V[1], mode="activation")]
    )
    ref = seq(obs)
    seq.agent.get_submodule("2b").register_forward_hook(_plus(V), prepend=True)
    assert (seq(obs)[0] - ref[0]).abs().max() > 1e-3
    # the weight edit of the pooled activation is blind to the whole span too
    w = apply_edit(net, Edit("2b", V))
    ref = w(obs)
    w.agent.get_submodule("pool_2b").register_forward_hook(_plus(V), prepend=True)
    torch.testing.assert_close(w(obs), ref, rtol=1e-5, atol=1e-4)


def test_edits_round_trip_through_json_and_checkpoints(net, obs, tmp_path):
    edits = [
        Edit("2b", _positive(5), 0.8, label="saw"),
        Edit("2a", _positive(6, k=2), mode="activation", label="both"),
        Edit("1a", _positive(7)),  # weight edit of 2a's kernel
    ]
    assert [Edit.from_dict(json.loads(json.dumps(e.to_dict()))) for e in edits] == edits
    edited = apply_edit(net, edits)
    assert not torch.allclose(edited(obs)[1], net(obs)[1])
    edited.save(tmp_path / "edited")
    loaded = load_agent(tmp_path / "edited")
    assert isinstance(loaded, EditedAgent) and list(loaded.edits) == edits
    torch.testing.assert_close(loaded(obs), edited(obs))
    # saving the loaded agent again does not apply its weight edits twice
    loaded.save(tmp_path / "again")
    torch.testing.assert_close(load_agent(tmp_path / "again")(obs), edited(obs))
    # more edits on top of a loaded one keep the recorded ones
    more = apply_edit(loaded, Edit("3a", _positive(8), mode="activation"))
    assert list(more.edits) == [*edits, more.edits[-1]] and isinstance(more.source, nn.Module)
    # the 0.1 record (one "direction") still loads
    old = {"layer": "2b", "direction": [1.0] * 32, "strength": 1.0, "mode": "weight", "label": ""}
    assert Edit.from_dict(old) == Edit("2b", np.ones(32))


def test_a_module_without_a_known_next_conv_falls_back_explicitly(net, obs):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    x = torch.randn(2, 3, 12, 12)
    v = np.ones(8, np.float32)
    with pytest.warns(EditFallbackWarning, match="does not say which conv"):
        custom = apply_edit(Custom(), Edit("a", v))
    assert custom.edits[0].mode == "activation"
    with pytest.warns(EditFallbackWarning, match="dense"):
        assert apply_edit(net, Edit("4a", v.repeat(4))).edits[0].mode == "activation"
    # a plain nn.Sequential says which conv comes next, through per-channel pools
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.MaxPool2d(2)), nn.Conv2d(8, 4, 3)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", EditFallbackWarning)
        w = apply_edit(seq, Edit("1", np.eye(8)[2]))
    assert w.edits[0].mode == "weight" and not w.agent[3].weight[:, 2].any()
    a = apply_edit(seq, Edit("1", np.eye(8)[2], mode="activation"))
    torch.testing.assert_close(w(x), a(x))
    flat = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(800, 2))
    with pytest.warns(EditFallbackWarning, match="Flatten"):
        assert apply_edit(flat, Edit("1", v)).edits[0].mode == "activation"


def test_deprecated_in_place_add_goes_through_apply_edit(net, obs):
    v = _positive(9)
    edited = EditedAgent(net)
    with pytest.warns(FutureWarning, match="apply_edit"):
        edited.add("2b", v)  # 0.1 default: activation
    torch.testing.assert_close(edited(obs), apply_edit(net, Edit("2b", v, mode="activation"))(obs))
    with pytest.warns(FutureWarning):
        edited.remove()
    torch.testing.assert_close(edited(obs), net(obs))
    assert _hooks(net) == 0


def test_bad_edits(net):
    with pytest.raises(ValueError, match="non-zero"):
        Edit("2b", np.zeros(32))
    with pytest.raises(ValueError, match="strength"):
        Edit("2b", np.ones(32), strength=2)
    with pytest.raises(ValueError, match="mode"):
        Edit("2b", np.ones(32), mode="magic")
    with pytest.raises(ValueError, match="finite"):
        Edit("2b", [np.nan] * 32)
    with pytest.raises(ValueError, match="shape"):
        Edit("2b", np.ones((2, 2, 2)))
    with pytest.raises(KeyError, match="valid layers"):
        apply_edit(net, Edit("9z", np.ones(32)))
    with pytest.raises(ValueError, match="channels"):
        apply_edit(net, Edit("2b", np.ones(16)))
    with pytest.raises(ValueError, match="channels"):
        apply_edit(net, Edit("2b", np.ones(16), mode="activation"))
    with pytest.raises(ValueError, match="'layer' and 'directions'"):
        Edit.from_dict({"layer": "2b", "vector": [1.0]})
    with pytest.raises(TypeError, match="Edit values"):
        apply_edit(net, [("2b", np.ones(32))])
