"""The compiled 3-D Winograd kernel on every backend (and the 16-lane path) vs float64 conv3d."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.engine import SparseWinogradConv3d
from sparsewino.nn import LowRankWinogradConv3d, WinogradConv3d

from .conftest import COMPILED, LANE_CASES, assert_matches, needs_kernel


def layer3d(c: int, k: int, *, tile: int = 2, padding=1, sparsity: float = 0.0,
            columns: float = 0.0, domain: str = "winograd", seed: int = 0,
            **kwargs) -> WinogradConv3d:
    """A float32 eval-mode 3-D Winograd layer with ``sparsity`` of its weights and ``columns``
    of its positions (whole columns) zeroed."""
    torch.manual_seed(seed)
    layer = WinogradConv3d(c, k, 3, padding=padding, tile=tile, domain=domain, **kwargs)
    if domain == "winograd":
        with torch.no_grad():
            if sparsity:
                layer.weight.mul_((torch.rand_like(layer.weight) >= sparsity).float())
            if columns:
                keep = (torch.rand(layer.weight.shape[2:]) >= columns).float()
                layer.weight.mul_(keep)
    return layer.eval()


def reference3d(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's function in float64: conv3d for spatial weights, else the float64 layer."""
    if getattr(layer, "domain", None) == "spatial" and not layer.winograd_relu:
        bias = layer.bias.double() if layer.bias is not None else None
        return F.conv3d(x.double(), layer.weight.double(), bias, padding=layer.padding,
                        groups=layer.groups)
    with torch.no_grad():
        return copy.deepcopy(layer).double()(x.double())


def run_poisoned3d(fast: SparseWinogradConv3d, x: torch.Tensor, backend: str,
                   residual: torch.Tensor | None = None) -> torch.Tensor:
    """Run with NaN in the output and the (reused) workspace: unwritten data shows up."""
    out = torch.full((x.shape[0], fast.out_channels, *fast.output_size(*x.shape[2:])),
                     float("nan"))
    with torch.no_grad(), engine.use_backend(backend):
        fast._forward_kernel(x, backend, residual)
        fast._workspace.fill_(float("nan"))
        return fast._forward_kernel(x, backend, residual, out=out)


@needs_kernel
@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 2), c=st.integers(1, 20), k=st.integers(1, 30),
       d=st.integers(1, 9), h=st.integers(1, 9), w=st.integers(1, 11),
       tile=st.sampled_from([2, 4]), padding=st.sampled_from([0, 1, "same"]),
       sparsity=st.sampled_from([0.0, 0.6, 1.0]), columns=st.sampled_from([0.0, 0.75]),
       formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]), threads=st.integers(1, 2),
       mode=st.sampled_from([0, 1, 2]), tile_block=st.sampled_from([0, 8, 64]),
       residual=st.booleans(), relu=st.booleans(),
       case=st.sampled_from(LANE_CASES or [("avx2", 0)]), seed=st.integers(0, 2**16))
def test_random_shapes_match_float64_conv3d(batch, c, k, d, h, w, tile, padding, sparsity,
                                            columns, formats, threads, mode, tile_block,
                                            residual, relu, case, seed):
    backend, lanes = case
    minimum = 3 if padding == 0 else 1
    d, h, w = max(d, minimum), max(h, minimum), max(w, minimum)
    layer = layer3d(c, k, tile=tile, padding=padding, sparsity=sparsity, columns=columns,
                    seed=seed)
    fast = SparseWinogradConv3d.from_layer(layer, threads=threads, formats=formats,
                                           relu_output=relu, residual=residual)
    fast.kernel_mode, fast.tile_block, fast.lanes = mode, tile_block, lanes
    x = torch.randn(batch, c, d, h, w)
    ref = reference3d(layer, x)
    extra = torch.randn(ref.shape) if residual else None
    if residual:
        ref = ref + extra.double()
    if relu:
        ref = torch.relu(ref)
    assert_matches(run_poisoned3d(fast, x, backend, extra), ref, tol=5e-5)


@needs_kernel
@pytest.mark.parametrize("backend,lanes", LANE_CASES)
def test_edge_shapes_against_conv3d(backend, lanes):
    """1x1x1 volumes, one channel, odd sizes, padding 0, channels not a multiple of 4/6/8/24."""
    cases = [(1, 1, 1, (1, 1, 1), 1, 2), (1, 3, 2, (1, 1, 1), 1, 4), (1, 9, 17, (1, 30, 2), 1, 2),
             (2, 5, 25, (3, 3, 3), 0, 4), (1, 33, 7, (5, 1, 9), 1, 4), (3, 2, 49, (2, 7, 7), 1, 2),
             (1, 4, 5, (9, 9, 9), 1, 4)]
    for batch, c, k, size, pad, tile in cases:
        layer = layer3d(c, k, tile=tile, padding=pad, domain="spatial")
        x = torch.randn(batch, c, *size)
        fast = SparseWinogradConv3d.from_layer(layer)
        fast.lanes = lanes
        assert_matches(run_poisoned3d(fast, x, backend), reference3d(layer, x), tol=5e-5)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("tile,points", [(2, None), (4, None), (4, [0, 1, -1, 2, -2]),
                                         (3, None), (4, [0, 1, -1, 2, "1/2"]), (6, None)])
def test_algorithms_specialised_and_general(backend, tile, points):
    """Specialised patterns (F(2,3), F(4,3) default and Lavin) and the general transforms."""
    layer = layer3d(5, 7, tile=tile, padding="same", points=points, domain="spatial")
    fast = SparseWinogradConv3d.from_layer(layer)
    x = torch.randn(2, 5, 7, 6, 9)
    assert_matches(run_poisoned3d(fast, x, backend), reference3d(layer, x), tol=2e-4)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_groups_winograd_relu_and_bias_free(backend):
    layer = layer3d(6, 9, groups=3, sparsity=0.5, winograd_relu=True, bias=False)
    fast = SparseWinogradConv3d.from_layer(layer, relu_output=True)
    x = torch.randn(2, 6, 5, 4, 7)
    assert_matches(run_poisoned3d(fast, x, backend), torch.relu(reference3d(layer, x)))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_column_pruned_low_rank_layer_skips_positions(backend):
    layer = LowRankWinogradConv3d(12, 10, 3, rank=12, tile=4, padding=1).eval()
    sp.column(layer, 0.75)
    fast = SparseWinogradConv3d.from_layer(layer)
    counts = fast.format_counts()
    assert counts["zero"] == 162 and counts["dense"] + counts["sparse"] == 54     # 75 % of 216
    x = torch.randn(2, 12, 6, 9, 5)
    assert_matches(run_poisoned3d(fast, x, backend), reference3d(layer, x), tol=5e-5)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_plans_share_small_volumes_and_block_large_ones(backend):
    """Cost guards: few tiles with large weights share a block between threads; many tiles
    run independent blocks of more than 8 tiles."""
    small = SparseWinogradConv3d.from_layer(layer3d(128, 128, tile=4))
    plan = small.plan((1, 128, 4, 4, 4), threads=2)
    assert plan["mode"] == "cooperative" and plan["blocks"] == 1
    large = SparseWinogradConv3d.from_layer(layer3d(32, 32, tile=4))
    plan = large.plan((2, 32, 16, 32, 32), threads=2)
    assert plan["mode"] == "blocks" and plan["tile_block"] >= 16 and plan["blocks"] >= 4


def test_torch_fallback_matches():
    layer = layer3d(4, 6, tile=2, sparsity=0.3)
    fast = SparseWinogradConv3d.from_layer(layer, relu_output=True)
    x = torch.randn(2, 4, 5, 3, 6)
    with torch.no_grad(), engine.use_backend("torch"):
        y = fast(x)
    assert_matches(y, torch.relu(reference3d(layer, x)))


def test_inference_only_and_input_errors():
    fast = SparseWinogradConv3d.from_layer(layer3d(3, 4))
    with pytest.raises(ValueError, match="5-D input"):
        fast(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="3 input channels"):
        fast(torch.randn(1, 2, 4, 4, 4))
    with pytest.raises(TypeError, match="float32"):
        fast(torch.randn(1, 3, 4, 4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="without a fused residual"):
        fast(torch.randn(1, 3, 4, 4, 4), torch.randn(1, 4, 4, 4, 4))
    unbatched = torch.randn(3, 4, 5, 6)
    with torch.no_grad():
        assert_matches(fast(unbatched), reference3d(layer3d(3, 4), unbatched[None])[0])


@pytest.mark.parametrize("make,reason", [
    (lambda: WinogradConv3d(2, 2, 3, tile=4).double(), "float32"),
    (lambda: WinogradConv3d(2, 2, (3, 3, 1), tile=4), "same F\\(m, r\\)"),
    (lambda: WinogradConv3d(2, 2, 3, tile=6), None),
    (lambda: WinogradConv3d(2, 2, 5, tile=6), "n = 10"),
])
def test_unsupported_layers_are_refused_with_the_reason(make, reason):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = make()
    if reason is None:
        SparseWinogradConv3d.from_layer(layer)        # F(6,3): n = 8 is supported
        return
    with pytest.raises(ValueError, match=reason):
        SparseWinogradConv3d.from_layer(layer)


@needs_kernel
def test_state_dict_round_trip_and_pickle():
    import pickle
    layer = layer3d(3, 5, sparsity=0.5)
    fast = SparseWinogradConv3d.from_layer(layer)
    other = SparseWinogradConv3d.from_layer(layer3d(3, 5, seed=1))
    other.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, 4, 5, 6)
    with torch.no_grad():
        assert torch.equal(other(x), fast(x))
        assert torch.equal(pickle.loads(pickle.dumps(fast))(x), fast(x))
    with pytest.raises(ValueError, match="different configuration"):
        SparseWinogradConv3d.from_layer(layer3d(3, 5, tile=4)).load_state_dict(fast.state_dict())


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_fp16_weights(backend):
    """fp16 weights are converted exactly to fp32 before use: the result is the fp32 layer's
    with its Winograd weights rounded to fp16."""
    layer = layer3d(9, 13, tile=4, sparsity=0.5, columns=0.5)
    fast = SparseWinogradConv3d.from_layer(layer, precision="fp16")
    with torch.no_grad():
        layer.weight.copy_(layer.weight.half().float())
    x = torch.randn(2, 9, 5, 6, 7)
    assert_matches(run_poisoned3d(fast, x, backend), reference3d(layer, x), tol=5e-5)
