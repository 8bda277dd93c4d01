"""Column-wise (low-rank oriented) pruning, its registry entry, and what stats/heatmaps make of it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import LowRankWinogradConv2d, LowRankWinogradConv3d, WinogradConv3d, convert
from sparsewino.prune.methods.column import ColumnImportance, column_importance


def low_rank(seed: int = 0, **kwargs) -> LowRankWinogradConv3d:
    torch.manual_seed(seed)
    options = dict(rank=6, tile=2, padding=1) | kwargs
    return LowRankWinogradConv3d(4, 5, 3, **options).double()


def columns_of(layer: nn.Module) -> torch.Tensor:
    """W as (rows, P), computed directly."""
    q = layer.winograd_weight().detach()
    return q.reshape(q.shape[0] * q.shape[1], -1)


def test_prunes_the_columns_of_lowest_norm():
    layer = low_rank()
    norms = columns_of(layer).norm(dim=0)
    sp.column(layer, 0.75)
    pruned = (columns_of(layer) == 0).all(dim=0)
    assert int(pruned.sum()) == 48
    assert set(pruned.nonzero().flatten().tolist()) == set(norms.argsort()[:48].tolist())
    assert tuple(sp.get_mask(layer, "v").shape) == (6, 64)
    assert sp.pruning_info(layer, "v") | {} == {"method": "column", "amount": 0.75,
                                                "domain": "winograd", "sparsity": 0.75,
                                                "scope": "layer"}


def test_importances_from_the_factors_match_their_definitions():
    layer = low_rank(seed=1)
    w = columns_of(layer)
    assert torch.allclose(column_importance(layer, "l2"), w.pow(2).mean(dim=0).sqrt())
    assert torch.allclose(column_importance(layer, "l1"), w.abs().mean(dim=0))
    assert torch.allclose(column_importance(layer, "factor"),
                          layer.v.detach().pow(2).mean(dim=0).sqrt())
    with pytest.raises(ValueError, match="one of"):
        column_importance(layer, "l3")


def test_custom_importance_and_count_amount():
    class LastPositionsFirst(ColumnImportance):
        def __call__(self, module):
            return torch.arange(64, 0, -1, dtype=torch.float64)

    layer = sp.column(low_rank(), 10, importance=LastPositionsFirst())
    assert (columns_of(layer) == 0).all(dim=0).nonzero().flatten().tolist() == list(range(54, 64))


def test_earlier_columns_stay_pruned_and_count():
    layer = low_rank()
    sp.column(layer, 0.25)
    first = (columns_of(layer) == 0).all(dim=0)
    with torch.no_grad():
        layer.v_orig.mul_(100)                    # pruned columns would now score highest
    sp.column(layer, 0.5)
    second = (columns_of(layer) == 0).all(dim=0)
    assert (second[first]).all() and int(second.sum()) == 32


def test_vanilla_winograd_domain_layers_lose_whole_positions():
    torch.manual_seed(0)
    layer = WinogradConv3d(3, 4, 3, tile=4, domain="winograd")
    sp.column(layer, 0.5)
    mask = sp.get_mask(layer)
    per_position = (mask == 0).flatten(0, 1)
    assert (per_position.all(dim=0) == per_position.any(dim=0)).all()     # whole positions only
    assert int(per_position.all(dim=0).sum()) == 108


@pytest.mark.parametrize("make,message", [
    (lambda: WinogradConv3d(2, 2, 3, domain="spatial"), "convert with domain='winograd'"),
    (lambda: nn.Conv3d(2, 2, 3), "got Conv3d"),
])
def test_layers_without_positions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        sp.column(make(), 0.5)


def test_model_wide_layer_and_global_scopes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.Conv3d(8, 4, 3, padding=1))
    convert(net, tile=2, low_rank=16)
    layers = [net[0], net[2], net[4]]
    sp.prune_model(net, "column", 0.5, overrides={"4": 0.25})
    assert [sp.pruning_info(m, "v")["sparsity"] for m in layers] == [0.5, 0.5, 0.25]
    sp.prune_model(net, "column", 0.75, scope="global")
    pruned = [int((columns_of(m) == 0).all(dim=0).sum()) for m in layers]
    assert sum(pruned) == round(0.75 * 192) and pruned[2] >= 16


def test_unstructured_baseline_on_vanilla_3d_winograd_weights():
    """The baseline of the comparison: magnitude pruning of Q's entries (no whole position)."""
    torch.manual_seed(0)
    layer = WinogradConv3d(6, 6, 3, tile=2, domain="winograd")
    sp.magnitude(layer, 0.75)
    q = layer.weight.detach()
    assert float((q == 0).double().mean()) == 0.75
    assert int((q == 0).flatten(0, 1).all(dim=0).sum()) == 0
    report = sp.stats(nn.Sequential(layer))
    assert report["0"].winograd_sparsity == pytest.approx(0.75)


def test_stats_and_heatmap_show_pruned_columns(tmp_path):
    net = nn.Sequential(low_rank(), nn.ReLU(),
                        LowRankWinogradConv3d(5, 5, 3, rank=0.1, tile=4, padding=1).double())
    sp.prune_model(net, "column", 0.5)
    report = sp.stats(net, input_shape=(1, 4, 6, 6, 6))
    row = report["2"]
    assert row.rank == 22 and row.method == "column" and row.domain == "winograd"
    assert row.position_sparsity.shape == (6, 6, 6)
    assert sorted(set(row.position_sparsity.flatten().tolist())) == [0.0, 1.0]
    assert row.winograd_sparsity == pytest.approx(0.5)
    assert report.totals["winograd_sparsity"] == pytest.approx(0.5)
    assert row.multiplications["sparse"] == pytest.approx(row.multiplications["dense"] / 2)
    assert "column" in str(report)
    path = sp.plot_position_sparsity(report, str(tmp_path / "positions.png"))
    assert (tmp_path / "positions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path


def test_2d_low_rank_layers_prune_the_same_way():
    torch.manual_seed(0)
    layer = sp.column(LowRankWinogradConv2d(6, 6, 3, rank=8, tile=4), 0.5)
    assert int((columns_of(layer) == 0).all(dim=0).sum()) == 18


def test_registered_with_states_for_recipes():
    spec = sp.METHODS.lookup("column")
    assert spec.states == ("winograd", "winograd_relu") and spec.layer_function is sp.column
    assert [f.name for f in __import__("dataclasses").fields(spec.options)] == ["importance"]
