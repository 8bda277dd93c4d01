"""Winograd-ReLU: layer vs a float64 reference of Y = Aᵀ[Q ⊙ ReLU(Bᵀ d B)]A, model rewrite, density pruning."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsewino import prune as sp
from sparsewino.models import create_model
from sparsewino.nn import WinogradConv2d


def reference_winograd_relu(x, q, bias, at, bt, padding):
    """Tile by tile, in float64: pad, cut n×n tiles, V = ReLU(Bᵀ d B), Y = Aᵀ[Σ_c Q ⊙ V]A."""
    m, n = at.shape
    r = n - m + 1
    x = F.pad(x, (padding, padding, padding, padding))
    out_h, out_w = x.shape[2] - r + 1, x.shape[3] - r + 1
    tiles_h, tiles_w = math.ceil(out_h / m), math.ceil(out_w / m)
    x = F.pad(x, (0, tiles_w * m + r - 1 - x.shape[3], 0, tiles_h * m + r - 1 - x.shape[2]))
    y = torch.zeros(x.shape[0], q.shape[0], tiles_h * m, tiles_w * m, dtype=torch.float64)
    for i in range(tiles_h):
        for j in range(tiles_w):
            d = x[:, :, i * m:i * m + n, j * m:j * m + n]
            v = torch.relu(bt @ d @ bt.T)
            products = torch.einsum("kcab,ncab->nkab", q, v)
            y[:, :, i * m:(i + 1) * m, j * m:(j + 1) * m] = at @ products @ at.T
    y = y[:, :, :out_h, :out_w]
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("tile, size, padding, bias", [(2, (7, 9), 1, True), (4, (6, 6), 0, False),
                                                        (2, (1, 1), 1, True), (4, (11, 5), 1, True)])
def test_layer_matches_float64_reference(tile, size, padding, bias):
    torch.manual_seed(tile + size[0])
    layer = WinogradConv2d(3, 5, 3, padding=padding, tile=tile, bias=bias, domain="winograd",
                           winograd_relu=True, dtype=torch.float64)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    (alg,) = set(layer.algorithms)
    expected = reference_winograd_relu(x, layer.weight.detach(), layer.bias, alg.AT, alg.BT, padding)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)
    sp.winograd_relu_prune(layer, density=0.3)                       # pruned Q, same formula
    expected = reference_winograd_relu(x, layer.weight.detach(), layer.bias, alg.AT, alg.BT, padding)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


def test_winograd_relu_differs_from_spatial_relu():
    torch.manual_seed(0)
    layer = WinogradConv2d(2, 2, 3, padding=1, tile=2, domain="winograd", winograd_relu=True,
                           dtype=torch.float64)
    plain = WinogradConv2d(2, 2, 3, padding=1, tile=2, domain="winograd", dtype=torch.float64)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    assert not torch.allclose(layer(x), plain(torch.relu(x)))


class FunctionalBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.relu(x))


def test_rewrite_reports_what_changed_and_what_could_not():
    torch.manual_seed(0)
    shared = nn.ReLU()
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),                                  # 0: model input
        nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()),                    # 1.1 feeds 2 (nested)
        nn.Conv2d(4, 4, 3, padding=1),                                  # 2: converted
        nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1),                    # 3 commutes through 4, 5
        nn.Conv2d(4, 4, 3, padding=1),                                  # 6: converted
        nn.LeakyReLU(),
        nn.Conv2d(4, 4, 3, padding=1),                                  # 8: LeakyReLU is no ReLU
        shared, nn.Conv2d(4, 4, 3, padding=1), shared,                  # 10: ReLU used twice
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),                      # 12: dilated
        nn.ReLU(), FunctionalBlock(),                                   # 14.conv: custom forward
        nn.ReLU(), WinogradConv2d(4, 4, 3, padding=1, tile=4),          # 16: Winograd layer
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    traced = copy.deepcopy(model)
    model, report = sp.winograd_relu(model, tile=2, traced=False)
    assert sorted(report.converted) == ["16", "2", "6"]
    assert sorted(report.removed_relus) == ["1.1", "15", "3"]
    for name in ("1.1", "3", "15"):
        assert isinstance(model.get_submodule(name), nn.Identity)
    assert isinstance(model[9], nn.ReLU) and isinstance(model[13], nn.ReLU)
    for name in ("2", "6", "16"):
        layer = model.get_submodule(name)
        assert isinstance(layer, WinogradConv2d) and layer.domain == "winograd" and layer.winograd_relu
    assert model[2].tile == (2, 2) and model[16].tile == (4, 4)       # existing layers keep theirs
    skipped = report.skipped
    assert "model input" in skipped["0"]
    assert "LeakyReLU" in skipped["8"]
    assert "several places" in skipped["10"]
    assert "dilation" in skipped["12"]
    assert "custom forward" in skipped["14.conv"]
    assert "3 of 8 convolutions" in str(report)
    assert [d.name for d in report] == ["0", "2", "6", "8", "10", "12", "14.conv", "16"]
    model.eval()
    model(torch.randn(2, 1, 16, 16))
    # following forward() too: the ReLU used twice and the one in a custom forward feed convs
    traced, report = sp.winograd_relu(traced, tile=2)
    assert sorted(report.converted) == ["10", "14.conv", "16", "2", "6"]
    assert sorted(report.removed_relus) == ["1.1", "15", "3"]          # the others stay
    assert "kept" in next(d.reason for d in report if d.name == "10")
    assert isinstance(traced[9], nn.ReLU) and traced[14].conv.winograd_relu
    assert set(report.skipped) == {"0", "8", "12"}


@pytest.mark.parametrize("name, decompose, rewritten", [
    ("resnet18_max", "auto", 16), ("resnet18", "auto", 16), ("resnet18", "none", 13)])
def test_every_3x3_conv_of_resnet18_is_rewritten(name, decompose, rewritten):
    torch.manual_seed(0)
    model = create_model(name, width=4).eval()
    model, report = sp.winograd_relu(model, tile=2, decompose=decompose)
    # 16 = every 3x3 conv of the blocks; resnet18's three stride-2 ones are DWM pieces, or left
    # alone with decompose="none"
    assert len(report.converted) == rewritten
    assert len(report.removed_relus) == 8                     # the ReLU inside each branch
    first = model.layer1[1].branch.conv1                      # fed by the previous block's ReLU
    assert first.winograd_relu and isinstance(model.layer1[0].relu, nn.ReLU)
    block = model.layer1[1].double()
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    (alg,) = set(first.algorithms)
    expected = reference_winograd_relu(x, first.weight.detach(), first.bias, alg.AT, alg.BT, 1)
    torch.testing.assert_close(block.branch.conv1(x), expected, rtol=1e-10, atol=1e-10)
    model.float()(torch.randn(1, 3, 32, 32))
    old = sp.winograd_relu(create_model(name, width=4), tile=2, traced=False)[1]
    assert len(old.converted) == 8                            # the second conv of each block


def test_architecture_records_replay_old_and_new_rewrites():
    from sparsewino.recipes.architecture import apply_transform, build_model, new_architecture
    architecture = new_architecture("resnet18_cifar_max", {"width": 4}, 3, 10)
    model = build_model(architecture)
    apply_transform(model, architecture, "winograd_relu", tile=2)
    assert architecture["transforms"][-1]["traced"] is True
    rebuilt = build_model(architecture)
    rebuilt.load_state_dict(model.state_dict())               # same structure: 16 layers
    old = {**architecture, "transforms": [{"op": "winograd_relu", "tile": 2}]}
    legacy = build_model(old)                                 # a record from before tracing
    assert sum(getattr(m, "winograd_relu", False) for m in legacy.modules()) == 8


def test_rewritten_model_computes_the_winograd_relu_formula():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1)).double()
    first = model[0]
    model, report = sp.winograd_relu(model, tile=2, include=["2"])
    assert report.converted == ["2"]
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    (alg,) = set(model[2].algorithms)
    expected = reference_winograd_relu(first(x), model[2].weight.detach(), model[2].bias,
                                       alg.AT, alg.BT, 1)
    torch.testing.assert_close(model(x), expected, rtol=1e-10, atol=1e-10)


def test_density_schedule_prunes_iteratively():
    torch.manual_seed(0)
    model, _ = sp.winograd_relu(nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(),
                                              nn.Conv2d(6, 6, 3, padding=1)))
    schedule = sp.StepSchedule.from_densities([0.7, 0.5, 0.3, 0.1])
    callback = sp.PruningCallback("winograd_relu", schedule)
    callback.on_train_begin(model)
    densities = [float((model[2].weight != 0).double().mean())]
    for epoch in range(4):
        callback.on_epoch_end(model, epoch)
        densities.append(float((model[2].weight != 0).double().mean()))
    assert densities == pytest.approx([0.7, 0.5, 0.3, 0.1, 0.1], abs=1 / 576)
    with pytest.raises(ValueError, match="winograd_relu"):
        sp.winograd_relu_prune(WinogradConv2d(2, 2, 3, domain="winograd"), 0.5)
    with pytest.raises(ValueError, match="kept fraction"):
        sp.winograd_relu_prune(model[2], 1.5)
