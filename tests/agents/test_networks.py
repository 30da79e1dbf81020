"""Network shapes and layer access."""

import pytest
import torch

from rlvision_widgets.agents.networks import (
    ConvAgent,
    L2Pool,
    NetworkConfig,
    article_config,
    build_network,
    compact_config,
    multiply_adds,
)


def test_article_layer_shapes_match_appendix_c():
    net = build_network("article")
    assert net.layer_shapes == {
        "1a": (64, 64, 16),
        "2a": (32, 32, 32),
        "2b": (32, 32, 32),
        "3a": (16, 16, 32),
        "4a": (8, 8, 32),
    }
    obs = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    for layer, (h, w, c) in net.layer_shapes.items():
        assert net.forward_to(obs, layer).shape == (3, c, h, w)
    logits, value = net(obs)
    assert logits.shape == (3, 15) and value.shape == (3,)
    assert [m.out_features for m in net.dense if isinstance(m, torch.nn.Linear)] == [256, 512]


def test_compact_object_layer_is_at_least_16x16():
    net = build_network("compact")
    h, w, _ = net.layer_shapes[net.config.object_layer]
    assert h >= 16 and w >= 16
    assert set(net.layer_names) == {"1a", "2a", "2b", "3a", "4a"}


@pytest.mark.parametrize("name", ["article", "compact"])
def test_forward_from_layer_reproduces_forward(name):
    torch.manual_seed(0)
    net = build_network(name).eval()
    obs = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    logits, value = net(obs)
    for layer in net.layer_names:
        l2, v2 = net.forward_from(layer, net.forward_to(obs, layer))
        torch.testing.assert_close(l2, logits)
        torch.testing.assert_close(v2, value)


def test_configurable_widths_and_kernels():
    net = ConvAgent(article_config(widths=(8, 16, 16, 16, 16), kernels=(3, 3, 3, 3, 3)))
    assert net.layer_shapes["2b"] == (32, 32, 16)
    assert multiply_adds(net.config) < multiply_adds(article_config())
    cfg = NetworkConfig.from_dict(compact_config().to_dict())
    assert cfg == compact_config()


def test_l2_pool_has_finite_gradient_at_zero():
    net = build_network("article")
    act = torch.zeros(1, 16, 64, 64, requires_grad=True)
    _, v = net.forward_from("1a", act)
    v.sum().backward()
    assert torch.isfinite(act.grad).all()


def test_bad_inputs_give_clear_errors():
    net = build_network("compact")
    with pytest.raises(TypeError, match="uint8"):
        net(torch.zeros(1, 64, 64, 3))
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(KeyError, match="valid layers"):
        net.forward_to(torch.zeros(1, 64, 64, 3, dtype=torch.uint8), "5a")
    with pytest.raises(ValueError, match="unknown network"):
        build_network("resnet")


@pytest.mark.parametrize(
    "size,shape,channels_last",
    [(2, (3, 8, 16, 16), True), (2, (3, 8, 16, 16), False), (3, (2, 4, 7, 7), True)],
)
def test_fused_l2pool_matches_plain_autograd(size, shape, channels_last):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    x[0, :, :3, :3] = 0  # an all-zero window: eps keeps the gradient finite
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(L2Pool(size)(x))
    grads, outs = [], []
    for fused in (True, False):
        xi = x.clone().requires_grad_(True)
        y = L2Pool(size, fused=fused)(xi)
        (gx,) = torch.autograd.grad((y * g).sum(), xi)
        grads.append(gx)
        outs.append(y.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-7)
    if size == 2:  # powers of two: the same float arithmetic, bit for bit
        assert torch.equal(grads[0], grads[1])


def test_fused_l2pool_option_on_the_network():
    torch.manual_seed(0)
    net = build_network("compact")
    assert net.fused_l2pool
    plain = ConvAgent(net.config, fused_l2pool=False)
    plain.load_state_dict(net.state_dict())
    assert not plain.fused_l2pool
    act = net.forward_to(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8), "2b")
    grads = []
    for model in (net, plain):
        a = act.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model.forward_from("2b", a)[1].sum(), a)
        grads.append(g)
    assert torch.equal(grads[0], grads[1])
    net.fused_l2pool = False
    assert not any(m.fused for m in net.modules() if isinstance(m, L2Pool))
