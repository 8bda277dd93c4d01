"""DWM (Huang et al. 2020): any kernel and stride as a sum of small stride-1 Winograd pieces.

Per spatial dimension a correlation ``y[o] = sum_t w[t] x[s*o + t - pad]`` with ``k`` taps and
stride ``s`` is split in two steps:

* **stride** (polyphase): tap ``t = s*q + phase``; phase ``phase`` of the kernel,
  ``w_phase[q] = w[s*q + phase]``, correlates the sub-image ``x[s*u + phase - pad]`` with
  stride 1, and the ``s`` phases are summed;
* **kernel size**: a phase of more than ``r`` taps is cut into windows of ``r`` taps, each a
  stride-1 correlation of a shifted view. Every phase gets the same number of windows; a phase
  with fewer taps is padded with zero ("phantom") taps on the left, windows with no real tap
  are dropped.

So every piece has the same ``r`` taps and runs the same F(m, r): in N dimensions the pieces
are the Cartesian product of the per-dimension windows. Piece ``p`` reads the sub-image
``X_p[u] = x[s*u + c_p]`` (``c_p``: the window's input offset; zeros outside the input), and

    y[o] = sum_p sum_j w_p[j] X_p[o + j].

The pieces of one layer are stacked like input channels (``(c, p)`` order): the layer is one
stride-1, zero-padding Winograd convolution of the stacked sub-images with ``C * S`` input
channels, and its Winograd-domain weights are one Q per piece, ``(K, C, S, *n)``. Each real
tap belongs to exactly one piece, so the spatial weights are recovered from the pieces exactly.

This module depends only on ``torch``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["AxisSplit", "Decomposition", "decompose"]


@dataclass(frozen=True)
class AxisSplit:
    """How one spatial dimension is decomposed.

    Attributes:
        kernel: taps ``k`` of the full kernel.
        stride: stride ``s``.
        piece: taps ``r`` of every piece.
        padding: ``(before, after)`` zeros of the layer.
        windows: ``(phase, q0)`` of each window: it covers phase taps ``q0 .. q0 + r - 1``
            (``q0 < 0``: phantom taps on the left).
    """

    kernel: int
    stride: int
    piece: int
    padding: tuple[int, int]
    windows: tuple[tuple[int, int], ...]

    @classmethod
    def build(cls, kernel: int, stride: int, piece: int,
              padding: tuple[int, int] = (0, 0)) -> "AxisSplit":
        """Split ``kernel`` taps of stride ``stride`` into windows of ``piece`` taps.

        Raises:
            ValueError: sizes below 1, a stride larger than the kernel (some inputs would
                meet no tap: that is a subsampling, not a convolution Winograd can speed up),
                or a piece larger than the largest phase.
        """
        for name, value in (("kernel", kernel), ("stride", stride), ("piece", piece)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if stride > kernel:
            raise ValueError(f"stride {stride} is larger than the kernel size {kernel}: some "
                             "inputs meet no tap; subsample the input first (e.g. x[..., ::s]) "
                             "and use a stride-1 convolution")
        largest = -(-kernel // stride)
        if piece > largest:
            raise ValueError(f"piece size {piece} is larger than the largest phase of kernel "
                             f"{kernel} with stride {stride} ({largest} taps)")
        count = -(-largest // piece)
        windows = []
        for phase in range(stride):
            taps = -(-(kernel - phase) // stride)
            first = taps - count * piece                 # phantom taps on the left
            for i in range(count):
                q0 = first + i * piece
                if q0 + piece > 0:                       # the window holds a real tap
                    windows.append((phase, q0))
        return cls(kernel, stride, piece, tuple(padding), tuple(windows))

    def phase_taps(self, phase: int) -> int:
        """Real taps of ``phase``."""
        return -(-(self.kernel - phase) // self.stride)

    def tap(self, window: int, j: int) -> int:
        """Full-kernel tap of tap ``j`` of ``window``, or -1 for a phantom tap."""
        phase, q0 = self.windows[window]
        q = q0 + j
        return self.stride * q + phase if 0 <= q < self.phase_taps(phase) else -1

    def offset(self, window: int) -> int:
        """Input offset ``c``: the window's sub-image is ``x[s*u + c]``."""
        phase, q0 = self.windows[window]
        return self.stride * q0 + phase - self.padding[0]

    def output_size(self, size: int) -> int:
        """Outputs of the strided correlation for an input of ``size`` (may be <= 0)."""
        lo, hi = self.padding
        return (size + lo + hi - self.kernel) // self.stride + 1


@dataclass(frozen=True)
class Decomposition:
    """The pieces of an N-d convolution: one :class:`AxisSplit` per spatial dimension.

    Examples:
        >>> d = decompose((5, 5), (1, 1), (3, 3), ((2, 2), (2, 2)))
        >>> d.pieces, d.piece_size
        (4, (3, 3))
        >>> w = torch.randn(2, 1, 5, 5)
        >>> torch.equal(d.merge(d.split(w)), w)
        True
    """

    axes: tuple[AxisSplit, ...]

    @property
    def dims(self) -> int:
        return len(self.axes)

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(a.kernel for a in self.axes)

    @property
    def stride(self) -> tuple[int, ...]:
        return tuple(a.stride for a in self.axes)

    @property
    def piece_size(self) -> tuple[int, ...]:
        """Taps ``r`` of every piece per dimension."""
        return tuple(a.piece for a in self.axes)

    @property
    def windows(self) -> tuple[int, ...]:
        """Windows per dimension (their product is the number of pieces)."""
        return tuple(len(a.windows) for a in self.axes)

    @property
    def pieces(self) -> int:
        """S: the number of pieces."""
        return math.prod(self.windows)

    @property
    def is_trivial(self) -> bool:
        """One piece that is the whole kernel with stride 1 (plain Winograd)."""
        return all(a.stride == 1 and a.piece == a.kernel for a in self.axes)

    def piece_index(self) -> list[tuple[int, ...]]:
        """The per-dimension window of each piece, in piece order (row-major)."""
        return list(_product([range(w) for w in self.windows]))

    def offsets(self) -> list[tuple[int, ...]]:
        """Input offset ``c`` per dimension of each piece (sub-image ``x[s*u + c]``)."""
        return [tuple(a.offset(w) for a, w in zip(self.axes, index)) for index in self.piece_index()]

    @cached_property
    def taps(self) -> torch.Tensor:
        """``(S, *r)`` long tensor: the flat full-kernel tap of each piece tap, -1 for phantoms."""
        kernel = self.kernel_size
        rows = []
        for index in self.piece_index():
            per_axis = [[a.tap(w, j) for j in range(a.piece)] for a, w in zip(self.axes, index)]
            flat = []
            for taps in _product(per_axis):
                flat.append(-1 if min(taps) < 0 else _flat_index(taps, kernel))
            rows.append(flat)
        return torch.tensor(rows, dtype=torch.long).reshape(self.pieces, *self.piece_size)

    @cached_property
    def _sources(self) -> torch.Tensor:
        """For each full-kernel tap (flat), its position in the flattened pieces ``(S * R_p)``."""
        flat = self.taps.flatten()
        real = (flat >= 0).nonzero().squeeze(1)
        sources = torch.empty(math.prod(self.kernel_size), dtype=torch.long)
        sources[flat[real]] = real
        return sources

    def phantom_mask(self) -> torch.Tensor:
        """``(S, *r)`` bool: True where a piece tap is a phantom (always zero spatially)."""
        return self.taps < 0

    def split(self, weight: torch.Tensor) -> torch.Tensor:
        """Piece kernels: ``(K, C, *k)`` -> ``(K, C, S, *r)`` (phantom taps zero; differentiable)."""
        lead = weight.shape[:-self.dims]
        flat = weight.reshape(*lead, -1)
        padded = F.pad(flat, (0, 1))                                 # index R: a zero
        index = self.taps.flatten().to(weight.device)
        index = torch.where(index < 0, flat.shape[-1], index)
        return padded[..., index].reshape(*lead, self.pieces, *self.piece_size)

    def merge(self, pieces: torch.Tensor) -> torch.Tensor:
        """Full kernels from piece kernels (phantom taps ignored): ``(K, C, S, *r)`` -> ``(K, C, *k)``."""
        lead = pieces.shape[:-self.dims - 1]
        flat = pieces.reshape(*lead, -1)
        return flat[..., self._sources.to(pieces.device)].reshape(*lead, *self.kernel_size)

    def selection(self, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> torch.Tensor:
        """``(S * R_p, R)`` 0/1 matrix: ``vec(pieces) = selection @ vec(weight)`` per kernel."""
        flat = self.taps.flatten()
        matrix = torch.zeros(len(flat), math.prod(self.kernel_size), dtype=dtype, device=device)
        real = (flat >= 0).nonzero().squeeze(1)
        matrix[real.to(matrix.device), flat[real].to(matrix.device)] = 1
        return matrix

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Output size of the strided convolution (entries may be <= 0 for too small inputs)."""
        return tuple(a.output_size(s) for a, s in zip(self.axes, input_size))

    def stack(self, x: torch.Tensor, tile: Sequence[int] | None = None) -> torch.Tensor:
        """The pieces' sub-images stacked as channels: ``(N, C, *S)`` -> ``(N, C * S, *Z)``.

        Channel ``c * S + p`` holds ``x[c]`` read at ``s*u + c_p`` for ``u < Z`` per dimension
        (zeros outside the input), so a stride-1 correlation with zero padding over it gives the
        ``O`` outputs. ``Z = O + r - 1`` (what the outputs need), or with ``tile`` (m per
        dimension) the extent of whole tiles, ``ceil(O / m) * m + r - 1``: then every input tile
        holds what the sub-image has there — the definition of a decomposed Winograd layer,
        whose tiles of Winograd-domain weights outside the range of the filter transform (or of
        Winograd-ReLU) see their whole input tile, which the engine reads in place. One copy;
        differentiable.
        """
        dims = self.dims
        lead = x.dim() - dims
        out = self.output_size(x.shape[lead:])
        if min(out) < 1:
            raise ValueError(f"input spatial size {tuple(x.shape[lead:])} gives no output for "
                             f"kernel {self.kernel_size}, stride {self.stride}")
        result = x
        for d, (axis, o) in enumerate(zip(self.axes, out)):
            dim = lead + 2 * d                       # each done axis became (windows, Z)
            size = result.shape[dim]
            z = (o if tile is None else -(-o // tile[d]) * tile[d]) + axis.piece - 1
            starts = torch.tensor([axis.offset(w) for w in range(len(axis.windows))])
            index = starts[:, None] + axis.stride * torch.arange(z)[None, :]      # (windows, Z)
            before = max(0, -int(index.min()))
            after = max(0, int(index.max()) - (size - 1))
            if before or after:
                pads = [0, 0] * (result.dim() - dim - 1) + [before, after]
                result = F.pad(result, pads)
            picked = result.index_select(dim, (index + before).flatten().to(x.device))
            result = picked.reshape(*picked.shape[:dim], len(axis.windows), z,
                                    *picked.shape[dim + 1:])
        # (N, C, w_1, Z_1, w_2, Z_2, ...) -> (N, C, w_1, w_2, ..., Z_1, Z_2, ...)
        perm = list(range(lead)) + [lead + 2 * d for d in range(dims)] + \
            [lead + 2 * d + 1 for d in range(dims)]
        result = result.permute(perm)
        return result.reshape(*x.shape[:lead - 1], x.shape[lead - 1] * self.pieces,
                              *result.shape[lead + dims:])

    def describe(self) -> str:
        """``"4 pieces 3x3"`` / ``"stride 2: 4 pieces 2x2"``."""
        shape = "x".join(map(str, self.piece_size))
        text = f"{self.pieces} piece{'s' if self.pieces != 1 else ''} {shape}"
        if any(s != 1 for s in self.stride):
            text = f"stride {'x'.join(map(str, self.stride))}: " + text
        return text


def decompose(kernel_size: Sequence[int], stride: Sequence[int], piece_size: Sequence[int],
              padding: Sequence[tuple[int, int]] | None = None) -> Decomposition:
    """The :class:`Decomposition` of a convolution into pieces of ``piece_size`` taps.

    Args:
        kernel_size, stride, piece_size: one int per spatial dimension.
        padding: ``(before, after)`` per dimension (default none).
    """
    dims = len(kernel_size)
    if len(stride) != dims or len(piece_size) != dims:
        raise ValueError(f"kernel_size {tuple(kernel_size)}, stride {tuple(stride)} and "
                         f"piece_size {tuple(piece_size)} must have one entry per dimension")
    padding = tuple(padding) if padding is not None else ((0, 0),) * dims
    return Decomposition(tuple(AxisSplit.build(k, s, r, tuple(p))
                               for k, s, r, p in zip(kernel_size, stride, piece_size, padding)))


def _product(lists: Sequence[Sequence]) -> list[tuple]:
    result: list[tuple] = [()]
    for items in lists:
        result = [prefix + (item,) for prefix in result for item in items]
    return result


def _flat_index(index: Sequence[int], sizes: Sequence[int]) -> int:
    flat = 0
    for i, s in zip(index, sizes):
        flat = flat * s + i
    return flat
