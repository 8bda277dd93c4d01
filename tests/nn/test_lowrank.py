"""LowRankWinogradConv3d/2d: W = U·V, ranks, SVD initialisation, conversions, convert(low_rank=)."""
from __future__ import annotations

import copy
import io
import math
import pickle
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import (
    LowRankWinogradConv2d,
    LowRankWinogradConv3d,
    RankError,
    WinogradConv3d,
    convert,
    revert,
)
from sparsewino.nn.lowrank import resolve_rank, truncated_factors
from sparsewino.winograd.transform import filter_transform


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> None:
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 2), c=st.integers(1, 6), k=st.integers(1, 6),
       d=st.integers(1, 7), h=st.integers(1, 7), w=st.integers(1, 7),
       tile=st.sampled_from([2, 3, 4]), padding=st.sampled_from([0, 1, "same"]),
       groups=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_full_rank_factors_compute_conv3d_in_float64(batch, c, k, d, h, w, tile, padding, groups,
                                                      seed):
    """With R = rank(W) (<= 27 for a 3x3x3 kernel) the factorisation is exact: the layer is
    the convolution it was made from."""
    c, k = c * groups, k * groups
    torch.manual_seed(seed)
    conv = nn.Conv3d(c, k, 3, padding=padding, groups=groups).double()
    rows = k * c // groups
    layer = LowRankWinogradConv3d.from_conv(conv, rank=min(rows, 27), tile=tile)
    assert layer.init_error < 1e-12
    minimum = 3 if padding == 0 else 1
    x = torch.randn(batch, c, max(d, minimum), max(h, minimum), max(w, minimum),
                    dtype=torch.float64)
    with torch.no_grad():
        assert_close(layer(x), conv(x))


def test_2d_layer_is_the_same_maths():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1).double()
    layer = LowRankWinogradConv2d.from_conv(conv, rank=9, tile=4)
    x = torch.randn(2, 5, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        assert_close(layer(x), conv(x))
    assert tuple(layer.v.shape) == (9, 36) and layer.parameter_counts()["winograd"] == 35 * 36


def test_weight_is_the_masked_product_of_the_factors():
    layer = LowRankWinogradConv3d(3, 4, 3, rank=5, tile=2, padding=1)
    product = (layer.u @ layer.v).reshape(4, 3, 4, 4, 4)
    assert torch.equal(layer.winograd_weight(), product) and torch.equal(layer.weight, product)
    assert set(dict(layer.named_parameters())) == {"u", "v", "bias"}
    sp.column(layer, 0.5)
    kept = layer.column_mask()
    assert int(kept.sum()) == 32
    assert (layer.winograd_weight().reshape(12, 64)[:, ~kept] == 0).all()


def test_truncated_svd_is_the_best_rank_r_approximation():
    torch.manual_seed(0)
    w = torch.randn(20, 30, dtype=torch.float64)
    u, v, error = truncated_factors(w, 6)
    singular = torch.linalg.svdvals(w)
    optimal = float(singular[6:].pow(2).sum().sqrt() / singular.pow(2).sum().sqrt())
    assert error == pytest.approx(optimal, rel=1e-10)
    assert float((w - u @ v).norm() / w.norm()) == pytest.approx(optimal, rel=1e-10)
    assert float(u.norm()) == pytest.approx(float(v.norm()), rel=1e-10)      # balanced


def test_from_conv_of_a_winograd_layer_approximates_its_q():
    torch.manual_seed(0)
    source = WinogradConv3d(4, 6, 3, tile=4, padding=1, domain="winograd").double()
    with torch.no_grad():
        source.weight.add_(0.1 * torch.randn_like(source.weight))     # not a spatial transform
    layer = LowRankWinogradConv3d.from_conv(source, rank=10)
    assert layer.tile == source.tile and layer.rank == 10
    q = source.weight.detach().reshape(24, 216)
    singular = torch.linalg.svdvals(q)
    assert layer.init_error == pytest.approx(
        float(singular[10:].pow(2).sum().sqrt() / singular.pow(2).sum().sqrt()), rel=1e-8)


@pytest.mark.parametrize("rank,rows,positions,expected", [
    (8, 64, 64, 8), (0.25, 64, 216, 54), (1.0, 10, 64, 10), (0.001, 64, 64, 1), (27, 27, 216, 27),
])
def test_rank_resolution(rank, rows, positions, expected):
    assert resolve_rank(rank, rows, positions) == expected


@pytest.mark.parametrize("rank,message", [
    (0, "must be >= 1"), (-3, "must be >= 1"), (1.5, r"\(0, 1\]"), (0.0, r"\(0, 1\]"),
    (float("nan"), r"\(0, 1\]"), (True, "an int"), ("8", "an int"), (65, "larger than possible"),
])
def test_impossible_ranks_are_refused(rank, message):
    with pytest.raises(RankError, match=message):
        LowRankWinogradConv3d(4, 16, 3, rank=rank, tile=2)            # W is 64 x 64


@pytest.mark.parametrize("kwargs,message", [
    (dict(stride=2), "stride=1"), (dict(dilation=2), "dilation=1"),
    (dict(padding_mode="reflect"), "padding_mode"),
])
def test_unsupported_stride_and_dilation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LowRankWinogradConv3d(2, 2, 3, rank=2, **kwargs)
    with pytest.raises(ValueError, match=message):
        LowRankWinogradConv3d.from_conv(nn.Conv3d(2, 2, 3, **kwargs), rank=2)


def test_from_conv_refuses_other_dimensions():
    with pytest.raises(TypeError, match="nn.Conv3d"):
        LowRankWinogradConv3d.from_conv(nn.Conv2d(2, 2, 3), rank=2)


def test_parameter_counts():
    layer = LowRankWinogradConv3d(16, 32, 3, rank=0.125, tile=4, bias=False)
    assert layer.parameter_counts() == {"low_rank": 27 * (512 + 216), "winograd": 512 * 216,
                                        "spatial": 512 * 27, "bias": 0}
    assert "rank=27" in repr(layer) and "vanilla Winograd 110,592" in repr(layer)


def test_to_winograd_is_exact_and_carries_pruned_columns():
    torch.manual_seed(0)
    layer = LowRankWinogradConv3d(3, 5, 3, rank=6, tile=2, padding=1).double()
    sp.column(layer, 0.25)
    full = layer.to_winograd()
    assert type(full) is WinogradConv3d and full.domain == "winograd"
    x = torch.randn(2, 3, 4, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        assert_close(full(x), layer(x), 1e-12)
    mask = sp.get_mask(full)
    assert mask is not None and int((mask == 0).flatten(0, 1).all(dim=0).sum()) == 16
    assert sp.pruning_info(full)["method"] == "column"


def test_to_spatial_reports_the_least_squares_residual():
    torch.manual_seed(0)
    exact = LowRankWinogradConv3d.from_conv(nn.Conv3d(3, 4, 3, padding=1).double(), rank=12)
    assert exact.spatial_residual() < 1e-10                  # still a transform of a kernel
    with torch.no_grad():
        exact.v.add_(0.3 * torch.randn_like(exact.v))           # as training would
    residual = exact.spatial_residual()
    assert residual > 1e-3
    with pytest.warns(UserWarning, match=f"{residual:.3g}"):
        conv = exact.to_conv()
    assert type(conv) is nn.Conv3d
    # The least-squares kernel is what it says: conv(x) vs the layer differ by that much.
    x = torch.randn(1, 3, 6, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        g = filter_transform(conv.weight, exact.algorithms).reshape(12, -1)
        q = exact.winograd_weight().reshape(12, -1)
        assert float((q - g).norm() / q.norm()) == pytest.approx(residual, rel=1e-8)
        assert not torch.allclose(conv(x), exact(x))


def test_training_updates_factors_and_pruned_columns_stay_zero():
    torch.manual_seed(0)
    layer = LowRankWinogradConv3d(2, 3, 3, rank=4, tile=2, padding=1)
    sp.column(layer, 0.5)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    before = layer.u.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(2, 2, 4, 4, 4)).square().mean().backward()
        optimizer.step()
    assert not torch.equal(layer.u.detach(), before)
    kept = layer.column_mask()
    assert (layer.winograd_weight().reshape(6, 64)[:, ~kept] == 0).all()


def test_state_dict_deepcopy_and_pickle_of_a_pruned_layer():
    torch.manual_seed(0)
    layer = LowRankWinogradConv3d(2, 3, 3, rank=4, tile=2, padding=1)
    sp.column(layer, 0.25)
    x = torch.randn(1, 2, 3, 4, 5)
    with torch.no_grad():
        y = layer(x)
        for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            assert torch.equal(other(x), y)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    fresh = LowRankWinogradConv3d(2, 3, 3, rank=4, tile=2, padding=1)
    sp.load_pruned_state_dict(fresh, torch.load(io.BytesIO(buffer.getvalue())))
    with torch.no_grad():
        assert torch.equal(fresh(x), y)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.Conv3d(8, 8, 3, stride=2), nn.Conv3d(8, 8, 1)).double()


def test_convert_low_rank_reports_ranks_caps_and_skips():
    net = small_net()
    x = torch.randn(1, 1, 6, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        before = net(x)
    net, report = convert(net, tile=2, low_rank=27)
    assert report.converted == ["0", "2"]
    assert isinstance(net[0], LowRankWinogradConv3d) and net[0].rank == 4     # W is 4 x 64
    assert "capped at min(K·C/groups, P) = 4" in report[0].reason
    assert "rank 27 of 64 positions" in report[1].reason
    assert report.skipped == {"4": "low-rank layers are not decomposed (DWM): stride (2, 2, 2), kernel (3, 3, 3)",
                              "5": "1x1 kernel: Winograd saves no multiplications"}
    with torch.no_grad():
        assert_close(net(x), before, 1e-9)                      # rank >= rank(W): exact
    _, again = convert(net, low_rank=8)
    assert again.skipped["0"] == "already a low-rank Winograd layer (rank 4)"


def test_convert_low_rank_from_winograd_layers_and_back():
    net = small_net()
    convert(net, tile=4, domain="winograd")
    sp.prune_model(net, "magnitude", 0.5, include=["2"])
    net, report = convert(net, low_rank=0.1)
    assert isinstance(net[2], LowRankWinogradConv3d) and net[2].rank == 22
    assert "pruning mask baked in" in report[1].reason
    with pytest.raises(RankError, match="larger than"):
        LowRankWinogradConv3d(1, 1, 3, rank=2)
    with pytest.raises(RankError):
        convert(small_net(), low_rank=0)
    sp.column(net[2], 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back, report = convert(copy.deepcopy(net), domain="spatial")
    assert type(back[2]) is WinogradConv3d and back[2].domain == "spatial"
    assert "least-squares relative residual" in report[1].reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = revert(net)
    assert [type(m) for m in plain] == [nn.Conv3d, nn.ReLU, nn.Conv3d, nn.ReLU, nn.Conv3d,
                                        nn.Conv3d]


def test_pruning_the_full_weight_of_a_low_rank_layer_says_what_to_do():
    layer = LowRankWinogradConv3d(4, 4, 3, rank=4, tile=2)
    sp.column(layer, 0.5)
    for prune in (sp.magnitude, sp.winograd_domain, sp.structured):
        with pytest.raises(ValueError, match=r"prune whole Winograd positions with "
                                             r"sparsewino.prune.column"):
            prune(layer, 0.5)
    sp.magnitude(layer, 0.5, name="u")                          # a factor by name is fine
    assert math.isclose(float((layer.u == 0).double().mean()), 0.5)
