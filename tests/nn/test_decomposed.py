"""Decomposed (DWM) Winograd layers vs torch's conv1d/2d/3d in float64: any kernel, any stride."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sparsewino.nn import WinogradConv1d, WinogradConv2d, WinogradConv3d, convert, revert
from sparsewino.prune import apply_mask
from sparsewino.winograd import WinogradAccuracyWarning

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_LAYER = {1: WinogradConv1d, 2: WinogradConv2d, 3: WinogradConv3d}


@st.composite
def strided_cases(draw, dims):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kmax = {1: 11, 2: 11, 3: 5}[dims]
    kernel = tuple(draw(st.integers(1, kmax)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, min(4, k))) for k in kernel)
    padding = tuple(draw(st.integers(0, 3)) for _ in range(dims))
    size = tuple(draw(st.integers(max(1, k - 2 * p), k + (8 if dims < 3 else 3)))
                 for k, p in zip(kernel, padding))
    return dict(groups=groups, cin=cin, cout=cout, kernel=kernel, stride=stride, padding=padding,
                size=size, batch=draw(st.integers(1, 2)), bias=draw(st.booleans()),
                tile=draw(st.sampled_from([2, 3, 4])),
                decompose=draw(st.sampled_from(["auto", "dwm"])),
                domain=draw(st.sampled_from(["spatial", "winograd"])))


def _build(case, dims):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](
        case["cin"], case["cout"], case["kernel"], stride=case["stride"], padding=case["padding"],
        groups=case["groups"], bias=case["bias"]).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WinogradAccuracyWarning)
        layer = _LAYER[dims].from_conv(conv, tile=case["tile"], domain=case["domain"],
                                       decompose=case["decompose"])
    x = torch.randn(case["batch"], case["cin"], *case["size"], dtype=torch.float64)
    return conv, layer, x


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
def test_decomposed_layers_match_torch(dims, data):
    """Forward in both domains, and backward of spatial-domain layers, equal torch's strided
    convolution; to_conv() gives back the weights (exactly for spatial layers)."""
    case = data.draw(strided_cases(dims))
    conv, layer, x = _build(case, dims)
    if case["decompose"] == "dwm" or any(s > 1 for s in case["stride"]):
        stride1_small = all(s == 1 and k <= 3 for s, k in zip(case["stride"], case["kernel"]))
        assert (layer.decomposition is None) == stride1_small
    if layer.decomposition is not None:
        assert layer.weight.shape[2:] == (layer.winograd_shape if case["domain"] == "winograd"
                                          else case["kernel"])
    if layer.decomposition is not None:                 # "auto" and "dwm": at most 3 taps
        assert max(layer.piece_size) <= 3
    x.requires_grad_(True)
    y = layer(x)
    expected = conv(x)
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)
    if case["domain"] == "spatial":
        grad = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, grad, retain_graph=True)
        (gx_ref,) = torch.autograd.grad(expected, x, grad)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-9)
        y.backward(grad)
        expected = conv(x)
        expected.backward(grad)
        torch.testing.assert_close(layer.weight.grad, conv.weight.grad, rtol=1e-9, atol=1e-9)
        assert torch.equal(layer.to_conv().weight, conv.weight)
    else:
        torch.testing.assert_close(layer.to_conv().weight, conv.weight, rtol=1e-10, atol=1e-12)


def test_constructor_api_of_the_issue():
    layer = WinogradConv2d(8, 16, kernel_size=5, stride=2, padding=2, tile=4)
    x = torch.randn(2, 8, 17, 17)
    assert layer(x).shape == (2, 16, 9, 9)
    assert layer.decomposition.describe() == "stride 2x2: 4 pieces 3x3"
    wlayer = layer.to_winograd()
    assert wlayer.weight.shape == (16, 8, 4, 6, 6)                 # one Q per piece
    torch.testing.assert_close(wlayer(x), layer(x), rtol=1e-4, atol=1e-5)
    assert "stride=(2, 2)" in repr(layer) and "decomposed=(stride 2x2: 4 pieces 3x3)" in repr(layer)
    one = WinogradConv1d(4, 6, 7, stride=2, padding=3)
    assert one(torch.randn(4, 20)).shape == (6, 10)                # unbatched (C, L)


def test_decompose_modes_and_pinned_pieces():
    assert WinogradConv2d(2, 2, 5, padding=2, tile=2).piece_size == (3, 3)       # not plain F(2,5)
    assert WinogradConv2d(2, 2, 5, padding=2, tile=2, decompose="none").decomposition is None
    assert WinogradConv2d(2, 2, 5, padding=2, tile=4).piece_size == (3, 3)       # F(4,5) is not
    assert WinogradConv2d(2, 2, 5, padding=2, tile=4, decompose="none").tile == (4, 4)
    assert WinogradConv2d(2, 2, 5, padding=2, tile=2, decompose="dwm").piece_size == (3, 3)
    pinned = WinogradConv2d(2, 2, 5, padding=2, tile=4, decompose=(2, 3))
    assert pinned.piece_size == (2, 3) and pinned.decomposition.windows == (3, 2)
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    pinned = pinned.double()
    torch.testing.assert_close(pinned(x), F.conv2d(x, pinned.weight, pinned.bias, padding=2))
    auto = WinogradConv2d(2, 2, 7, stride=2, padding=3, tile="auto")
    assert auto.decomposition is not None and auto.to_winograd().piece_size == auto.piece_size
    assert auto.piece_size == (3, 3) and auto.tile == (4, 4)                      # not F(3,4) pieces
    assert WinogradConv2d(2, 2, 7, stride=2, padding=3, tile="auto", decompose=4).piece_size == (4, 4)


@pytest.mark.parametrize("kernel,stride", [(4, 1), (5, 1), (6, 1), (7, 1), (9, 1), (11, 1),
                                           (7, 2), (8, 2), (9, 2), (11, 2), (7, 3), (11, 3)])
@pytest.mark.parametrize("tile", ["auto", 2, 3, 4, 6])
def test_auto_keeps_pieces_of_at_most_three_taps(kernel, stride, tile):
    """decompose="auto" (the default) never runs plain F(m, k) for k > 3 or pieces of 4+ taps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WinogradAccuracyWarning)
        layer = WinogradConv2d(1, 1, kernel, stride=stride, padding=kernel // 2, tile=tile)
    assert layer.decomposition is not None and max(layer.piece_size) <= 3


@pytest.mark.parametrize("kernel,stride,tile,larger,bound", [
    (5, 1, 2, "none", 1.2), (7, 1, 2, "none", 1.2), (7, 2, 2, 4, 1.2),     # measured 0.79-0.87x
    (7, 2, 4, 4, 3.5), (5, 1, 4, 4, 3.5), (5, 1, 4, "none", 3.5)])         # measured 2.8-2.9x
def test_auto_is_closer_to_direct_convolution_than_larger_pieces(kernel, stride, tile, larger, bound):
    """Against float64 F.conv2d on random data, the default (pieces of at most 3 taps) stays
    within ``bound`` times the mean error of float32 direct convolution, and below the larger
    pieces at the same tile (plain F(m, k) or 4-tap pieces, 1.4x-11x direct), which a user can
    still ask for."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 8, 32, 32, generator=gen) * 2 - 1
    w = torch.rand(8, 8, kernel, kernel, generator=gen) * 2 - 1
    reference = F.conv2d(x.double(), w.double(), stride=stride, padding=kernel // 2)

    def error(y: torch.Tensor) -> float:
        return (y.double() - reference).abs().mean().item()

    default = WinogradConv2d(8, 8, kernel, stride=stride, padding=kernel // 2, tile=tile, bias=False)
    asked = WinogradConv2d(8, 8, kernel, stride=stride, padding=kernel // 2, tile=tile, bias=False,
                           decompose=larger)
    assert max(default.piece_size) <= 3 < max(asked.piece_size) and default.tile == asked.tile
    with torch.no_grad():
        default.weight.copy_(w)
        asked.weight.copy_(w)
        direct = error(F.conv2d(x, w, stride=stride, padding=kernel // 2))
        ours, theirs = error(default(x)), error(asked(x))
    assert ours < bound * direct and ours < theirs


def test_spatial_state_dict_is_a_conv2d_state_dict():
    conv = nn.Conv2d(3, 4, 7, stride=2, padding=3)
    layer = WinogradConv2d(3, 4, 7, stride=2, padding=3)
    layer.load_state_dict(conv.state_dict())
    conv.load_state_dict(layer.state_dict())
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-4, atol=1e-5)


def test_round_trip_keeps_exact_zeros_and_winograd_weights_outside_the_range():
    layer = WinogradConv2d(2, 3, 3, stride=2, padding=1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight[:, :, 0, :] = 0
    back = layer.to_winograd().to_spatial()
    assert torch.equal(back.weight == 0, layer.weight == 0)
    torch.testing.assert_close(back.weight, layer.weight, rtol=1e-12, atol=1e-14)
    wlayer = layer.to_winograd()
    with torch.no_grad():
        wlayer.weight.add_(torch.randn_like(wlayer.weight))        # leaves the range of the map
    with pytest.warns(UserWarning, match="not in the range"):
        wlayer.to_spatial()


def test_masks_carry_across_domains_for_decomposed_layers():
    """A spatial mask zeroing whole phases of a stride-2 kernel makes those pieces' Q exactly
    zero; converting to the Winograd domain masks them, and back again keeps the taps."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1)).double()
    mask = torch.ones(3, 2, 3, 3, dtype=torch.float64)
    mask[:, :, 1, :] = 0                  # the odd row: phase 1 along H -> pieces (1, *) vanish
    apply_mask(net[0], mask)
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    expected = net(x)
    convert(net, domain="winograd")
    layer = net[0]
    q_mask = layer.weight_mask                                     # (K, C, S, n, n)
    assert q_mask.shape == (3, 2, 4, 5, 5)
    assert (q_mask[:, :, 2:] == 0).all() and (q_mask[:, :, :2] == 1).all()
    torch.testing.assert_close(net(x), expected)
    revert(net)
    assert torch.equal(net[0].weight_mask, mask) and isinstance(net[0], nn.Conv2d)
    torch.testing.assert_close(net(x), expected)


def test_multiplications_of_a_decomposed_layer():
    layer = WinogradConv2d(3, 64, 7, stride=2, padding=3, tile=4, decompose=(2, 2))
    counts = layer.multiplications((1, 3, 224, 224))
    assert counts["direct"] == 64 * 3 * 49 * 112 * 112
    assert counts["winograd"] == 64 * 3 * 16 * 25 * 28 * 28        # 16 pieces F(4,2), 28x28 tiles
    assert counts["reduction"] == pytest.approx(49 / 25)


def test_requested_tile_too_large_for_the_pieces_warns_and_shrinks():
    with pytest.warns(WinogradAccuracyWarning, match="DWM pieces of kernel 7, stride 2"):
        layer = WinogradConv2d(1, 1, 7, stride=2, padding=3, tile=11, decompose="dwm")
    assert layer.tile == (9, 9)


def test_convert_reports_every_convolution_of_a_resnet18():
    from sparsewino.models import MODELS
    model = MODELS.lookup("resnet18").builder(num_classes=10)
    model, report = convert(model, tile=4)
    skipped = report.skipped
    assert set(skipped) == {n for n, m in model.named_modules()
                            if isinstance(m, nn.Conv2d)}                     # the 1x1 shortcuts
    assert all("1x1" in reason for reason in skipped.values()) and len(skipped) == 3
    assert model.conv1.decomposition is not None and model.layer2[0].branch.conv1.stride == (2, 2)


def test_spatial_weights_come_back_exactly_from_a_degenerate_map():
    """16 pieces of F(2,3) for a 10x11/4 kernel: a map whose singular values repeat; the SVD
    behind pinv returned non-orthogonal factors for it on one thread (this torch build)."""
    torch.set_num_threads(1)
    layer = WinogradConv2d(1, 1, (10, 11), stride=4, tile=2, dtype=torch.float64)
    back = layer.to_winograd().to_conv()
    torch.testing.assert_close(back.weight, layer.weight.detach(), rtol=1e-10, atol=1e-12)
