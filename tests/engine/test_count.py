"""count(): exact multiplication counts (direct, dense/sparse Winograd, dynamic) per layer and total."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sparsewino import engine
from sparsewino.nn import WinogradConv2d, WinogradConv3d

from .conftest import sparse_layer


def test_counts_by_hand():
    layer = sparse_layer(3, 5, tile=4, padding=1, sparsity=0.6)
    counts = engine.count(nn.Sequential(layer), (2, 3, 10, 7))
    row = counts["0"]
    tiles = 2 * math.ceil(10 / 4) * math.ceil(7 / 4)
    assert row.direct == 5 * 3 * 9 * 2 * 10 * 7
    assert row.winograd == 5 * 3 * 36 * tiles
    assert row.sparse == int((layer.weight != 0).sum()) * tiles
    assert row.weight_density == pytest.approx(float((layer.weight != 0).float().mean()))
    assert row.dynamic is None and counts.total["dynamic"] is None
    assert row.reduction == pytest.approx(row.direct / row.sparse)
    assert counts.reduction["winograd"] == pytest.approx(row.direct / row.winograd)


def test_plain_convs_groups_and_3d():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    with torch.no_grad():
        conv.weight[:3] = 0
    grouped = WinogradConv2d(6, 6, 3, padding=1, tile=2, groups=3)
    net = nn.Sequential(conv, grouped, nn.Flatten(0, 0))
    counts = engine.count(net, (1, 4, 9, 9))
    assert [l.name for l in counts] == ["0", "1"]
    assert counts["0"].direct == counts["0"].winograd == 6 * 4 * 9 * 25
    assert counts["0"].sparse == 3 * 4 * 9 * 25
    assert counts["1"].direct == 6 * 2 * 9 * 25
    assert counts["1"].winograd == 6 * 2 * 16 * 9
    net3 = nn.Sequential(WinogradConv3d(2, 3, 3, padding=1, tile=2))
    row = engine.count(net3, (1, 2, 4, 4, 4))["0"]
    assert row.direct == 3 * 2 * 27 * 64 and row.winograd == 3 * 2 * 64 * 8


def test_dynamic_count_winograd_relu():
    torch.manual_seed(0)
    layer = sparse_layer(4, 3, tile=2, padding=1, sparsity=0.5, winograd_relu=True)
    x = torch.randn(3, 4, 6, 6)
    row = engine.count(nn.Sequential(layer), (1, 4, 6, 6), inputs=x)["0"]
    # Brute force: transformed input tiles V (relu'd) meet non-zero weights.
    alg = layer.algorithms[0]
    bt = alg.BT
    padded = torch.nn.functional.pad(x.double(), (1, 1, 1, 1))
    q = layer.weight.detach().double()                        # (K, C, 4, 4)
    expected = active = 0
    for n in range(3):
        for c in range(4):
            for ty in range(3):
                for tx in range(3):
                    d = padded[n, c, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
                    v = torch.relu(bt @ d @ bt.T)
                    active += int((v != 0).sum())
                    expected += int(((v != 0) & (q[:, c] != 0)).sum())
    assert row.dynamic == expected
    assert row.activation_density == pytest.approx(active / (3 * 4 * 9 * 16))
    assert row.dynamic < row.sparse
    assert engine.count(nn.Sequential(layer), (1, 4, 6, 6), inputs=x).reduction["dynamic"] == \
        pytest.approx(row.direct / expected)


def test_compiled_model_counts_equal_and_table():
    net = nn.Sequential(sparse_layer(3, 6, sparsity=0.7, groups=3), nn.ReLU(),
                        sparse_layer(6, 4, tile=2, sparsity=0.4, winograd_relu=True)).eval()
    x = torch.randn(2, 3, 8, 8)
    plain = engine.count(net, (2, 3, 8, 8), inputs=x)
    compiled = engine.count(engine.compile(net), (2, 3, 8, 8), inputs=x)
    assert plain.to_dict()["total"] == compiled.to_dict()["total"]
    text = str(plain)
    assert "dynamic" in text and "total" in text and "reduction vs direct" in text
    assert f"{plain.total['direct']:,}" in text


def test_count_errors():
    net = nn.Sequential(WinogradConv2d(3, 4, 3, padding=1))
    with pytest.raises(ValueError, match="input_shape"):
        engine.count(net, (3, 8))
    with pytest.raises(ValueError, match="do not match"):
        engine.count(net, (1, 3, 8, 8), inputs=torch.randn(1, 3, 9, 8))
    with pytest.raises(ValueError, match="no convolution"):
        engine.count(nn.Sequential(nn.Flatten(), nn.Linear(48, 3)), (1, 3, 4, 4))


def test_counts_survive_fusion():
    net = nn.Sequential(sparse_layer(3, 8, sparsity=0.5, domain="spatial"), nn.BatchNorm2d(8),
                        nn.ReLU(), nn.MaxPool2d(2), sparse_layer(8, 4, tile=2, sparsity=0.3)).eval()
    fast = engine.compile(net)
    assert fast.compile_report[0].fused == ("1", "2", "3")
    assert engine.count(fast, (2, 3, 12, 12)).to_dict()["layers"] == \
        engine.count(net, (2, 3, 12, 12)).to_dict()["layers"]


def test_each_table_says_whether_it_counts_the_transforms():
    from sparsewino.nn import WinogradConv2d
    counts = engine.count(nn.Sequential(WinogradConv2d(3, 8, 3, padding=1, tile=4)), (1, 3, 8, 8))
    text = str(counts)
    first, second = text.split("\n\n")
    assert "transforms excluded" in first and "transforms excluded" not in second
    assert "input and output transforms" in second
    assert f"{counts.operations['multiplications']:,}" in second
