"""Exact Winograd minimal-filtering algorithms F(m, r) built from interpolation points.

Notation follows Lavin & Gray (2016): for an m-output, r-tap correlation over n = m + r - 1
inputs, ``y = AT @ ((G @ g) * (BT @ d))`` with ``AT`` (m x n), ``G`` (n x r), ``BT`` (n x n).
Matrices are generated in exact rational arithmetic (Cook-Toom construction from n - 1
finite interpolation points plus the point at infinity), verified exactly, and only then
converted to floating point.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Sequence, Union

import torch

PointLike = Union[int, float, str, Fraction]
RationalMatrix = tuple[tuple[Fraction, ...], ...]

__all__ = [
    "WinogradAlgorithm",
    "conv_multiplications",
    "algorithm",
    "importance_factor_matrix",
    "parse_points",
]


def _to_fraction(point: PointLike) -> Fraction:
    if isinstance(point, bool):
        raise TypeError(f"interpolation point {point!r} is a bool; give a number")
    if isinstance(point, Fraction):
        return point
    if isinstance(point, int):
        return Fraction(point)
    if isinstance(point, float):
        if not math.isfinite(point):
            raise ValueError(f"interpolation point {point!r} is not finite")
        # repr() gives the shortest decimal that round-trips, so 0.1 becomes 1/10.
        return Fraction(repr(point))
    if isinstance(point, str):
        try:
            return Fraction(point.strip())
        except ValueError:
            raise ValueError(f"interpolation point {point!r} is not a rational number "
                             "(use forms like '1/2', '-2', '0.25')") from None
    raise TypeError(f"interpolation point {point!r} has type {type(point).__name__}; "
                    "give an int, float, str or fractions.Fraction")


def _is_infinity(point: object) -> bool:
    if isinstance(point, float):
        return math.isinf(point)
    if isinstance(point, str):
        return point.strip().lower() in ("inf", "infinity", "∞")
    return False


def parse_points(points: Iterable[PointLike], m: int, r: int) -> tuple[Fraction, ...]:
    """Validate interpolation points for F(m, r) and return them as Fractions.

    ``points`` holds the n - 1 finite points (n = m + r - 1); the point at infinity is always
    used and may be given as a trailing ``"inf"``/``float("inf")``, which is dropped.

    Raises:
        ValueError: wrong count, duplicates, or a non-rational point.
    """
    items = list(points)
    if items and _is_infinity(items[-1]):
        items = items[:-1]
    if any(_is_infinity(p) for p in items):
        raise ValueError("the point at infinity may only appear last")
    fractions = tuple(_to_fraction(p) for p in items)
    n = m + r - 1
    if len(fractions) != n - 1:
        raise ValueError(
            f"F({m}, {r}) needs n - 1 = {n - 1} finite interpolation points (n = m + r - 1 = {n}) "
            f"plus infinity, got {len(fractions)}: {[str(p) for p in fractions]}")
    if len(set(fractions)) != len(fractions):
        dupes = sorted({str(p) for p in fractions if fractions.count(p) > 1})
        raise ValueError(f"interpolation points must be distinct; repeated: {dupes}")
    return fractions


def _poly_from_roots(roots: Sequence[Fraction]) -> list[Fraction]:
    """Coefficients (lowest order first) of prod (x - root)."""
    coeffs = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0)] + coeffs          # x * p(x)
        for i, c in enumerate(coeffs):
            shifted[i] -= root * c                 # - root * p(x)
        coeffs = shifted
    return coeffs


def _check_sizes(m: object, r: object) -> None:
    for name, value in (("m", m), ("r", r)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _lowest_nonzero(row: Sequence[Fraction]) -> Fraction:
    return next((v for v in row if v != 0), Fraction(0))


class WinogradAlgorithm:
    """One 1-D Winograd algorithm F(m, r): m outputs of an r-tap correlation from n inputs.

    Args:
        m: output tile size (>= 1).
        r: kernel size (>= 1).
        points: the n - 1 finite interpolation points (infinity is implied). ``None`` takes
            the curated accurate default from :mod:`sparsewino.winograd.points`.

    When ``m == 1`` or ``r == 1`` and no points are given, the *trivial* algorithm is used
    (identity transforms; it saves nothing but adds no rounding error).

    Signs follow Lavin & Gray's published matrices: rows come from the Cook-Toom construction
    with the Lagrange normalisation 1/f_k placed in ``G``; the rows of the point 0 and of
    infinity are sign-normalised so their lowest-order non-zero ``BT`` entry is positive.

    Attributes:
        AT, G, BT: float64 tensors (m x n, n x r, n x n).
        AT_exact, G_exact, BT_exact: the same as tuples of tuples of Fractions.
    """

    def __init__(self, m: int, r: int, points: Iterable[PointLike] | None = None) -> None:
        _check_sizes(m, r)
        self.m, self.r, self.n = m, r, m + r - 1
        if points is None and (m == 1 or r == 1):
            self.points: tuple[Fraction, ...] | None = None
            at, g, bt = self._trivial()
        else:
            if points is None:
                from .points import default_points
                points = default_points(m, r)
            self.points = parse_points(points, m, r)
            at, g, bt = self._cook_toom(self.points)
        self.AT_exact: RationalMatrix = at
        self.G_exact: RationalMatrix = g
        self.BT_exact: RationalMatrix = bt
        self.verify()
        self.AT = _as_tensor(at)
        self.G = _as_tensor(g)
        self.BT = _as_tensor(bt)
        self._cast_cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    # ----------------------------------------------------------------- construction
    def _trivial(self) -> tuple[RationalMatrix, RationalMatrix, RationalMatrix]:
        m, r, n = self.m, self.r, self.n
        one, zero = Fraction(1), Fraction(0)
        if r == 1:   # y_i = g_0 d_i
            at = tuple(tuple(one if i == k else zero for k in range(n)) for i in range(m))
            g = tuple((one,) for _ in range(n))
        else:        # m == 1: y_0 = sum_j g_j d_j
            at = (tuple(one for _ in range(n)),)
            g = tuple(tuple(one if k == j else zero for j in range(r)) for k in range(n))
        bt = tuple(tuple(one if k == l else zero for l in range(n)) for k in range(n))
        return at, g, bt

    def _cook_toom(self, pts: tuple[Fraction, ...]
                   ) -> tuple[RationalMatrix, RationalMatrix, RationalMatrix]:
        m, r, n = self.m, self.r, self.n
        at = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
        g: list[list[Fraction]] = []
        bt: list[list[Fraction]] = []
        for k, p in enumerate(pts):
            others = pts[:k] + pts[k + 1:]
            f_k = math.prod((p - q for q in others), start=Fraction(1))
            g.append([p ** j / f_k for j in range(r)])
            bt.append(_poly_from_roots(others) + [Fraction(0)])
        g.append([Fraction(int(j == r - 1)) for j in range(r)])
        bt.append(_poly_from_roots(pts))
        # Lavin's sign convention for the rows of the point 0 and of infinity.
        for k, p in list(enumerate(pts)) + [(n - 1, None)]:
            if (p is None or p == 0) and _lowest_nonzero(bt[k]) < 0:
                bt[k] = [-v for v in bt[k]]
                if p is None:
                    for row in at:
                        row[k] = -row[k]
                else:
                    g[k] = [-v for v in g[k]]
        return (tuple(map(tuple, at)), tuple(map(tuple, g)), tuple(map(tuple, bt)))

    # ----------------------------------------------------------------- checks
    def verify(self) -> None:
        """Check exactly (rational arithmetic) that the matrices compute the r-tap correlation.

        The identity ``sum_k AT[i,k] G[k,j] BT[k,l] == [l == i + j]`` for all i, j, l is
        equivalent to ``AT((G g) * (BT d)) == correlate(d, g)`` for every input.

        Raises:
            ArithmeticError: if the algorithm is wrong (a bug, never expected).
        """
        at, g, bt = self.AT_exact, self.G_exact, self.BT_exact
        m, r, n = self.m, self.r, self.n
        # Exact integer arithmetic (much faster than Fractions): scale column k of AT, row k of
        # G and row k of BT to integers, then bring every term to one common denominator.
        scales = [(math.lcm(*(Fraction(at[i][k]).denominator for i in range(m))),
                   math.lcm(*(Fraction(g[k][j]).denominator for j in range(r))),
                   math.lcm(*(Fraction(bt[k][l]).denominator for l in range(n)))) for k in range(n)]
        common = math.lcm(*(sa * sg * sb for sa, sg, sb in scales))
        a_int = [[int(Fraction(at[i][k]) * scales[k][0]) for k in range(n)] for i in range(m)]
        g_int = [[int(Fraction(g[k][j]) * scales[k][1]) * (common // math.prod(scales[k]))
                  for j in range(r)] for k in range(n)]
        b_int = [[int(Fraction(bt[k][l]) * scales[k][2]) for l in range(n)] for k in range(n)]
        for i in range(m):
            for j in range(r):
                ag = [a_int[i][k] * g_int[k][j] for k in range(n)]
                for l in range(n):
                    total = sum(ag[k] * b_int[k][l] for k in range(n))
                    if total != (common if l == i + j else 0):
                        raise ArithmeticError(
                            f"F({self.m},{self.r}) with points {self.points} fails the exact "
                            f"check at (i={i}, j={j}, l={l}): {Fraction(total, common)}")

    # ----------------------------------------------------------------- derived data
    @torch.inference_mode(False)
    def matrices(self, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(AT, G, BT) cast once from float64 to ``dtype`` on ``device``, cached.

        Cached tensors are shared by every later call, so they are always created outside
        ``torch.inference_mode`` (an inference tensor in the cache would break all training).
        """
        key = (dtype, torch.device(device) if device is not None else torch.device("cpu"))
        cached = self._cast_cache.get(key)
        if cached is None:
            cached = tuple(t.to(dtype=key[0], device=key[1]) for t in (self.AT, self.G, self.BT))
            self._cast_cache[key] = cached
        return cached  # type: ignore[return-value]

    def importance_factors(self) -> torch.Tensor:
        """a_k = ||AT[:, k]||_2 * ||BT[k, :]||_2 for each Winograd position k (float64, n)."""
        return self.AT.norm(dim=0) * self.BT.norm(dim=1)

    def importance_factor_matrix(self, dims: int = 2, normalize: bool = True) -> torch.Tensor:
        """Importance factor matrix of Yu, Park & Naumov (docs/pruning.md) for a ``dims``-D tile.

        M = a ⊗ a (⊗ a), and M̂ = M / min(M) when ``normalize``.
        """
        return importance_factor_matrix([self] * dims, normalize=normalize)

    def is_trivial(self) -> bool:
        return self.points is None

    def __repr__(self) -> str:
        pts = "trivial" if self.points is None else ", ".join(str(p) for p in self.points) + ", inf"
        return f"WinogradAlgorithm(F({self.m},{self.r}), points=[{pts}])"

    def __reduce__(self):  # pickle by specification; the cache rebuilds the matrices
        return (algorithm, (self.m, self.r, self.points))


@torch.inference_mode(False)        # cached for the process: never an inference tensor
def _as_tensor(matrix: RationalMatrix) -> torch.Tensor:
    return torch.tensor([[float(v) for v in row] for row in matrix], dtype=torch.float64)


def importance_factor_matrix(algorithms: Sequence[WinogradAlgorithm],
                             normalize: bool = True) -> torch.Tensor:
    """Importance factor matrix for a tile with one algorithm per spatial dimension.

    Returns a float64 tensor of shape (n_1, ..., n_d) with entries prod_d a_d[k_d]; divided by
    its minimum when ``normalize`` (the M̂ of Yu, Park & Naumov).
    """
    if not algorithms:
        raise ValueError("need at least one algorithm")
    result = algorithms[0].importance_factors()
    for alg in algorithms[1:]:
        result = result.unsqueeze(-1) * alg.importance_factors()
    if normalize:
        result = result / result.min()
    return result


@lru_cache(maxsize=None)
def _cached(m: int, r: int, points: tuple[Fraction, ...] | None) -> WinogradAlgorithm:
    return WinogradAlgorithm(m, r, points)


def algorithm(m: int, r: int, points: Iterable[PointLike] | None = None) -> WinogradAlgorithm:
    """Cached lookup of F(m, r); ``points=None`` takes the curated default.

    Examples:
        >>> alg = algorithm(2, 3, points=[0, 1, -1])
        >>> alg.BT.tolist()[3]
        [0.0, 1.0, 0.0, -1.0]
    """
    _check_sizes(m, r)
    if points is None:
        if m == 1 or r == 1:
            return _cached(m, r, None)
        from .points import default_points
        points = default_points(m, r)
    return _cached(m, r, parse_points(points, m, r))


def conv_multiplications(algorithms: Sequence[WinogradAlgorithm], in_channels: int,
                         out_channels: int, groups: int, input_shape: Sequence[int],
                         padding: Sequence[tuple[int, int]] | None = None,
                         decomposition=None) -> dict[str, float]:
    """Multiplications of a convolution layer, direct vs Winograd.

    Args:
        algorithms: one F(m_i, r_i) per spatial dimension.
        input_shape: ``(N, C, *S)``.
        padding: ``(before, after)`` per spatial dimension (default none).
        decomposition: the layer's DWM :class:`~sparsewino.winograd.decompose.Decomposition`
            (its kernel, stride and padding are used; the S pieces each cost a Winograd
            convolution), or ``None`` for a plain stride-1 layer.

    Returns:
        ``direct`` (K·C/g·prod(k)·outputs), ``winograd`` (element-wise stage: K·C/g·S·prod(n)
        per tile, transforms excluded as in the papers), their per-output values, the
        ``reduction`` direct / winograd, and the ``outputs`` and ``tiles`` counts.
    """
    dims = len(algorithms)
    if len(input_shape) != dims + 2:
        raise ValueError(f"input_shape must be (N, C, *spatial) with {dims} spatial dims, "
                         f"got {tuple(input_shape)}")
    padding = padding or ((0, 0),) * dims
    batch, spatial = input_shape[0], input_shape[2:]
    if decomposition is None:
        out = [s + lo + hi - a.r + 1 for s, (lo, hi), a in zip(spatial, padding, algorithms)]
        kernel, pieces = [a.r for a in algorithms], 1
    else:
        out = list(decomposition.output_size(spatial))
        kernel, pieces = decomposition.kernel_size, decomposition.pieces
    if min(out) < 1:
        raise ValueError(f"input {tuple(input_shape)} is too small for the kernel")
    pairs = out_channels * (in_channels // groups)
    outputs = batch * math.prod(out)
    tiles = batch * math.prod(math.ceil(o / a.m) for o, a in zip(out, algorithms))
    direct = pairs * math.prod(kernel) * outputs
    winograd = pairs * pieces * math.prod(a.n for a in algorithms) * tiles
    return {
        "direct": direct,
        "winograd": winograd,
        "direct_per_output": direct / (outputs * out_channels),
        "winograd_per_output": winograd / (outputs * out_channels),
        "reduction": direct / winograd,
        "outputs": outputs * out_channels,
        "tiles": tiles,
    }
