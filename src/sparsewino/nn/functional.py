"""Functional Winograd convolution (stride 1, dilation 1), the core of the layers.

Data flow, positions first so that every stage is one batched matrix product:

    input (N, C, *S) --pad+unfold--> tiles (P, C, N·T) --Bᵀ·Bᵀ--> V (P, C, N·T)
    V, U (P, K, C) --per-position GEMM--> M (P, K, N·T) --Aᵀ·Aᵀ--> tiles (m.., K, N, T..)
    --interleave+crop--> output (N, K, *O)

P = prod(n_i) Winograd positions, T = prod(tiles_i). Peak extra memory is a small constant
times the input's Winograd-domain size P·C·N·T (the tiled input, V) plus the output's
(M, Y); autograd keeps U and V for the backward pass.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..winograd.algorithm import WinogradAlgorithm
from ..winograd.decompose import Decomposition
from ..winograd.tiles import assemble_tiles, gather_tiles, output_size, pad_for_tiles
from ..winograd.transform import apply_algorithms, filter_transform

__all__ = ["winograd_conv", "winograd_weight_from_spatial", "positions_first", "winograd_weight"]


def winograd_weight(spatial: torch.Tensor, algorithms: Sequence[WinogradAlgorithm],
                    decomposition: Decomposition | None = None) -> torch.Tensor:
    """Natural-layout Q = G g Gᵀ of spatial weights ``(K, C, *k)``: ``(K, C, *n)``, or one Q per
    DWM piece, ``(K, C, S, *n)`` (differentiable)."""
    if decomposition is None:
        return filter_transform(spatial, algorithms)
    return filter_transform(decomposition.split(spatial), algorithms)


def winograd_weight_from_spatial(weight: torch.Tensor,
                                 algorithms: Sequence[WinogradAlgorithm]) -> torch.Tensor:
    """Positions-first Winograd weights U = (G ⊗ G) g: ``(K, C, *r)`` -> ``(P, K, C)``."""
    dims = len(algorithms)
    k, c = weight.shape[:2]
    g = weight.permute(*range(2, 2 + dims), 0, 1)           # (*r, K, C)
    u = apply_algorithms(g, algorithms, "G")                            # (*n, K, C)
    return u.reshape(-1, k, c)


def positions_first(winograd_weight: torch.Tensor) -> torch.Tensor:
    """Natural-layout Winograd weights ``(K, C, *n)`` -> positions first ``(P, K, C)``."""
    dims = winograd_weight.dim() - 2
    k, c = winograd_weight.shape[:2]
    return winograd_weight.permute(*range(2, 2 + dims), 0, 1).reshape(-1, k, c)


def winograd_conv(x: torch.Tensor, weight_pkc: torch.Tensor, bias: torch.Tensor | None,
                  algorithms: Sequence[WinogradAlgorithm],
                  padding: Sequence[tuple[int, int]], groups: int = 1,
                  relu_after_input_transform: bool = False,
                  product: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Stride-1 N-d correlation computed with Winograd algorithms (one per spatial dim).

    Args:
        x: input ``(N, C, *S)`` (float32 or float64; validated by the layers).
        weight_pkc: Winograd-domain weights, positions first ``(P, K, C // groups)``.
        bias: ``(K,)`` or ``None``.
        algorithms: one F(m_i, r_i) per spatial dimension.
        padding: ``(before, after)`` zeros per spatial dimension.
        groups: channel groups as in ``torch.nn.Conv2d``.
        relu_after_input_transform: apply ReLU to V = Bᵀ d B (Winograd-ReLU, Liu et al.).
        product: replaces the per-position product (``weight_pkc`` is then ignored): called
            with V ``(P, C, N·T)``, returns M ``(P, K, N·T)`` (e.g. the adder product of
            :class:`~sparsewino.nn.WinogradAdderConv2d`); ``groups`` must be 1.

    Returns:
        ``(N, K, *O)`` with ``O_i = S_i + before_i + after_i - r_i + 1``.
    """
    dims = len(algorithms)
    tile = [a.m for a in algorithms]
    kernel = [a.r for a in algorithms]
    ns = [a.n for a in algorithms]
    batch, channels = x.shape[:2]
    positions, out_channels, group_channels = weight_pkc.shape
    if product is not None and groups != 1:
        raise ValueError("winograd_conv: a custom product needs groups=1")
    out = output_size(x.shape[2:], kernel, padding)

    padded = pad_for_tiles(x, kernel, tile, padding)
    tiles = gather_tiles(padded, tile, ns)                        # (*n, C, N, *T), one copy
    counts = tiles.shape[2 + dims:]
    num_tiles = batch * math.prod(counts)
    d = tiles.reshape(*ns, channels * num_tiles)                  # (*n, C·N·T)
    v = apply_algorithms(d, algorithms, "BT")
    if relu_after_input_transform:
        v = torch.relu(v)
    v = v.reshape(positions, groups, group_channels, num_tiles)
    u = weight_pkc.reshape(positions, groups, out_channels // groups, group_channels)
    if product is not None:
        prod = product(v.reshape(positions, channels, num_tiles))
    elif group_channels == 1:
        prod = u * v                                              # depthwise: outer products
    else:
        prod = torch.matmul(u, v)                                 # (P, g, K/g, N·T)
    y = apply_algorithms(prod.reshape(*ns, out_channels * num_tiles), algorithms, "AT")
    y = y.reshape(*tile, out_channels, batch, *counts)
    y = y.permute(dims + 1, dims, *range(dims + 2, 2 * dims + 2), *range(dims))  # (N,K,*T,*m)
    result = assemble_tiles(y, out)
    if bias is not None:
        return result + bias.reshape(1, -1, *([1] * dims))
    return result.contiguous()
