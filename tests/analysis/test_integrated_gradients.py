"""Hidden-layer integrated gradients: completeness, Captum agreement, paths and outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rlvision_widgets.agents import build_network
from rlvision_widgets.analysis.integrated_gradients import (
    Attribution,
    input_gradients,
    integrated_gradients,
)
from rlvision_widgets.analysis.layers import LayerAccess
from rlvision_widgets.analysis.outputs import parse_output

REPO = Path(__file__).resolve().parents[2]


def _random_net(seed: int = 0, name: str = "compact") -> nn.Module:
    torch.manual_seed(seed)
    net = build_network(name).eval()
    with torch.no_grad():  # non-zero biases: a less degenerate random network
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.normal_(0, 0.05)
    return net


def _obs(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _captum(net: nn.Module, obs: np.ndarray, layer: str, output: str, steps: int = 10):
    captum = pytest.importorskip("captum.attr")
    spec = parse_output(output)
    a = LayerAccess(net).activations_nchw(obs, layer)
    ig = captum.IntegratedGradients(lambda z: spec(*net.forward_from(layer, z)))
    attr = ig.attribute(a, baselines=0.0, n_steps=steps, method="riemann_right")
    return attr.permute(0, 2, 3, 1).detach().numpy()


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return _random_net()


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, np.ndarray]:
    """The shipped reference agent (or runs/reference), with real CoinRun frames."""
    agent = None
    try:
        from rlvision_widgets.agents.registry import load_agent

        agent = load_agent("coinrun")
    except Exception:
        if (REPO / "runs" / "reference" / "latest.json").is_file():
            from rlvision_widgets.agents import load_checkpoint

            agent = load_checkpoint(REPO / "runs" / "reference")[0]
    if agent is None:
        pytest.skip("no trained agent (rlvision_widgets/agents/reference or runs/reference)")
    from rlvision_widgets.rollouts.corpus import collect_corpus

    obs = collect_corpus(None, num_obs=6, interval=6, num_envs=6, seed=3).obs
    return agent.eval(), obs


def test_result_fields_and_shapes(net):
    obs = _obs(3)
    r = integrated_gradients(net, obs, "2b")
    assert isinstance(r, Attribution)
    assert r.attributions.shape == r.activations.shape == (3, 16, 16, 32)
    assert r.attributions.dtype == np.float32
    assert r.outputs.shape == r.baseline_outputs.shape == r.delta.shape == (3,)
    assert (r.layer, r.output, r.steps) == ("2b", "value", 10)
    with torch.no_grad():
        _, value = net(torch.from_numpy(obs))
    np.testing.assert_allclose(r.outputs, value.numpy(), rtol=1e-5, atol=1e-6)
    zero = torch.zeros(1, 32, 16, 16)
    np.testing.assert_allclose(
        r.baseline_outputs, float(net.forward_from("2b", zero)[1].detach()), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        r.delta, r.attributions.sum((1, 2, 3)) - (r.outputs - r.baseline_outputs), atol=1e-5
    )


def test_completeness_improves_with_steps(net):
    obs = _obs(3, seed=1)
    runs = [integrated_gradients(net, obs, "2b", steps=s) for s in (2, 8, 32, 128)]
    errs = [np.abs(r.delta).mean() for r in runs]
    assert errs[1] < errs[0] and errs[2] < errs[1] and errs[3] < errs[2]
    assert errs[3] < 0.1 * errs[0]
    assert float(np.median(runs[-1].relative_delta())) < 0.02


@pytest.mark.parametrize("layer", ["1a", "2a", "2b", "3a", "4a"])
def test_matches_captum_random_weights(net, layer):
    obs = _obs(4, seed=2)
    ours = integrated_gradients(net, obs, layer, "value", steps=10).attributions
    # fp32 round-off of two summation orders: up to 3.1e-5 of the largest attribution at the
    # early layers with AVX2 kernels (1a, 2a), under 1e-5 with AVX-512 ones
    assert _rel(ours, _captum(net, obs, layer, "value")) < 1e-4


@pytest.mark.parametrize("output", ["logit:RIGHT", "group:up", "logprob:3", "logit:14"])
def test_matches_captum_policy_outputs(net, output):
    obs = _obs(3, seed=3)
    ours = integrated_gradients(net, obs, "2b", output, steps=10).attributions
    assert _rel(ours, _captum(net, obs, "2b", output)) < 1e-5


def test_matches_captum_article_network():
    net = _random_net(1, "article")
    obs = _obs(2, seed=4)
    ours = integrated_gradients(net, obs, "2b", "value", steps=10).attributions
    assert ours.shape == (2, 32, 32, 32)
    assert _rel(ours, _captum(net, obs, "2b", "value")) < 1e-5


@pytest.mark.parametrize("layer,output", [("2b", "value"), ("1a", "value"), ("2b", "group:right")])
def test_matches_captum_trained_weights(trained, layer, output):
    agent, obs = trained
    ours = integrated_gradients(agent, obs, layer, output, steps=10).attributions
    assert _rel(ours, _captum(agent, obs, layer, output)) < 1e-5


def test_steps_one_is_gradient_times_activation(net):
    obs = _obs(2, seed=5)
    r = integrated_gradients(net, obs, "3a", steps=1)
    a = LayerAccess(net).activations_nchw(obs, "3a").requires_grad_(True)
    (g,) = torch.autograd.grad(net.forward_from("3a", a)[1].sum(), a)
    expected = (g * a).permute(0, 2, 3, 1).detach().numpy()
    assert _rel(r.attributions, expected) < 1e-6


def test_batch_size_does_not_change_result(net):
    obs = _obs(5, seed=6)
    a = integrated_gradients(net, obs, "2b", batch_size=10).attributions  # one frame per pass
    b = integrated_gradients(net, obs, "2b", batch_size=1000).attributions
    # oneDNN picks conv kernels by batch size: float32 rounding differs, nothing else
    assert _rel(a, b) < 1e-4


def _float64_ig(net: nn.Module, obs: np.ndarray, layer: str, steps: int = 10) -> np.ndarray:
    net64 = copy.deepcopy(net).double()
    a = LayerAccess(net).activations_nchw(obs, layer).double()
    total = torch.zeros_like(a)
    for alpha in torch.linspace(1 / steps, 1, steps).tolist():
        z = (alpha * a).requires_grad_(True)
        (g,) = torch.autograd.grad(net64.forward_from(layer, z)[1].sum(), z)
        total += g
    return (total * a / steps).permute(0, 2, 3, 1).numpy()


def test_share_next_conv_is_no_longer_applied(net):
    obs = _obs(2, seed=7)
    with pytest.warns(FutureWarning, match="share_next_conv"):
        r = integrated_gradients(net, obs, "2a", share_next_conv=True)
    plain = integrated_gradients(net, obs, "2a")
    np.testing.assert_array_equal(r.attributions, plain.attributions)
    truth = _float64_ig(net, obs, "2a")
    assert _rel(plain.attributions, truth) < 2e-3


class Wrapped(nn.Module):
    """A non-ConvAgent model: layers reached by dotted name through hooks."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, obs):
        return self.inner(obs)


def test_hook_path_matches_convagent_path(net):
    obs = _obs(3, seed=8)
    wrapped = Wrapped(net)
    names = LayerAccess(wrapped).layer_names
    assert "inner.2b.0" in names and "inner.2b.1" in names
    fast = integrated_gradients(net, obs, "2b", "logit:7")
    hooked = integrated_gradients(wrapped, obs, "inner.2b", "logit:7")
    assert _rel(hooked.attributions, fast.attributions) < 1e-5
    np.testing.assert_allclose(hooked.baseline_outputs, fast.baseline_outputs, rtol=1e-5)


def test_input_gradients_match_autograd(net):
    obs = _obs(2, seed=9)
    g = input_gradients(net, obs, "value")
    assert g.shape == (2, 64, 64, 3) and g.dtype == np.float32
    x = torch.from_numpy(obs).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    h = net.get_submodule("1a")(x.contiguous(memory_format=torch.channels_last))
    v = net.forward_from("1a", h)[1]
    (ref,) = torch.autograd.grad(v.sum(), x)
    assert _rel(g, ref.permute(0, 2, 3, 1).numpy()) < 1e-5


def test_bad_inputs_name_valid_choices(net):
    with pytest.raises(KeyError, match="valid layers.*'2b'"):
        integrated_gradients(net, _obs(1), "5z")
    with pytest.raises(TypeError, match="uint8"):
        integrated_gradients(net, _obs(1).astype(np.float32), "2b")
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        integrated_gradients(net, np.zeros((1, 32, 32, 3), np.uint8), "2b")
    with pytest.raises(ValueError, match="valid outputs"):
        integrated_gradients(net, _obs(1), "2b", output="reward")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(net, _obs(1), "2b", steps=0)


def test_input_gradients_on_wrapped_agent(net):
    from rlvision_widgets.agents.editing import EditedAgent

    obs = _obs(2, seed=10)
    np.testing.assert_allclose(
        input_gradients(EditedAgent(net), obs, "logit:3"),
        input_gradients(net, obs, "logit:3"),
        rtol=1e-5,
        atol=1e-8,
    )


@pytest.mark.parametrize("name,layer", [("compact", "2b"), ("compact", "1a"), ("article", "2b")])
def test_fused_l2pool_gives_the_same_attributions(name, layer):
    fused = _random_net(2, name)
    plain = copy.deepcopy(fused)
    plain.fused_l2pool = False
    assert fused.fused_l2pool and not plain.fused_l2pool
    obs = _obs(2, seed=11)
    a = integrated_gradients(fused, obs, layer, "group:right")
    b = integrated_gradients(plain, obs, layer, "group:right")
    # pool size 2: the fused backward is the same float arithmetic as autograd's chain
    np.testing.assert_array_equal(a.attributions, b.attributions)
    np.testing.assert_array_equal(a.outputs, b.outputs)


# ---------------------------------------------------------------- generic modules (hooks)
class ToFloat(nn.Module):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.permute(0, 3, 1, 2).float() / 255


class Heads(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.policy, self.value = nn.Linear(d, 15), nn.Linear(d, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(h), self.value(h).squeeze(-1)


def _sequential(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        ToFloat(),
        nn.Conv2d(3, 8, 4, 4),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        Heads(8 * 16 * 16),
    ).eval()


class Custom(nn.Module):
    """Nested submodules, reached by dotted names such as "body.mid"."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.ModuleDict(
            {
                "stem": nn.Sequential(nn.Conv2d(3, 8, 4, 4), nn.ReLU()),
                "mid": nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Softplus()),
            }
        )
        self.pool = nn.AvgPool2d(2)
        self.heads = Heads(8 * 8 * 8)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = obs.permute(0, 3, 1, 2).float() / 255
        x = self.body["mid"](self.body["stem"](x))
        return self.heads(self.pool(x).flatten(1))


def _all_hooks(model: nn.Module) -> list:
    return [
        (name, d)
        for name, m in model.named_modules()
        for d in (m._forward_hooks, m._forward_pre_hooks)
        if len(d)
    ]


@pytest.mark.parametrize(
    "make,layer",
    [(_sequential, "2"), (_sequential, "4"), (Custom, "body.mid"), (Custom, "body.stem.1")],
)
def test_generic_module_via_hooks(make, layer):
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obs = _obs(3, seed=12)
    access = LayerAccess(model)
    assert not access.uses_network_paths(layer)
    r = integrated_gradients(model, obs, layer, "value", steps=256)
    # the user's module is left as it was: no hooks, same parameters
    assert _all_hooks(model) == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # completeness: attributions sum to F(x) - F(baseline), both computed independently
    with torch.no_grad():
        _, value = model(torch.from_numpy(obs))
    np.testing.assert_allclose(r.outputs, value.numpy(), rtol=1e-5, atol=1e-6)
    zero = torch.zeros(1, *r.activations.shape[1:]).permute(0, 3, 1, 2)
    f0 = float(access.forward_from(layer, zero)[1][0].detach())
    gap = value.numpy() - f0
    assert np.abs(r.attributions.sum((1, 2, 3)) - gap).max() < 0.01 * np.abs(gap).max()
    # agreement with Captum on the same forward-from-layer function
    captum = pytest.importorskip("captum.attr")
    a = access.activations_nchw(obs, layer)
    ig = captum.IntegratedGradients(lambda z: access.forward_from(layer, z)[1])
    ref = ig.attribute(a, baselines=0.0, n_steps=10, method="riemann_right")
    ours = integrated_gradients(model, obs, layer, "value", steps=10).attributions
    assert _rel(ours, ref.permute(0, 2, 3, 1).detach().numpy()) < 1e-5
    assert _all_hooks(model) == []


def test_hooks_removed_when_the_forward_pass_fails():
    model = _sequential()
    obs = _obs(1)
    with pytest.raises(ValueError, match="valid outputs"):
        integrated_gradients(model, obs, "2", output="reward")

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model[5] = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        integrated_gradients(model, obs, "2")
    assert _all_hooks(model) == []


def test_convagent_fast_path_completeness_and_no_hooks(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    obs = _obs(3, seed=13)
    assert LayerAccess(net).uses_network_paths("2b")
    r = integrated_gradients(net, obs, "2b", "value", steps=256)
    with torch.no_grad():
        _, value = net(torch.from_numpy(obs))
        f0 = float(net.forward_from("2b", torch.zeros(1, 32, 16, 16))[1][0])
    gap = value.numpy() - f0
    assert np.abs(r.attributions.sum((1, 2, 3)) - gap).max() < 0.01 * np.abs(gap).max()
    assert _all_hooks(net) == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_agent_must_be_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        integrated_gradients(lambda x: x, _obs(1), "2b")
