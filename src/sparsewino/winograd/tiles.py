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

__all__ = ["output_size", "tile_counts", "pad_for_tiles", "extract_tiles", "gather_tiles",
           "assemble_tiles"]


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


def gather_tiles(padded: torch.Tensor, tile: Sequence[int], n: Sequence[int]) -> torch.Tensor:
    """Overlapping tiles, positions first, as one contiguous tensor: ``(N, C, *S)`` ->
    ``(*n, C, N, *T)`` (differentiable).

    The same values as ``extract_tiles(padded, tile, n).permute(...)``; its backward adds each
    tile's gradient back in ``ceil(n / m)`` strided slices per dimension instead of autograd's
    generic ``unfold`` backward, which dominated Winograd-domain training time.
    """
    return _GatherTiles.apply(padded, tuple(tile), tuple(n))


class _GatherTiles(torch.autograd.Function):
    @staticmethod
    def forward(ctx, padded: torch.Tensor, tile: tuple[int, ...], n: tuple[int, ...]
                ) -> torch.Tensor:
        dims = len(tile)
        ctx.tile, ctx.n = tile, n
        tiles = extract_tiles(padded, tile, n)                       # (N, C, *T, *n) view
        perm = [*range(2 + dims, 2 + 2 * dims), 1, 0, *range(2, 2 + dims)]
        return tiles.permute(perm).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        tile, n, dims = ctx.tile, ctx.n, len(ctx.tile)
        g = grad                                         # (*n, C, N, *T), folded in this layout
        for i in reversed(range(dims)):                  # n_i is axis i, T_i axis 2i + 3
            g = _fold_dim(g, 2 * i + 3, i, tile[i], n[i])
        return g.transpose(0, 1).contiguous(), None, None   # (C, N, *S) -> (N, C, *S)


def _fold_dim(g: torch.Tensor, a: int, b: int, m: int, n: int) -> torch.Tensor:
    """Sum overlapping tiles along one dimension.

    Axis ``a`` of ``g`` counts tiles (``T``), axis ``b < a`` indexes within a tile (``n``
    entries, consecutive tiles ``m`` apart). Returns ``g`` without axis ``b`` and with axis
    ``a`` (now ``a - 1``) of length ``T*m + n - m``.
    """
    g = g.movedim(b, -1).movedim(a - 1, -2)                          # (..., T, n)
    t = g.shape[-2]
    chunks = -(-n // m)
    out = g.new_zeros(*g.shape[:-2], (t + chunks - 1) * m)
    for j in range(chunks):
        width = min(m, n - j * m)
        target = out.narrow(-1, j * m, t * m).unflatten(-1, (t, m)).narrow(-1, 0, width)
        target.add_(g.narrow(-1, j * m, width))
    return out.narrow(-1, 0, t * m + n - m).movedim(-1, a - 1)


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
