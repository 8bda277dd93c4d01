"""Direct sparse convolution (im2col ``extract`` + sparse ``gemm``) against float64 conv2d."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from sparsewino import engine
from sparsewino.engine.direct import MAX_DENSITY, SparseDirectConv2d

from .conftest import COMPILED, assert_matches, compile_and_compare, needs_kernel, randomize_batchnorm

BACKENDS = COMPILED + ["torch"]


def _pruned_conv(c, k, kernel, stride, padding, density, seed, bias=True):
    torch.manual_seed(seed)
    conv = nn.Conv2d(c, k, kernel, stride=stride, padding=padding, bias=bias)
    with torch.no_grad():
        conv.weight.mul_((torch.rand_like(conv.weight) < density).float())
    return conv.eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(12))
def test_random_shapes_match_float64_conv2d(backend, seed):
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))   # noqa: E731
    kernel = (rnd(1, 5), rnd(1, 5))
    stride, padding = (rnd(1, 3), rnd(1, 3)), (rnd(0, 2), rnd(0, 2))
    if kernel == (1, 1):
        padding = (1, padding[1])                     # a padded 1x1 is the direct kind's too
    c, k, batch = rnd(1, 19), rnd(1, 21), rnd(1, 3)
    h = rnd(max(1, kernel[0] - 2 * padding[0]), 17)
    w = rnd(max(1, kernel[1] - 2 * padding[1]), 17)
    conv = _pruned_conv(c, k, kernel, stride, padding, density=[0.1, 0.35, 1.0][seed % 3],
                        seed=seed, bias=seed % 2 == 0)
    x = torch.randn(batch, c, h, w, generator=gen)
    fast = SparseDirectConv2d.from_conv(conv)
    with engine.use_backend(backend), torch.no_grad():
        y = fast(x)
    ref = F.conv2d(x.double(), conv.weight.double(),
                   conv.bias.double() if conv.bias is not None else None, stride, padding)
    assert_matches(y, ref)


@needs_kernel
def test_fused_batchnorm_residual_relu_and_bad_input():
    conv = _pruned_conv(6, 6, 3, 1, 1, density=0.3, seed=1)
    bn = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(6))).eval()[0]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    fast = SparseDirectConv2d.from_conv(conv, relu=True, residual=True, scale=scale.detach(),
                                        shift=shift.detach())
    x, r = torch.randn(2, 6, 9, 7), torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        y = fast(x, r)
        ref = torch.relu(bn(conv(x.double().float())).double() + r.double())
    assert_matches(y, ref, tol=1e-4)
    with pytest.raises(ValueError, match="expects input"):
        fast(torch.randn(2, 5, 9, 7), r)
    small = SparseDirectConv2d.from_conv(_pruned_conv(2, 2, 5, 1, 0, 0.3, 0))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        small(torch.randn(1, 2, 3, 3))
    with pytest.raises(ValueError, match="groups 1"):
        SparseDirectConv2d.from_conv(nn.Conv2d(4, 4, 3, groups=2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_runs_pruned_strided_convs_direct_and_leaves_dense_ones(backend):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 7, stride=2, padding=3), nn.BatchNorm2d(16), nn.ReLU(),   # stem
        nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
        nn.Conv2d(24, 24, 3, stride=1, padding=1),                                   # stays dense
        nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))
    randomize_batchnorm(net)
    for i in (0, 3, 7):
        prune.l1_unstructured(net[i], "weight", amount=0.7)
    net.eval()
    x = torch.randn(2, 3, 29, 26)
    fast = compile_and_compare(net, x, backend)
    report = fast.compile_report
    assert report.compiled == ["0", "3", "7", "11"]
    assert all(isinstance(fast[i], SparseDirectConv2d) for i in (0, 3, 7))
    assert isinstance(fast[6], nn.Conv2d) and f"<= {MAX_DENSITY}" in report.fallbacks["6"]
    fused = {d.name: d.fused for d in report if d.compiled}
    assert fused["0"] == ("1", "2") and fused["3"] == ("4", "5") and fused["7"] == ("8",)
    assert "direct 7x7/2x2 conv, im2col 147 columns" in str(report)
    if backend != "torch":
        with engine.use_backend(backend):
            program = fast.program(x)
        assert program.torch_nodes == ["_6"]


@needs_kernel
def test_direct_layers_save_and_load_bit_identically(tmp_path, native_backend):
    net = nn.Sequential(_pruned_conv(3, 8, 3, 2, 1, 0.3, 0), nn.ReLU(),
                        _pruned_conv(8, 8, 5, 1, 2, 0.3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(2, 3, 15, 13)
    with torch.no_grad():
        fast = engine.compile(net.eval())
        expected = fast(x)
    assert fast.compile_report.compiled == ["0", "2"]
    path = engine.save(fast, tmp_path / "direct.swe", shapes=[tuple(x.shape)])
    loaded = engine.load(path)
    assert torch.equal(loaded(x), expected)
