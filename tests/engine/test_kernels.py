"""Numerics of the compiled kernels on every backend (and the 16-lane path) vs float64 references."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import engine
from sparsewino.engine import SparseLinear, SparsePointwiseConv2d, SparseWinogradConv2d
from sparsewino.nn import WinogradConv2d

from .conftest import COMPILED, LANE_CASES, assert_matches, needs_kernel, reference, sparse_layer


def run_poisoned(fast: SparseWinogradConv2d, x: torch.Tensor, backend: str,
                 residual: torch.Tensor | None = None) -> torch.Tensor:
    """Run with NaN in the output and in the (reused) workspace: unwritten data shows up."""
    ho, wo = fast.output_size(x.shape[2], x.shape[3])
    out = torch.full((x.shape[0], fast.out_channels, ho, wo), float("nan"))
    with torch.no_grad(), engine.use_backend(backend):
        fast._forward_kernel(x, backend, residual)              # sizes the workspace
        fast._workspace.fill_(float("nan"))
        return fast._forward_kernel(x, backend, residual, out=out)


def fused_reference(layer, x: torch.Tensor, pool: int, residual: bool):
    """The float64 reference of a layer with fused residual (a random one, also returned)
    and 2x2 max-pool: (reference, residual or None)."""
    ref = reference(layer, x)
    extra = torch.randn(ref.shape) if residual else None
    if residual:
        ref = ref + extra.double()
    if pool:
        ref = F.max_pool2d(ref, 2)
    return ref, extra


@needs_kernel
@settings(max_examples=40)
@given(batch=st.integers(1, 3), c=st.integers(1, 30), k=st.integers(1, 50),
       h=st.integers(1, 19), w=st.integers(1, 19), tile=st.sampled_from([2, 4, 6]),
       padding=st.sampled_from([0, 1, "same"]), sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
       formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]), threads=st.integers(1, 2),
       mode=st.sampled_from([0, 1, 2]), tile_block=st.sampled_from([0, 8, 24, 64]),
       pool=st.sampled_from([0, 0, 2]), residual=st.booleans(),
       case=st.sampled_from(LANE_CASES or [("avx2", 0)]), seed=st.integers(0, 2**16))
def test_random_shapes_match_float64(batch, c, k, h, w, tile, padding, sparsity, formats,
                                     threads, mode, tile_block, pool, residual, case, seed):
    backend, lanes = case
    residual = residual and not pool
    minimum = (3 if padding == 0 else 1) + (1 if pool else 0)
    h, w = max(h, minimum), max(w, minimum)
    layer = sparse_layer(c, k, tile=tile, padding=padding, sparsity=sparsity, seed=seed)
    fast = SparseWinogradConv2d.from_layer(layer, threads=threads, formats=formats,
                                           pool_output=pool, residual=residual)
    fast.kernel_mode, fast.tile_block, fast.lanes = mode, tile_block, lanes
    x = torch.randn(batch, c, h, w)
    ref, extra = fused_reference(layer, x, pool, residual)
    assert_matches(run_poisoned(fast, x, backend, extra), ref)


@needs_kernel
@pytest.mark.parametrize("case", LANE_CASES)
@pytest.mark.parametrize("mode", [1, 2])
def test_all_zero_positions_are_skipped_and_read_as_zero(case, mode):
    """Whole Winograd positions pruned (as 3-D column pruning does): their product is skipped
    and the output transform reads zeros, in both thread modes, with a NaN-poisoned workspace."""
    backend, lanes = case
    layer = sparse_layer(8, 30, tile=4, sparsity=0.3, seed=3)
    with torch.no_grad():
        layer.weight[..., ::2, 1::2] = 0.0                    # 9 of the 36 positions all zero
        layer.weight[..., 5, :] = 0.0                         # and a whole row of positions
    fast = SparseWinogradConv2d.from_layer(layer, threads=2)
    assert fast.format_counts()["zero"] == 9 + 6
    fast.kernel_mode, fast.lanes = mode, lanes
    x = torch.randn(2, 8, 13, 11)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kernel,tile,points", [
    (3, 4, [0, 1, -1, 2, -2]),     # Lavin's F(4,3): a specialised pattern
    (3, 4, [0, 1, -1, 2, "1/2"]),  # no pattern: the general transforms
    (3, 3, None), (3, 5, None),    # odd tiles
    (2, 4, None), (5, 2, None), (5, 4, None), (4, 2, None),   # other kernel sizes
])
def test_algorithms_and_kernel_sizes(backend, kernel, tile, points):
    layer = sparse_layer(5, 7, kernel=kernel, tile=tile, padding="same", points=points,
                         domain="spatial", decompose="none")
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(2, 5, 13, 10)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x), tol=1e-4)


@needs_kernel
@pytest.mark.parametrize("backend,lanes", LANE_CASES)
def test_edge_shapes(backend, lanes):
    cases = [(1, 1, 1, 1, 1, 1), (1, 3, 2, 1, 1, 1), (1, 9, 17, 1, 30, 1), (2, 16, 8, 35, 2, 1),
             (1, 8, 8, 3, 3, 0), (1, 33, 40, 9, 9, 1), (1, 4, 5, 3, 6, 5), (1, 4, 5, 1, 1, 9),
             (1, 70, 49, 7, 7, 1), (3, 7, 26, 40, 33, 1)]
    for batch, c, k, h, w, pad in cases:
        layer = sparse_layer(c, k, padding=pad, domain="spatial")
        x = torch.randn(batch, c, h, w)
        fast = SparseWinogradConv2d.from_layer(layer)
        fast.lanes = lanes
        assert_matches(run_poisoned(fast, x, backend), reference(layer, x))


@needs_kernel
@pytest.mark.parametrize("backend", [name for name, lanes in LANE_CASES if lanes == 16])
@pytest.mark.parametrize("tile,points", [(4, None), (2, None), (6, None), (4, [0, 1, -1, 2, -2]),
                                         (4, [0, 1, -1, 2, "1/2"]), (3, None)])
def test_sixteen_tile_transforms(backend, tile, points):
    """The 2-D transforms on 16 tiles per vector (lanes=16): groups cut short by the block's
    end, bands that cross tile rows and images, masked image edges, fused pooling and
    residuals, in both thread modes, equal to the 8-tile transforms and to float64."""
    layer = sparse_layer(5, 19, tile=tile, padding="same", points=points, sparsity=0.4, seed=7)
    for batch, h, w, mode, pool, residual in [(3, 13, 11, 1, 0, False), (1, 29, 23, 2, 0, True),
                                              (2, 17, 30, 1, 2, False), (5, 6, 9, 2, 0, False)]:
        if pool and tile % 2:
            continue
        fast = SparseWinogradConv2d.from_layer(layer, threads=2, pool_output=pool,
                                               residual=residual)
        x = torch.randn(batch, 5, h, w)
        ref, extra = fused_reference(layer, x, pool, residual)
        outputs = []
        for lanes in (8, 16):
            fast.kernel_mode, fast.tile_block, fast.lanes = mode, 64, lanes
            outputs.append(run_poisoned(fast, x, backend, extra))
            assert_matches(outputs[-1], ref, tol=1e-4)
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_many_tiles_uses_blocks_and_threads(backend):
    # Enough tiles for several blocks per thread, plus a ragged last block.
    layer = sparse_layer(12, 10, sparsity=0.7)
    fast = SparseWinogradConv2d.from_layer(layer, threads=2)
    x = torch.randn(3, 12, 37, 29)
    plan = fast.plan(x.shape)
    assert plan["mode"] == "blocks" and plan["blocks"] >= 2
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_plan_regression_guards(backend):
    """The plans the performance numbers rely on: few tiles and large weights share a block
    between threads; many tiles run independent blocks of at least 16 tiles."""
    small_map = SparseWinogradConv2d.from_layer(sparse_layer(256, 256, sparsity=0.5))
    plan = small_map.plan((1, 256, 8, 8), threads=2)
    assert plan["mode"] == "cooperative" and plan["tile_block"] == 8 and plan["blocks"] == 1
    big_map = SparseWinogradConv2d.from_layer(sparse_layer(64, 64, sparsity=0.9))
    plan = big_map.plan((8, 64, 56, 56), threads=2)
    assert plan["mode"] == "blocks" and plan["tile_block"] >= 16


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_groups_winograd_relu_and_fused_relu(backend):
    layer = sparse_layer(6, 9, groups=3, sparsity=0.5, winograd_relu=True)
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(2, 6, 11, 7)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x))
    fused = SparseWinogradConv2d.from_layer(layer, relu_output=True)
    assert_matches(run_poisoned(fused, x, backend), torch.relu(reference(layer, x)))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED + ["torch"])
def test_nan_propagates_through_fused_relu_and_pool(backend):
    """NaN stays NaN through the fused ReLU, Winograd-ReLU and max-pool, as in PyTorch: every
    output whose receptive field holds a NaN is NaN (a Winograd tile may spread it to its
    whole tile, never lose it), and outputs far from it stay finite."""
    x = torch.randn(1, 3, 16, 16)
    x[0, 1, 2, 3] = float("nan")
    for winograd_relu in (False, True):
        layer = sparse_layer(3, 4, sparsity=0.0, domain="spatial", winograd_relu=winograd_relu)
        for pool in (0, 2):
            fast = SparseWinogradConv2d.from_layer(layer, relu_output=True, pool_output=pool)
            with torch.no_grad(), engine.use_backend(backend):
                y = fast(x)
                direct = F.conv2d(x, layer.weight, layer.bias, padding=1).relu()
                if pool:
                    direct = F.max_pool2d(direct, 2)
            assert y.isnan()[direct.isnan()].all()
            assert direct.isnan().any() and torch.isfinite(y[..., -4:, -4:]).all()


def test_torch_fallback_matches():
    layer = sparse_layer(7, 5, tile=2, sparsity=0.6, groups=1, winograd_relu=True)
    fast = SparseWinogradConv2d.from_layer(layer, relu_output=True)
    x = torch.randn(2, 7, 9, 6)
    with torch.no_grad(), engine.use_backend("torch"):
        y = fast(x)
    assert_matches(y, torch.relu(reference(layer, x)))


def _gemm_reference(weight, bias, x, relu, residual, scale=None, shift=None):
    y = torch.einsum("kc,nc...->nk...", weight.double(), x.double())
    if bias is not None:
        y = y + bias.double().reshape(1, -1, *([1] * (x.dim() - 2)))
    if scale is not None:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        y = y * scale.double().reshape(shape) + shift.double().reshape(shape)
    if residual is not None:
        y = y + residual.double()
    return torch.relu(y) if relu else y


@needs_kernel
@settings(max_examples=40)
@given(batch=st.integers(1, 70), c=st.integers(1, 90), k=st.integers(1, 60),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]), relu=st.booleans(),
       residual=st.booleans(), bias=st.booleans(), batchnorm=st.booleans(),
       formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]), threads=st.integers(1, 2),
       mode=st.sampled_from([0, 1, 2]), case=st.sampled_from(LANE_CASES or [("avx2", 0)]),
       seed=st.integers(0, 2**16))
def test_linear_random_shapes_match_float64(batch, c, k, density, relu, residual, bias,
                                            batchnorm, formats, threads, mode, case, seed):
    backend, lanes = case
    torch.manual_seed(seed)
    linear = nn.Linear(c, k, bias=bias)
    with torch.no_grad():
        linear.weight.mul_((torch.rand(k, c) < density).float())
    scale, shift = (torch.rand(k) + 0.5, torch.randn(k)) if batchnorm else (None, None)
    fast = SparseLinear.from_linear(linear, threads, formats, relu, scale, shift, residual)
    fast.kernel_mode, fast.lanes = mode, lanes
    x = torch.randn(batch, c)
    extra = torch.randn(batch, k) if residual else None
    with torch.no_grad(), engine.use_backend(backend):
        y = fast(x, extra)
    ref = _gemm_reference(linear.weight, linear.bias, x, relu, extra, scale, shift)
    assert_matches(y, ref, tol=1e-5)


@needs_kernel
@settings(max_examples=30)
@given(batch=st.integers(1, 3), c=st.integers(1, 40), k=st.integers(1, 40),
       h=st.integers(1, 17), w=st.integers(1, 17), stride=st.integers(1, 3),
       density=st.sampled_from([0.0, 0.2, 1.0]), relu=st.booleans(), residual=st.booleans(),
       case=st.sampled_from(LANE_CASES or [("avx2", 0)]), seed=st.integers(0, 2**16))
def test_pointwise_conv_random_shapes_match_float64(batch, c, k, h, w, stride, density, relu,
                                                    residual, case, seed):
    backend, lanes = case
    torch.manual_seed(seed)
    conv = nn.Conv2d(c, k, 1, stride=stride)
    with torch.no_grad():
        conv.weight.mul_((torch.rand(k, c, 1, 1) < density).float())
    fast = SparsePointwiseConv2d.from_conv(conv, relu=relu, residual=residual)
    fast.lanes = lanes
    x = torch.randn(batch, c, h, w)
    expected = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), stride=stride)
    extra = torch.randn(expected.shape) if residual else None
    if residual:
        expected = expected + extra.double()
    if relu:
        expected = expected.relu()
    with torch.no_grad(), engine.use_backend(backend):
        assert_matches(fast(x, extra), expected, tol=1e-5)


def test_gemm_layers_reject_bad_input():
    fast = SparseLinear.from_linear(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fast(torch.randn(2, 5))
    with pytest.raises(TypeError, match="residual"):
        fast(torch.randn(2, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match="1x1"):
        SparsePointwiseConv2d.from_conv(nn.Conv2d(4, 3, 3))
    with pytest.raises(TypeError, match="nn.Linear"):
        SparseLinear.from_linear(nn.Conv2d(4, 3, 1))


@needs_kernel
@settings(max_examples=60)
@given(batch=st.integers(1, 2), c=st.integers(1, 5), h=st.integers(1, 40), w=st.integers(1, 70),
       kernel=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
       ceil=st.booleans(), kind=st.sampled_from(["max", "avg", "avg-no-pad"]), relu=st.booleans(),
       nan=st.booleans(), backend=st.sampled_from(COMPILED or ["avx2"]), seed=st.integers(0, 999))
def test_pooling_kernel_random_shapes(batch, c, h, w, kernel, stride, padding, ceil, kind, relu,
                                      nan, backend, seed):
    """pool2d (vectorised interior, scalar borders) equals torch for any window and stride."""
    padding = min(padding, kernel // 2)
    if h + 2 * padding < kernel or w + 2 * padding < kernel:
        return
    if kind == "max":
        pool = nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil)
    else:
        pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil,
                            count_include_pad=kind == "avg")
    net = nn.Sequential(pool, nn.ReLU()) if relu else nn.Sequential(pool)
    torch.manual_seed(seed)
    x = torch.randn(batch, c, h, w)
    if nan and kind == "max":
        x[0, 0, h // 2, w // 2] = float("nan")
    with torch.no_grad(), engine.use_backend(backend):
        fast = engine.compile(net)
        assert fast.program(x).torch_nodes == []
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5, equal_nan=True)


@needs_kernel
@settings(max_examples=25)
@given(c=st.integers(1, 40), k=st.integers(1, 40), h=st.integers(3, 14),
       sparsity=st.sampled_from([0.0, 0.6, 0.95]), formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]),
       case=st.sampled_from(LANE_CASES or [("avx2", 0)]), seed=st.integers(0, 2**16))
def test_fp16_weights_are_exact_for_fp16_values(c, k, h, sparsity, formats, case, seed):
    """fp16 packing only rounds the weights: with fp16-representable weights the result equals
    the float64 reference as tightly as fp32 weights do (conv and gemm, every path)."""
    backend, lanes = case
    layer = sparse_layer(c, k, sparsity=sparsity, seed=seed, bias=False)
    with torch.no_grad():
        layer.weight.copy_(layer.weight.half().float())
    fast = SparseWinogradConv2d.from_layer(layer, formats=formats, precision="fp16")
    fast.lanes = lanes
    assert fast.packed.precision == "fp16" and torch.equal(
        fast.dense_weights(), SparseWinogradConv2d.from_layer(layer).dense_weights())
    x = torch.randn(2, c, h, h + 1)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x))
    linear = nn.Linear(c, k)
    with torch.no_grad():
        linear.weight.copy_((linear.weight * (torch.rand(k, c) > sparsity)).half().float())
    fc = SparseLinear.from_linear(linear, formats=formats, precision="fp16")
    fc.lanes = lanes
    xs = torch.randn(5, c)
    with torch.no_grad(), engine.use_backend(backend):
        assert_matches(fc(xs), _gemm_reference(linear.weight, linear.bias, xs, False, None))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_fp16_conversion_of_extreme_values(backend):
    """Subnormal, tiny and large fp16 values convert exactly (the portable build converts
    in software, the SIMD builds with F16C)."""
    values = torch.tensor([6e-8, -6e-8, 1e-5, 3.0e-5, 65504.0, -65504.0, 0.5, -2.0])
    linear = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.diag(values.half().float()))
    fc = SparseLinear.from_linear(linear, formats="dense", precision="fp16")
    x = torch.ones(1, 8)
    with torch.no_grad(), engine.use_backend(backend):
        assert torch.equal(fc(x)[0], values.half().float())
    with pytest.raises(ValueError, match="fp16"):
        SparseLinear.from_linear(nn.Linear(2, 2).requires_grad_(False).apply(
            lambda m: m.weight.fill_(1e6) if isinstance(m, nn.Linear) else None), precision="fp16")


def test_compile_with_fp16_weights_reports_and_falls_back_per_layer(caplog):
    net = nn.Sequential(sparse_layer(3, 8, sparsity=0.5), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 4)).eval()
    with torch.no_grad():
        net[3].weight[0, 0] = 1e6                           # beyond fp16: this layer stays fp32
    fast = engine.compile(net, weights="fp16")
    assert fast[0].packed.precision == "fp16" and fast[3].packed.precision == "fp32"
    assert "fp16 weights" in str(fast.compile_report) and "fp16" in caplog.text
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="weights"):
        engine.compile(net, weights="int8")


def test_fp16_weights_report_their_output_error_and_warn_for_large_tiles(caplog):
    torch.manual_seed(0)
    errors = {}
    for tile in (2, 6):
        net = nn.Sequential(WinogradConv2d(64, 64, 3, padding=1, tile=tile)).eval()
        caplog.clear()
        fast = engine.compile(net, weights="fp16")
        detail = next(e.detail for e in fast.compile_report if e.compiled)
        errors[tile] = float(detail.split("fp16 rounding ")[1].split(" ")[0])
        x = torch.randn(1, 64, 16, 16)
        with torch.no_grad(), engine.use_backend("torch"):
            measured = float((fast(x) - net(x)).abs().max() / net(x).abs().max())
        assert measured < 4 * errors[tile]                  # the probe's estimate is the right size
        assert ("amplifies the rounding" in caplog.text) == (errors[tile] > 3e-3)
    assert errors[2] < 3e-3 < errors[6]
