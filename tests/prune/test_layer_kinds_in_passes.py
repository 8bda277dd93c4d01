"""stats, magnitude, column and convert/revert handle low-rank and adder layers through their layer kind."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import (
    LAYER_KINDS,
    AdderConv2d,
    LowRankWinogradConv3d,
    WinogradAdderConv2d,
    WinogradConv2d,
    WinogradConv3d,
    convert,
    revert,
)
from sparsewino.nn.kinds import LayerKind
from sparsewino.prune.mask import pruning_info


def low_rank(seed: int = 0) -> LowRankWinogradConv3d:
    torch.manual_seed(seed)
    return LowRankWinogradConv3d(3, 4, 3, rank=3, tile=2, padding=1).double()


def test_stats_of_a_low_rank_layer_is_that_of_u_v_computed_by_hand():
    layer = low_rank()
    sp.column(layer, 0.25)
    with torch.no_grad():                      # exact zeros of U·V beyond whole columns
        layer.u[:2] = 0.0
    net = nn.Sequential(layer)
    row = sp.stats(net, input_shape=(1, 3, 4, 4, 4))["0"]
    product = (layer.u @ (layer.v_orig * layer.v_mask)).detach().reshape(4, 3, 4, 4, 4)
    expected = float((product == 0).double().mean())
    assert 0.25 < expected < 1.0
    assert row.winograd_sparsity == pytest.approx(expected, abs=0)
    torch.testing.assert_close(row.position_sparsity, (product == 0).double().mean(dim=(0, 1)))
    assert row.rank == 3 and row.method == "column" and row.spatial_sparsity is None
    assert row.domain == "winograd" and row.exponent is None
    assert row.multiplications["sparse"] == pytest.approx(row.multiplications["dense"] * (1 - expected))


def test_stats_reports_adder_layers_apart_from_the_multiplying_totals():
    torch.manual_seed(0)
    net = nn.Sequential(WinogradConv2d(2, 4, 3, padding=1, tile=2),
                        AdderConv2d(4, 4, 3, padding=1, p=2.0),
                        WinogradAdderConv2d(4, 4, 3, padding=1, tile=2))
    sp.magnitude(net[1], 0.5)
    sp.magnitude(net[2], 0.25)
    report = sp.stats(net, input_shape=(1, 2, 6, 6))
    adder, wadder = report["1"], report["2"]
    assert adder.exponent == 2.0 and adder.domain == "spatial" and adder.winograd_sparsity is None
    assert adder.spatial_sparsity == pytest.approx(0.5) and adder.multiplications is None
    assert wadder.exponent == 1.0 and wadder.domain == "winograd" and wadder.spatial_sparsity is None
    assert wadder.winograd_sparsity == pytest.approx(0.25) and wadder.position_sparsity.shape == (4, 4)
    assert adder.method == wadder.method == "magnitude"
    alone = sp.stats(nn.Sequential(net[0]), input_shape=(1, 2, 6, 6)).totals
    assert report.totals == alone                    # the totals are the multiplying layers'


def test_magnitude_counts_each_kind_in_its_weight_domain():
    torch.manual_seed(0)
    net = nn.Sequential(AdderConv2d(2, 3, 3), WinogradAdderConv2d(3, 3, 3, tile=2),
                        WinogradConv2d(3, 3, 3, tile=2, domain="winograd"), nn.Conv2d(3, 3, 3))
    sp.prune_model(net, "magnitude", 0.5)
    assert [pruning_info(m)["domain"] for m in net] == ["spatial", "winograd", "winograd", "spatial"]
    assert all(float((m.weight == 0).double().mean()) == pytest.approx(0.5, abs=0.02) for m in net)


def test_column_pruning_masks_the_kinds_mask_parameter():
    layer = sp.column(low_rank(), 0.5)
    assert pruning_info(layer, "v")["method"] == "column" and not pruning_info(layer, "weight")
    assert int((layer.v_mask == 0).all(dim=0).sum()) == 32
    vanilla = sp.column(WinogradConv3d(3, 4, 3, tile=2, padding=1, domain="winograd"), 0.5)
    kept = (vanilla.weight_mask != 0).flatten(0, 1)        # (rows, 64): whole columns
    assert int((~kept).all(dim=0).sum()) == 32 and bool((kept.all(0) | (~kept).all(0)).all())
    with pytest.raises(ValueError, match="columns of v"):
        sp.column(low_rank(), 0.5, name="u")


def test_convert_and_revert_ask_the_kind_what_to_do():
    torch.manual_seed(0)
    net = nn.Sequential(low_rank(), AdderConv2d(4, 4, 3, padding=1).double(),
                        WinogradAdderConv2d(4, 4, 3, padding=1, tile=2).double())
    x = torch.randn(1, 3, 4, 4, 4, dtype=torch.float64)
    expected = net[0](x)
    adders = (net[1], net[2])
    _, report = convert(net, domain="spatial")
    assert report.converted == ["0"]                           # the adder layers are left alone
    assert report[0].reason.startswith("lowrank3d -> spatial domain, F(2x2x2,3x3x3); least-squares")
    assert type(net[0]) is WinogradConv3d and net[0].domain == "spatial"
    assert (net[1], net[2]) == adders
    revert(net)
    assert type(net[0]) is nn.Conv3d and (net[1], net[2]) == adders
    torch.testing.assert_close(net[0](x), expected)          # rank 3 of a rank-3 product: exact


def test_a_new_kind_reaches_convert_through_to_full():
    class Halved(WinogradConv2d):
        """A toy kind whose full layer has half the weights."""

    def to_full(layer):
        full = WinogradConv2d(layer.in_channels, layer.out_channels, 3, tile=layer.tile,
                              bias=False, domain="spatial")
        with torch.no_grad():
            full.weight.copy_(layer.spatial_weight() / 2)
        return full, "halved"

    kind = LAYER_KINDS.register(LayerKind("halved2d", "toy", nn.Conv2d, Halved, made_by="low_rank",
                                          domain="winograd", to_full=to_full))
    try:
        net = nn.Sequential(Halved(2, 2, 3, tile=2, bias=False, domain="winograd"))
        _, report = convert(net, domain="spatial")
        assert report[0].reason.endswith("; halved") and type(net[0]) is WinogradConv2d
    finally:
        LAYER_KINDS.unregister(kind.name)
