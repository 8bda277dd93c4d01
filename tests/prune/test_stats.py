"""Sparsity reports: both domains, per position, totals weighted by multiplications, heatmaps."""
import json

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d, WinogradConv3d, convert
from sparsewino.winograd.transform import filter_transform


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         WinogradConv2d(8, 8, 3, padding=1, tile=2), nn.ReLU(),
                         WinogradConv2d(8, 6, 3, padding="same", tile=4, domain="winograd"),
                         nn.Conv2d(6, 6, 3, stride=2), nn.Conv2d(6, 4, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_per_layer_numbers_in_both_domains():
    model = _model()
    sp.spatial_winograd(model[0], 0.4)
    sp.spatial_winograd(model[2], 0.5)
    sp.winograd_domain(model[4], 0.6)
    sp.magnitude(model[5], 0.3)
    report = sp.stats(model)
    assert [l.name for l in report.layers] == ["0", "2", "4", "5", "6"]
    first, second, third, strided, pointwise = report.layers
    assert first.algorithm == "F(4x4,3x3) assumed" and first.domain == "conv"
    assert first.winograd_sparsity == sp.pruning_info(model[0])["sparsity"]
    converted = convert(nn.Sequential(model[0]), tile=4)[0][0]        # what conversion really gives
    q = filter_transform(converted.weight.double(), converted.algorithms)
    assert first.winograd_sparsity == float((q == 0).double().mean())
    assert second.algorithm == "F(2x2,3x3)" and second.position_sparsity.shape == (4, 4)
    assert second.winograd_sparsity == sp.pruning_info(model[2])["sparsity"]
    assert second.spatial_sparsity == float((model[2].weight == 0).double().mean())
    torch.testing.assert_close(second.position_sparsity.mean(), torch.tensor(second.winograd_sparsity,
                                                                             dtype=torch.float64))
    assert third.spatial_sparsity is None and third.winograd_sparsity == pytest.approx(0.6, abs=1 / 1728)
    assert strided.spatial_sparsity == pytest.approx(0.3, abs=1 / 324)
    # a stride-2 conv is measured as the DWM pieces conversion would give it
    assert strided.algorithm == "DWM stride 2x2: 4 pieces 2x2 of F(4x4,2x2) assumed"
    assert strided.position_sparsity.shape == (4, 5, 5) and len(strided.piece_sparsity) == 4
    assert strided.winograd_sparsity == pytest.approx(sum(strided.piece_sparsity) / 4)
    assert pointwise.algorithm is None and pointwise.method is None
    assert report.totals["winograd_weighting"] == "weights"
    spatial = [first, second, strided, pointwise]
    assert report.totals["winograd_sparsity"] == pytest.approx(
        sum(l.winograd_sparsity * l.winograd_weights for l in (first, second, third, strided))
        / sum(l.winograd_weights for l in (first, second, third, strided)))
    expected = sum(l.spatial_sparsity * l.weights for l in spatial) / sum(l.weights for l in spatial)
    assert report.totals["spatial_sparsity"] == pytest.approx(expected)
    table = str(report)
    assert "spatial_winograd" in table and "F(2x2,3x3)" in table and "total" in table
    json.dumps(report.to_dict())
    assert sp.stats(model, tile=None)["0"].winograd_sparsity is None


def test_totals_weighted_by_multiplications():
    model = _model()
    sp.spatial_winograd(model[0], 0.4)
    sp.winograd_domain(model[4], 0.8)
    report = sp.stats(model, input_shape=(2, 3, 13, 11))
    first = report["0"]
    tiles = 2 * 4 * 3                                               # ceil(13/4) x ceil(11/4) per image
    assert first.multiplications["dense"] == 8 * 3 * 36 * tiles
    assert first.multiplications["direct"] == 8 * 3 * 9 * 13 * 11 * 2
    assert first.multiplications["sparse"] == pytest.approx(
        first.multiplications["dense"] * (1 - first.winograd_sparsity), rel=1e-12)
    assert first.winograd_sparsity == pytest.approx(0.4, abs=1 / 24)
    strided = report["5"]                      # DWM: 4 pieces F(4,2) over 2x2 tiles of the 6x5 output
    assert strided.multiplications["direct"] == 6 * 6 * 9 * 6 * 5 * 2
    assert strided.multiplications["dense"] == 6 * 6 * 4 * 25 * 2 * 2 * 2
    pointwise = report["6"]
    assert pointwise.multiplications["dense"] == pointwise.multiplications["direct"] == 4 * 6 * 6 * 5 * 2
    wino = [l for l in report.layers if l.winograd_sparsity is not None]
    dense = sum(l.multiplications["dense"] for l in wino)
    sparse = sum(l.multiplications["dense"] * (1 - l.winograd_sparsity) for l in wino)
    assert report.totals["winograd_weighting"] == "multiplications"
    assert report.totals["winograd_sparsity"] == pytest.approx(1 - sparse / dense)
    assert report.totals["sparse_multiplications"] < report.totals["dense_multiplications"]
    assert "→" in str(report)


def test_heatmaps_are_written(tmp_path):
    model = _model()
    sp.spatial_winograd(model[2], 0.5)
    path = sp.plot_position_sparsity(sp.stats(model), str(tmp_path / "map.png"), title="test")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    net3d = nn.Sequential(WinogradConv3d(2, 3, 3, tile=2))
    sp.spatial_winograd(net3d[0], 0.5)
    assert sp.stats(net3d)["0"].position_sparsity.shape == (4, 4, 4)
    path = sp.plot_position_sparsity(net3d, str(tmp_path / "map3d.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"
    with pytest.raises(ValueError, match="no layer"):
        sp.plot_position_sparsity(sp.stats(model), str(tmp_path / "none.png"), layers=["9"])
