"""Transforms along each dimension, Kronecker vs separable paths, tiling and assembly."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sparsewino.winograd import algorithm
from sparsewino.winograd.tiles import (
                                       assemble_tiles,
                                       extract_tiles,
                                       gather_tiles,
                                       pad_for_tiles,
                                       tile_counts,
)
from sparsewino.winograd.transform import (
    apply_leading,
    apply_trailing,
    filter_transform,
    input_transform,
    kron_matrix,
    output_transform,
)


def _mats(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o, i, generator=gen, dtype=torch.float64) for o, i in shapes]


@pytest.mark.parametrize("shapes", [[(6, 3)], [(6, 3), (4, 3)], [(4, 6), (2, 4), (6, 6)]])
def test_kron_and_separable_leading_paths_agree(shapes):
    mats = _mats(shapes)
    x = torch.randn(*[i for _, i in shapes], 5, 7, dtype=torch.float64)
    a = apply_leading(x, mats, use_kron=True)
    b = apply_leading(x, mats, use_kron=False)
    assert a.shape == (*[o for o, _ in shapes], 5, 7)
    torch.testing.assert_close(a, b)
    # reference: einsum over each leading dim
    ref = x
    for i, mat in enumerate(mats):
        ref = torch.movedim(torch.tensordot(mat, ref, dims=([1], [i])), 0, i)
    torch.testing.assert_close(a, ref)


def test_apply_leading_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        apply_leading(torch.zeros(3, 4), _mats([(6, 4)]))


def test_trailing_transform_is_matrix_sandwich():
    mats = _mats([(6, 3), (5, 2)])
    x = torch.randn(4, 7, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(apply_trailing(x, mats), mats[0] @ x @ mats[1].T)


def test_kron_matrix_matches_vec_identity():
    algs = (algorithm(2, 3), algorithm(4, 3))
    d = torch.randn(4, 6, dtype=torch.float64)
    kb = kron_matrix(algs, "BT")
    torch.testing.assert_close(kb @ d.reshape(-1), (algs[0].BT @ d @ algs[1].BT.T).reshape(-1))
    assert kron_matrix(algs, "BT", torch.float32).dtype == torch.float32


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_nd_transforms_compute_correlation(dims):
    algs = [algorithm(m, 3) for m in (2, 4, 3)[:dims]]
    tiles = torch.rand(9, *[a.n for a in algs], dtype=torch.float64) * 2 - 1
    kernels = torch.rand(9, 1, *[3] * dims, dtype=torch.float64) * 2 - 1
    q = filter_transform(kernels, algs).squeeze(1)
    y = output_transform(q * input_transform(tiles, algs), algs)
    conv = [F.conv1d, F.conv2d, F.conv3d][dims - 1]
    ref = conv(tiles.unsqueeze(0), kernels, groups=9).squeeze(0)
    torch.testing.assert_close(y, ref)


@given(h=st.integers(1, 13), w=st.integers(1, 13), mh=st.integers(1, 6), mw=st.integers(1, 6),
       kh=st.integers(1, 5), kw=st.integers(1, 5), ph=st.integers(0, 3), pw=st.integers(0, 2))
def test_tiling_covers_the_padded_input(h, w, mh, mw, kh, kw, ph, pw):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    out = (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1)
    if min(out) < 1:
        return
    padded = pad_for_tiles(x, (kh, kw), (mh, mw), ((ph, ph), (pw, pw)))
    counts = tile_counts(out, (mh, mw))
    assert padded.shape[2:] == (counts[0] * mh + kh - 1, counts[1] * mw + kw - 1)
    torch.testing.assert_close(padded[..., ph:ph + h, pw:pw + w], x)
    outside = padded.clone()
    outside[..., ph:ph + h, pw:pw + w] = 0
    assert not outside.any()                             # everything else is zero
    tiles = extract_tiles(padded, (mh, mw), (mh + kh - 1, mw + kw - 1))
    assert tiles.shape == (2, 3, *counts, mh + kh - 1, mw + kw - 1)
    # the top-left m x m corner of each tile, assembled, is the padded input itself
    corner = tiles[..., :mh, :mw]
    full = assemble_tiles(corner, (counts[0] * mh, counts[1] * mw))
    torch.testing.assert_close(full, padded[..., :counts[0] * mh, :counts[1] * mw])
    cropped = assemble_tiles(corner, out)
    assert cropped.shape == (2, 3, *out)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_apply_algorithms_matches_per_dimension_products(dims):
    from sparsewino.winograd.transform import apply_algorithms, prefers_kron, transform_matrices
    algs = [algorithm(4, 3)] * dims
    x = torch.randn(*[6] * dims, 5, dtype=torch.float64)
    mats = transform_matrices(algs, "BT", torch.float64)
    assert prefers_kron(mats) == (dims < 3)             # 6^3 positions: one GEMM per dimension
    torch.testing.assert_close(apply_algorithms(x, algs, "BT"), apply_leading(x, mats, use_kron=False))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_gather_tiles_values_and_gradient(dims, seed):
    """gather_tiles is the positions-first copy of extract_tiles' view, and its hand-written
    backward (overlaps added back in strided slices) is the exact adjoint: gradcheck in
    float64 on random tiles m, kernels r (overlap r-1 above, equal to and below m) and counts."""
    gen = torch.Generator().manual_seed(100 * dims + seed)
    m = [int(v) for v in torch.randint(1, 5, (dims,), generator=gen)]
    r = [int(v) for v in torch.randint(1, 6, (dims,), generator=gen)]
    n = [a + b - 1 for a, b in zip(m, r)]
    counts = [int(v) for v in torch.randint(1, 4, (dims,), generator=gen)]
    size = [t * a + b - a for t, a, b in zip(counts, m, n)]
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=gen, requires_grad=True)
    perm = [*range(2 + dims, 2 + 2 * dims), 1, 0, *range(2, 2 + dims)]
    gathered = gather_tiles(x, m, n)
    assert gathered.is_contiguous()
    assert torch.equal(gathered, extract_tiles(x, m, n).permute(perm))
    assert torch.autograd.gradcheck(lambda t: gather_tiles(t, m, n), (x,))
    # the same gradient as autograd's through the unfold view
    g = torch.randn(gathered.shape, dtype=torch.float64, generator=gen)
    ours, = torch.autograd.grad(gathered, x, g)
    theirs, = torch.autograd.grad(extract_tiles(x, m, n).permute(perm), x, g)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
