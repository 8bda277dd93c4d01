"""Every pruning method on decomposed (DWM) layers: one Q per piece, exact zero accounting, reports."""
import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d, convert
from sparsewino.winograd import importance_factor_matrix


def _winograd_layer(seed=0, **kwargs):
    torch.manual_seed(seed)
    layer = WinogradConv2d(6, 8, 3, stride=2, padding=1, tile=4, domain="winograd", **kwargs)
    assert layer.weight.shape == (8, 6, 4, 5, 5)
    return layer


def _train_step(module, x):
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        module(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def test_step2_prunes_every_piece_by_importance_factors_and_scales_gradients():
    layer = _winograd_layer()
    sp.winograd_domain(layer, 0.6, grad_power=1.5)
    assert float((layer.weight == 0).double().mean()) == pytest.approx(0.6, abs=1 / layer.weight.numel())
    assert sp.pruning_info(layer)["sparsity"] == pytest.approx(0.6, abs=1e-3)
    factors = importance_factor_matrix(layer.algorithms)
    torch.testing.assert_close(layer.weight_grad_scale.reshape(5, 5).double(), factors ** -1.5, rtol=1e-6, atol=0)
    # the score is |Q| x M per piece: no kept entry scores below a pruned one
    scores = layer.weight_orig.detach().abs().double() * factors
    kept, pruned = scores[layer.weight_mask != 0], scores[layer.weight_mask == 0]
    assert kept.min() >= pruned.max()
    mask = layer.weight_mask.clone()
    _train_step(layer, torch.randn(2, 6, 9, 9))
    assert torch.all(layer.weight[mask == 0] == 0)


def test_native_callback_on_pieces():
    net = nn.Sequential(_winograd_layer(seed=1), nn.ReLU())
    callback = sp.NativeWinogradPruning(net, sparsity=0.5, l1=1e-4)
    callback.on_train_begin(net)
    assert float((net[0].weight == 0).double().mean()) == pytest.approx(0.5, abs=0.01)
    assert callback.regularization(net) > 0


def test_winograd_relu_rewrites_and_prunes_a_strided_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    net, report = sp.winograd_relu(net, tile=2)
    assert report.converted == ["2"] and "DWM stride 2x2: 4 pieces 2x2" in dict(
        (d.name, d.reason) for d in report)["2"]
    layer = net[2]
    assert layer.winograd_relu and layer.weight.shape == (8, 6, 4, 3, 3)
    sp.winograd_relu_prune(layer, density=0.3)
    assert float((layer.weight != 0).double().mean()) == pytest.approx(0.3, abs=1 / layer.weight.numel())
    assert net(torch.randn(2, 3, 12, 12)).shape == (2, 2)


@pytest.mark.parametrize("domain", ["spatial", "winograd"])
def test_structured_kernels_cover_all_pieces_of_a_channel_pair(domain):
    torch.manual_seed(2)
    layer = WinogradConv2d(4, 6, 5, stride=2, padding=2, domain=domain)
    sp.structured(layer, 0.5, granularity="kernel")
    flat = layer.weight.detach().flatten(2)                      # (K, C, S*n*n) or (K, C, k*k)
    zero_kernels = (flat == 0).all(dim=2)
    assert int(zero_kernels.sum()) == 12                         # half of the 24 (k, c) pairs
    assert torch.equal(zero_kernels, (flat != 0).sum(dim=2) == 0)
    q = layer.winograd_weight().detach()
    assert torch.equal((q.flatten(2) == 0).all(dim=2), zero_kernels)   # every piece's Q too


def test_magnitude_and_step1_on_a_plain_strided_conv_then_convert():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1))
    sp.magnitude(net[0], 0.3)
    sp.spatial_winograd(net[2], 0.5)
    target = sp.pruning_info(net[2])["sparsity"]
    convert(net, domain="winograd")
    assert float((net[2].weight == 0).double().mean()) == target
    assert net[2].weight_mask.shape == net[2].weight.shape          # mask carried to the pieces


def test_stats_and_heatmap_per_piece(tmp_path):
    layer = _winograd_layer()
    sp.winograd_domain(layer, 0.5)
    report = sp.stats(nn.Sequential(layer), input_shape=(1, 6, 16, 16))
    row = report["0"]
    assert row.position_sparsity.shape == (4, 5, 5) and len(row.piece_sparsity) == 4
    assert sum(row.piece_sparsity) / 4 == pytest.approx(row.winograd_sparsity)
    assert row.multiplications["dense"] == 8 * 6 * 4 * 25 * 2 * 2       # 8x8 output: 2x2 tiles
    path = sp.plot_position_sparsity(report, str(tmp_path / "pieces.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"
