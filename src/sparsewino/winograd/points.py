"""Curated interpolation points per F(m, r) and the default choice."""
from __future__ import annotations

from fractions import Fraction

__all__ = ["LAVIN_POINTS", "CURATED_POINTS", "POINT_SETS", "default_points", "naive_points",
           "named_points"]

#: Names of point sets (``named_points``): sparsewino's accurate defaults, Lavin & Gray's, the
#: small integers.
POINT_SETS = ("default", "lavin", "naive")

Fr = Fraction

#: Lavin & Gray's points, for which the published F(2,3) and F(4,3) matrices come out.
LAVIN_POINTS: dict[int, tuple[Fraction, ...]] = {
    4: (Fraction(0), Fraction(1), Fraction(-1)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
}

#: Accurate points per (m, r), found by ``tools/search_points.py`` (local search over small
#: rationals minimising the measured fp32 error, 2-D, one channel, uniform(-1, 1) data,
#: 4000 samples, seed 1). Comments: that error, and the error of :func:`naive_points`.
#: Where the search found nothing better than the naive integers, they are listed as such.
CURATED_POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {
    (2, 2): (0, 1),  # 4.77e-08 (naive 4.77e-08)
    (3, 2): (0, 1, -1),  # 5.22e-08 (naive 5.22e-08)
    (4, 2): (Fr(-1, 4), Fr(1, 2), -1, Fr(5, 4)),  # 1.1e-07 (naive 1.62e-07)
    (5, 2): (0, Fr(-1, 2), Fr(3, 4), Fr(-3, 2), 2),  # 1.87e-07 (naive 2.69e-07)
    (6, 2): (0, Fr(1, 2), Fr(-1, 2), 1, -1, -4),  # 4.45e-07 (naive 3.65e-06)
    (7, 2): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 6.46e-07 (naive 1.26e-05)
    (8, 2): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 1.58e-06 (naive 0.000666)
    (9, 2): (Fr(-1, 8), Fr(1, 4), Fr(-1, 2), Fr(2, 3), 1, -1, Fr(-3, 2), 2, -4),  # 4.06e-06 (naive 0.00461)
    (2, 3): (0, 1, -1),  # 8.62e-08 (naive 8.62e-08)
    (3, 3): (Fr(-1, 4), Fr(1, 2), -1, Fr(5, 4)),  # 1.74e-07 (naive 2.55e-07)
    (4, 3): (0, Fr(-1, 2), Fr(3, 4), Fr(-3, 2), 2),  # 2.74e-07 (naive 4.08e-07)
    (5, 3): (Fr(-1, 8), Fr(2, 5), Fr(-2, 3), 1, Fr(-3, 2), Fr(5, 2)),  # 5.34e-07 (naive 5.3e-06)
    (6, 3): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 8.88e-07 (naive 1.81e-05)
    (7, 3): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 2.11e-06 (naive 0.000875)
    (8, 3): (0, Fr(-1, 3), Fr(2, 5), Fr(-3, 4), Fr(4, 5), Fr(-5, 4), Fr(4, 3), Fr(-5, 2), 3),  # 4.44e-06 (naive 0.00612)
    (2, 4): (Fr(-1, 4), Fr(1, 2), -1, Fr(5, 4)),  # 2.58e-07 (naive 3.89e-07)
    (3, 4): (0, Fr(2, 3), Fr(-2, 3), Fr(3, 2), Fr(-3, 2)),  # 3.78e-07 (naive 5.95e-07)
    (4, 4): (0, Fr(1, 2), Fr(-1, 2), 1, -1, -4),  # 9.11e-07 (naive 7.93e-06)
    (5, 4): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 1.21e-06 (naive 2.57e-05)
    (6, 4): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 2.86e-06 (naive 0.00115)
    (7, 4): (Fr(-1, 8), Fr(1, 4), Fr(-1, 2), Fr(2, 3), Fr(-4, 5), 1, Fr(-3, 2), 2, -4),  # 7.02e-06 (naive 0.00825)
    (2, 5): (0, Fr(2, 3), Fr(-2, 3), Fr(4, 3), Fr(-4, 3)),  # 5.62e-07 (naive 9.03e-07)
    (3, 5): (0, Fr(1, 2), Fr(-1, 2), 1, -1, -4),  # 1.31e-06 (naive 1.26e-05)
    (4, 5): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 1.61e-06 (naive 3.77e-05)
    (5, 5): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 3.72e-06 (naive 0.00174)
    (6, 5): (Fr(-1, 8), Fr(1, 4), Fr(-1, 2), Fr(2, 3), 1, -1, Fr(-3, 2), 2, -4),  # 9.2e-06 (naive 0.0112)
    (2, 6): (Fr(1, 4), Fr(-1, 3), Fr(4, 5), Fr(-4, 5), Fr(3, 2), -2),  # 1.54e-06 (naive 2.21e-05)
    (3, 6): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 2.22e-06 (naive 6.12e-05)
    (4, 6): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 5.06e-06 (naive 0.00269)
    (5, 6): (Fr(-1, 8), Fr(1, 4), Fr(-1, 2), Fr(2, 3), 1, -1, Fr(-3, 2), 2, -4),  # 1.2e-05 (naive 0.0156)
    (2, 7): (0, Fr(1, 2), Fr(-1, 2), 1, -1, 2, -2),  # 3.22e-06 (naive 0.000111)
    (3, 7): (Fr(1, 4), Fr(-1, 4), Fr(2, 3), Fr(-2, 3), Fr(5, 4), Fr(-5, 4), Fr(5, 2), Fr(-5, 2)),  # 7.18e-06 (naive 0.00442)
    (4, 7): (Fr(-1, 8), Fr(1, 4), Fr(-1, 2), Fr(2, 3), 1, -1, Fr(-3, 2), 2, -4),  # 1.63e-05 (naive 0.0243)
}


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


def named_points(name: str, m: int, r: int) -> tuple[Fraction, ...]:
    """The finite interpolation points of F(m, r) in the set ``name`` (see :data:`POINT_SETS`).

    Raises:
        ValueError: an unknown name, or Lavin's points asked for an n = m + r − 1 they do not
            cover (they exist for n = 4 and 6: F(2,3) and F(4,3)).

    Examples:
        >>> [str(p) for p in named_points("lavin", 4, 3)]
        ['0', '1', '-1', '2', '-2']
    """
    if name == "default":
        return default_points(m, r)
    if name == "naive":
        return naive_points(m + r - 2)
    if name == "lavin":
        if m + r - 1 not in LAVIN_POINTS:
            raise ValueError(f"Lavin's points are defined for F(2,3) and F(4,3) (n = 4, 6), not "
                             f"F({m},{r}); use 'default', 'naive' or explicit points")
        return LAVIN_POINTS[m + r - 1]
    raise ValueError(f"unknown point set {name!r}; choose one of {', '.join(POINT_SETS)} or give "
                     "the points")
