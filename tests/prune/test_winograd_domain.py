"""Step 2: importance factor matrix values, exact gradient scaling 1/M̂^p, IFM selection, step 1 -> 2."""
import copy
import math

import pytest
import torch

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d, WinogradConv3d
from sparsewino.winograd import LAVIN_POINTS

# Lavin & Gray (2016), as printed in the paper.
LAVIN_F23 = dict(AT=[[1, 1, 1, 0], [0, 1, -1, -1]],
                 BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
LAVIN_F43 = dict(AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                     [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])


def _expected_ifm(matrices):
    at = torch.tensor(matrices["AT"], dtype=torch.float64)
    bt = torch.tensor(matrices["BT"], dtype=torch.float64)
    a = at.norm(dim=0) * bt.norm(dim=1)                 # a_i = ||AT[:, i]|| ||BT[i, :]||
    m = torch.outer(a, a)
    return m / m.min()


@pytest.mark.parametrize("tile, matrices, largest", [(2, LAVIN_F23, 2.0), (4, LAVIN_F43, 20.238095238095237)])
def test_ifm_values_with_lavin_points(tile, matrices, largest):
    layer = WinogradConv2d(1, 1, 3, tile=tile, points=LAVIN_POINTS[tile + 2], domain="winograd",
                           bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.fill_(-1.0)                        # |Q| = 1, so the criterion is M̂ itself
    factors = sp.IFMMagnitude()(layer)[0, 0]
    expected = _expected_ifm(matrices)
    torch.testing.assert_close(factors, expected, rtol=1e-14, atol=0)
    assert factors.max().item() == pytest.approx(largest, rel=1e-12)
    if tile == 2:                                        # M̂ = [1, √2, √2, 1] ⊗ [1, √2, √2, 1]
        side = torch.tensor([1, math.sqrt(2), math.sqrt(2), 1], dtype=torch.float64)
        torch.testing.assert_close(factors, torch.outer(side, side), rtol=1e-14, atol=0)
    # M̂ depends on the points (the default accurate F(4,3) points give another matrix)
    if tile == 4:
        default = WinogradConv2d(1, 1, 3, tile=4, domain="winograd", bias=False, dtype=torch.float64)
        with torch.no_grad():
            default.weight.fill_(1.0)
        assert not torch.allclose(sp.IFMMagnitude()(default)[0, 0], expected)


@pytest.mark.parametrize("power", [1.0, 1.5, 0.5])
def test_gradient_is_divided_by_ifm_to_the_power_p(power):
    torch.manual_seed(0)
    layer = WinogradConv2d(3, 4, 3, padding=1, tile=4, points=LAVIN_POINTS[6], domain="winograd",
                           dtype=torch.float64)
    reference = copy.deepcopy(layer)
    sp.winograd_domain(layer, 0.5, grad_power=power)
    mask = layer.weight_mask.clone()
    with torch.no_grad():
        reference.weight.mul_(mask)
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    grad = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    layer(x).backward(grad)
    reference(x).backward(grad)
    ifm = _expected_ifm(LAVIN_F43)
    expected = reference.weight.grad / ifm ** power * mask
    torch.testing.assert_close(layer.weight_orig.grad, expected, rtol=1e-13, atol=0)
    torch.testing.assert_close(sp.ifm_grad_scale(layer, power)[0, 0], ifm ** -power, rtol=1e-14, atol=0)


def test_plain_pruning_has_no_gradient_scale_and_prunes_smallest_q():
    torch.manual_seed(1)
    layer = WinogradConv2d(4, 4, 3, tile=2, domain="winograd")
    sp.winograd_domain(layer, 0.5)                           # IFM first: a scale exists
    assert sp.get_grad_scale(layer) is not None
    sp.winograd_domain(layer, 0.6, ifm=False)                # plain: scale removed
    assert sp.get_grad_scale(layer) is None
    assert "weight_grad_scale" not in dict(layer.named_buffers())
    sp.winograd_domain(layer, 0.6, grad_power=0)
    assert sp.get_grad_scale(layer) is None


@pytest.mark.parametrize("ifm", [True, False])
def test_pruned_entries_are_the_lowest_scores(ifm):
    torch.manual_seed(2)
    layer = WinogradConv3d(3, 3, 3, tile=2, domain="winograd") if ifm else \
        WinogradConv2d(5, 6, 3, tile=4, domain="winograd")
    scores = (sp.IFMMagnitude() if ifm else sp.Magnitude())(layer)
    sp.winograd_domain(layer, 0.65, ifm=ifm)
    pruned = layer.weight_mask == 0
    assert int(pruned.sum()) == round(0.65 * layer.weight.numel())
    assert scores[pruned].max() <= scores[~pruned].min()


def test_step1_then_step2_keeps_step1_zeros():
    torch.manual_seed(0)
    spatial = WinogradConv2d(8, 8, 3, padding=1, tile=4)
    sp.spatial_winograd(spatial, 0.5)
    layer = spatial.to_winograd()                            # Q = G g Gᵀ: exact zeros carried
    zeros = layer.weight == 0
    assert float(zeros.double().mean()) == pytest.approx(0.5, abs=1 / 64)
    sp.winograd_domain(layer, 0.7)
    assert torch.all(layer.weight_mask[zeros] == 0)
    assert float((layer.weight == 0).double().mean()) == pytest.approx(0.7, abs=1 / layer.weight.numel())


def test_spatial_layer_is_refused_with_advice():
    with pytest.raises(ValueError, match="to_winograd"):
        sp.winograd_domain(WinogradConv2d(2, 2, 3), 0.5)
    with pytest.raises(ValueError, match="domain='winograd'"):
        sp.IFMMagnitude()(torch.nn.Conv2d(2, 2, 3))


@pytest.mark.parametrize("block,k", [(8, 20), (4, 6), (8, 8)])
def test_block_pruning_prunes_whole_blocks_of_output_channels(block, k):
    """block=B: the mask is constant over each block of B output channels (the last one
    shorter) at every position and input channel, the pruned blocks have the lowest mean
    score, and the amount counts entries."""
    torch.manual_seed(k)
    layer = WinogradConv2d(5, k, 3, tile=4, domain="winograd")
    scores = sp.IFMMagnitude()(layer).double()
    sp.winograd_domain(layer, 0.6, block=block)
    keep = layer.weight_mask.bool()
    starts = list(range(0, k, block))
    means = []
    for s in starts:
        part = keep[s:s + block]
        assert torch.equal(part, part[:1].expand_as(part))          # whole blocks
        means.append(scores[s:s + block].mean(dim=0))
    kept_blocks = torch.stack([keep[s] for s in starts])
    means = torch.stack(means)
    assert means[~kept_blocks].max() <= means[kept_blocks].min()
    # prefix sums of sorted block sizes (<= block apart) come within block / 2 of the target
    assert abs(int((~keep).sum()) - round(0.6 * keep.numel())) <= block / 2


def test_block_pruning_counts_earlier_zeros_and_prunes_masked_blocks_first():
    torch.manual_seed(0)
    layer = WinogradConv2d(4, 16, 3, tile=2, domain="winograd")
    sp.winograd_domain(layer, 0.25, block=8)                  # a quarter of the blocks
    first = layer.weight_mask.clone()
    sp.winograd_domain(layer, 0.5, block=8)                   # those stay pruned
    assert bool(((first == 0) <= (layer.weight_mask == 0)).all())
    assert int((layer.weight_mask == 0).sum()) == layer.weight.numel() // 2
    with pytest.raises(ValueError, match="block"):
        sp.winograd_domain(layer, 0.5, block=0)
