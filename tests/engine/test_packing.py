"""The per-matrix format rule and the packed weights (SELL-4 layout, round trip, validation)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsewino.engine import kernels
from sparsewino.engine.packing import SMALL_LAYER_MAX_DENSITY, SPARSE_MAX_DENSITY, PackedMatrices, choose_format


def test_choose_format_rule():
    assert choose_format(0, 128, 128) == "zero"
    assert choose_format(1, 128, 128) == "sparse"
    limit = int(SPARSE_MAX_DENSITY * 128 * 128)
    assert choose_format(limit, 128, 128) == "sparse"
    assert choose_format(limit + 1, 128, 128) == "dense"
    assert choose_format(128 * 128, 128, 128) == "dense"
    small = int(SMALL_LAYER_MAX_DENSITY * 64 * 64)            # small layers stay sparse longer
    assert choose_format(small, 64, 64) == "sparse"
    assert choose_format(small + 1, 64, 64) == "dense"
    assert choose_format(int(0.6 * 64 * 65), 64, 65) == "dense"
    assert choose_format(5, 3, 3, max_sparse_density=0.5) == "dense"
    assert choose_format(4, 3, 3, max_sparse_density=0.5) == "sparse"
    assert choose_format(1, 2, kernels.MAX_COLUMNS + 1) == "dense"     # 16-bit columns


@pytest.mark.parametrize("args", [(-1, 4, 4), (17, 4, 4), (1, 0, 4)])
def test_choose_format_rejects_bad_counts(args):
    with pytest.raises(ValueError):
        choose_format(*args)


@settings(max_examples=40)
@given(p=st.integers(1, 9), k=st.integers(1, 60), c=st.integers(1, 11),
       density=st.floats(0, 1), formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]),
       seed=st.integers(0, 1000))
def test_pack_unpack_round_trip_and_sell_layout(p, k, c, density, formats, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(p, k, c, generator=g) * (torch.rand(p, k, c, generator=g) < density)
    packed = PackedMatrices.pack(w, formats)
    assert torch.equal(packed.dense(), w)
    names = packed.formats()
    for pos in range(p):
        if not w[pos].any():
            assert names[pos] == "zero"
        elif formats != "auto":
            assert names[pos] == formats
    state = packed.state()
    slices = -(-k // kernels.SLICE_ROWS)
    for pos in (q for q in range(p) if names[q] == "sparse"):
        ptr = state["slice_ptr"][pos].long()
        rows = state["slice_rows"][pos].long().reshape(slices, kernels.SLICE_ROWS)
        counts = (w[pos] != 0).sum(1)
        for s in range(slices):
            length = int(ptr[s + 1] - ptr[s]) // kernels.SLICE_ROWS
            real = rows[s][rows[s] >= 0]
            # a slice is as long as its longest row, and its rows are in one chunk of 24
            assert length == (int(counts[real].max()) if len(real) else 0)
            assert len(set((real // kernels.CHUNK_ROWS).tolist())) <= 1
        # rows sorted by decreasing length inside each chunk: padding stays small
        order = rows.reshape(-1)[rows.reshape(-1) >= 0]
        for start in range(0, k, kernels.CHUNK_ROWS):
            chunk = counts[order[start:start + kernels.CHUNK_ROWS]]
            assert torch.equal(chunk, chunk.sort(descending=True).values)


def test_per_matrix_formats_and_errors():
    w = torch.ones(3, 4, 5)
    w[1] = 0
    packed = PackedMatrices.pack(w, ["sparse", "dense", "dense"])
    assert packed.formats() == ["sparse", "zero", "dense"]
    assert packed.format_counts() == {"zero": 1, "sparse": 1, "dense": 1, "blocked": 0}
    with pytest.raises(ValueError, match="formats"):
        PackedMatrices.pack(w, ["sparse"])
    with pytest.raises(ValueError, match="formats"):
        PackedMatrices.pack(w, "csr")
    with pytest.raises(ValueError, match=r"\(P, K, C\)"):
        PackedMatrices.pack(torch.ones(4, 5))


def _state() -> dict:
    w = torch.randn(2, 30, 5)
    w[0, :, 1:] = 0
    packed = PackedMatrices.pack(w, ["sparse", "dense"])
    assert packed.formats() == ["sparse", "dense"]
    return packed.state()


@pytest.mark.parametrize("corrupt,match", [
    (lambda s: s["col"].fill_(7), "column index"),
    (lambda s: s["slice_ptr"][0, 2].fill_(-5), "monotone"),
    (lambda s: s["slice_ptr"][0, 1:].add_(1), "multiples of 4"),
    (lambda s: s["slice_rows"][0, 0].fill_(29), "every output row once"),
    (lambda s: s["slice_rows"][0].copy_(s["slice_rows"][0].roll(4)), "own chunk"),
    (lambda s: s["dense_index"].fill_(3), "dense_index"),
    (lambda s: s["formats"].fill_(9), "format code"),
    (lambda s: s.update(val=s["val"].double()), "float32"),
    (lambda s: s.update(slice_ptr=s["slice_ptr"][:, :3].contiguous()), "shapes"),
    (lambda s: s.update(shape=(2, 31, 5)), "shape"),
    (lambda s: s.pop("dense"), "lacks"),
])
def test_validation_rejects_corrupt_states(corrupt, match):
    state = _state()
    PackedMatrices.from_state(state)
    corrupt(state)
    with pytest.raises(ValueError, match=match):
        PackedMatrices.from_state(state)


def test_packed_weights_cannot_be_edited_from_outside():
    w = torch.randn(1, 8, 8) * (torch.rand(1, 8, 8) < 0.3)
    packed = PackedMatrices.pack(w)
    state = packed.state()
    state["col"].fill_(12345)                 # copies: the packing is unaffected
    state["val"].mul_(0)
    dense = packed.dense()
    dense.mul_(2)
    assert torch.equal(packed.dense(), w)
