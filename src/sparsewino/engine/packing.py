"""Packed weight matrices for the kernels: per matrix all-zero, sparse (SELL-4), dense panels or blocked.

A Winograd layer's element-wise stage is, for each of its P = n*n positions, a product
``M[p] (K x T) = U[p] (K x C) @ V[p] (C x T)``; a fully connected layer or a 1x1 convolution is
the same with P = 1. Each matrix is stored in the format that runs fastest for its density
(:func:`choose_format`):

* ``"zero"``: nothing stored, the product is zero;
* ``"sparse"``: SELL-4 — the rows of every chunk of 24 output channels sorted by their number
  of non-zeros and cut into slices of 4 rows; a slice's entries are interleaved (entry ``e``
  belongs to row ``e % 4`` of the slice) and each row is padded to the slice's longest with
  (column 0, value 0). Columns are 16-bit. The kernel then runs 4 independent multiply-add
  chains per slice with no per-row loop, remainder or reduction: about one non-zero per cycle;
* ``"dense"``: panels of ``DENSE_ROWS`` output channels, ``[ceil(K/6)][C][6]``;
* ``"blocked"``: blocks of ``BLOCK_ROWS`` (8) consecutive output channels at one input channel,
  stored when any of their weights is non-zero: per block row of 8 channels the columns of its
  blocks (16-bit) and 8 values each. The kernel vectorises across the 8 output channels instead
  of across tiles, so its work is the blocks' whatever the number of tiles: at batch 1 on small
  maps (4 tiles of a 7x7 or 8x8 map) the other formats fill a quarter of each vector. It pays
  where the zeros come in whole blocks (``block=8`` in the Winograd-domain pruning methods):
  :func:`choose_format` takes it when the stored blocks are at least
  :data:`BLOCKED_MIN_FILL` full.

:class:`PackedMatrices` holds the packing as private tensors that are validated once (so the
kernel can never read out of bounds) and never handed out: a compiled layer's weights cannot
be edited in place, only replaced by packing again (recompile, or ``load_state_dict``).

``precision="fp16"`` stores the values as IEEE half precision (columns and layout unchanged):
half the weight bytes, each widened exactly to fp32 inside the kernel as it is used, fp32
arithmetic. Useful where streaming the weights is the limit (batch 1, large layers); the
rounding (relative 2^-11 per weight) is measured in docs/performance.md.

``precision="bf16"`` stores bf16 weights (rounded to nearest even) for
``engine.compile(..., precision="bf16")``: a sparse matrix keeps one 2-byte weight per entry
(columns as for fp32), multiplied exactly with the fp32 input tiles; a dense matrix is stored
in pairs of input channels, ``(2j, 2j+1)`` in one 32-bit entry (channel ``2j`` in the low
half), ``ceil(C / 2)`` columns of panels, multiplied as bf16 products: the kernel rounds those
positions' input tiles to bf16 the same way (:func:`round_bf16`) and uses AVX512-BF16's
``vdpbf16ps`` where the CPU has it, else an exact software equivalent.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import PrecisionRangeError
from ..native.abi import PRECISION_BF16, PRECISION_FP16, PRECISION_FP32
from .kernels import BLOCK_ROWS, CHUNK_ROWS, DENSE_ROWS, MAX_COLUMNS, SLICE_ROWS, SwMatrices

__all__ = ["FORMATS", "PRECISIONS", "SPARSE_MAX_DENSITY", "SMALL_LAYER_MAX_DENSITY",
           "BLOCKED_MIN_FILL", "choose_format", "block_slots", "describe_formats",
           "main_format", "PackedMatrices", "PrecisionRangeError", "round_bf16"]

FORMATS = ("zero", "sparse", "dense", "blocked")
FORMAT_CODES = {name: code for code, name in enumerate(FORMATS)}
#: Densities above which the dense panel kernel beats the sparse one (measured,
#: docs/performance.md): about 0.5 from 128 x 128 channels up, while for small channel counts
#: (K*C <= 64*64) the sparse kernel wins up to about 0.8.
SPARSE_MAX_DENSITY = 0.5
SMALL_LAYER_MAX_DENSITY = 0.8
SMALL_LAYER_PAIRS = 64 * 64
#: Smallest fill (non-zero weights / weights stored in blocks) at which :func:`choose_format`
#: takes the blocked format: masks pruned in blocks of 8 output channels (fill 1.0, or a little
#: less where a kept block has zeros of its own); unstructured sparsity at 50-90 % fills its
#: blocks 14-54 % and stays sparse.
BLOCKED_MIN_FILL = 0.75
_NAMES = ("formats", "slice_ptr", "slice_rows", "col", "val", "dense_index", "dense",
          "block_ptr", "block_col", "block_val")
_VALUES = ("val", "dense", "block_val")
_DTYPES = {"formats": torch.int8, "slice_ptr": torch.int32, "slice_rows": torch.int32,
           "col": torch.int16, "val": torch.float32, "dense_index": torch.int32,
           "dense": torch.float32, "block_ptr": torch.int32, "block_col": torch.int16,
           "block_val": torch.float32}
#: Storage type of the values per precision (bf16: the bit patterns, dense panels in pairs).
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.int16}
_DENSE_TYPES = {**PRECISIONS, "bf16": torch.int32}
_CODES = {"fp32": PRECISION_FP32, "fp16": PRECISION_FP16, "bf16": PRECISION_BF16}
_HALF_MAX = 65504.0

_INT32_MAX = 2**31 - 1


def choose_format(nonzeros: int, rows: int, cols: int,
                  max_sparse_density: float | None = None, block_slots: int | None = None) -> str:
    """Storage format of one matrix with ``nonzeros`` of ``rows x cols`` weights.

    The rule (crossovers measured on an AVX2 CPU, see docs/performance.md): no non-zero
    weight -> ``"zero"`` (the matrix is skipped); density ``nonzeros / (rows * cols)`` at
    most ``max_sparse_density`` -> ``"sparse"`` (work proportional to the non-zeros), or
    ``"blocked"`` when the non-zeros fill the ``block_slots`` weights of the blocks of 8 output
    channels that hold them at least :data:`BLOCKED_MIN_FILL` (block-pruned weights); otherwise
    ``"dense"`` (register-blocked panels, about twice the multiply-adds per cycle). The default
    threshold is :data:`SPARSE_MAX_DENSITY` (0.5), or :data:`SMALL_LAYER_MAX_DENSITY` (0.8) when
    ``rows * cols <= 64 * 64``. Matrices with more than 65536 columns are always dense
    (sparse column indices are 16-bit).

    Args:
        nonzeros: non-zero weights of the matrix.
        rows, cols: output and input channels (K, C).
        max_sparse_density: the crossover density (``None``: the default rule).
        block_slots: weights of the blocks (8 consecutive rows at one column; the last block
            row's real rows only) that hold a non-zero weight (:func:`block_slots`); ``None``:
            never blocked.

    Returns:
        ``"zero"``, ``"sparse"``, ``"dense"`` or ``"blocked"``.

    Examples:
        >>> choose_format(0, 128, 128), choose_format(4000, 128, 128), choose_format(9000, 128, 128)
        ('zero', 'sparse', 'dense')
        >>> choose_format(3000, 64, 64)            # density 0.73: sparse for small layers
        'sparse'
        >>> choose_format(4096, 128, 128, block_slots=4096)   # 512 full blocks of 8
        'blocked'
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows} x {cols}")
    if not 0 <= nonzeros <= rows * cols:
        raise ValueError(f"nonzeros must be in [0, {rows * cols}], got {nonzeros}")
    if nonzeros == 0:
        return "zero"
    if cols > MAX_COLUMNS:
        return "dense"
    if max_sparse_density is None:
        max_sparse_density = (SMALL_LAYER_MAX_DENSITY if rows * cols <= SMALL_LAYER_PAIRS
                              else SPARSE_MAX_DENSITY)
    if nonzeros > max_sparse_density * rows * cols:
        return "dense"
    if block_slots is not None and nonzeros >= BLOCKED_MIN_FILL * block_slots:
        return "blocked"
    return "sparse"


def describe_formats(counts: dict[str, int], sep: str = ", ") -> str:
    """``"3 sparse, 1 dense, 2 zero"`` (and ``", 4 blocked"`` where any) for the reports.

    Examples:
        >>> describe_formats({"zero": 2, "sparse": 3, "dense": 1, "blocked": 4}, " / ")
        '3 sparse / 1 dense / 2 zero / 4 blocked'
    """
    names = ["sparse", "dense", "zero"] + (["blocked"] if counts.get("blocked") else [])
    return sep.join(f"{counts.get(name, 0)} {name}" for name in names)


def main_format(counts: dict[str, int]) -> str:
    """The format of a single-matrix packing (gemm layers) from its format counts."""
    return next((k for k in ("sparse", "dense", "blocked", "zero") if counts.get(k)), "zero")


def _blocks(w: torch.Tensor) -> torch.Tensor:
    """(..., K, C) -> (..., ceil(K/8), 8, C): rows in blocks of BLOCK_ROWS, the last padded
    with zeros."""
    rows, cols = w.shape[-2:]
    padded = -(-rows // BLOCK_ROWS) * BLOCK_ROWS
    if padded != rows:
        w = torch.nn.functional.pad(w, (0, 0, 0, padded - rows))
    return w.reshape(*w.shape[:-2], -1, BLOCK_ROWS, cols)


def block_slots(weight_pkc: torch.Tensor) -> list[int]:
    """Per matrix of ``(P, K, C)`` weights, the weights of its blocks of 8 consecutive rows
    (output channels) at one column that hold a non-zero weight (what the blocked format
    stores; a last block row of fewer than 8 real rows counts those).

    Examples:
        >>> w = torch.zeros(1, 12, 3)
        >>> w[0, :8, 1] = 1.0; w[0, 9, 2] = 1.0          # a full block, a block of 4 rows
        >>> block_slots(w)
        [12]
    """
    if weight_pkc.shape[1] == 0:
        return [0] * weight_pkc.shape[0]
    real = _blocks(torch.ones(weight_pkc.shape[1], 1, dtype=torch.int64)).sum(dim=-2)  # (B, 1)
    stored = (_blocks(weight_pkc) != 0).any(dim=-2)                               # (P, B, C)
    return (stored * real).sum(dim=(1, 2)).tolist()


def _bf16_bits(t: torch.Tensor) -> torch.Tensor:
    """bf16 bit patterns (int64, 16 bits) of float32 ``t``: rounded to nearest even, subnormals
    and zeros of either sign to 0 (the kernel's rounding, ``sw_bf16_bits``)."""
    bits = t.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
    return torch.where((bits & 0x7F80) == 0, torch.zeros_like(bits), bits)


def _bf16_values(bits: torch.Tensor) -> torch.Tensor:
    """float32 values of bf16 bit patterns (int64 holding 16 bits)."""
    return ((bits & 0xFFFF) << 16).to(torch.int32).view(torch.float32)


def round_bf16(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to bf16 as the kernels round (nearest even, subnormals to zero), as float32.

    Examples:
        >>> round_bf16(torch.tensor([1.0, 1 + 2**-9, 1 + 3 * 2**-9, 1e-39])).tolist()
        [1.0, 1.0, 1.0078125, 0.0]
    """
    return _bf16_values(_bf16_bits(t.to(torch.float32)))


def _check_bf16_range(bits: torch.Tensor, w: torch.Tensor) -> None:
    if (bits & 0x7FFF).eq(0x7F80).logical_and(torch.isfinite(w)).any():
        raise PrecisionRangeError(f"a weight of magnitude {float(w.abs().max()):.3g} rounds to "
                                  "infinity in bf16; keep this layer in fp32")


def _bf16_pairs(bits: torch.Tensor) -> torch.Tensor:
    """(P, K, C) bf16 bits (int64) -> (P, K, ceil(C/2)) int64 pair bits: channel 2j low, 2j+1
    high."""
    if bits.shape[2] % 2:
        bits = torch.nn.functional.pad(bits, (0, 1))
    pairs = bits.reshape(*bits.shape[:2], -1, 2)
    return pairs[..., 0] | (pairs[..., 1] << 16)


def _unpair_bf16(pairs: torch.Tensor, cols: int) -> torch.Tensor:
    """Inverse of :func:`_bf16_pairs`: (..., ceil(C/2)) pair bits -> (..., C) float32."""
    values = torch.stack([_bf16_values(pairs), _bf16_values(pairs >> 16)], dim=-1)
    return values.reshape(*pairs.shape[:-1], -1)[..., :cols]


def _signed_bits(t: torch.Tensor, width: int) -> torch.Tensor:
    """Unsigned ``width``-bit patterns held in int64 as int16/int32 (wrapping)."""
    signed = torch.where(t >= 2 ** (width - 1), t - 2 ** width, t)
    return signed.to(torch.int16 if width == 16 else torch.int32)


def _slices(rows: int) -> int:
    return -(-rows // SLICE_ROWS)


def _block_rows(rows: int) -> int:
    return -(-rows // BLOCK_ROWS)


def _pack_sparse(w: torch.Tensor, offset: int) -> tuple[torch.Tensor, ...]:
    """SELL-4 packing of one (K, C) matrix: slice pointers (from ``offset``), slice rows,
    columns and values (of ``w``'s dtype: floats, or bf16 pair bits)."""
    rows, cols = w.shape
    nonzero = w != 0
    counts = nonzero.sum(dim=1)
    # Slots: chunk by chunk, rows by decreasing count (stable: ties keep row order).
    key = (torch.arange(rows) // CHUNK_ROWS) * (cols + 1) + (cols - counts)
    order = torch.sort(key, stable=True).indices
    slices = _slices(rows)
    slot_rows = torch.full((slices * SLICE_ROWS,), -1, dtype=torch.int64)
    slot_rows[:rows] = order
    slot_counts = torch.zeros(slices * SLICE_ROWS, dtype=torch.int64)
    slot_counts[:rows] = counts[order]
    lengths = slot_counts.reshape(slices, SLICE_ROWS).max(dim=1).values
    ptr = torch.zeros(slices + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(lengths * SLICE_ROWS, 0)
    total = int(ptr[-1])
    col = torch.zeros(total, dtype=torch.int64)
    val = torch.zeros(total, dtype=w.dtype)
    if total:
        where = nonzero.nonzero()                                   # (row, col), row-major
        row_of, col_of = where[:, 0], where[:, 1]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(row_of)) - starts[row_of]          # j: position in its row
        slot = torch.empty(rows, dtype=torch.int64)
        slot[order] = torch.arange(rows)
        s = slot[row_of]
        entry = ptr[s // SLICE_ROWS] + rank * SLICE_ROWS + s % SLICE_ROWS
        col[entry] = col_of
        val[entry] = w[row_of, col_of]
    return ptr + offset, slot_rows, col, val


def _pack_blocked(w: torch.Tensor, offset: int) -> tuple[torch.Tensor, ...]:
    """Blocked packing of one (K, C) matrix: block row pointers (from ``offset``), the column
    of each stored block and its 8 values (rows past K zero), block rows in order, columns
    ascending."""
    blocks = _blocks(w)                                  # (B, 8, C)
    stored = (blocks != 0).any(dim=-2)                   # (B, C)
    ptr = torch.zeros(stored.shape[0] + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(stored.sum(dim=1), 0)
    where = stored.nonzero()                             # (block row, column), row-major
    values = blocks.permute(0, 2, 1)[where[:, 0], where[:, 1]]          # (E, 8)
    return ptr + offset, where[:, 1], values.reshape(-1)


def _no_blocks(positions: int, rows: int, precision: str) -> dict[str, torch.Tensor]:
    """The blocked-format tensors of a packing without blocked matrices."""
    return {"block_ptr": torch.zeros(positions, _block_rows(rows) + 1, dtype=torch.int32),
            "block_col": torch.zeros(0, dtype=torch.int16),
            "block_val": torch.zeros(0, dtype=PRECISIONS.get(precision, torch.float32))}


class PackedMatrices:
    """P packed matrices of ``K x C`` weights: immutable, validated once, owned privately.

    Build with :meth:`pack` (from dense weights) or :meth:`from_state` (from :meth:`state`,
    e.g. a ``state_dict``). The tensors are never exposed: :meth:`dense` and :meth:`state`
    return copies, so nothing can change what the kernel reads after validation.

    Examples:
        >>> w = torch.zeros(2, 8, 5)
        >>> w[0, 3, 1] = 2.0
        >>> packed = PackedMatrices.pack(w)
        >>> packed.formats(), torch.equal(packed.dense(), w)
        (['sparse', 'zero'], True)
    """

    def __init__(self, tensors: dict[str, torch.Tensor], positions: int, rows: int,
                 cols: int, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.positions, self.rows, self.cols, self.precision = positions, rows, cols, precision
        self._t = {name: tensors[name].detach().clone().contiguous() for name in _NAMES}
        self._validate()
        self._struct: SwMatrices | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def pack(cls, weight_pkc: torch.Tensor, formats: str | Sequence[str] = "auto",
             precision: str = "fp32") -> "PackedMatrices":
        """Pack weights ``(P, K, C)`` (positions first; copied to float32 CPU).

        Args:
            weight_pkc: the matrices.
            formats: ``"auto"`` (:func:`choose_format` per matrix), ``"sparse"``, ``"dense"`` or
                ``"blocked"`` for every matrix (all-zero matrices always become ``"zero"``), or
                one name per matrix.
            precision: ``"fp32"``, ``"fp16"`` (values stored in half precision) or ``"bf16"``
                (values rounded to bf16; dense panels in pairs of columns: module docstring).

        Raises:
            ValueError: wrong shape, unknown format or precision, more non-zeros than 32-bit
                offsets hold.
            PrecisionRangeError: a weight beyond fp16's range (fp16), or rounding to
                infinity (bf16).
        """
        if weight_pkc.dim() != 3:
            raise ValueError(f"weights must be (P, K, C), got shape {tuple(weight_pkc.shape)}")
        w = weight_pkc.detach().to(device="cpu", dtype=torch.float32).contiguous()
        positions, rows, cols = w.shape
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and w.abs().max() > _HALF_MAX:
            raise PrecisionRangeError(f"a weight of magnitude {float(w.abs().max()):.3g} does not fit fp16 "
                             f"(at most {_HALF_MAX}); keep this layer in fp32")
        if min(positions, rows, cols) < 1:
            raise ValueError(f"weights must have P, K, C >= 1, got {tuple(w.shape)}")
        # What is packed: the weights, or (bf16) their bits, zero exactly where the rounded
        # weight is; dense panels hold bf16 pairs of columns as 32-bit patterns.
        sparse_source = dense_source = w
        if precision == "bf16":
            sparse_source = _bf16_bits(w)
            _check_bf16_range(sparse_source, w)
            dense_source = _bf16_pairs(sparse_source)
        counts = (sparse_source != 0).sum(dim=(1, 2)).tolist()
        columns = dense_source.shape[2]
        if isinstance(formats, str):
            if formats not in ("auto", "sparse", "dense", "blocked"):
                raise ValueError(f"formats must be 'auto', 'sparse', 'dense', 'blocked' or one "
                                 f"name per matrix, got {formats!r}")
            if formats == "auto":
                slots = (block_slots(sparse_source) if cols <= MAX_COLUMNS
                         else [None] * positions)
                chosen = [choose_format(c, rows, cols, block_slots=b)
                          for c, b in zip(counts, slots)]
            else:
                chosen = [formats] * positions
        else:
            chosen = list(formats)
            if len(chosen) != positions or any(f not in FORMATS for f in chosen):
                raise ValueError(f"need {positions} formats from {FORMATS}, got {formats!r}")
        chosen = ["zero" if c == 0 else f for f, c in zip(chosen, counts)]
        if cols > MAX_COLUMNS and ("sparse" in chosen or "blocked" in chosen):
            raise ValueError(f"sparse and blocked matrices need at most {MAX_COLUMNS} columns, "
                             f"got {cols}")
        slices = _slices(rows)
        panels = -(-rows // DENSE_ROWS)
        slice_ptr = torch.zeros(positions, slices + 1, dtype=torch.int64)
        slice_rows = torch.full((positions, slices * SLICE_ROWS), -1, dtype=torch.int64)
        cols_list, vals_list, dense_list = [], [], []
        dense_index = torch.full((positions,), -1, dtype=torch.int32)
        block_ptr = torch.zeros(positions, _block_rows(rows) + 1, dtype=torch.int64)
        block_cols, block_vals = [], []
        offset = block_offset = 0
        for p, fmt in enumerate(chosen):
            if fmt == "blocked":
                ptr, col, val = _pack_blocked(sparse_source[p], block_offset)
                block_ptr[p] = ptr
                block_cols.append(col)
                block_vals.append(val)
                block_offset = int(ptr[-1])
                if block_offset * BLOCK_ROWS > _INT32_MAX:
                    raise ValueError("too many weight blocks for 32-bit offsets")
            else:
                block_ptr[p] = block_offset
            if fmt == "sparse":
                ptr, slot_rows, col, val = _pack_sparse(sparse_source[p], offset)
                slice_ptr[p], slice_rows[p] = ptr, slot_rows
                cols_list.append(col)
                vals_list.append(val)
                offset = int(ptr[-1])
                if offset > _INT32_MAX:
                    raise ValueError("too many non-zero weights for 32-bit slice offsets")
            else:
                slice_ptr[p] = offset
                if fmt == "dense":
                    padded = torch.zeros(panels * DENSE_ROWS, columns, dtype=dense_source.dtype)
                    padded[:rows] = dense_source[p]
                    dense_index[p] = len(dense_list)
                    dense_list.append(padded.reshape(panels, DENSE_ROWS, columns).transpose(1, 2))
        col = torch.cat(cols_list) if cols_list else torch.zeros(0, dtype=torch.int64)
        def stored(t: torch.Tensor, dense: bool) -> torch.Tensor:
            if precision != "bf16":
                return t.to(PRECISIONS[precision])
            return _signed_bits(t, 32 if dense else 16)

        tensors = {
            "formats": torch.tensor([FORMAT_CODES[f] for f in chosen], dtype=torch.int8),
            "slice_ptr": slice_ptr.to(torch.int32),
            "slice_rows": slice_rows.to(torch.int32),
            # 16-bit columns stored in int16 (the kernel reads them as uint16).
            "col": col.to(torch.int32).to(torch.int16),
            "val": stored(torch.cat(vals_list) if vals_list
                          else torch.zeros(0, dtype=sparse_source.dtype), False),
            "dense_index": dense_index,
            "dense": stored(torch.stack(dense_list).contiguous() if dense_list else
                            torch.zeros(0, panels, columns, DENSE_ROWS,
                                         dtype=dense_source.dtype), True),
            "block_ptr": block_ptr.to(torch.int32),
            "block_col": (torch.cat(block_cols) if block_cols
                          else torch.zeros(0, dtype=torch.int64)).to(torch.int32).to(torch.int16),
            "block_val": stored(torch.cat(block_vals) if block_vals
                                else torch.zeros(0, dtype=sparse_source.dtype), False),
        }
        return cls(tensors, positions, rows, cols, precision)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "PackedMatrices":
        """Rebuild from :meth:`state` (validated; a bad state raises ``ValueError``)."""
        if not isinstance(state, dict) or "shape" not in state:
            raise ValueError("not a packed-weights state (no 'shape')")
        try:
            positions, rows, cols = (int(v) for v in state["shape"])
        except (TypeError, ValueError):
            raise ValueError(f"packed-weights state has a bad shape {state['shape']!r}") from None
        precision = state.get("precision", "fp32")
        state = {**_no_blocks(positions, rows, precision), **state}     # states before them
        missing = [name for name in _NAMES if not isinstance(state.get(name), torch.Tensor)]
        if missing:
            raise ValueError(f"packed-weights state lacks tensors {missing}")
        return cls({name: state[name] for name in _NAMES}, positions, rows, cols, precision)

    def state(self) -> dict[str, Any]:
        """Copies of the packed tensors and the shape (for ``state_dict``)."""
        out: dict[str, Any] = {name: t.clone() for name, t in self._t.items()}
        out["shape"] = (self.positions, self.rows, self.cols)
        out["precision"] = self.precision
        return out

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        """Check that the kernel can never read or write out of bounds with this packing."""
        t, positions, rows, cols = self._t, self.positions, self.rows, self.cols
        if min(positions, rows, cols) < 1:
            raise ValueError(f"packed weights need P, K, C >= 1, got {(positions, rows, cols)}")
        for name, dtype in _DTYPES.items():
            if name in _VALUES:
                dtype = (_DENSE_TYPES if name == "dense" else PRECISIONS)[self.precision]
            if t[name].dtype != dtype or t[name].device.type != "cpu":
                raise ValueError(f"packed tensor {name!r} must be {dtype} on the CPU, got "
                                 f"{t[name].dtype} on {t[name].device}; recompile the model "
                                 "(engine.compile) instead of converting a compiled layer")
        slices, panels = _slices(rows), -(-rows // DENSE_ROWS)
        formats, ptr, slot_rows = t["formats"], t["slice_ptr"].long(), t["slice_rows"].long()
        col, val, dense_index, dense = t["col"], t["val"], t["dense_index"], t["dense"]
        if formats.shape != (positions,) or ptr.shape != (positions, slices + 1) or \
                slot_rows.shape != (positions, slices * SLICE_ROWS):
            raise ValueError(f"formats/slice_ptr/slice_rows shapes {tuple(formats.shape)}/"
                             f"{tuple(ptr.shape)}/{tuple(slot_rows.shape)} do not match "
                             f"{positions} matrices of {rows} rows")
        if col.dim() != 1 or col.shape != val.shape:
            raise ValueError("col and val must be 1-D tensors of equal length")
        if dense_index.shape != (positions,) or dense.dim() != 4 or \
                tuple(dense.shape[1:]) != (panels, self.columns, DENSE_ROWS):
            raise ValueError(f"dense panels must have shape (D, {panels}, {self.columns}, "
                             f"{DENSE_ROWS}), "
                             f"got {tuple(dense.shape)}")
        if ((formats < 0) | (formats >= len(FORMATS))).any():
            raise ValueError("formats holds an unknown format code")
        sparse = formats == FORMAT_CODES["sparse"]
        if sparse.any():
            if cols > MAX_COLUMNS:
                raise ValueError(f"sparse matrices need at most {MAX_COLUMNS} columns")
            p = ptr[sparse]
            steps = p[:, 1:] - p[:, :-1]
            if (steps < 0).any() or (steps % SLICE_ROWS).any() or (p[:, 0] < 0).any() or \
                    (p[:, -1] > col.numel()).any():
                raise ValueError("slice pointers are not monotone multiples of 4 inside the "
                                 "entry arrays")
            expected = torch.arange(rows)
            chunk_of_slot = torch.arange(slices * SLICE_ROWS) // CHUNK_ROWS
            for r in slot_rows[sparse]:
                real = r[r >= 0]
                if (r < -1).any() or not torch.equal(real.sort().values, expected) or \
                        not torch.equal(real // CHUNK_ROWS, chunk_of_slot[r >= 0]):
                    raise ValueError("slice rows must list every output row once, each in its "
                                     "own chunk of 24")
        if col.numel() and (col.long() & 0xFFFF).ge(cols).any():
            raise ValueError(f"sparse column index out of range [0, {cols})")
        blocked = formats == FORMAT_CODES["blocked"]
        block_ptr, block_col = t["block_ptr"].long(), t["block_col"]
        if block_ptr.shape != (positions, _block_rows(rows) + 1) or block_col.dim() != 1 or \
                t["block_val"].shape != (block_col.numel() * BLOCK_ROWS,):
            raise ValueError(f"block_ptr must be ({positions}, {_block_rows(rows) + 1}) and "
                             f"block_val hold {BLOCK_ROWS} values per block_col entry, got "
                             f"{tuple(block_ptr.shape)}, {tuple(block_col.shape)}, "
                             f"{tuple(t['block_val'].shape)}")
        if blocked.any():
            if cols > MAX_COLUMNS:
                raise ValueError(f"blocked matrices need at most {MAX_COLUMNS} columns")
            b = block_ptr[blocked]
            if (b[:, 1:] < b[:, :-1]).any() or (b[:, 0] < 0).any() or \
                    (b[:, -1] > block_col.numel()).any():
                raise ValueError("block pointers are not monotone inside the block arrays")
        if block_col.numel() and (block_col.long() & 0xFFFF).ge(cols).any():
            raise ValueError(f"block column index out of range [0, {cols})")
        is_dense = formats == FORMAT_CODES["dense"]
        index = dense_index[is_dense]
        if ((index < 0) | (index >= dense.shape[0])).any():
            raise ValueError("dense_index points outside the dense panels")

    # ------------------------------------------------------------------ views
    @property
    def columns(self) -> int:
        """Columns of the dense panels: ``cols``, or (bf16) pairs of them."""
        return -(-self.cols // 2) if self.precision == "bf16" else self.cols

    def formats(self) -> list[str]:
        """The format of each matrix."""
        return [FORMATS[c] for c in self._t["formats"].tolist()]

    def format_counts(self) -> dict[str, int]:
        """How many matrices are stored in each format."""
        names = self.formats()
        return {name: names.count(name) for name in FORMATS}

    def nbytes(self) -> int:
        """Bytes of the packing (what the kernel streams per pass over the weights)."""
        return sum(t.numel() * t.element_size() for t in self._t.values())

    def dense(self) -> torch.Tensor:
        """The matrices as a new dense ``(P, K, C)`` float32 tensor (inverse of :meth:`pack`; bf16:
        the rounded weights the kernel multiplies)."""
        t = self._t
        bf16 = self.precision == "bf16"
        out = torch.zeros(self.positions, self.rows, self.cols)
        col = t["col"].long() & 0xFFFF
        val = _bf16_values(t["val"].long()) if bf16 else t["val"].float()
        slices = _slices(self.rows)
        for p, name in enumerate(self.formats()):
            if name == "sparse":
                ptr = t["slice_ptr"][p].long()
                start, stop = int(ptr[0]), int(ptr[-1])
                lengths = (ptr[1:] - ptr[:-1]) // SLICE_ROWS
                slot_rows = t["slice_rows"][p].long().reshape(slices, SLICE_ROWS)
                # Entry e of slice s belongs to lane e % 4.
                lane_rows = torch.repeat_interleave(slot_rows, lengths, dim=0).reshape(-1)
                entries_val = val[start:stop]
                keep = (lane_rows >= 0) & (entries_val != 0)
                out[p].index_put_((lane_rows[keep], col[start:stop][keep]), entries_val[keep],
                                  accumulate=True)
            elif name == "blocked":
                ptr = t["block_ptr"][p].long()
                start, stop = int(ptr[0]), int(ptr[-1])
                block_row = torch.repeat_interleave(torch.arange(len(ptr) - 1), ptr[1:] - ptr[:-1])
                values = t["block_val"][start * BLOCK_ROWS:stop * BLOCK_ROWS]
                values = (_bf16_values(values.long()) if bf16 else values.float())
                columns = t["block_col"][start:stop].long() & 0xFFFF
                blocks = torch.zeros(len(ptr) - 1, self.cols, BLOCK_ROWS)
                blocks[block_row, columns] = values.reshape(-1, BLOCK_ROWS)
                out[p] = blocks.permute(0, 2, 1).reshape(-1, self.cols)[:self.rows]
            elif name == "dense":
                panel = t["dense"][int(t["dense_index"][p])]                # (panels, C, 6)
                matrix = panel.transpose(1, 2).reshape(-1, self.columns)[:self.rows]
                out[p] = (_unpair_bf16(matrix.long() & 0xFFFFFFFF, self.cols) if bf16
                          else matrix.float())
        return out

    def struct(self) -> SwMatrices:
        """The ``sw_matrices`` the kernel reads (pointers into this object's tensors, which
        live as long as it does)."""
        if self._struct is None:
            t = self._t
            self._struct = SwMatrices(
                self.positions, self.rows, self.cols, t["formats"].data_ptr(),
                t["slice_ptr"].data_ptr(), t["slice_rows"].data_ptr(), t["col"].data_ptr(),
                t["val"].data_ptr(), t["dense_index"].data_ptr(), t["dense"].data_ptr(),
                _CODES[self.precision], t["block_ptr"].data_ptr(), t["block_col"].data_ptr(),
                t["block_val"].data_ptr())
        return self._struct

    def __getstate__(self) -> dict[str, Any]:
        return {"state": self.state()}

    def __setstate__(self, data: dict[str, Any]) -> None:
        other = PackedMatrices.from_state(data["state"])
        self.__dict__.update(other.__dict__)

    def __deepcopy__(self, memo: dict) -> "PackedMatrices":
        return PackedMatrices.from_state(self.state())
