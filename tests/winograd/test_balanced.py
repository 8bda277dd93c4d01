"""Balanced transforms for Winograd adder layers: exact, balanced, and built from the standard ones."""
import pickle
from fractions import Fraction

import pytest
import torch

from sparsewino.winograd import LAVIN_POINTS, algorithm
from sparsewino.winograd.balanced import (
    BalancedAlgorithm,
    balance_scalings,
    balanced_algorithm,
    is_balanced,
    row_sums,
)
from sparsewino.winograd.operations import matrix_operations, tile_transform_operations

CASES = [(2, None), (4, None), (4, LAVIN_POINTS[6]), (2, ["1/2", -1, 2]), (3, None), (6, None)]


@pytest.mark.parametrize("m, points", CASES)
def test_balanced_algorithm_is_exact_balanced_and_a_rescaling(m, points):
    standard = algorithm(m, 3, points)
    balanced = balanced_algorithm(m, 3, points)
    assert is_balanced(balanced.AT_exact)
    sums = row_sums(balanced.AT_exact)
    assert all(s == sums[0] > 0 for s in sums)
    assert balanced.BT_exact == standard.BT_exact
    lam = balanced.scalings
    assert all(v != 0 for v in lam)
    for row_b, row_s in zip(balanced.AT_exact, standard.AT_exact):
        assert all(b == s * l for b, s, l in zip(row_b, row_s, lam))
    for row_b, row_s, l in zip(balanced.G_exact, standard.G_exact, lam):
        assert all(b == s / l for b, s in zip(row_b, row_s))
    balanced.verify()                               # exact identity, rational arithmetic
    # numerically: the balanced algorithm still computes the correlation
    d, g = torch.randn(balanced.n, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    y = balanced.AT @ ((balanced.G @ g) * (balanced.BT @ d))
    expected = torch.stack([(d[i:i + 3] * g).sum() for i in range(m)])
    torch.testing.assert_close(y, expected)


def test_f23_is_multiplication_free_with_unit_scalings():
    alg = balanced_algorithm(2, 3)
    assert set(abs(v) for v in alg.scalings) == {Fraction(1)}
    assert matrix_operations(alg.AT_exact)[1] == 0 and matrix_operations(alg.BT_exact)[1] == 0
    assert row_sums(algorithm(2, 3).AT_exact) == (3, -1)
    assert row_sums(alg.AT_exact) == (1, 1)


def test_unbalanceable_and_trivial_cases_are_errors():
    with pytest.raises(ArithmeticError):
        balance_scalings(((Fraction(1), Fraction(0)), (Fraction(2), Fraction(0))))
    with pytest.raises(ValueError, match="trivial"):
        BalancedAlgorithm(1, 3)


def test_cached_and_picklable():
    alg = balanced_algorithm(4, 3)
    assert balanced_algorithm(4, 3) is alg
    assert pickle.loads(pickle.dumps(alg)) is alg


def test_transform_operation_counts():
    f23 = algorithm(2, 3, LAVIN_POINTS[4])
    assert tile_transform_operations([f23, f23], "BT") == (32, 0)
    assert tile_transform_operations([f23, f23], "AT") == (24, 0)
    f43 = algorithm(4, 3, LAVIN_POINTS[6])
    adds, mults = tile_transform_operations([f43, f43], "BT")
    assert mults > 0 and adds > 0
    with pytest.raises(ValueError):
        tile_transform_operations([f23], "G")
