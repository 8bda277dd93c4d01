"""Floating-point error of Winograd algorithms and the choice of tile size by error budget.

The error of an algorithm is measured as Barabasz et al. did: one input and one output
channel, input tiles and kernels drawn from uniform(-1, 1), the whole algorithm (filter,
input and output transforms, element-wise product) run in float32, compared with the
float64 direct correlation; the reported number is the mean absolute error per output.
Decomposed convolutions (DWM: kernels larger than 3 taps, strides above 1) are measured the
same way on the whole strided correlation, computed by their pieces
(:func:`decomposed_error`), and :func:`choose_decomposition` extends the tile choice to them.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import torch

from .algorithm import PointLike, WinogradAlgorithm, algorithm, parse_points
from .decompose import AxisSplit, decompose
from .transform import filter_transform, input_transform, output_transform

__all__ = ["measure_error", "direct_correlation_tiles", "choose_tile", "tile_error", "DEFAULT_ERROR_BUDGET",
           "ERROR_LIMIT", "WinogradAccuracyWarning", "decomposed_error", "choose_decomposition",
           "algorithm_error", "piece_candidates", "multiplications_per_output", "DECOMPOSE_MODES",
           "MAX_INPUT_TILE"]

#: ``decompose=`` values of the layers: ``"auto"`` and ``"dwm"`` (DWM pieces of at most 3 taps
#: for kernels above 3 taps and strides above 1; ``"auto"`` prefers accurate tiles, ``"dwm"``
#: the fewest multiplications within the limit) or ``"none"`` (plain F(m, r), stride 1 only).
DECOMPOSE_MODES = ("auto", "dwm", "none")

#: Largest input tile n = m + r - 1 considered (beyond it fp32 errors are enormous).
MAX_INPUT_TILE = 16

#: Default budget of :func:`choose_tile` (mean absolute error per output, 2-D, one channel).
#: F(4,3) and F(6,3) with accurate points fit; F(8,3) does not.
DEFAULT_ERROR_BUDGET = 1e-6

#: Budget of an explicitly requested tile (same measure): every curated algorithm fits it with
#: room to spare (at most 2e-5 in 2-D, 5e-4 in 3-D), while the algorithms past it give mean
#: errors from 1e-2 up to 1e10 (relative errors of whole percent and more).
ERROR_LIMIT = 1e-3

#: Products of samples and tile positions measured per decision (keeps 3-D cheap).
_DECISION_POINTS = 2 ** 18


class WinogradAccuracyWarning(UserWarning):
    """A requested Winograd tile was replaced by a smaller one whose float32 error fits the budget."""


def direct_correlation_tiles(tiles: torch.Tensor, kernels: torch.Tensor,
                             stride: int = 1) -> torch.Tensor:
    """Valid correlation of each tile with its own kernel (any dtype; used as reference).

    Args:
        tiles: ``(B, n_1..n_d)``; kernels: ``(B, r_1..r_d)``; stride: of the correlation.
    Returns:
        ``(B, m_1..m_d)`` with ``m_i = (n_i - r_i) // stride + 1``.
    """
    dims = tiles.dim() - 1
    batch = tiles.shape[0]
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[dims]
    # groups=batch: one input/output channel per tile, each with its own kernel.
    out = conv(tiles.unsqueeze(0), kernels.unsqueeze(1), groups=batch, stride=stride)
    return out.squeeze(0)


def measure_error(m: int | Sequence[int], r: int | Sequence[int],
                  points: Iterable[PointLike] | None = None, dims: int = 2,
                  samples: int = 20000, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> float:
    """Mean absolute error per output of F(m, r) in ``dtype`` vs float64 direct correlation.

    Args:
        m, r: tile and kernel size (ints apply to every dimension).
        points: interpolation points (``None``: the default).
        dims: 1, 2 or 3 spatial dimensions.
        samples: number of (tile, kernel) pairs; fixed ``seed`` makes results repeatable.
    """
    ms = [m] * dims if isinstance(m, int) else list(m)
    rs = [r] * dims if isinstance(r, int) else list(r)
    algs = [algorithm(mi, ri, points) for mi, ri in zip(ms, rs)]
    return _measure(tuple(algs), samples, seed, dtype)


@lru_cache(maxsize=512)
def _measure(algs: tuple[WinogradAlgorithm, ...], samples: int, seed: int,
             dtype: torch.dtype) -> float:
    gen = torch.Generator().manual_seed(seed)
    ns = [a.n for a in algs]
    rs = [a.r for a in algs]
    tiles = torch.rand(samples, *ns, generator=gen, dtype=torch.float64) * 2 - 1
    kernels = torch.rand(samples, *rs, generator=gen, dtype=torch.float64) * 2 - 1
    reference = direct_correlation_tiles(tiles, kernels)
    q = filter_transform(kernels.to(dtype).unsqueeze(1), algs).squeeze(1)
    v = input_transform(tiles.to(dtype), algs)
    y = output_transform(q * v, algs)
    return (y.double() - reference).abs().mean().item()


def tile_error(m: int, r: int, dims: int = 2, points: Iterable[PointLike] | None = None) -> float:
    """The error of F(m, r) (``dims``-D) that :func:`choose_tile` compares with its budget.

    :func:`measure_error` with at most 20000 samples and fewer for large tiles, so that a
    decision costs at most ~2M measured positions (16-point 3-D tiles stay cheap).
    """
    samples = max(64, min(20000, _DECISION_POINTS // (m + r - 1) ** dims))
    return measure_error(m, r, points, dims=dims, samples=samples)


def choose_tile(kernel_size: int, budget: float | None = None, dims: int = 2, max_tile: int = 8,
                *, requested: int | None = None, points: Iterable[PointLike] | None = None) -> int:
    """The output tile m of F(m, r) for one kernel dimension ``r``: the one place tiles are decided.

    Args:
        kernel_size: ``r``.
        budget: largest acceptable :func:`tile_error` (mean absolute error per output in
            float32, uniform(-1, 1) data, one channel). Default: :data:`DEFAULT_ERROR_BUDGET`
            for ``tile="auto"``, :data:`ERROR_LIMIT` for a requested tile.
        dims: spatial dimensions the algorithm is applied in (errors grow with them).
        max_tile: largest m ``"auto"`` considers.
        requested: ``None`` (``tile="auto"``): the largest m <= ``max_tile`` whose default
            algorithm fits. An int m: m itself when F(m, r) (with ``points``) fits, otherwise
            the largest smaller m whose default algorithm fits; callers say so with a
            :class:`WinogradAccuracyWarning`.
        points: interpolation points of the requested algorithm (``None``: the defaults).

    Returns:
        The tile m; 1 (the trivial algorithm, i.e. exact direct computation, which saves
        nothing) when nothing larger fits. A kernel size of 1 always gets 1.

    Raises:
        ValueError: custom ``points`` whose algorithm exceeds the budget (the points fix the
            tile size, so no smaller tile can stand in for them).

    Examples:
        >>> choose_tile(3)                    # tile="auto" for 3x3 kernels
        6
        >>> choose_tile(3, requested=10)      # F(10, 3) is off by ~7 per output: use F(8, 3)
        8
    """
    if kernel_size == 1:
        return 1
    if requested is None:
        budget = DEFAULT_ERROR_BUDGET if budget is None else budget
        candidates = range(max_tile, 1, -1)
    else:
        budget = ERROR_LIMIT if budget is None else budget
        if points is not None:
            points = tuple(points)
            error = tile_error(requested, kernel_size, dims, points)
            if error > budget:
                raise ValueError(
                    f"F({requested},{kernel_size}) with points {[str(p) for p in points]} has "
                    f"float32 error {error:.3g} per output in {dims}-D, over the budget {budget:g}; "
                    "choose other points, or drop points= to use the accurate defaults")
            return requested
        candidates = range(requested, 1, -1)
    return next((m for m in candidates if tile_error(m, kernel_size, dims) <= budget), 1)


# ---------------------------------------------------------------------------- decomposition (DWM)
def piece_candidates(kernel_size: int, stride: int = 1, decompose: str | int = "auto"
                     ) -> tuple[int, ...]:
    """Piece sizes r considered for one dimension of a ``kernel_size``-tap, stride-``stride`` kernel.

    ``"dwm"`` and ``"auto"``: pieces of at most 3 taps (2 or 3; 1 when every phase has one tap),
    the pieces whose accuracy is close to direct convolution's (DWM's point: plain F(2,5) has
    5.8x the direct error, F(2,3) pieces 1.6x); the two modes differ only in how
    :func:`choose_decomposition` picks among them. ``"none"``: the whole kernel (stride 1 only).
    An int: that piece size (the way to ask for larger pieces, e.g. 4 for a 7x7/2 stem).
    """
    phase = -(-kernel_size // stride)
    if isinstance(decompose, int) and not isinstance(decompose, bool):
        if not 1 <= decompose <= phase:
            raise ValueError(f"piece size {decompose} must lie in [1, {phase}] (the largest phase "
                             f"of kernel {kernel_size} with stride {stride})")
        return (decompose,)
    if decompose not in DECOMPOSE_MODES:
        raise ValueError(f"decompose must be one of {DECOMPOSE_MODES} or a piece size, got "
                         f"{decompose!r}")
    if decompose == "none":
        return (kernel_size,) if stride == 1 else ()
    return tuple(sorted({min(phase, 2), min(phase, 3)}))


def multiplications_per_output(kernel_size: int, stride: int, m: int, r: int) -> float:
    """Element-wise multiplications per output and channel pair along one dimension:
    windows x n / m (the N-d count is the product over dimensions; direct: ``kernel_size``)."""
    windows = len(AxisSplit.build(kernel_size, stride, r).windows)
    return windows * (m + r - 1) / m


def decomposed_error(kernel_size: int, stride: int, m: int, r: int, dims: int = 2,
                     points: Iterable[PointLike] | None = None, samples: int | None = None,
                     seed: int = 0) -> float:
    """Mean absolute float32 error per output of a ``kernel_size``-tap, stride-``stride``
    correlation computed by its DWM pieces F(m, r), against float64 direct correlation.

    As :func:`measure_error` (one channel, uniform(-1, 1) inputs and kernels): each sample is an
    input patch giving an m x m (x m) output tile; every piece's filter and input transforms,
    the element-wise products, their sum over pieces (in piece order, in the Winograd domain,
    as the layers and the engine's stacked pieces do) and the output transform run in float32.
    ``r == kernel_size`` with ``stride == 1`` is plain F(m, r) (:func:`tile_error`).

    Args:
        kernel_size, stride: the convolution (the same in every dimension).
        m, r: tile and piece size.
        dims: 1, 2 or 3.
        points: interpolation points of F(m, r) (``None``: the defaults).
        samples: number of output tiles (default: up to 20000, fewer for large patches).

    Examples:
        >>> decomposed_error(5, 1, 4, 3) < tile_error(4, 5)        # DWM beats F(4,5)
        True
    """
    if stride == 1 and r == kernel_size:
        return measure_error(m, r, points, dims=dims) if samples is None else \
            measure_error(m, r, points, dims=dims, samples=samples, seed=seed)
    return _decomposed(kernel_size, stride, m, r, dims,
                       None if points is None else tuple(points), samples, seed)


@lru_cache(maxsize=512)
def _decomposed(kernel: int, stride: int, m: int, r: int, dims: int,
                points: tuple | None, samples: int | None, seed: int) -> float:
    split = decompose((kernel,) * dims, (stride,) * dims, (r,) * dims)
    algs = [algorithm(m, r, points)] * dims
    n, patch = m + r - 1, stride * (m - 1) + kernel
    if samples is None:
        samples = max(64, min(20000, 2 ** 20 // (split.pieces * n ** dims + patch ** dims)))
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(samples, *[patch] * dims, generator=gen, dtype=torch.float64) * 2 - 1
    g = torch.rand(samples, *[kernel] * dims, generator=gen, dtype=torch.float64) * 2 - 1
    reference = direct_correlation_tiles(x, g, stride)
    stacked = split.stack(x.unsqueeze(1)).float()                   # (B, S, *n)
    pieces = split.split(g.unsqueeze(1)).squeeze(1).float()         # (B, S, *r)
    q = filter_transform(pieces, algs)
    v = input_transform(stacked, algs)
    total = q[:, 0] * v[:, 0]
    for p in range(1, split.pieces):                                # sequential, like a GEMM
        total = total + q[:, p] * v[:, p]
    y = output_transform(total, algs)
    return (y.double() - reference).abs().mean().item()


def algorithm_error(kernel_size: int, stride: int, m: int, r: int, dims: int = 2,
                    points: Iterable[PointLike] | None = None) -> float:
    """The error :func:`choose_decomposition` compares with its budget: :func:`tile_error` for
    plain F(m, r), :func:`decomposed_error` for pieces; 0 for m = 1 (direct computation)."""
    if m == 1 and points is None:
        return 0.0
    if stride == 1 and r == kernel_size:
        return tile_error(m, r, dims, points)
    return decomposed_error(kernel_size, stride, m, r, dims, points)


def choose_decomposition(kernel_size: int, stride: int = 1, budget: float | None = None,
                         dims: int = 2, max_tile: int = 8, *, requested: int | None = None,
                         decompose: str | int = "auto", points: Iterable[PointLike] | None = None
                         ) -> tuple[int, int]:
    """Tile m and piece size r for one dimension: :func:`choose_tile` extended to DWM.

    A stride-1 kernel of at most 3 taps (or ``decompose="none"``) is plain F(m, k) and its tile
    is chosen by :func:`choose_tile` exactly as before. Otherwise the candidates are the piece
    sizes of :func:`piece_candidates` (at most 3 taps for ``"auto"`` and ``"dwm"``: plain
    F(m, 5) or 4-tap pieces are only taken when asked for with ``decompose="none"`` or a piece
    size), compared by :func:`algorithm_error` (of the whole
    strided correlation computed by the pieces) and by :func:`multiplications_per_output`:

    * ``requested=None`` (``tile="auto"``): among all (m <= ``max_tile``, r) within ``budget``
      (default :data:`DEFAULT_ERROR_BUDGET`), the fewest multiplications (ties: the smaller
      error); m = 1 (direct computation) when none fits.
    * a requested tile m: the candidates at m within ``budget`` (default :data:`ERROR_LIMIT`);
      ``"auto"`` takes the fewest multiplications among those within
      :data:`DEFAULT_ERROR_BUDGET` (accurate), else the most accurate one; ``"dwm"`` the
      fewest multiplications. When none fits, the largest smaller m that has one (callers warn
      with :class:`WinogradAccuracyWarning`, as for plain tiles).

    Args:
        kernel_size, stride: the dimension of the convolution.
        budget, dims, max_tile, requested: as :func:`choose_tile`.
        decompose: ``"auto"``, ``"dwm"``, ``"none"`` (:data:`DECOMPOSE_MODES`) or a piece size
            (chosen like ``"dwm"`` among that one).
        points: interpolation points of the piece algorithm F(m, r) (they fix n = m + r - 1,
            so r follows from them; a requested tile is needed).

    Returns:
        ``(m, r)``; ``r == kernel_size`` with stride 1 means no decomposition.

    Raises:
        ValueError: an unknown mode, ``decompose="none"`` with a stride above 1, points that
            fit no candidate or exceed the budget.

    Examples:
        >>> choose_decomposition(3, requested=4)             # plain F(4,3), as choose_tile
        (4, 3)
        >>> choose_decomposition(5, requested=4)             # DWM F(4,3) pieces, not F(4,5)
        (4, 3)
        >>> choose_decomposition(5, requested=2)             # F(2,3) pieces, not plain F(2,5)
        (2, 3)
        >>> choose_decomposition(7, stride=2)                # tile="auto": 3-tap pieces, not 4
        (4, 3)
        >>> choose_decomposition(3, stride=2, requested=4)   # four 2x2 polyphase pieces
        (4, 2)
    """
    candidates = piece_candidates(kernel_size, stride, decompose)
    if stride == 1 and (decompose in ("none", kernel_size) or
                        (isinstance(decompose, str) and kernel_size <= 3)):
        return choose_tile(kernel_size, budget, dims, max_tile, requested=requested,
                           points=points), kernel_size
    if not candidates:
        raise ValueError(f"stride {stride} needs the DWM decomposition: use decompose='dwm' or "
                         "'auto' (decompose='none' runs plain stride-1 F(m, r) only)")
    if points is not None:
        return _with_points(kernel_size, stride, budget, dims, requested, candidates, points)
    if requested is None:
        budget = DEFAULT_ERROR_BUDGET if budget is None else budget
        found = []
        for r in candidates:
            for m in range(min(max_tile, MAX_INPUT_TILE - r + 1), 0, -1):
                error = algorithm_error(kernel_size, stride, m, r, dims)
                if error <= budget:
                    found.append((multiplications_per_output(kernel_size, stride, m, r), error, m, r))
                    break
        cost, error, m, r = min(found)
        return (m, r) if m > 1 else (1, max(candidates))
    limit = ERROR_LIMIT if budget is None else budget
    accurate = min(DEFAULT_ERROR_BUDGET, limit)
    for m in range(requested, 0, -1):
        fits = [(multiplications_per_output(kernel_size, stride, m, r), error, r)
                for r in candidates if m + r - 1 <= MAX_INPUT_TILE
                for error in [algorithm_error(kernel_size, stride, m, r, dims)] if error <= limit]
        if not fits:
            continue
        if m == 1:
            return 1, max(candidates)
        good = [f for f in fits if f[1] <= accurate]
        if decompose == "auto" and not good:
            return m, min(fits, key=lambda f: (f[1], f[0]))[2]
        return m, min(good if decompose == "auto" else fits)[2]
    return 1, max(candidates)


def _with_points(kernel_size: int, stride: int, budget: float | None, dims: int,
                 requested: int | None, candidates: tuple[int, ...],
                 points: Iterable[PointLike]) -> tuple[int, int]:
    points = tuple(points)
    if requested is None:
        raise ValueError("points= fix the algorithm F(m, r); give an explicit tile with them")
    finite = [p for p in points if not (isinstance(p, float) and p == float("inf"))
              and not (isinstance(p, str) and p.strip().lower() in ("inf", "infinity", "∞"))]
    r = len(finite) + 2 - requested
    if r not in candidates:
        raise ValueError(f"{len(finite)} finite points make F({requested}, {r}), but kernel "
                         f"{kernel_size} with stride {stride} is decomposed into pieces of "
                         f"{' or '.join(map(str, candidates))} taps; give {requested + candidates[-1] - 2} "
                         "points (or drop points= for the accurate defaults)")
    parse_points(points, requested, r)
    budget = ERROR_LIMIT if budget is None else budget
    error = algorithm_error(kernel_size, stride, requested, r, dims, points)
    if error > budget:
        raise ValueError(f"pieces F({requested},{r}) with points {[str(p) for p in points]} have "
                         f"float32 error {error:.3g} per output, over the budget {budget:g}; "
                         "choose other points, or drop points= to use the accurate defaults")
    return requested, r
