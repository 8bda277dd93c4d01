"""Curated interpolation points per F(m, r) and the default choice."""
from __future__ import annotations

from fractions import Fraction

__all__ = ["LAVIN_POINTS", "CURATED_POINTS", "default_points", "naive_points"]

_h = Fraction(1, 2)
_q = Fraction(1, 4)

#: Lavin & Gray's points, for which the published F(2,3) and F(4,3) matrices come out.
LAVIN_POINTS: dict[int, tuple[Fraction, ...]] = {
    4: (Fraction(0), Fraction(1), Fraction(-1)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
}

CURATED_POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {}


def naive_points(count: int) -> tuple[Fraction, ...]:
    """0, 1, -1, 2, -2, 3, ... : the small-integer points used before accuracy was studied."""
    pts = [Fraction(0)]
    k = 1
    while len(pts) < count:
        pts.append(Fraction(k))
        if len(pts) < count:
            pts.append(Fraction(-k))
        k += 1
    return tuple(pts[:count])


def default_points(m: int, r: int) -> tuple[Fraction, ...]:
    """The curated points for F(m, r) if we have them, else the naive ones."""
    return CURATED_POINTS.get((m, r), naive_points(m + r - 2))
