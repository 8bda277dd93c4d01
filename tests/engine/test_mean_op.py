"""x.mean((2, 3)) runs in the engine as global average pooling (ONNX models write it so)."""
import pytest
import torch
from torch import nn

from sparsewino import engine
from sparsewino.nn import WinogradConv2d

from .conftest import needs_kernel

# A forced `torch` backend builds no program: these modules run on the automatic compiled one.
pytestmark = [needs_kernel, pytest.mark.usefixtures("native_backend")]


class MeanNet(nn.Module):
    def __init__(self, dims, keepdim: bool, method: bool) -> None:
        super().__init__()
        self.conv = WinogradConv2d(3, 6, 3, padding=1)
        self.dims, self.keepdim, self.method = dims, keepdim, method

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y.mean(self.dims, keepdim=self.keepdim) if self.method else \
            torch.mean(y, dim=self.dims, keepdim=self.keepdim)


@pytest.mark.parametrize("dims,keepdim,method", [((2, 3), True, False), ([-1, -2], False, True),
                                                  ((2, 3), False, False)])
def test_spatial_mean_runs_in_the_engine(dims, keepdim, method):
    torch.manual_seed(0)
    net = MeanNet(dims, keepdim, method).eval()
    x = torch.randn(2, 3, 9, 7)
    fast = engine.compile(net)
    assert fast.program(x).torch_nodes == []
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-5, atol=1e-5)


def test_other_means_stay_in_pytorch():
    net = MeanNet((1,), False, True).eval()
    x = torch.randn(1, 3, 8, 8)
    fast = engine.compile(net)
    assert fast.program(x).torch_nodes == ["mean"]
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-5, atol=1e-5)
