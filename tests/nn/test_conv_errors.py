"""Every unsupported argument or input of the Winograd layers raises a clear error."""
import pytest
import torch

from sparsewino.nn import WinogradConv2d, WinogradConv3d


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(stride=4), ValueError, "stride .* larger than the kernel.*Subsample"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=(1, 2, 1)), ValueError, "tuple of 2 ints"),
    (dict(stride=2, padding="same"), ValueError, "'same' is not supported for strided"),
    (dict(stride=2, decompose="none"), ValueError, "needs the DWM decomposition"),
    (dict(decompose="fft"), ValueError, "decompose must be one of"),
    (dict(decompose=(4, 4)), ValueError, "piece size 4 is larger"),
    (dict(decompose=0), ValueError, "piece sizes must be >= 1"),
    (dict(dilation=2), ValueError, "dilation=1"),
    (dict(padding_mode="reflect"), ValueError, "padding_mode='zeros'"),
    (dict(padding="full"), ValueError, "'same' or 'valid'"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(padding=(1, 1, 1)), ValueError, "tuple of 2 ints"),
    (dict(groups=3), ValueError, "divisible by groups"),
    (dict(domain="fourier"), ValueError, "domain must be one of"),
    (dict(dtype=torch.float16), TypeError, "float32 and float64"),
    (dict(tile=0), ValueError, "tile"),
    (dict(tile="big"), ValueError, "'auto'"),
    (dict(tile=20), ValueError, "over 16 points"),
    (dict(points=[0, 0, 1, 2, 3]), ValueError, "distinct"),
    (dict(points=[0, 1]), ValueError, "needs n - 1"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        WinogradConv2d(4, 8, 3, **kwargs)


def test_bad_sizes():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        WinogradConv2d(0, 4, 3)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        WinogradConv2d(2, 4, 0)
    with pytest.raises(ValueError, match="larger than the kernel.*nn.Conv3d"):
        WinogradConv3d(2, 4, 3, stride=(4, 1, 1))


@pytest.mark.parametrize("x,error,message", [
    (torch.randn(1, 4, 8, 8).half(), TypeError, "float32 and float64 input"),
    (torch.randn(1, 4, 8, 8).bfloat16(), TypeError, "float32 and float64 input"),
    (torch.ones(1, 4, 8, 8, dtype=torch.int64), TypeError, "float32 and float64 input"),
    (torch.randn(1, 4, 8, 8, dtype=torch.float64), TypeError, "does not match weight dtype"),
    (torch.randn(1, 1, 4, 8, 8), ValueError, "expects a 4-D input"),
    (torch.randn(8, 8), ValueError, "expects a 4-D input"),
    (torch.randn(1, 3, 8, 8), ValueError, "expects 4 input channels"),
    (torch.randn(1, 4, 2, 8), ValueError, "too small for kernel.*larger than the padded input"),
])
def test_bad_inputs(x, error, message):
    layer = WinogradConv2d(4, 8, 3)
    with pytest.raises(error, match=message):
        layer(x)


def test_non_tensor_input():
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        WinogradConv2d(4, 8, 3)([[1.0]])
