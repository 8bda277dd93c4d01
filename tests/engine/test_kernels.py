"""Numerics of the compiled kernels (AVX2 and portable) and the torch fallback vs float64 conv2d."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsewino import engine
from sparsewino.engine import SparseWinogradConv2d

from .conftest import COMPILED, assert_matches, needs_kernel, reference, sparse_layer


def run_poisoned(fast: SparseWinogradConv2d, x: torch.Tensor, backend: str) -> torch.Tensor:
    """Run with NaN in the output and in the (reused) workspace: unwritten data shows up."""
    ho, wo = fast.output_size(x.shape[2], x.shape[3])
    out = torch.full((x.shape[0], fast.out_channels, ho, wo), float("nan"))
    with torch.no_grad(), engine.use_backend(backend):
        fast(x)                                      # sizes the workspace
        fast._workspace.fill_(float("nan"))
        return fast._forward_kernel(x, backend, out=out)


@needs_kernel
@settings(max_examples=25)
@given(batch=st.integers(1, 3), c=st.integers(1, 19), k=st.integers(1, 19),
       h=st.integers(1, 19), w=st.integers(1, 19), tile=st.sampled_from([2, 4, 6]),
       padding=st.sampled_from([0, 1, "same"]), sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
       formats=st.sampled_from(["auto", "sparse", "dense"]), threads=st.integers(1, 2),
       mode=st.sampled_from([0, 1, 2]), tile_block=st.sampled_from([0, 8, 24]),
       pool=st.sampled_from([0, 0, 2]), backend=st.sampled_from(COMPILED or ["avx2"]),
       seed=st.integers(0, 2**16))
def test_random_shapes_match_float64(batch, c, k, h, w, tile, padding, sparsity, formats,
                                     threads, mode, tile_block, pool, backend, seed):
    minimum = (3 if padding == 0 else 1) + (1 if pool else 0)
    h, w = max(h, minimum), max(w, minimum)
    layer = sparse_layer(c, k, tile=tile, padding=padding, sparsity=sparsity, seed=seed)
    fast = SparseWinogradConv2d.from_layer(layer, threads=threads, formats=formats,
                                           pool_output=pool)
    fast.kernel_mode, fast.tile_block = mode, tile_block
    x = torch.randn(batch, c, h, w)
    ref = reference(layer, x)
    if pool:
        ref = torch.nn.functional.max_pool2d(ref, 2)
    assert_matches(run_poisoned(fast, x, backend), ref)


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
                         domain="spatial")
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(2, 5, 13, 10)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x), tol=1e-4)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_edge_shapes(backend):
    cases = [(1, 1, 1, 1, 1, 1), (1, 3, 2, 1, 1, 1), (1, 9, 17, 1, 30, 1), (2, 16, 8, 35, 2, 1),
             (1, 8, 8, 3, 3, 0), (1, 33, 40, 9, 9, 1), (1, 4, 5, 3, 6, 5), (1, 4, 5, 1, 1, 9)]
    for batch, c, k, h, w, pad in cases:
        layer = sparse_layer(c, k, padding=pad, domain="spatial")
        x = torch.randn(batch, c, h, w)
        fast = SparseWinogradConv2d.from_layer(layer)
        assert_matches(run_poisoned(fast, x, backend), reference(layer, x))


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
def test_groups_winograd_relu_and_fused_relu(backend):
    layer = sparse_layer(6, 9, groups=3, sparsity=0.5, winograd_relu=True)
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(2, 6, 11, 7)
    assert_matches(run_poisoned(fast, x, backend), reference(layer, x))
    fused = SparseWinogradConv2d.from_layer(layer, relu_output=True)
    assert_matches(run_poisoned(fused, x, backend), torch.relu(reference(layer, x)))


def test_torch_fallback_matches():
    layer = sparse_layer(7, 5, tile=2, sparsity=0.6, groups=1, winograd_relu=True)
    fast = SparseWinogradConv2d.from_layer(layer, relu_output=True)
    x = torch.randn(2, 7, 9, 6)
    with torch.no_grad(), engine.use_backend("torch"):
        y = fast(x)
    assert_matches(y, torch.relu(reference(layer, x)))


@needs_kernel
def test_backends_agree_and_unbatched_input():
    layer = sparse_layer(4, 6, sparsity=0.3)
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(4, 10, 10)
    results = []
    for name in COMPILED + ["torch"]:
        with torch.no_grad(), engine.use_backend(name):
            results.append(fast(x))
    assert results[0].shape == (6, 10, 10)
    for y in results[1:]:
        torch.testing.assert_close(y, results[0], rtol=1e-5, atol=1e-5)
