"""N-d tiling of activations: overlapping input tiles and assembly of output tiles.

An output of size ``o`` along a dimension is covered by ``ceil(o / m)`` tiles of ``m``
outputs; tile ``t`` reads inputs ``[t*m, t*m + n)``. The input is zero-padded (user padding
plus whatever the last tile needs) and the assembled output is cropped back to ``o``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["output_size", "tile_counts", "pad_for_tiles", "extract_tiles", "assemble_tiles"]


def output_size(input_size: Sequence[int], kernel_size: Sequence[int],
                padding: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Size of a stride-1 correlation output per dimension (may be <= 0 for invalid input)."""
    return tuple(s + lo + hi - k + 1 for s, k, (lo, hi) in zip(input_size, kernel_size, padding))


def tile_counts(out_size: Sequence[int], tile: Sequence[int]) -> tuple[int, ...]:
    """Number of tiles per dimension: ``ceil(out / m)``."""
    return tuple(math.ceil(o / m) for o, m in zip(out_size, tile))


def pad_for_tiles(x: torch.Tensor, kernel_size: Sequence[int], tile: Sequence[int],
                  padding: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Zero-pad the spatial dims of ``x`` (``(N, C, *spatial)``) for whole tiles.

    Dimension ``i`` becomes ``tiles_i * m_i + r_i - 1`` long: ``padding[i][0]`` zeros before,
    the rest after.
    """
    dims = len(tile)
    spatial = x.shape[-dims:]
    out = output_size(spatial, kernel_size, padding)
    counts = tile_counts(out, tile)
    pads: list[int] = []
    for i in reversed(range(dims)):           # F.pad lists the last dimension first
        lo = padding[i][0]
        total = counts[i] * tile[i] + kernel_size[i] - 1
        pads += [lo, total - spatial[i] - lo]
    if not any(pads):
        return x
    return F.pad(x, pads)


def extract_tiles(padded: torch.Tensor, tile: Sequence[int], n: Sequence[int]) -> torch.Tensor:
    """Overlapping tiles as a strided view: ``(N, C, *S)`` -> ``(N, C, *T, *n)`` (no copy)."""
    dims = len(tile)
    tiles = padded
    lead = padded.dim() - dims
    for i in range(dims):
        tiles = tiles.unfold(lead + i, n[i], tile[i])
    return tiles


def assemble_tiles(tiles: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
    """Output tiles ``(N, K, *T, *m)`` -> ``(N, K, *out_size)`` (interleave, then crop)."""
    dims = len(out_size)
    lead = tiles.dim() - 2 * dims
    counts = tiles.shape[lead:lead + dims]
    tile = tiles.shape[lead + dims:]
    perm = list(range(lead))
    for i in range(dims):
        perm += [lead + i, lead + dims + i]
    full = tiles.permute(perm).reshape(*tiles.shape[:lead],
                                       *(t * m for t, m in zip(counts, tile)))
    if tuple(full.shape[lead:]) != tuple(out_size):
        full = full[(Ellipsis, *(slice(0, o) for o in out_size))]
    return full
