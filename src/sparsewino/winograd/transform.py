"""Filter, input and output transforms applied along each spatial dimension (1-D, 2-D, 3-D).

Two layouts are used:

* *positions first* — ``(n_1, ..., n_d, X)``: the layout of the fused layer path, where every
  transform is a matrix product on a contiguous view (:func:`apply_leading`);
* *natural* — ``(..., n_1, ..., n_d)``: the layout of weights such as ``Q = G g Gᵀ``
  (:func:`filter_transform`, :func:`input_transform`, :func:`output_transform`).

Each function takes one :class:`WinogradAlgorithm` per spatial dimension, so non-square
kernels (1x3, 3x5) and per-dimension tile sizes are supported.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch

from .algorithm import WinogradAlgorithm

__all__ = [
    "apply_leading",
    "apply_algorithms",
    "prefers_kron",
    "apply_trailing",
    "kron_matrix",
    "filter_transform",
    "input_transform",
    "output_transform",
    "transform_matrices",
    "filter_matrix",
    "KRON_MAX_SIZE",
]

# Above this many combined positions the separable path (one pass per dimension) is cheaper
# than a single matrix product with the Kronecker-product matrix.
KRON_MAX_SIZE = 100


def transform_matrices(algorithms: Sequence[WinogradAlgorithm], which: str,
                       dtype: torch.dtype, device: torch.device | str | None = None
                       ) -> list[torch.Tensor]:
    """The per-dimension ``AT``, ``G`` or ``BT`` matrices (``which``) in ``dtype`` on ``device``."""
    index = {"AT": 0, "G": 1, "BT": 2}[which]
    return [alg.matrices(dtype, device)[index] for alg in algorithms]


def kron_matrix(algorithms: Sequence[WinogradAlgorithm], which: str,
                dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Kronecker product of the per-dimension ``which`` matrices (computed in float64, cached).

    For ``which="BT"`` and two dimensions this is ``kron(BT_1, BT_2)`` with
    ``vec(BT_1 d BT_2ᵀ) = kron(BT_1, BT_2) vec(d)`` in row-major ``vec``.
    """
    return _kron(tuple(algorithms), which, dtype, torch.device(device or "cpu"))


@lru_cache(maxsize=256)
@torch.inference_mode(False)        # cached for the process: never an inference tensor
def _kron(algorithms: tuple[WinogradAlgorithm, ...], which: str, dtype: torch.dtype,
          device: torch.device) -> torch.Tensor:
    mats = transform_matrices(algorithms, which, torch.float64)
    result = mats[0]
    for mat in mats[1:]:
        result = torch.kron(result, mat)
    return result.to(dtype=dtype, device=device)


def filter_matrix(algorithms: Sequence[WinogradAlgorithm], decomposition=None,
                  dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The linear map from a kernel's spatial taps to its Winograd-domain weights.

    ``vec(Q) = filter_matrix @ vec(g)`` (row-major) for one kernel: ``kron(G, G)`` for a plain
    layer, ``(P, R)``; for a DWM :class:`~sparsewino.winograd.decompose.Decomposition`, each
    piece's ``kron(G, G)`` applied to the taps that piece holds, ``(S * P, R)`` with R the
    full kernel's taps (rows of piece p first). Entry ``[k, j] != 0``: position k depends on
    tap j.
    """
    g = kron_matrix(algorithms, "G", dtype, device)
    if decomposition is None:
        return g
    return _decomposed_filter(tuple(algorithms), decomposition, dtype, torch.device(device or "cpu"))


@lru_cache(maxsize=128)
@torch.inference_mode(False)        # cached for the process: never an inference tensor
def _decomposed_filter(algorithms: tuple[WinogradAlgorithm, ...], decomposition, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    g = kron_matrix(algorithms, "G", torch.float64)                         # (P, Rp)
    selection = decomposition.selection(torch.float64)                        # (S * Rp, R)
    pieces, taps = decomposition.pieces, selection.shape[1]
    matrix = g @ selection.reshape(pieces, g.shape[1], taps)                  # (S, P, R)
    return matrix.reshape(pieces * g.shape[0], taps).to(dtype=dtype, device=device)


def prefers_kron(mats: Sequence[torch.Tensor]) -> bool:
    """One GEMM with the Kronecker matrix (small tiles) or one GEMM per dimension (large)."""
    return len(mats) == 1 or math.prod(max(m.shape) for m in mats) <= KRON_MAX_SIZE


def apply_algorithms(x: torch.Tensor, algorithms: Sequence[WinogradAlgorithm],
                     which: str) -> torch.Tensor:
    """Apply the algorithms' ``which`` matrices along the leading dims of ``x`` (positions
    first), using the cached Kronecker matrix where :func:`prefers_kron` says so."""
    mats = transform_matrices(algorithms, which, x.dtype, x.device)
    if prefers_kron(mats):
        return apply_leading(x, mats, use_kron=True,
                             kron=kron_matrix(algorithms, which, x.dtype, x.device))
    return apply_leading(x, mats, use_kron=False)


def apply_leading(x: torch.Tensor, mats: Sequence[torch.Tensor],
                  use_kron: bool | None = None,
                  kron: torch.Tensor | None = None) -> torch.Tensor:
    """Apply ``mats[i]`` (out_i x in_i) along leading dimension ``i`` of ``x``.

    Args:
        x: tensor of shape ``(in_1, ..., in_d, *rest)``.
        mats: one matrix per leading dimension.
        use_kron: one product with the Kronecker matrix (``True``) or one product per
            dimension (``False``); ``None`` picks by size (:data:`KRON_MAX_SIZE`).
        kron: the precomputed Kronecker matrix, if the caller has it cached.

    Returns:
        Tensor of shape ``(out_1, ..., out_d, *rest)``.
    """
    d = len(mats)
    ins = [m.shape[1] for m in mats]
    outs = [m.shape[0] for m in mats]
    if list(x.shape[:d]) != ins:
        raise ValueError(f"leading dims {tuple(x.shape[:d])} do not match transforms {tuple(ins)}")
    rest = x.shape[d:]
    if use_kron is None:
        use_kron = prefers_kron(mats)
    if use_kron:
        if kron is None:
            kron = mats[0]
            for mat in mats[1:]:
                kron = torch.kron(kron, mat)
        y = kron @ x.reshape(math.prod(ins), -1)
        return y.reshape(*outs, *rest)
    y = x
    for i, mat in enumerate(mats):
        shape = y.shape
        before = math.prod(shape[:i])
        y = torch.matmul(mat, y.reshape(before, shape[i], -1))
        y = y.reshape(*shape[:i], mat.shape[0], *shape[i + 1:])
    return y


def apply_trailing(x: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply ``mats[i]`` along trailing dimension ``i`` of ``x`` (shape ``(*lead, in_1..in_d)``)."""
    d = len(mats)
    y = x
    for i, mat in enumerate(mats):
        dim = x.dim() - d + i
        # (..., in) @ (in, out) folds every batch dim into one GEMM (no broadcast copies).
        y = torch.movedim(torch.movedim(y, dim, -1) @ mat.T, -1, dim)
    return y


def filter_transform(weight: torch.Tensor, algorithms: Sequence[WinogradAlgorithm]) -> torch.Tensor:
    """Q = G g Gᵀ per kernel: ``(K, C, r_1..r_d)`` -> ``(K, C, n_1..n_d)`` in ``weight.dtype``."""
    mats = transform_matrices(algorithms, "G", weight.dtype, weight.device)
    return apply_trailing(weight, mats)


def input_transform(tiles: torch.Tensor, algorithms: Sequence[WinogradAlgorithm]) -> torch.Tensor:
    """V = Bᵀ d B per tile: ``(..., n_1..n_d)`` -> ``(..., n_1..n_d)``."""
    mats = transform_matrices(algorithms, "BT", tiles.dtype, tiles.device)
    return apply_trailing(tiles, mats)


def output_transform(products: torch.Tensor, algorithms: Sequence[WinogradAlgorithm]) -> torch.Tensor:
    """Y = Aᵀ M A per tile: ``(..., n_1..n_d)`` -> ``(..., m_1..m_d)``."""
    mats = transform_matrices(algorithms, "AT", products.dtype, products.device)
    return apply_trailing(products, mats)
