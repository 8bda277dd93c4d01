"""The blocked weight format (blocks of 8 output channels, vectorised across them): the format
rule, the packing, and the kernels on every backend against float64 references, at the few
tiles (batch 1, small maps) the format is for."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.engine import SparseLinear, SparseWinogradConv2d, kernels
from sparsewino.engine.packing import BLOCKED_MIN_FILL, PackedMatrices, block_slots, choose_format

from .conftest import LANE_CASES, assert_matches, needs_kernel, reference, sparse_layer

B = kernels.BLOCK_ROWS


def block_pruned(p: int, k: int, c: int, keep: float, seed: int = 0) -> torch.Tensor:
    """(P, K, C) random weights whose zeros come in whole blocks of 8 output channels."""
    g = torch.Generator().manual_seed(seed)
    blocks = -(-k // B)
    kept = torch.rand(p, blocks, 1, c, generator=g) < keep
    mask = kept.expand(p, blocks, B, c).reshape(p, blocks * B, c)[:, :k]
    return torch.randn(p, k, c, generator=g) * mask


def test_block_size_matches_the_kernel():
    assert B == 8


def test_choose_format_takes_blocked_for_full_blocks_only():
    assert choose_format(4096, 128, 128, block_slots=4096) == "blocked"     # fill 1.0
    fill = int(BLOCKED_MIN_FILL * 4096)
    assert choose_format(fill, 128, 128, block_slots=4096) == "blocked"
    assert choose_format(fill - 1, 128, 128, block_slots=4096) == "sparse"
    assert choose_format(4096, 128, 128) == "sparse"                        # no block count
    assert choose_format(9000, 128, 128, block_slots=16384) == "dense"      # dense stays dense
    # unstructured 70 % sparsity fills its blocks about a third: sparse
    w = torch.randn(1, 256, 256) * (torch.rand(1, 256, 256) < 0.3)
    nonzeros = int((w != 0).sum())
    assert choose_format(nonzeros, 256, 256, block_slots=block_slots(w)[0]) == "sparse"
    assert PackedMatrices.pack(w).formats() == ["sparse"]
    assert PackedMatrices.pack(block_pruned(1, 256, 256, 0.3)).formats() == ["blocked"]


def test_block_counts_and_layout():
    w = torch.zeros(2, 11, 5)
    w[0, 0, 3] = 1.0          # block row 0, column 3
    w[0, 7, 3] = 2.0          # same block
    w[0, 8, 1] = 3.0          # block row 1 (rows 8..10, padded), column 1
    w[0, 10, 4] = 4.0
    assert block_slots(w) == [8 + 3 + 3, 0]          # block row 1 has 3 real rows
    packed = PackedMatrices.pack(w, "blocked")
    assert packed.formats() == ["blocked", "zero"]
    state = packed.state()
    assert state["block_ptr"].tolist() == [[0, 1, 3], [3, 3, 3]]
    assert state["block_col"].tolist() == [3, 1, 4]
    values = state["block_val"].reshape(-1, B)
    assert values[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 2]
    assert values[1].tolist() == [3, 0, 0, 0, 0, 0, 0, 0]
    assert values[2].tolist() == [0, 0, 4, 0, 0, 0, 0, 0]
    assert torch.equal(packed.dense(), w)
    # bytes: 2 per column index plus 8 values per block
    assert packed.nbytes() >= 3 * (2 + 4 * B)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_blocked_round_trip_in_every_precision(precision):
    w = block_pruned(5, 21, 13, 0.4, seed=1)
    packed = PackedMatrices.pack(w, "blocked", precision)
    expected = {"fp32": w, "fp16": w.half().float(),
                "bf16": engine.packing.round_bf16(w)}[precision]
    assert torch.equal(packed.dense(), expected)
    again = PackedMatrices.from_state(packed.state())
    assert torch.equal(again.dense(), expected) and again.formats() == packed.formats()


def test_states_without_blocks_still_load():
    """A state saved before the blocked format (no block tensors) loads with none."""
    w = torch.randn(3, 10, 7) * (torch.rand(3, 10, 7) < 0.4)
    state = PackedMatrices.pack(w, "sparse").state()
    for name in ("block_ptr", "block_col", "block_val"):
        del state[name]
    assert torch.equal(PackedMatrices.from_state(state).dense(), w)


def test_corrupt_blocks_are_rejected():
    state = PackedMatrices.pack(block_pruned(2, 16, 6, 0.5), "blocked").state()
    bad = dict(state, block_col=torch.full_like(state["block_col"], 6))
    with pytest.raises(ValueError, match="block column index out of range"):
        PackedMatrices.from_state(bad)
    ptr = state["block_ptr"].clone()
    ptr[0, 1] = ptr[0, 2] + 1
    with pytest.raises(ValueError, match="block pointers"):
        PackedMatrices.from_state(dict(state, block_ptr=ptr))
    with pytest.raises(ValueError, match="block_val"):
        PackedMatrices.from_state(dict(state, block_val=state["block_val"][:-1]))


def block_pruned_layer(c: int, k: int, tile: int, amount: float, seed: int) -> nn.Module:
    """A Winograd-domain layer pruned with winograd_domain(block=8)."""
    layer = sparse_layer(c, k, tile=tile, seed=seed)
    sp.winograd_domain(layer, amount, block=B)
    return layer.eval()


@needs_kernel
@pytest.mark.parametrize("case", LANE_CASES)
@pytest.mark.parametrize("batch,size,tile", [(1, 7, 4), (1, 8, 4), (2, 5, 2), (1, 13, 6),
                                             (3, 14, 4)])
def test_block_pruned_layers_compile_to_blocked_and_match_float64(case, batch, size, tile):
    """Batch 1 on small maps (4 tiles), odd channel counts (K not a multiple of 8), several
    passes of 8/4/2/1 tiles, both thread modes, NaN-poisoned workspace."""
    backend, lanes = case
    layer = block_pruned_layer(13, 21, tile, 0.7, seed=size)
    fast = SparseWinogradConv2d.from_layer(layer, threads=2)
    counts = fast.format_counts()
    assert counts["blocked"] > 0 and counts["sparse"] == 0, counts
    x = torch.randn(batch, 13, size, size)
    ref = reference(layer, x)
    for mode in (1, 2):
        fast.kernel_mode, fast.lanes = mode, lanes
        with torch.no_grad(), engine.use_backend(backend):
            fast._forward_kernel(x, backend, None)
            fast._workspace.fill_(float("nan"))
            assert_matches(fast._forward_kernel(x, backend, None), ref)


@needs_kernel
@pytest.mark.parametrize("backend", [name for name, lanes in LANE_CASES if lanes == 0])
@pytest.mark.parametrize("batch", [1, 3, 11])
def test_blocked_linear_matches_float64(backend, batch):
    torch.manual_seed(batch)
    linear = nn.Linear(37, 29)
    with torch.no_grad():
        linear.weight.copy_(block_pruned(1, 29, 37, 0.5, seed=batch)[0])
    fc = SparseLinear.from_linear(linear, threads=2)
    assert fc.format_counts()["blocked"] == 1
    x = torch.randn(batch, 37)
    with torch.no_grad(), engine.use_backend(backend):
        got = fc(x)
    assert_matches(got, F.linear(x.double(), linear.weight.double(), linear.bias.double()))


def test_compile_report_names_the_blocked_positions():
    model = nn.Sequential(block_pruned_layer(8, 16, 4, 0.6, seed=0))
    report = engine.compile_report(engine.compile(model))
    assert "blocked" in str(report)


@needs_kernel
@pytest.mark.parametrize("case", LANE_CASES)
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("batch,size", [(1, 8), (4, 16)])
def test_blocked_reduced_precision_weights_match_their_rounded_layer(case, precision, batch,
                                                                     size):
    """fp16 / bf16 blocks (widened 8 at a time) across output channels (4 tiles) and across
    tiles (64 tiles, 16 lanes): the float64 layer with the same rounded weights."""
    backend, lanes = case
    layer = block_pruned_layer(11, 24, 4, 0.6, seed=batch)
    # every position blocked (a dense bf16 position would round its input tiles too)
    fast = SparseWinogradConv2d.from_layer(layer, threads=2, formats="blocked",
                                           precision=precision)
    assert fast.format_counts()["sparse"] == fast.format_counts()["dense"] == 0
    rounded = copy.deepcopy(layer)
    with torch.no_grad():
        q = rounded.weight_orig if hasattr(rounded, "weight_orig") else rounded.weight
        q.copy_(q.half().float() if precision == "fp16" else engine.packing.round_bf16(q))
    x = torch.randn(batch, 11, size, size)
    fast.lanes = lanes
    with torch.no_grad(), engine.use_backend(backend):
        got = fast._forward_kernel(x, backend, None)
    assert_matches(got, reference(rounded, x))
