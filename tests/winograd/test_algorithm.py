"""WinogradAlgorithm: exact construction, published matrices, validation, IFM, counts."""
import math
import pickle
from fractions import Fraction as Fr

import pytest
import torch

from sparsewino.winograd import (
    LAVIN_POINTS,
    WinogradAlgorithm,
    algorithm,
    conv_multiplications,
    importance_factor_matrix,
)
from sparsewino.winograd.error import direct_correlation_tiles


def test_f23_matches_lavin_entry_by_entry():
    alg = algorithm(2, 3, points=[0, 1, -1])
    assert alg.BT_exact == tuple(tuple(Fr(v) for v in row) for row in
                                 [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    assert alg.G_exact == ((1, 0, 0), (Fr(1, 2), Fr(1, 2), Fr(1, 2)),
                           (Fr(1, 2), Fr(-1, 2), Fr(1, 2)), (0, 0, 1))
    assert alg.AT_exact == ((1, 1, 1, 0), (0, 1, -1, -1))


def test_f43_matches_lavin_entry_by_entry():
    alg = algorithm(4, 3, points=LAVIN_POINTS[6])
    assert alg.BT_exact == tuple(tuple(Fr(v) for v in row) for row in [
        [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
    assert alg.G_exact == (
        (Fr(1, 4), 0, 0), (Fr(-1, 6), Fr(-1, 6), Fr(-1, 6)), (Fr(-1, 6), Fr(1, 6), Fr(-1, 6)),
        (Fr(1, 24), Fr(1, 12), Fr(1, 6)), (Fr(1, 24), Fr(-1, 12), Fr(1, 6)), (0, 0, 1))
    assert alg.AT_exact == ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0),
                            (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


@pytest.mark.parametrize("m", range(1, 9))
@pytest.mark.parametrize("r", range(1, 8))
def test_default_algorithms_are_exact(m, r):
    alg = WinogradAlgorithm(m, r)                  # the constructor runs the exact check
    alg.verify()
    assert alg.AT.shape == (m, m + r - 1) and alg.G.shape == (m + r - 1, r)
    assert alg.BT.shape == (m + r - 1, m + r - 1) and alg.AT.dtype == torch.float64


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (3, 2), (2, 5), (4, 7), (6, 5), (8, 3)])
def test_float64_algorithm_computes_correlation(m, r):
    alg = algorithm(m, r)
    gen = torch.Generator().manual_seed(m * 10 + r)
    d = torch.rand(50, alg.n, generator=gen, dtype=torch.float64) * 2 - 1
    g = torch.rand(50, r, generator=gen, dtype=torch.float64) * 2 - 1
    y = ((g @ alg.G.T) * (d @ alg.BT.T)) @ alg.AT.T
    torch.testing.assert_close(y, direct_correlation_tiles(d, g), rtol=1e-10, atol=1e-10)


def test_exact_check_catches_a_wrong_matrix():
    alg = WinogradAlgorithm(2, 3, points=[0, 1, -1])
    bad = [list(row) for row in alg.BT_exact]
    bad[1][1] += Fr(1, 1000)
    alg.BT_exact = tuple(map(tuple, bad))
    with pytest.raises(ArithmeticError, match="fails the exact check"):
        alg.verify()


def test_any_distinct_rational_points_give_exact_algorithms():
    for pts in ([Fr(1, 3), -7, Fr(5, 2), 0.25, "-3/4"], [3, 5, 7, 11, 13]):
        WinogradAlgorithm(4, 3, points=pts).verify()
    alg = algorithm(2, 3, points=[0, 1, -1, "inf"])        # trailing infinity accepted
    assert alg is algorithm(2, 3, points=[0, 1, -1])


@pytest.mark.parametrize("points,message", [
    ([0, 1, 1], "distinct"),
    ([0, 1], "needs n - 1 = 3"),
    ([0, 1, -1, 2], "needs n - 1 = 3"),
    ([0, "inf", 1], "infinity may only appear last"),
    ([0, "abc", 1], "not a rational"),
    ([0, float("nan"), 1], "not finite"),
])
def test_invalid_points_raise_clear_errors(points, message):
    with pytest.raises(ValueError, match=message):
        WinogradAlgorithm(2, 3, points=points)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_invalid_sizes_raise(bad):
    with pytest.raises(ValueError, match="integer >= 1"):
        WinogradAlgorithm(bad, 3)
    with pytest.raises(TypeError):
        WinogradAlgorithm(2, 3, points=[0, True, 1])


def test_trivial_algorithms_for_size_one():
    alg = algorithm(4, 1)
    assert alg.is_trivial() and torch.equal(alg.AT, torch.eye(4, dtype=torch.float64))
    assert torch.equal(alg.G, torch.ones(4, 1, dtype=torch.float64))
    alg = algorithm(1, 5)
    assert torch.equal(alg.AT, torch.ones(1, 5, dtype=torch.float64))
    assert torch.equal(alg.G, torch.eye(5, dtype=torch.float64))
    assert not algorithm(1, 5, points=[0, 1, -1, 2]).is_trivial()


def test_ifm_of_f43_with_lavin_points():
    alg = algorithm(4, 3, points=LAVIN_POINTS[6])
    m = alg.importance_factor_matrix(normalize=False)
    assert m.diagonal().tolist() == pytest.approx([42, 136, 136, 850, 850, 42])
    m_hat = alg.importance_factor_matrix()
    torch.testing.assert_close(m_hat, m / 42)
    assert m_hat.max().item() == pytest.approx(850 / 42)
    assert (m_hat.max() ** 1.5).item() == pytest.approx(91.05, abs=0.01)


def test_ifm_of_f23_and_mixed_dims():
    alg = algorithm(2, 3, points=[0, 1, -1])
    s2 = math.sqrt(2)
    expected = torch.tensor([1, s2, s2, 1], dtype=torch.float64)
    torch.testing.assert_close(alg.importance_factor_matrix(), torch.outer(expected, expected))
    mixed = importance_factor_matrix([alg, algorithm(4, 3, points=LAVIN_POINTS[6])], normalize=False)
    assert mixed.shape == (4, 6) and mixed[0, 0].item() == pytest.approx(math.sqrt(2 * 42))
    assert alg.importance_factor_matrix(dims=3).shape == (4, 4, 4)


def test_algorithm_pickles_to_the_cached_instance():
    alg = algorithm(4, 3)
    assert pickle.loads(pickle.dumps(alg)) is alg


def test_multiplication_counts():
    counts = conv_multiplications([algorithm(4, 3)] * 2, 64, 128, 1, (2, 64, 56, 56), ((1, 1), (1, 1)))
    assert counts["direct"] == 2 * 64 * 128 * 9 * 56 * 56
    assert counts["winograd"] == 2 * 64 * 128 * 36 * 14 * 14
    assert counts["reduction"] == pytest.approx(4.0)
    assert counts["direct_per_output"] == 64 * 9
    f23 = conv_multiplications([algorithm(2, 3)] * 2, 4, 4, 2, (1, 4, 5, 5))   # output 3x3 -> 2x2 tiles
    assert f23["winograd"] == 4 * 2 * 16 * 4 and f23["direct"] == 4 * 2 * 9 * 9
    with pytest.raises(ValueError, match="too small"):
        conv_multiplications([algorithm(2, 3)] * 2, 1, 1, 1, (1, 1, 2, 2))


@pytest.mark.parametrize("m,r", [(0, 3), (2.0, 3), (2, -1)])
def test_cached_lookup_validates_sizes(m, r):
    with pytest.raises(ValueError, match="integer >= 1"):
        algorithm(m, r)
