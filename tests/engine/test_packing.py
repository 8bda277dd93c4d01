"""The per-position format rule and the packed weight layout (round trip, validation)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsewino.engine.packing import (SMALL_LAYER_MAX_DENSITY, SPARSE_MAX_DENSITY,
                                       choose_format, pack_weights, unpack_weights,
                                       validate_packed)


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


@pytest.mark.parametrize("args", [(-1, 4, 4), (17, 4, 4), (1, 0, 4)])
def test_choose_format_rejects_bad_counts(args):
    with pytest.raises(ValueError):
        choose_format(*args)


@settings(max_examples=30)
@given(p=st.integers(1, 9), k=st.integers(1, 14), c=st.integers(1, 11),
       density=st.floats(0, 1), formats=st.sampled_from(["auto", "sparse", "dense"]),
       seed=st.integers(0, 1000))
def test_pack_unpack_round_trip(p, k, c, density, formats, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(p, k, c, generator=g) * (torch.rand(p, k, c, generator=g) < density)
    packed = pack_weights(w, formats)
    validate_packed(packed, p, k, c)
    assert torch.equal(unpack_weights(packed, k, c), w)
    codes = packed["formats"].tolist()
    for pos in range(p):
        if not w[pos].any():
            assert codes[pos] == 0
        elif formats != "auto":
            assert codes[pos] == {"sparse": 1, "dense": 2}[formats]
    assert packed["col"].numel() == sum(int((w[q] != 0).sum()) for q in range(p) if codes[q] == 1)


def test_per_position_formats_and_errors():
    w = torch.ones(3, 4, 5)
    w[1] = 0
    packed = pack_weights(w, ["sparse", "dense", "dense"])
    assert packed["formats"].tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="formats"):
        pack_weights(w, ["sparse"])
    with pytest.raises(ValueError, match="formats"):
        pack_weights(w, "csr")
    with pytest.raises(ValueError, match=r"\(P, K, C\)"):
        pack_weights(torch.ones(4, 5))


@pytest.mark.parametrize("corrupt,match", [
    (lambda p: p["col"].fill_(7), "column index"),
    (lambda p: p["rowptr"][0, 2].fill_(-5), "monotone"),
    (lambda p: p["dense_index"].fill_(3), "dense_index"),
    (lambda p: p["formats"].fill_(9), "format code"),
    (lambda p: p.update(val=p["val"].double()), "float32"),
    (lambda p: p.update(rowptr=p["rowptr"][:, :3].contiguous()), "shapes"),
    (lambda p: p.update(col=torch.stack([p["col"], p["col"]], 1)[:, 0]), "non-contiguous"),
])
def test_validate_rejects_corrupt_packing(corrupt, match):
    w = torch.randn(2, 4, 5)
    w[0, :, 1:] = 0
    packed = pack_weights(w, "auto")
    assert packed["formats"].tolist() == [1, 2]
    validate_packed(packed, 2, 4, 5)
    corrupt(packed)
    with pytest.raises(ValueError, match=match):
        validate_packed(packed, 2, 4, 5)
