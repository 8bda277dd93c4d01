"""Balanced Winograd transforms for adder layers: equal output-transform row sums, exact and verified.

In a Winograd adder layer (Li et al., ICML 2021) a tile's outputs are
``Y = Aᵀ M A`` with ``M = -|U - V|^p``: every entry of M is <= 0 and, over a layer, the entries
have roughly one common mean mu < 0. Output (i, j) of a 2-D tile then has mean
``mu * s_i * s_j`` with ``s_i`` the sum of row i of Aᵀ. For Lavin's F(2,3),
``Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`` gives s = (3, -1): the four outputs of a tile have means
9 mu, -3 mu, -3 mu and mu, a pattern of period 2 in every feature map that a per-channel
BatchNorm cannot remove (and whose signs disagree). The transforms are **balanced** when all
row sums of Aᵀ are equal and positive, so every output of a tile has the same mean.

The freedom used: for any non-zero lambda_k, scaling column k of Aᵀ by lambda_k and row k of G
by 1/lambda_k leaves the multiplication algorithm exact (``Aᵀ[(G g) * (Bᵀ d)]`` is unchanged).
Bᵀ is kept. The balance condition ``Aᵀ lambda = s 1`` is linear: lambda = s x0 + null-space
combinations (dimension n - m). Among the solutions with every lambda_k != 0 (searched over
small rationals), the choice minimises, in order: the output-transform entries outside
{0, ±1} (extra multiplications), the spread max/min of the row norms of Aᵀ (outputs of equal
variance as well as equal mean), and the size of the scalings. Everything is exact rational
arithmetic, and the result is checked by :meth:`WinogradAlgorithm.verify` like every algorithm.

For F(2,3) this gives ``Aᵀ = [[1, 1, -1, 0], [0, 1, 1, -1]]`` (row sums 1 and 1, still
multiplication-free). F(4,3) has no balanced form with entries in {0, ±1, ±2, ...}: its
balanced Aᵀ needs fractions (see docs/adder.md).
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Sequence

from .algorithm import PointLike, RationalMatrix, WinogradAlgorithm, _as_tensor, parse_points

__all__ = ["BalancedAlgorithm", "balanced_algorithm", "row_sums", "is_balanced",
           "balance_scalings"]

#: Candidate free parameters of the search (numerators over denominators 1, 2, 4).
_GRID = sorted({Fraction(a, b) for a in range(-8, 9) for b in (1, 2, 4)})


def row_sums(at: RationalMatrix | Sequence[Sequence[Fraction]]) -> tuple[Fraction, ...]:
    """Row sums of an output transform Aᵀ (exact)."""
    return tuple(sum((Fraction(v) for v in row), Fraction(0)) for row in at)


def is_balanced(at: RationalMatrix | Sequence[Sequence[Fraction]]) -> bool:
    """All row sums of Aᵀ equal and positive (every output of a tile has the same mean).

    Examples:
        >>> is_balanced([[1, 1, 1, 0], [0, 1, -1, -1]]), is_balanced([[-1, 1, 1, 0], [0, 1, -1, 1]])
        (False, True)
    """
    sums = row_sums(at)
    return sums[0] > 0 and all(s == sums[0] for s in sums)


def _null_space(rows: list[list[Fraction]], n: int) -> tuple[list[Fraction] | None, list[list[Fraction]]]:
    """A particular solution of rows @ x = 1 and a basis of the null space (exact Gauss-Jordan)."""
    m = len(rows)
    aug = [list(r) + [Fraction(1)] for r in rows]
    pivots: list[int] = []
    row = 0
    for col in range(n):
        pivot = next((i for i in range(row, m) if aug[i][col] != 0), None)
        if pivot is None:
            continue
        aug[row], aug[pivot] = aug[pivot], aug[row]
        scale = aug[row][col]
        aug[row] = [v / scale for v in aug[row]]
        for i in range(m):
            if i != row and aug[i][col] != 0:
                factor = aug[i][col]
                aug[i] = [a - factor * b for a, b in zip(aug[i], aug[row])]
        pivots.append(col)
        row += 1
        if row == m:
            break
    if any(all(v == 0 for v in r[:n]) and r[n] != 0 for r in aug):
        return None, []
    particular = [Fraction(0)] * n
    for i, col in enumerate(pivots):
        particular[col] = aug[i][n]
    free = [c for c in range(n) if c not in pivots]
    basis = []
    for f in free:
        vec = [Fraction(0)] * n
        vec[f] = Fraction(1)
        for i, col in enumerate(pivots):
            vec[col] = -aug[i][f]
        basis.append(vec)
    return particular, basis


def _score(at: RationalMatrix, lam: Sequence[Fraction]) -> tuple:
    scaled = [[v * l for v, l in zip(row, lam)] for row in at]
    extra = sum(1 for row in scaled for v in row if v not in (0, 1, -1))
    norms = [sum(v * v for v in row) for row in scaled]
    spread = max(norms) / min(norms)
    size = sum(abs(math.log2(abs(float(l)))) for l in lam)
    return (extra, spread, size, tuple(-float(l) for l in lam))


def balance_scalings(at: RationalMatrix) -> tuple[Fraction, ...]:
    """The column scalings lambda that balance ``at`` (see the module docstring).

    Raises:
        ArithmeticError: no balancing scaling exists (never for Cook-Toom algorithms).
    """
    rows = [[Fraction(v) for v in row] for row in at]
    n = len(rows[0])
    particular, basis = _null_space(rows, n)
    if particular is None:
        raise ArithmeticError("Aᵀ lambda = 1 has no solution: these transforms cannot be balanced")
    best, best_score = None, None
    for ts in itertools.product(_GRID, repeat=len(basis)):
        lam = [p + sum((t * b[k] for t, b in zip(ts, basis)), Fraction(0))
               for k, p in enumerate(particular)]
        if any(v == 0 for v in lam):
            continue
        # normalise: the smallest |lambda| is 1 (an overall scale only rescales the outputs)
        smallest = min(abs(v) for v in lam)
        lam = [v / smallest for v in lam]
        score = _score(rows, lam)
        if best_score is None or score < best_score:
            best, best_score = lam, score
    if best is None:
        raise ArithmeticError("no balancing scaling with non-zero entries was found")
    return tuple(best)


class BalancedAlgorithm(WinogradAlgorithm):
    """F(m, r) from the given points with balanced output transform (for adder layers).

    Aᵀ's columns are scaled by :func:`balance_scalings` and G's rows by the inverse, so the
    algorithm still computes the exact correlation (checked by :meth:`verify`); Bᵀ is the
    standard one. Attribute ``scalings`` holds lambda.
    """

    def __init__(self, m: int, r: int, points: Iterable[PointLike] | None = None) -> None:
        super().__init__(m, r, points)
        if self.points is None:
            raise ValueError(f"F({m},{r}) is the trivial algorithm; there is nothing to balance")
        lam = balance_scalings(self.AT_exact)
        self.scalings: tuple[Fraction, ...] = lam
        self.AT_exact = tuple(tuple(v * l for v, l in zip(row, lam)) for row in self.AT_exact)
        self.G_exact = tuple(tuple(v / l for v in row) for row, l in zip(self.G_exact, lam))
        self.verify()
        if not is_balanced(self.AT_exact):
            raise ArithmeticError(f"F({m},{r}): the balanced transform is not balanced (a bug)")
        self.AT, self.G = _as_tensor(self.AT_exact), _as_tensor(self.G_exact)
        self._cast_cache = {}

    def __repr__(self) -> str:
        return "Balanced" + super().__repr__()

    def __reduce__(self):
        return (balanced_algorithm, (self.m, self.r, self.points))


@lru_cache(maxsize=None)
def _cached(m: int, r: int, points: tuple[Fraction, ...] | None) -> BalancedAlgorithm:
    return BalancedAlgorithm(m, r, points)


def balanced_algorithm(m: int, r: int, points: Iterable[PointLike] | None = None) -> BalancedAlgorithm:
    """Cached :class:`BalancedAlgorithm` F(m, r); ``points=None`` takes the library default.

    Examples:
        >>> alg = balanced_algorithm(2, 3)
        >>> alg.AT.tolist()
        [[1.0, 1.0, -1.0, 0.0], [0.0, 1.0, 1.0, -1.0]]
    """
    if points is None:
        from .points import default_points
        points = default_points(m, r)
    return _cached(m, r, parse_points(points, m, r))
