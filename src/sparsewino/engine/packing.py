"""Packed Winograd weights for the kernels: per position all-zero, CSR (sparse) or dense panels.

The element-wise stage of a Winograd layer is, for each of the P = n*n positions, a product
``M[p] (K x T) = U[p] (K x C) @ V[p] (C x T)``. Each position is stored in the format that
runs fastest for its density (:func:`choose_format`):

* ``"zero"``: nothing stored, the product is zero;
* ``"sparse"``: CSR over (K rows, C columns): ``rowptr[p]`` (K + 1 offsets into the shared
  ``col``/``val`` arrays);
* ``"dense"``: panels of ``DENSE_ROWS`` output channels, ``[ceil(K/6)][C][6]``, so that the
  kernel broadcasts six weights per input channel.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .kernels import DENSE_ROWS

__all__ = ["FORMATS", "SPARSE_MAX_DENSITY", "SMALL_LAYER_MAX_DENSITY", "choose_format", "pack_weights", "unpack_weights",
           "validate_packed", "PACKED_NAMES"]

FORMATS = ("zero", "sparse", "dense")
FORMAT_CODES = {name: code for code, name in enumerate(FORMATS)}
#: Densities above which the dense panel kernel beats CSR (measured, docs/performance.md):
#: about 0.5 from 128 x 128 channels up, while for small channel counts (K*C <= 64*64) the
#: sparse kernel's long rows win up to about 0.8.
SPARSE_MAX_DENSITY = 0.5
SMALL_LAYER_MAX_DENSITY = 0.8
SMALL_LAYER_PAIRS = 64 * 64
PACKED_NAMES = ("formats", "rowptr", "col", "val", "dense_index", "dense")
_INT32_MAX = 2**31 - 1


def choose_format(nonzeros: int, rows: int, cols: int,
                  max_sparse_density: float | None = None) -> str:
    """Storage format of one Winograd position with ``nonzeros`` of ``rows x cols`` weights.

    The rule (crossovers measured on an AVX2 CPU, see docs/performance.md): no non-zero
    weight -> ``"zero"`` (the position is skipped); density ``nonzeros / (rows * cols)`` at
    most ``max_sparse_density`` -> ``"sparse"`` (CSR, work proportional to the non-zeros);
    otherwise ``"dense"`` (register-blocked panels, about twice the multiply-adds per
    cycle). The default threshold is :data:`SPARSE_MAX_DENSITY` (0.5), or
    :data:`SMALL_LAYER_MAX_DENSITY` (0.8) when ``rows * cols <= 64 * 64``.

    Args:
        nonzeros: non-zero weights of the position.
        rows, cols: output and input channels (K, C).
        max_sparse_density: the crossover density (``None``: the default rule).

    Returns:
        ``"zero"``, ``"sparse"`` or ``"dense"``.

    Examples:
        >>> choose_format(0, 128, 128), choose_format(4000, 128, 128), choose_format(9000, 128, 128)
        ('zero', 'sparse', 'dense')
        >>> choose_format(3000, 64, 64)            # density 0.73: sparse for small layers
        'sparse'
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows} x {cols}")
    if not 0 <= nonzeros <= rows * cols:
        raise ValueError(f"nonzeros must be in [0, {rows * cols}], got {nonzeros}")
    if nonzeros == 0:
        return "zero"
    if max_sparse_density is None:
        max_sparse_density = (SMALL_LAYER_MAX_DENSITY if rows * cols <= SMALL_LAYER_PAIRS
                              else SPARSE_MAX_DENSITY)
    return "sparse" if nonzeros <= max_sparse_density * rows * cols else "dense"


def pack_weights(weight_pkc: torch.Tensor,
                 formats: str | Sequence[str] = "auto") -> dict[str, torch.Tensor]:
    """Pack positions-first Winograd weights ``(P, K, C)`` for the kernels.

    Args:
        weight_pkc: Winograd-domain weights, positions first (float; copied to float32 CPU).
        formats: ``"auto"`` (:func:`choose_format` per position), ``"sparse"`` or ``"dense"``
            for every position (all-zero positions always become ``"zero"``), or one name per
            position.

    Returns:
        Tensors ``formats`` (int8, P), ``rowptr`` (int32, P x K+1), ``col`` (int32),
        ``val`` (float32), ``dense_index`` (int32, P; -1 unless dense) and ``dense``
        (float32, D x ceil(K/6) x C x 6).
    """
    if weight_pkc.dim() != 3:
        raise ValueError(f"weights must be (P, K, C), got shape {tuple(weight_pkc.shape)}")
    w = weight_pkc.detach().to(device="cpu", dtype=torch.float32).contiguous()
    positions, rows, cols = w.shape
    nonzero = w != 0
    counts = nonzero.sum(dim=(1, 2)).tolist()
    if isinstance(formats, str):
        if formats not in ("auto", "sparse", "dense"):
            raise ValueError(f"formats must be 'auto', 'sparse', 'dense' or one name per "
                             f"position, got {formats!r}")
        chosen = [choose_format(c, rows, cols) if formats == "auto" else formats
                  for c in counts]
    else:
        chosen = list(formats)
        if len(chosen) != positions or any(f not in FORMATS for f in chosen):
            raise ValueError(f"need {positions} formats from {FORMATS}, got {formats!r}")
    chosen = ["zero" if c == 0 else f for f, c in zip(chosen, counts)]
    if sum(c for f, c in zip(chosen, counts) if f == "sparse") > _INT32_MAX:
        raise ValueError("too many non-zero weights for 32-bit CSR indices")

    rowptr = torch.zeros(positions, rows + 1, dtype=torch.int64)
    cols_list, vals_list, dense_list = [], [], []
    dense_index = torch.full((positions,), -1, dtype=torch.int32)
    offset = 0
    panels = -(-rows // DENSE_ROWS)
    for p, fmt in enumerate(chosen):
        if fmt == "sparse":
            mask = nonzero[p]
            rowptr[p, 0] = offset
            rowptr[p, 1:] = offset + mask.sum(dim=1).cumsum(0)
            cols_list.append(mask.nonzero()[:, 1].to(torch.int32))
            vals_list.append(w[p][mask])
            offset += int(counts[p])
        else:
            rowptr[p, :] = offset            # empty rows: harmless for non-sparse positions
            if fmt == "dense":
                padded = torch.zeros(panels * DENSE_ROWS, cols)
                padded[:rows] = w[p]
                dense_index[p] = len(dense_list)
                dense_list.append(padded.reshape(panels, DENSE_ROWS, cols).transpose(1, 2))
    return {
        "formats": torch.tensor([FORMAT_CODES[f] for f in chosen], dtype=torch.int8),
        "rowptr": rowptr.to(torch.int32),
        "col": torch.cat(cols_list) if cols_list else torch.zeros(0, dtype=torch.int32),
        "val": torch.cat(vals_list) if vals_list else torch.zeros(0),
        "dense_index": dense_index,
        "dense": (torch.stack(dense_list).contiguous() if dense_list
                  else torch.zeros(0, panels, cols, DENSE_ROWS)),
    }


def unpack_weights(packed: dict[str, torch.Tensor], rows: int, cols: int) -> torch.Tensor:
    """The dense ``(P, K, C)`` float32 weights a packing represents (inverse of pack_weights)."""
    formats = packed["formats"].tolist()
    out = torch.zeros(len(formats), rows, cols)
    rowptr, col, val = packed["rowptr"].long(), packed["col"].long(), packed["val"]
    for p, code in enumerate(formats):
        if FORMATS[code] == "sparse":
            start, stop = int(rowptr[p, 0]), int(rowptr[p, -1])
            counts = rowptr[p, 1:] - rowptr[p, :-1]
            row_ids = torch.repeat_interleave(torch.arange(rows), counts)
            out[p, row_ids, col[start:stop]] = val[start:stop]
        elif FORMATS[code] == "dense":
            panel = packed["dense"][int(packed["dense_index"][p])]       # (panels, C, 6)
            out[p] = panel.transpose(1, 2).reshape(-1, cols)[:rows]
    return out


def validate_packed(packed: dict[str, torch.Tensor], positions: int, rows: int,
                    cols: int) -> None:
    """Check that a packing is consistent, so the kernel can never read out of bounds.

    Raises:
        ValueError: a tensor has the wrong dtype/shape/device or an index is out of range.
    """
    expect = {"formats": torch.int8, "rowptr": torch.int32, "col": torch.int32,
              "val": torch.float32, "dense_index": torch.int32, "dense": torch.float32}
    for name, dtype in expect.items():
        t = packed.get(name)
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"packed weights lack tensor {name!r}")
        if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous():
            layout = "contiguous" if t.is_contiguous() else "non-contiguous"
            raise ValueError(f"packed tensor {name!r} must be a contiguous {dtype} CPU tensor, "
                             f"got a {layout} {t.dtype} tensor on {t.device}; recompile the "
                             "model instead of converting a compiled layer (engine.compile)")
    formats, rowptr = packed["formats"], packed["rowptr"]
    col, val, dense_index, dense = (packed["col"], packed["val"], packed["dense_index"],
                                    packed["dense"])
    panels = -(-rows // DENSE_ROWS)
    if formats.shape != (positions,) or rowptr.shape != (positions, rows + 1):
        raise ValueError(f"formats/rowptr shapes {tuple(formats.shape)}/{tuple(rowptr.shape)} "
                         f"do not match {positions} positions and {rows} output channels")
    if col.shape != val.shape or col.dim() != 1:
        raise ValueError("col and val must be 1-D tensors of equal length")
    if dense_index.shape != (positions,) or dense.dim() != 4 or \
            tuple(dense.shape[1:]) != (panels, cols, DENSE_ROWS):
        raise ValueError(f"dense panels must have shape (D, {panels}, {cols}, {DENSE_ROWS}), "
                         f"got {tuple(dense.shape)}")
    if ((formats < 0) | (formats >= len(FORMATS))).any():
        raise ValueError("formats holds an unknown format code")
    sparse = formats == FORMAT_CODES["sparse"]
    if sparse.any():
        rp = rowptr[sparse].long()
        if (rp[:, 1:] < rp[:, :-1]).any() or (rp[:, 0] < 0).any() or \
                (rp[:, -1] > col.numel()).any():
            raise ValueError("CSR row pointers are not monotone or exceed the column array")
    if col.numel() and ((col < 0) | (col >= cols)).any():
        raise ValueError(f"CSR column index out of range [0, {cols})")
    is_dense = formats == FORMAT_CODES["dense"]
    index = dense_index[is_dense]
    if ((index < 0) | (index >= dense.shape[0])).any():
        raise ValueError("dense_index points outside the dense panels")
