"""Floating-point error of Winograd algorithms and the choice of tile size by error budget.

The error of an algorithm is measured as Barabasz et al. did: one input and one output
channel, input tiles and kernels drawn from uniform(-1, 1), the whole algorithm (filter,
input and output transforms, element-wise product) run in float32, compared with the
float64 direct correlation; the reported number is the mean absolute error per output.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import torch

from .algorithm import PointLike, WinogradAlgorithm, algorithm
from .transform import filter_transform, input_transform, output_transform

__all__ = ["measure_error", "direct_correlation_tiles", "choose_tile", "tile_error", "DEFAULT_ERROR_BUDGET",
           "ERROR_LIMIT", "WinogradAccuracyWarning"]

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


def direct_correlation_tiles(tiles: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Valid correlation of each tile with its own kernel (any dtype; used as reference).

    Args:
        tiles: ``(B, n_1..n_d)``; kernels: ``(B, r_1..r_d)``.
    Returns:
        ``(B, m_1..m_d)`` with ``m_i = n_i - r_i + 1``.
    """
    dims = tiles.dim() - 1
    batch = tiles.shape[0]
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[dims]
    # groups=batch: one input/output channel per tile, each with its own kernel.
    out = conv(tiles.unsqueeze(0), kernels.unsqueeze(1), groups=batch)
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
