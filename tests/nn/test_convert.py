"""convert()/revert() on whole models: same outputs, an honest report, filters, masks."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsewino.nn import WinogradConv2d, WinogradConv3d, convert, revert
from sparsewino.nn.masks import winograd_mask


class ResidualBlock(nn.Module):
    """A torchvision-style basic block (not imported: torchvision is not a dependency)."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = (nn.Sequential(nn.Conv2d(channels, channels, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(channels)) if stride != 1 else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


def small_resnet():
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.ReLU(),
        ResidualBlock(8), ResidualBlock(8, stride=2),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(8, 8, (1, 5), padding=(0, 2), groups=4),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).double().eval()


@pytest.mark.parametrize("domain", ["spatial", "winograd"])
def test_convert_whole_model_same_outputs(domain):
    torch.manual_seed(0)
    model = small_resnet()
    x = torch.randn(2, 3, 33, 30, dtype=torch.float64)
    expected = model(x)
    model, report = convert(model, tile=4, domain=domain)
    torch.testing.assert_close(model(x), expected)
    assert set(report.converted) == {"0", "2.conv1", "2.conv2", "3.conv1", "3.conv2", "6"}
    skipped = report.skipped
    assert "1x1" in skipped["3.downsample.0"]
    assert "dilation" in skipped["4"] and "padding_mode" in skipped["5"]
    assert isinstance(model[2].conv1, WinogradConv2d) and model[2].conv1.domain == domain
    reasons = {d.name: d.reason for d in report}
    assert "DWM stride 2x2: 9 pieces 3x3" in reasons["0"]          # 7x7/2 stem
    assert "DWM stride 2x2: 4 pieces 2x2 of F(4x4,2x2)" in reasons["3.conv1"]
    assert model[0].stride == (2, 2) and model[3].conv1.decomposition is not None
    assert "6 of 9 convolutions converted" in str(report)
    _, plain = convert(small_resnet(), decompose="none")
    assert "stride (2, 2) != 1 (decompose='none')" in plain.skipped["3.conv1"]


def test_include_exclude_and_reconversion():
    model = small_resnet()
    _, report = convert(model, include=["2.*"], exclude=lambda name, m: name.endswith("conv2"))
    assert report.converted == ["2.conv1"]
    assert report.skipped["3.conv2"] == "not matched by include"
    assert report.skipped["2.conv2"] == "matched by exclude"
    _, again = convert(model)
    assert again.skipped["2.conv1"] == "already a Winograd layer (spatial domain)"


def test_revert_restores_plain_convolutions():
    model = small_resnet()
    x = torch.randn(1, 3, 20, 20, dtype=torch.float64)
    expected = model(x)
    convert(model, domain="winograd")
    revert(model)
    assert not any(isinstance(m, (WinogradConv2d, WinogradConv3d)) for m in model.modules())
    torch.testing.assert_close(model(x), expected)


def test_conv3d_model_and_root_module():
    model = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, (1, 3, 3))).double()
    x = torch.randn(1, 2, 5, 6, 7, dtype=torch.float64)
    expected = model(x)
    convert(model, tile=2)
    assert isinstance(model[2], WinogradConv3d)
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="cannot replace the root module"):
        convert(nn.Conv2d(1, 1, 3))


def test_subclass_with_own_forward_is_left_alone():
    class Conv2dSame(nn.Conv2d):
        def forward(self, x):
            return super().forward(nn.functional.pad(x, (1, 1, 1, 1)))

    model = nn.Sequential(Conv2dSame(1, 1, 3))
    _, report = convert(model)
    assert "overrides forward" in report.skipped["0"]


def test_pruning_mask_is_carried_over():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1)).double()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    mask = model[0].weight_mask.clone()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    expected = model(x)
    _, report = convert(model)
    assert "mask carried over" in report[0].reason
    assert prune.is_pruned(model[0]) and torch.equal(model[0].weight_mask, mask)
    torch.testing.assert_close(model(x), expected)


def test_pointwise_convolutions_are_not_converted():
    _, report = convert(nn.Sequential(nn.Conv2d(4, 4, 1)))
    assert "1x1" in report.skipped["0"]


def test_convert_switches_the_domain_of_winograd_layers():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1)).double()
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64)
    convert(model, tile=2)
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    spatial = model[0].weight_mask.clone()
    expected = model(x)
    _, report = convert(model, domain="winograd", exclude=["2"])
    assert report.converted == ["0"] and "spatial -> winograd" in report[0].reason
    # issue 9: the mask is no longer baked in and dropped; it masks the entries of Q it zeroes
    assert "spatial mask carried to Q" in report[0].reason and prune.is_pruned(model[0])
    assert torch.equal(model[0].weight_mask, winograd_mask(spatial, model[0].algorithms))
    assert model[0].domain == "winograd" and model[0].tile == (2, 2) and model[2].domain == "spatial"
    torch.testing.assert_close(model(x), expected)
    _, back = convert(model, domain="spatial")
    assert back.converted == ["0"] and model[0].domain == "spatial"
    torch.testing.assert_close(model(x), expected)
