"""The small C3D-style 3-D CNN: shapes, layers, conversion to (low-rank) 3-D Winograd layers."""
import pytest
import torch
from torch import nn

from sparsewino.models import create_model
from sparsewino.nn import LowRankWinogradConv3d, convert


def test_shapes_pools_and_head():
    model = create_model("c3d_small", in_channels=2, num_classes=7, hidden=16, dropout=0.5).eval()
    assert model(torch.randn(3, 2, 8, 20, 20)).shape == (3, 7)
    pools = [m.kernel_size for m in model.features if isinstance(m, nn.MaxPool3d)]
    assert pools == [(1, 2, 2), 2, 2]
    convs = [m for m in model.features if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64]
    assert all(c.kernel_size == (3, 3, 3) and c.stride == (1, 1, 1) for c in convs)


def test_every_convolution_becomes_a_winograd_layer_computing_the_same():
    torch.manual_seed(0)
    model = create_model("c3d_small", in_channels=1, widths=[4, "P", 6, "M", 8]).double().eval()
    x = torch.randn(2, 1, 4, 8, 8, dtype=torch.float64)
    expected = model(x)
    model, report = convert(model, tile=2, low_rank=27)
    assert len(report.converted) == 3
    assert all(isinstance(model.features[i], LowRankWinogradConv3d) for i in (0, 4, 8))
    assert torch.allclose(model(x), expected, atol=1e-10)


def test_bad_widths():
    with pytest.raises(ValueError, match="positive ints, 'P' or 'M'"):
        create_model("c3d_small", widths=[8, "Q"])
    with pytest.raises(ValueError, match="at least one convolution"):
        create_model("c3d_small", widths=["M"])
