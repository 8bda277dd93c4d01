"""Additions and multiplications of the Winograd transforms, counted from the exact matrices.

A 1-D transform by a matrix T (rows x cols) applied to one vector costs, computed row by row,
``sum over rows of (non-zeros - 1)`` additions and one multiplication per entry that is not
0 or ±1 (no common-subexpression sharing: an upper bound for hand-optimised code, exact for
the plain matrix-vector product). A separable N-d transform applies the 1-D one along each
dimension in turn.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

from .algorithm import RationalMatrix, WinogradAlgorithm

__all__ = ["matrix_operations", "tile_transform_operations"]


def matrix_operations(matrix: RationalMatrix | Sequence[Sequence[Fraction]]) -> tuple[int, int]:
    """``(additions, multiplications)`` of one matrix-vector product with ``matrix``.

    Examples:
        >>> matrix_operations([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
        (4, 0)
    """
    adds = sum(max(sum(1 for v in row if v != 0) - 1, 0) for row in matrix)
    mults = sum(1 for row in matrix for v in row if v not in (0, 1, -1))
    return adds, mults


def tile_transform_operations(algorithms: Sequence[WinogradAlgorithm], which: str) -> tuple[int, int]:
    """``(additions, multiplications)`` of one tile's ``"BT"`` (input) or ``"AT"`` (output) transform.

    Dimension i is transformed after dimensions < i: its 1-D transform runs once per vector
    along it, i.e. ``prod(out sizes of dims < i) * prod(in sizes of dims > i)`` times.

    Examples:
        >>> from sparsewino.winograd import algorithm
        >>> f23 = algorithm(2, 3)
        >>> tile_transform_operations([f23, f23], "BT"), tile_transform_operations([f23, f23], "AT")
        ((32, 0), (24, 0))
    """
    if which not in ("BT", "AT"):
        raise ValueError(f"which must be 'BT' or 'AT', got {which!r}")
    mats = [a.BT_exact if which == "BT" else a.AT_exact for a in algorithms]
    outs = [len(m) for m in mats]
    ins = [len(m[0]) for m in mats]
    adds = mults = 0
    for i, mat in enumerate(mats):
        times = math.prod(outs[:i]) * math.prod(ins[i + 1:])
        a, m = matrix_operations(mat)
        adds, mults = adds + times * a, mults + times * m
    return adds, mults
