"""Spatial-Winograd step 1: reported sparsity == exact zeros of G g Gᵀ, tolerance, beats magnitude."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d, WinogradConv3d
from sparsewino.nn.functional import winograd_weight
from sparsewino.prune.criteria import support_matrix
from sparsewino.winograd import LAVIN_POINTS


def _q(layer, weight=None):
    weight = layer.weight.detach().double() if weight is None else weight
    return winograd_weight(weight, layer.algorithms, layer.decomposition)


def _measured(layer):
    return float((_q(layer) == 0).double().mean())


@settings(max_examples=25)
@given(k=st.integers(1, 5), c=st.integers(1, 4), kernel=st.tuples(st.integers(1, 5), st.integers(2, 5)),
       tile=st.tuples(st.integers(1, 4), st.integers(1, 4)), target=st.floats(0.0, 1.0),
       seed=st.integers(0, 2 ** 16))
def test_reported_equals_measured_and_target_within_one_kernel(k, c, kernel, tile, target, seed):
    torch.manual_seed(seed)
    layer = WinogradConv2d(c, k, kernel, tile=tile, dtype=torch.float64)
    # DWM pieces padded to 3 taps (a 4-tap kernel: 3 + 1) hold zeros before any pruning; they
    # count towards the target, so a target below them prunes nothing
    structural = _measured(layer)
    sp.spatial_winograd(layer, target)
    reported = sp.pruning_info(layer)["sparsity"]
    assert reported == _measured(layer)
    assert abs(reported - max(target, structural)) <= 1 / (k * c) + 1e-12
    # pruned spatial weights are exactly the union of groups of the positions that are zero
    q_zero = (_q(layer) == 0).reshape(k * c, -1)
    support = support_matrix(layer.algorithms, decomposition=layer.decomposition).double()
    covered = (q_zero.double() @ support) > 0
    assert torch.equal(covered, (layer.weight_mask == 0).reshape(k * c, -1))


def test_three_d_and_lavin_points():
    torch.manual_seed(0)
    layer = WinogradConv3d(3, 4, 3, padding=1, tile=2, dtype=torch.float64)
    sp.spatial_winograd(layer, 0.45)
    assert sp.pruning_info(layer)["sparsity"] == _measured(layer)
    assert abs(_measured(layer) - 0.45) <= 1 / 12
    lavin = WinogradConv2d(8, 8, 3, tile=4, points=LAVIN_POINTS[6])
    sp.spatial_winograd(lavin, 0.6)
    assert abs(_measured(lavin) - 0.6) <= 1 / 64


def test_plain_conv_gets_the_mask_of_its_winograd_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1)
    layer = WinogradConv2d.from_conv(conv, tile=4)
    sp.spatial_winograd(conv, 0.5, tile=4)
    sp.spatial_winograd(layer, 0.5)
    assert torch.equal(conv.weight_mask, layer.weight_mask)
    converted = WinogradConv2d.from_conv(conv, tile=4)
    assert _measured(converted) == sp.pruning_info(conv)["sparsity"]


@pytest.mark.parametrize("target", [0.3, 0.5, 0.6, 0.7, 0.8])
def test_far_more_winograd_zeros_than_magnitude_at_equal_spatial_sparsity(target):
    torch.manual_seed(0)
    structured = WinogradConv2d(24, 24, 3, padding=1, tile=4)
    magnitude = WinogradConv2d(24, 24, 3, padding=1, tile=4)
    magnitude.load_state_dict(structured.state_dict())
    sp.spatial_winograd(structured, target)
    spatial = float((structured.weight == 0).double().mean())
    sp.magnitude(magnitude, spatial)
    assert float((magnitude.weight == 0).double().mean()) == pytest.approx(spatial, abs=1 / 5184)
    ours, baseline = _measured(structured), _measured(magnitude)
    assert abs(ours - target) <= 1 / 576
    assert ours >= baseline + 0.15 and ours >= 1.3 * baseline, (ours, baseline)


def test_global_amount_and_iterative_targets():
    torch.manual_seed(0)
    net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1), nn.ReLU(),
                        WinogradConv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1))
    sp.prune_model(net, "spatial_winograd", 0.6, scope="global")
    zeros = sum(float((_q(m) == 0).sum()) for m in (net[0], net[2]))
    total = sum(m.weight.shape[0] * m.weight.shape[1] * 36 for m in (net[0], net[2]))
    assert abs(zeros / total - 0.6) <= 36 / total
    assert _measured(net[0]) != pytest.approx(_measured(net[2]), abs=1e-3)   # one threshold, not one target
    previous = net[2].weight_mask.clone()
    for target in (0.7, 0.8):
        sp.prune_model(net, "spatial_winograd", target, exclude=["0"])
        assert torch.all(net[2].weight_mask <= previous)
        previous = net[2].weight_mask.clone()
        assert abs(_measured(net[2]) - target) <= 1 / 128


def test_errors_for_layers_step1_cannot_prune():
    with pytest.raises(ValueError, match="domain='winograd'"):
        sp.spatial_winograd(WinogradConv2d(2, 2, 3, domain="winograd"), 0.5)
    with pytest.raises(ValueError, match="Winograd-eligible convolution"):
        sp.spatial_winograd(nn.Conv2d(2, 2, 3, dilation=2), 0.5)
    layers, skipped = sp.prunable_layers(
        nn.Sequential(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 1), WinogradConv2d(2, 2, 3, domain="winograd")),
        "spatial_winograd")
    assert [n for n, _ in layers] == ["0"]
    assert "1x1" in skipped["1"] and "Winograd-domain" in skipped["2"]


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (7, 2, 3), (5, 1, 2)])
def test_decomposed_layers_count_the_zeros_of_every_piece(kernel, stride, padding):
    """Step 1 on DWM layers: groups are the taps each piece's positions depend on; the reported
    sparsity is the exact zeros of all pieces' Q, also after conversion of a plain conv."""
    torch.manual_seed(kernel)
    conv = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding).double()
    layer = WinogradConv2d.from_conv(conv, tile=4)
    assert layer.decomposition is not None
    sp.spatial_winograd(conv, 0.5, tile=4)
    sp.spatial_winograd(layer, 0.5)
    assert torch.equal(conv.weight_mask, layer.weight_mask)
    reported = sp.pruning_info(layer)["sparsity"]
    assert reported == _measured(layer) and abs(reported - 0.5) <= 1 / 30 + 1e-12
    converted = WinogradConv2d.from_conv(conv, tile=4).to_winograd()
    assert float((converted.weight == 0).double().mean()) == reported
    q = _q(layer)
    assert q.shape[2] == layer.pieces
    report = sp.stats(nn.Sequential(layer))
    row = report["0"]
    assert row.winograd_sparsity == reported and len(row.piece_sparsity) == layer.pieces
    assert row.position_sparsity.shape == layer.winograd_shape
    assert row.algorithm.startswith("DWM")
