"""DWM decomposition: pieces reproduce the strided convolution exactly; the choice of pieces and tiles."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sparsewino.winograd import (
    DEFAULT_ERROR_BUDGET,
    ERROR_LIMIT,
    algorithm,
    algorithm_error,
    choose_decomposition,
    choose_tile,
    conv_multiplications,
    decompose,
    decomposed_error,
    multiplications_per_output,
    tile_error,
)
from sparsewino.winograd.error import piece_candidates
from sparsewino.winograd.transform import filter_matrix, filter_transform


@st.composite
def axes(draw, dims):
    kernel, stride, piece, padding, size = [], [], [], [], []
    for _ in range(dims):
        k = draw(st.integers(1, 11))
        s = draw(st.integers(1, min(4, k)))
        r = draw(st.integers(1, min(3, -(-k // s))))
        lo, hi = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        kernel.append(k), stride.append(s), piece.append(r), padding.append((lo, hi))
        size.append(draw(st.integers(max(1, k - lo - hi), k + 9)))
    return kernel, stride, piece, padding, size


def _strided(x, w, stride, padding):
    pads = [p for pair in reversed(padding) for p in pair]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[w.dim() - 2]
    return conv(F.pad(x, pads), w, stride=stride)


@given(axes(2), st.integers(1, 3), st.integers(1, 3))
def test_stacked_pieces_compute_the_strided_convolution_exactly(case, cin, cout):
    """A stride-1 valid correlation of the stacked sub-images with the piece kernels is the
    strided, padded correlation (float64, any kernel 1-11, stride 1-4, piece 1-3, padding)."""
    kernel, stride, piece, padding, size = case
    split = decompose(kernel, stride, piece, padding)
    x = torch.randn(2, cin, *size, dtype=torch.float64)
    w = torch.randn(cout, cin, *kernel, dtype=torch.float64)
    pieces = split.split(w)
    assert pieces.shape == (cout, cin, split.pieces, *piece)
    out = F.conv2d(split.stack(x), pieces.reshape(cout, cin * split.pieces, *piece))
    torch.testing.assert_close(out, _strided(x, w, stride, padding), rtol=1e-12, atol=1e-12)
    assert torch.equal(split.merge(pieces), w)


@given(axes(1))
def test_1d_and_every_tap_in_exactly_one_piece(case):
    kernel, stride, piece, padding, size = case
    split = decompose(kernel, stride, piece, padding)
    taps = split.taps.flatten()
    real = taps[taps >= 0]
    assert sorted(real.tolist()) == list(range(math.prod(kernel)))        # a partition
    assert int(split.phantom_mask().sum()) == split.pieces * math.prod(piece) - math.prod(kernel)
    x = torch.randn(1, 2, *size, dtype=torch.float64)
    w = torch.randn(3, 2, *kernel, dtype=torch.float64)
    out = F.conv1d(split.stack(x), split.split(w).reshape(3, 2 * split.pieces, *piece))
    torch.testing.assert_close(out, _strided(x, w, stride, padding), rtol=1e-12, atol=1e-12)


def test_3d_pieces():
    split = decompose((5, 3, 4), (2, 1, 3), (3, 3, 2), ((1, 2), (1, 1), (0, 0)))
    x = torch.randn(1, 2, 7, 6, 8, dtype=torch.float64)
    w = torch.randn(2, 2, 5, 3, 4, dtype=torch.float64)
    out = F.conv3d(split.stack(x), split.split(w).reshape(2, 2 * split.pieces, 3, 3, 2))
    torch.testing.assert_close(out, _strided(x, w, (2, 1, 3), ((1, 2), (1, 1), (0, 0))))


def test_windows_with_only_phantom_taps_are_dropped():
    """5 taps, stride 2, pieces of 2: phase 0 has 3 taps (2 windows), phase 1 has 2 taps
    (1 window, not a second all-phantom one)."""
    split = decompose((5,), (2,), (2,))
    assert split.axes[0].windows == ((0, -1), (0, 1), (1, 0))
    assert split.pieces == 3 and (split.taps >= 0).any(dim=1).all()


def test_filter_matrix_maps_spatial_weights_to_every_piece_q():
    split = decompose((7, 7), (2, 2), (3, 3), ((3, 3), (3, 3)))
    algs = [algorithm(4, 3)] * 2
    w = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    q = filter_transform(split.split(w), algs)                          # (K, C, S, 6, 6)
    matrix = filter_matrix(algs, split)
    assert matrix.shape == (split.pieces * 36, 49)
    torch.testing.assert_close(q.reshape(6, -1), w.reshape(6, -1) @ matrix.T)
    assert torch.equal(filter_matrix(algs), filter_matrix(algs, None))


def test_bad_decompositions_are_refused():
    with pytest.raises(ValueError, match="stride 3 is larger than the kernel size 2"):
        decompose((2,), (3,), (1,))
    with pytest.raises(ValueError, match="piece size 3 is larger than the largest phase"):
        decompose((3,), (2,), (3,))
    with pytest.raises(ValueError, match="one entry per dimension"):
        decompose((3, 3), (1,), (3, 3))
    with pytest.raises(ValueError, match="gives no output"):
        decompose((5,), (1,), (3,)).stack(torch.randn(1, 1, 3))


def test_describe_and_offsets():
    split = decompose((3, 3), (2, 2), (2, 2), ((1, 1), (1, 1)))
    assert split.describe() == "stride 2x2: 4 pieces 2x2"
    assert split.offsets() == [(-1, -1), (-1, -2), (-2, -1), (-2, -2)]
    assert not split.is_trivial and decompose((3,), (1,), (3,)).is_trivial


# ------------------------------------------------------------------------------- error, choice
def test_decomposed_error_is_measured_on_the_whole_correlation():
    assert decomposed_error(3, 1, 4, 3) == pytest.approx(tile_error(4, 3), rel=0.2)
    assert decomposed_error(5, 1, 4, 3) < tile_error(4, 5) / 2            # DWM beats F(4,5)
    assert algorithm_error(5, 1, 4, 5) == tile_error(4, 5)
    assert algorithm_error(7, 2, 1, 4) == 0.0                              # m = 1: direct
    # float32 pieces, float64 reference: a small but non-zero error
    assert 1e-9 < decomposed_error(3, 2, 4, 2) < DEFAULT_ERROR_BUDGET


def test_candidates_and_multiplications():
    assert piece_candidates(7, 2, "dwm") == (2, 3) and piece_candidates(7, 2, "auto") == (2, 3)
    assert piece_candidates(5, 1, "auto") == (2, 3) and piece_candidates(5, 1, "none") == (5,)
    assert piece_candidates(7, 2, 4) == (4,)                           # larger pieces when asked
    assert piece_candidates(5, 2, "none") == () and piece_candidates(4, 4, "dwm") == (1,)
    assert piece_candidates(7, 1, 3) == (3,)
    with pytest.raises(ValueError, match="must lie in"):
        piece_candidates(7, 2, 5)
    with pytest.raises(ValueError, match="decompose must be one of"):
        piece_candidates(7, 2, "fft")
    # 5x5 by F(2,3) pieces: 2 windows x 4 points per 2 outputs along each dimension
    assert multiplications_per_output(5, 1, 2, 3) ** 2 == 16          # 64 per 2x2 outputs vs 100
    assert multiplications_per_output(3, 1, 4, 3) ** 2 == 2.25        # plain F(4,3): 36 / 16
    assert multiplications_per_output(3, 2, 4, 2) ** 2 == 6.25        # 4 phases F(4,2): 100 / 16


def test_choose_decomposition_cases():
    assert choose_decomposition(3, requested=4) == (4, 3)
    assert choose_decomposition(3) == (choose_tile(3), 3)             # plain paths unchanged
    assert choose_decomposition(5, requested=2) == (2, 3)             # not plain F(2,5): 5.8x direct
    assert choose_decomposition(5, requested=2, decompose="none") == (2, 5)
    assert choose_decomposition(7, 2) == (4, 3)                       # tile="auto": not F(3,4)
    assert choose_decomposition(7, 2, decompose=4) == (3, 4)
    assert choose_decomposition(5, requested=4) == (4, 3)             # F(4,5) is not accurate
    assert choose_decomposition(5, requested=4, decompose="none") == (4, 5)
    assert choose_decomposition(3, stride=2, requested=4) == (4, 2)
    assert choose_decomposition(11, requested=4, decompose="dwm")[1] <= 3
    with pytest.raises(ValueError, match="needs the DWM decomposition"):
        choose_decomposition(3, stride=2, requested=4, decompose="none")


@pytest.mark.parametrize("kernel,stride", [(5, 1), (7, 2), (3, 2)])
def test_auto_tile_is_the_cheapest_accurate_choice(kernel, stride):
    m, r = choose_decomposition(kernel, stride)
    assert algorithm_error(kernel, stride, m, r) <= DEFAULT_ERROR_BUDGET
    cost = multiplications_per_output(kernel, stride, m, r)
    for other in piece_candidates(kernel, stride, "auto"):
        for tile in range(2, 9):
            if algorithm_error(kernel, stride, tile, other) <= DEFAULT_ERROR_BUDGET:
                assert multiplications_per_output(kernel, stride, tile, other) >= cost - 1e-12


def test_requested_tiles_beyond_the_limit_shrink():
    m, r = choose_decomposition(7, 2, requested=11, decompose="dwm")      # F(11,2): error ~40
    assert (m, r) == (9, 2) and algorithm_error(7, 2, m, r) <= ERROR_LIMIT
    assert choose_decomposition(7, 2, budget=1e-9, requested=4) == (1, 3)     # none fits: direct


def test_points_fix_the_piece_size():
    assert choose_decomposition(5, requested=2, points=[0, 1, -1]) == (2, 3)
    with pytest.raises(ValueError, match="give an explicit tile"):
        choose_decomposition(5, 2, points=[0, 1, -1])
    with pytest.raises(ValueError, match="pieces of 2 or 3 taps"):
        choose_decomposition(7, 2, requested=4, decompose="dwm", points=[0, 1, -1, 2, -2, 3, -3])
    with pytest.raises(ValueError, match="over the budget"):
        choose_decomposition(9, requested=9, decompose="dwm", points=list(range(-5, 5)))


def test_multiplication_counts_of_a_decomposed_layer():
    split = decompose((3, 3), (2, 2), (2, 2), ((1, 1), (1, 1)))
    counts = conv_multiplications([algorithm(4, 2)] * 2, 8, 16, 1, (2, 8, 16, 16),
                                  decomposition=split)
    outputs = 2 * 8 * 8
    assert counts["direct"] == 16 * 8 * 9 * outputs
    assert counts["winograd"] == 16 * 8 * 4 * 25 * (2 * 2 * 2)       # S x P x tiles
    assert counts["reduction"] == pytest.approx(9 / 6.25)
