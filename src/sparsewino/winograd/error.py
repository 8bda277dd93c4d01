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

__all__ = ["measure_error", "direct_correlation_tiles", "choose_tile", "DEFAULT_ERROR_BUDGET"]

#: Default budget of :func:`choose_tile` (mean absolute error per output, 2-D, one channel).
#: F(4,3) and F(6,3) with accurate points fit; F(8,3) does not.
DEFAULT_ERROR_BUDGET = 1e-6


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


def choose_tile(kernel_size: int, budget: float = DEFAULT_ERROR_BUDGET, dims: int = 2,
                max_tile: int = 8) -> int:
    """Largest output tile m (<= ``max_tile``) whose default F(m, r) error fits ``budget``.

    This is the one place where ``tile="auto"`` is decided. A kernel size of 1 gets the
    trivial algorithm, for which the tile size does not change the arithmetic: 1.
    """
    if kernel_size == 1:
        return 1
    best = 1
    for m in range(2, max_tile + 1):
        if measure_error(m, kernel_size, dims=dims) <= budget:
            best = m
    return best
