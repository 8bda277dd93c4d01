"""WinogradConv2d/3d vs torch's conv2d/conv3d in float64 (forward and backward)."""
import copy
import io
import math
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sparsewino.nn import WinogradConv2d, WinogradConv3d


@st.composite
def conv_cases(draw, dims):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    if draw(st.booleans()) and dims == 2:               # depthwise
        groups, cin = cin, cin
        cout = cin * draw(st.integers(1, 2))
    kmax = 7 if dims == 2 else 4
    kernel = tuple(draw(st.integers(1, kmax)) for _ in range(dims))
    tile = tuple(draw(st.integers(1, max(1, min(6, 10 - k)))) for k in kernel)
    padding = draw(st.one_of(
        st.just("same"), st.just("valid"), st.integers(0, 3),
        st.tuples(*[st.integers(0, 3) for _ in range(dims)])))
    pads = {"same": [(k - 1) // 2 for k in kernel], "valid": [0] * dims}.get(
        padding if isinstance(padding, str) else None,
        [padding] * dims if isinstance(padding, int) else list(padding))
    size = tuple(draw(st.integers(max(1, k - 2 * p if padding != "same" else 1), 12 if dims == 2 else 7))
                 for k, p in zip(kernel, pads))
    batch = draw(st.integers(1, 3))
    return dict(groups=groups, cin=cin, cout=cout, kernel=kernel, tile=tile, padding=padding,
                size=size, batch=batch, bias=draw(st.booleans()),
                domain=draw(st.sampled_from(["spatial", "winograd"])))


def _reference(layer, x, weight=None):
    conv = F.conv2d if isinstance(layer, WinogradConv2d) else F.conv3d
    weight = layer.spatial_weight() if weight is None else weight
    bias = None if layer.bias is None else layer.bias.detach()
    return conv(x, weight, bias, padding=layer.padding, groups=layer.groups)


def _build(case, cls, dtype=torch.float64):
    layer = cls(case["cin"], case["cout"], case["kernel"], padding=case["padding"],
                groups=case["groups"], bias=case["bias"], tile=case["tile"], dtype=dtype)
    x = torch.randn(case["batch"], case["cin"], *case["size"], dtype=dtype)
    return layer, x


@given(conv_cases(2))
def test_conv2d_forward_backward_float64(case):
    layer, x = _build(case, WinogradConv2d)
    x.requires_grad_(True)
    y = layer(x)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = layer.weight.detach().clone().requires_grad_(True)
    y_ref = _reference(layer, x_ref, w_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.weight.grad, w_ref.grad, rtol=1e-9, atol=1e-9)
    if layer.bias is not None:
        torch.testing.assert_close(layer.bias.grad, grad.sum(dim=(0, 2, 3)))


@given(conv_cases(2))
def test_winograd_domain_layer_matches_spatial_layer(case):
    layer, x = _build(case, WinogradConv2d)
    wlayer = layer.to_winograd()
    assert wlayer.domain == "winograd"
    assert wlayer.weight.shape == (case["cout"], case["cin"] // case["groups"], *layer.winograd_shape)
    torch.testing.assert_close(wlayer(x), _reference(layer, x), rtol=1e-9, atol=1e-9)
    back = wlayer.to_spatial()
    torch.testing.assert_close(back.weight, layer.weight, rtol=1e-9, atol=1e-10)


@given(conv_cases(3))
def test_conv3d_forward_backward_float64(case):
    layer, x = _build(case, WinogradConv3d)
    if case["domain"] == "winograd":
        layer = layer.to_winograd()
    x.requires_grad_(True)
    y = layer(x)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = _reference(layer, x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-9)


def test_winograd_domain_gradient_passes_gradcheck():
    layer = WinogradConv2d(2, 3, 3, padding=1, tile=2, domain="winograd", dtype=torch.float64)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    q = layer.weight.detach().clone().requires_grad_(True)

    def run(inp, weight):
        return torch.func.functional_call(layer, {"weight": weight, "bias": layer.bias}, (inp,))
    assert torch.autograd.gradcheck(run, (x, q))


# Documented float32 tolerances (relative to the output's scale), per tile size, 3x3 kernels.
FLOAT32_TOLERANCE = {2: 2e-6, 4: 1e-5, 6: 5e-5}


@pytest.mark.parametrize("tile", [2, 4, 6])
def test_float32_within_documented_tolerance(tile):
    torch.manual_seed(tile)
    layer = WinogradConv2d(32, 16, 3, padding=1, tile=tile)
    x = torch.randn(2, 32, 17, 15)
    y = layer(x).double()
    ref = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), padding=1)
    rel = ((y - ref).abs().max() / ref.abs().max()).item()
    assert rel < FLOAT32_TOLERANCE[tile]


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (2, 2), (5, 1)])
def test_tiny_images(size):
    layer = WinogradConv2d(3, 4, 3, padding=1, dtype=torch.float64)
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference(layer, x))


def test_unbatched_input():
    layer = WinogradConv2d(3, 4, 3, padding=1, dtype=torch.float64)
    x = torch.randn(3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference(layer, x.unsqueeze(0)).squeeze(0))


def test_auto_tile_and_per_dimension_points():
    layer = WinogradConv2d(2, 2, (3, 5), padding=1, tile="auto", dtype=torch.float64)
    assert layer.tile[0] >= 2 and layer.tile[1] >= 2
    layer = WinogradConv2d(2, 2, 3, padding=1, tile=(2, 4), points=([0, 1, -1], [0, 1, -1, 2, -2]),
                           dtype=torch.float64)
    assert [a.points for a in layer.algorithms][0] == (0, 1, -1)
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference(layer, x))
    layer = WinogradConv2d(2, 2, 3, tile=2, points=[0, 2, -2], dtype=torch.float64)
    assert all(a.points == (0, 2, -2) for a in layer.algorithms)


def test_kernel_size_one_dimensions_use_trivial_algorithm():
    layer = WinogradConv2d(4, 4, (1, 3), padding=(0, 1))
    assert layer.tile == (1, 4) and layer.algorithms[0].is_trivial()


def test_state_dict_round_trip_with_nn_conv2d():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    layer = WinogradConv2d(3, 5, 3, padding=1)
    layer.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-5, atol=1e-5)
    conv2 = nn.Conv2d(3, 5, 3, padding=1)
    conv2.load_state_dict(layer.state_dict())
    torch.testing.assert_close(conv2.weight, conv.weight)
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_winograd_domain_state_dict_round_trip():
    layer = WinogradConv2d(3, 5, 3, padding=1, domain="winograd")
    other = WinogradConv2d(3, 5, 3, padding=1, domain="winograd")
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(1, 3, 6, 6)
    assert torch.equal(layer(x), other(x))
    with pytest.raises(RuntimeError, match="size mismatch"):
        WinogradConv2d(3, 5, 3, padding=1).load_state_dict(layer.state_dict())


@pytest.mark.parametrize("domain", ["spatial", "winograd"])
def test_deepcopy_pickle_and_jit_trace(domain):
    layer = WinogradConv2d(3, 4, 3, padding=1, domain=domain)
    x = torch.randn(2, 3, 9, 7)
    expected = layer(x)
    assert torch.equal(copy.deepcopy(layer)(x), expected)
    assert torch.equal(pickle.loads(pickle.dumps(layer))(x), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, x)
    torch.testing.assert_close(traced(x), expected)


def test_training_in_both_domains_reduces_loss():
    torch.manual_seed(0)
    x = torch.randn(8, 2, 6, 6)
    target = F.conv2d(x, torch.randn(3, 2, 3, 3), padding=1)
    # Adam: plain SGD on Winograd-domain weights needs tiny rates (the transforms scale
    # positions by up to ~850x; docs/winograd.md), which is the pruning issue's business.
    for domain, lr in (("spatial", 0.05), ("winograd", 0.01)):
        layer = WinogradConv2d(2, 3, 3, padding=1, domain=domain)
        opt = torch.optim.Adam(layer.parameters(), lr=lr)
        losses = []
        for _ in range(100):
            opt.zero_grad()
            loss = F.mse_loss(layer(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.2 * losses[0]


def test_to_spatial_warns_when_not_in_range():
    layer = WinogradConv2d(2, 2, 3, padding=1, domain="winograd", dtype=torch.float64)
    with torch.no_grad():
        layer.weight.normal_()
    with pytest.warns(UserWarning, match="not in the range"):
        spatial = layer.to_spatial()
    # least squares: the projection of Q onto the range is reproduced
    q_proj = spatial.to_winograd().weight
    # the residual Q - proj(Q) is orthogonal to the range of G⊗G, so projecting again is exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = spatial.to_winograd().to_spatial()
    torch.testing.assert_close(again.weight, spatial.weight)
    residual = (layer.weight - q_proj).detach()
    assert 0 < residual.norm() < layer.weight.norm()
    assert abs((residual * q_proj).sum().item()) < 1e-9 * layer.weight.norm().item() ** 2


def test_from_conv_and_to_conv():
    for conv, cls in ((nn.Conv2d(4, 6, (3, 5), padding=(1, 2), groups=2, bias=False), WinogradConv2d),
                      (nn.Conv3d(2, 3, 3, padding="same"), WinogradConv3d)):
        conv = conv.double()
        layer = cls.from_conv(conv, tile=2)
        x = torch.randn(2, conv.in_channels, *([6] * (conv.weight.dim() - 2)), dtype=torch.float64)
        torch.testing.assert_close(layer(x), conv(x))
        torch.testing.assert_close(cls.from_conv(conv, domain="winograd")(x), conv(x))
        back = layer.to_conv()
        assert type(back) is type(conv) and torch.equal(back.weight, conv.weight)
    with pytest.raises(TypeError, match="expects an nn.Conv2d"):
        WinogradConv2d.from_conv(nn.Conv3d(1, 1, 3))


def test_multiplications_of_a_layer():
    layer = WinogradConv2d(64, 64, 3, padding=1, tile=4)
    counts = layer.multiplications((1, 64, 56, 56))
    assert counts["reduction"] == pytest.approx(4.0)
    assert counts["direct"] == 64 * 64 * 9 * 56 * 56
    assert math.isclose(counts["winograd_per_output"], 64 * 36 / 16)
