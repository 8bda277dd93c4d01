"""SparseDecomposedConv2d: a compiled DWM layer (kernels above 3 taps, strides above 1) as kernel operations.

A decomposed :class:`~sparsewino.nn.WinogradConv2d` is S stride-1 pieces F(m, r) over sub-images
of its input (:mod:`sparsewino.winograd.decompose`). It runs as the same conv2d operations as
every other Winograd layer, in one of two layouts:

* ``"stacked"``: one *extract* operation copies the pieces' sub-images (polyphase components
  for strides, shifted views for kernel pieces) into one ``(N, C * S, Z, Z)`` buffer, trimmed
  of rows and columns that are zero for every piece, and one conv2d operation with ``C * S``
  input channels sums the pieces in its element-wise stage: one output transform, one pass
  over the output.
* ``"pieces"``: S conv2d operations, piece i taking piece i-1's output as its residual input
  so that the outputs accumulate; the last one adds the bias (folded BatchNorm) and applies
  the ReLU. A piece reads the input itself, at its own padding (no copy), when it can (stride
  1 and a non-positive offset); otherwise an extract operation copies its sub-image first.

Both read every tile as the layer defines it (:meth:`~sparsewino.winograd.decompose.Decomposition.stack`
with whole tiles): the sub-image's own values, zero only outside the input, so Winograd-domain
weights outside the range of the filter transform and Winograd-ReLU give the same outputs as
the PyTorch layer.

:meth:`SparseDecomposedConv2d.choose_layout` picks ``"stacked"`` for strided layers (each
piece would need its own copy anyway) and, at stride 1, while the stacked weights of one tile
block fit the kernel's cache budget (few channels); ``"pieces"`` for wide stride-1 layers,
where one wide stacked matrix would shrink the kernel's tile blocks and stream the weights
more often. A fused residual addition enters the first conv2d
operation. Compiled layers run alone (``forward``, one ``sw_run_program`` call over their
operations) or as steps of a compiled
model's :class:`~sparsewino.engine.program.Program` (:meth:`SparseDecomposedConv2d.lower`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..nn.conv import WinogradConv2d
from ..nn.functional import positions_first, winograd_conv
from ..winograd.algorithm import WinogradAlgorithm, algorithm
from ..winograd.decompose import Decomposition, decompose
from . import kernels
from .modules import CompiledConv, OpPlan, _affine, kernel_reason, torch_product
from .packing import PackedMatrices, describe_formats

__all__ = ["SparseDecomposedConv2d", "DecomposedSpec", "decomposed_unsupported_reason", "LAYOUTS",
           "OpPlan"]

LAYOUTS = ("stacked", "pieces")
#: Stacked while positions x stacked channels stay within this (so that, with the kernel's
#: 1 MiB budget for a block's transformed input, blocks keep at least 16 tiles).
STACKED_MAX_COLUMNS = 16384
_INT8, _INT32 = 1, 4                         # element sizes of the packed position arrays


def decomposed_unsupported_reason(layer: nn.Module) -> str | None:
    """Why the engine cannot compile ``layer`` (a decomposed WinogradConv2d), or ``None``."""
    if not isinstance(layer, WinogradConv2d) or layer.decomposition is None:
        return f"{type(layer).__name__} is not a decomposed WinogradConv2d"
    return kernel_reason(layer, layer.piece_size, layer.tile, layer.in_channels * layer.pieces,
                         "H and W", "DWM pieces")


@dataclass(frozen=True)
class DecomposedSpec:
    """The fixed configuration of a compiled DWM layer (immutable after compile)."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    piece: int                 # r of every piece (square)
    tile: int                  # m (square)
    points: tuple | None
    winograd_relu: bool
    relu_output: bool
    groups: int = 1
    residual: bool = False     # forward(x, residual) adds a tensor before the output ReLU
    layout: str = "stacked"    # "stacked" or "pieces"

    @property
    def n(self) -> int:
        return self.tile + self.piece - 1

    @functools.cached_property
    def decomposition(self) -> Decomposition:
        return decompose(self.kernel_size, self.stride, (self.piece,) * 2, self.padding)

    @functools.cached_property
    def algorithm(self) -> WinogradAlgorithm:
        return algorithm(self.tile, self.piece, self.points)


class SparseDecomposedConv2d(CompiledConv):
    """Inference-only DWM convolution (any kernel size, stride >= 1) on the sparse CPU kernels.

    Built by :func:`sparsewino.engine.compile` (or :meth:`from_layer`) from a decomposed
    :class:`~sparsewino.nn.WinogradConv2d`: every piece's effective Winograd weights (prune masks
    applied) are packed per position (zero / sparse / dense). See the module docstring for the
    two layouts. ``forward(x)`` or, compiled with a fused residual, ``forward(x, residual)``;
    inference only.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = WinogradConv2d(3, 8, 7, stride=2, padding=3).eval()
        >>> fast = SparseDecomposedConv2d.from_layer(layer)
        >>> x = torch.randn(1, 3, 20, 20)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), atol=1e-4)
        True
    """

    def __init__(self, spec: DecomposedSpec, packed: PackedMatrices, bias: torch.Tensor | None,
                 threads: int | None = None) -> None:
        if spec.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {spec.layout!r}")
        pieces = spec.decomposition.pieces
        expected = ((spec.n ** 2, spec.out_channels, spec.in_channels * pieces)
                    if spec.layout == "stacked" else
                    (pieces * spec.n ** 2, spec.out_channels, spec.in_channels))
        if (packed.positions, packed.rows, packed.cols) != expected:
            raise ValueError(f"packed weights {(packed.positions, packed.rows, packed.cols)} do "
                             f"not fit {pieces} pieces F({spec.tile},{spec.piece}) with "
                             f"{spec.in_channels} -> {spec.out_channels} channels ({spec.layout})")
        object.__setattr__(self, "_spec", spec)
        super().__init__(packed, bias, spec.out_channels, threads)
        self.tile_block = self.kernel_mode = self.lanes = 0
        at, _, bt = spec.algorithm.matrices(torch.float32)
        self._bt, self._at = bt.contiguous().clone(), at.contiguous().clone()
        self._zero_bias = torch.zeros(spec.out_channels)
        split = spec.decomposition
        offsets = torch.tensor(split.offsets(), dtype=torch.int32)                  # (S, 2)
        # Rows/columns before `lead` are zero in every piece's sub-image: left to the padding.
        self._lead, self._offsets = _trim(offsets, spec.stride)
        # "pieces": each piece's own extract (its sub-image alone), or None to read the input
        self._piece_extracts = [None if self._in_place(c) else _trim(offsets[p:p + 1], spec.stride)
                                for p, c in enumerate(split.offsets())]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layer(cls, layer: WinogradConv2d, threads: int | None = None,
                   formats: str | Sequence[str] = "auto", relu_output: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   residual: bool = False, layout: str = "auto",
                   precision: str = "fp32") -> "SparseDecomposedConv2d":
        """Compile one decomposed :class:`~sparsewino.nn.WinogradConv2d`.

        Args:
            layer: the layer (spatial or Winograd domain, prune masks honoured).
            threads, formats, relu_output, scale, shift, residual: as
                :meth:`SparseWinogradConv2d.from_layer <sparsewino.engine.SparseWinogradConv2d.from_layer>`.
            layout: ``"stacked"``, ``"pieces"`` or ``"auto"`` (:meth:`choose_layout`).
            precision: ``"fp32"`` or ``"fp16"`` weights (see :mod:`~sparsewino.engine.packing`).

        Raises:
            ValueError: the layer cannot be compiled (:func:`decomposed_unsupported_reason`),
                a layout it cannot use, or weights that do not fit fp16.
        """
        reason = decomposed_unsupported_reason(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        split = layer.decomposition
        if layout == "auto":
            layout = cls.choose_layout(split, layer.in_channels, layer.tile[0] + layer.piece_size[0] - 1)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
        with torch.no_grad():
            q = layer.winograd_weight().detach().to(torch.float32)       # (K, C/g, S, n, n)
            k, cg, pieces = q.shape[:3]
            groups = layer.groups
            bias = layer.bias.detach().float() if layer.bias is not None else None
            if layout == "stacked":
                u = positions_first(q.reshape(k, cg * pieces, *q.shape[3:]))     # (P, K, C/g*S)
                u, bias = _affine(u, bias, scale, shift)
                u = _block_diagonal(u, groups)
            else:
                per_piece = [positions_first(q[:, :, p]) for p in range(pieces)]  # (P, K, C/g)
                u = torch.cat(per_piece)                                          # (S*P, K, C/g)
                u, bias = _affine(u, bias, scale, shift)
                u = _block_diagonal(u, groups)
            packed = PackedMatrices.pack(u, formats, precision)
        spec = DecomposedSpec(
            in_channels=layer.in_channels, out_channels=layer.out_channels,
            kernel_size=tuple(layer.kernel_size), stride=tuple(layer.stride),
            padding=tuple(layer._padding_pairs), piece=layer.piece_size[0], tile=layer.tile[0],
            points=layer.points[0], winograd_relu=layer.winograd_relu, relu_output=relu_output,
            groups=groups, residual=residual, layout=layout)
        return cls(spec, packed, bias, threads)

    @staticmethod
    def choose_layout(split: Decomposition, in_channels: int, n: int) -> str:
        """``"pieces"`` when every piece reads the input in place (stride 1, non-positive
        offsets) and ``n² x C x S`` (positions x stacked channels) exceeds
        :data:`STACKED_MAX_COLUMNS`; else ``"stacked"`` (module docstring).

        Measured (Zen 3, batch 1): stride-1 5x5 layers with 128–512 channels run 1.3–1.5x
        faster as pieces; strided layers, whose pieces each need a copy anyway, 1.3–1.5x faster
        stacked (3x3/2 with 64–256 input channels)."""
        in_place = all(s == 1 for s in split.stride) and max(max(c) for c in split.offsets()) <= 0
        wide = n * n * in_channels * split.pieces > STACKED_MAX_COLUMNS
        return "pieces" if in_place and wide else "stacked"

    def _in_place(self, offset: Sequence[int]) -> bool:
        """Whether a piece at input ``offset`` reads the input itself in the "pieces" layout."""
        spec = self._spec
        return spec.stride == (1, 1) and max(offset) <= 0

    # ------------------------------------------------------------------ read-only config
    @property
    def decomposition(self) -> Decomposition:
        return self._spec.decomposition

    @property
    def positions(self) -> int:
        """Winograd positions over all pieces (S * n * n)."""
        return self.decomposition.pieces * self._spec.n ** 2

    def winograd_weight(self) -> torch.Tensor:
        """The packed Winograd weights as ``(K, C/g, S, n, n)`` (BatchNorm folded in)."""
        spec, split = self._spec, self.decomposition
        u = self._packed.dense()
        k, n, pieces, g = spec.out_channels, spec.n, split.pieces, spec.groups
        if spec.layout == "stacked":
            q = u.permute(1, 2, 0).reshape(k, spec.in_channels, pieces, n, n)
        else:
            q = u.reshape(pieces, n, n, k, spec.in_channels).permute(3, 4, 0, 1, 2)
        cg = spec.in_channels // g
        return torch.cat([q[i * k // g:(i + 1) * k // g, i * cg:(i + 1) * cg] for i in range(g)])

    # ------------------------------------------------------------------ planning
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (Ho, Wo) for an input of (height, width)."""
        return self.decomposition.output_size((height, width))  # type: ignore[return-value]

    def _piece_matrices(self, piece: int) -> kernels.SwMatrices:
        """The ``sw_matrices`` of one piece's positions inside the packing ("pieces" layout)."""
        whole = self._packed.struct()
        positions = self._spec.n ** 2
        first = piece * positions
        slices = -(-self._packed.rows // kernels.SLICE_ROWS)
        part = kernels.SwMatrices.from_buffer_copy(whole)   # every field, then the offsets
        part.P = positions
        part.formats = whole.formats + first * _INT8
        part.slice_ptr = whole.slice_ptr + first * (slices + 1) * _INT32
        part.slice_rows = whole.slice_rows + first * slices * kernels.SLICE_ROWS * _INT32
        part.dense_index = whole.dense_index + first * _INT32
        blocks = -(-self._packed.rows // kernels.BLOCK_ROWS)
        part.block_ptr = whole.block_ptr + first * (blocks + 1) * _INT32
        return part

    def _conv_args(self, matrices: kernels.SwMatrices, batch: int, channels: int, height: int,
                   width: int, out: tuple[int, int], pads: tuple[int, int], bias: torch.Tensor,
                   relu: bool, threads: int, backend_name: str) -> kernels.SwConv2dArgs:
        spec = self._spec
        args = kernels.SwConv2dArgs()
        args.N, args.C, args.H, args.W = batch, channels, height, width
        args.K, (args.Ho, args.Wo) = spec.out_channels, out
        args.n, args.m = spec.n, spec.tile
        args.pad_top, args.pad_left = pads
        args.bt, args.at = self._bt.data_ptr(), self._at.data_ptr()
        args.w = matrices
        args.bias = bias.data_ptr()
        args.relu_input, args.relu_output = int(spec.winograd_relu), int(relu)
        args.pool = 0
        args.threads, args.isa = threads, kernels.isa_code(backend_name)
        args.tile_block, args.mode, args.lanes = self.tile_block, self.kernel_mode, self.lanes
        return args

    def _extract(self, batch: int, height: int, width: int, out: tuple[int, int],
                 trimmed: tuple[tuple[int, int], torch.Tensor], threads: int
                 ) -> tuple[kernels.SwExtractArgs, tuple[int, ...]]:
        """The extract operation of the sub-images at ``trimmed`` (lead, offsets) and its
        output shape: each as long as a piece reads, less what is zero in all of them."""
        spec = self._spec
        lead, offsets = trimmed
        size = []
        for d, (o, s, extent) in enumerate(zip(out, spec.stride, (height, width))):
            full = -(-o // spec.tile) * spec.tile + spec.piece - 1 - lead[d]   # whole tiles
            last = max((extent - 1 - int(off)) // s for off in offsets[:, d].tolist())
            size.append(max(1, min(full, last + 1)))
        ext = kernels.SwExtractArgs()
        ext.N, ext.C, ext.H, ext.W = batch, spec.in_channels, height, width
        ext.S, (ext.Ho, ext.Wo) = len(offsets), size
        ext.sh, ext.sw = spec.stride
        ext.offsets = offsets.data_ptr()
        ext.threads = threads
        return ext, (batch, spec.in_channels * len(offsets), *size)

    def lower(self, batch: int, height: int, width: int, threads: int,
              backend_name: str) -> list[OpPlan]:
        """The kernel operations for an input of (batch, C, height, width), in order (data and
        workspace pointers left unset; see :class:`OpPlan`)."""
        spec, split = self._spec, self.decomposition
        ho, wo = self.output_size(height, width)
        out_shape = (batch, spec.out_channels, ho, wo)
        if spec.layout == "stacked":
            ext, stacked = self._extract(batch, height, width, (ho, wo),
                                         (self._lead, self._offsets), threads)
            conv = self._conv_args(self._packed.struct(), batch, stacked[1], *stacked[2:],
                                   (ho, wo), self._lead, self._bias, spec.relu_output, threads,
                                   backend_name)
            inputs = [("x", "t0")] + ([("residual", "residual")] if spec.residual else [])
            return [OpPlan("extract", ext, [("x", "x")], "t0", stacked),
                    OpPlan("conv2d", conv, inputs, "y", out_shape)]
        plans = []
        last = split.pieces - 1
        for p, offset in enumerate(split.offsets()):
            final = p == last
            source, pads, size = "x", (-offset[0], -offset[1]), (height, width)
            if self._piece_extracts[p] is not None:
                ext, shape = self._extract(batch, height, width, (ho, wo),
                                           self._piece_extracts[p], threads)
                source, pads, size = f"e{p}", self._piece_extracts[p][0], shape[2:]
                plans.append(OpPlan("extract", ext, [("x", "x")], source, shape))
            args = self._conv_args(self._piece_matrices(p), batch, spec.in_channels, *size,
                                   (ho, wo), pads, self._bias if final else self._zero_bias,
                                   spec.relu_output and final, threads, backend_name)
            inputs = [("x", source)]
            if p > 0:
                inputs.append(("residual", f"t{p - 1}"))
            elif spec.residual:
                inputs.append(("residual", "residual"))
            plans.append(OpPlan("conv2d", args, inputs, "y" if final else f"t{p}", out_shape))
        return plans

    # ------------------------------------------------------------------ forward
    def _forward_kernel(self, x: torch.Tensor, backend_name: str,
                        residual: torch.Tensor | None = None, poison: bool = False) -> torch.Tensor:
        """Run the operations of :meth:`lower` as one ``sw_run_program`` call (``poison``, for
        tests: NaN in every buffer and the workspace first, so unwritten data shows up)."""
        x = x.contiguous()
        residual = residual.contiguous() if residual is not None else None
        batch, _, height, width = x.shape
        threads = self.threads or torch.get_num_threads()
        key = (batch, height, width, threads, backend_name, self.tile_block, self.kernel_mode,
               self.lanes)
        return self._run_plans(key, lambda: self.lower(batch, height, width, threads,
                                                       backend_name),
                               {"x": x, "residual": residual}, poison)

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        spec, split = self._spec, self.decomposition
        x_out = self.output_size(x.shape[2], x.shape[3])
        if self._dense_cache is None:
            u = self._packed.dense()
            if spec.layout == "pieces":                      # (S*P, K, C) -> (P, K, C*S), (c, p)
                positions = spec.n ** 2
                u = u.reshape(split.pieces, positions, *u.shape[1:]).permute(1, 2, 3, 0)
                u = u.reshape(positions, spec.out_channels, -1)
            self._dense_cache = u.contiguous()
        with torch.no_grad():
            y = winograd_conv(split.stack(x, (spec.tile, spec.tile)), self._dense_cache, self._bias,
                              (spec.algorithm,) * 2, ((0, 0), (0, 0)), 1, spec.winograd_relu,
                              torch_product(self._packed, self._dense_cache))
            y = y[..., :x_out[0], :x_out[1]].contiguous()
            if residual is not None:
                y = y + residual
            return torch.relu(y) if spec.relu_output else y

    def extra_repr(self) -> str:
        spec = self._spec
        counts = self.format_counts()
        text = (f"{spec.in_channels}, {spec.out_channels}, kernel_size={spec.kernel_size}, "
                f"stride={spec.stride}, padding={spec.padding}, DWM "
                f"{self.decomposition.describe()} of F({spec.tile},{spec.piece}), {spec.layout}, "
                f"positions: {describe_formats(counts, ' / ')}")
        for flag, label in ((spec.groups != 1, f"groups={spec.groups}"),
                            (spec.winograd_relu, "winograd_relu=True"),
                            (spec.residual, "residual=True"),
                            (spec.relu_output, "relu_output=True")):
            if flag:
                text += ", " + label
        return text


def _trim(offsets: torch.Tensor, stride: Sequence[int]) -> tuple[tuple[int, int], torch.Tensor]:
    """(lead, shifted offsets) of sub-images starting at ``offsets`` ``(S, 2)``: ``lead`` rows
    and columns, zero in every one of them, are left to the conv2d's padding instead of copied."""
    lead = tuple(int(min(max(0, -(-int(-c) // s)) for c in offsets[:, d].tolist()))
                 for d, s in enumerate(stride))
    shift = torch.tensor([s * p for s, p in zip(stride, lead)], dtype=torch.int32)
    return lead, (offsets + shift).contiguous()


def _block_diagonal(u: torch.Tensor, groups: int) -> torch.Tensor:
    """(P, K, C/g) grouped weights -> (P, K, C) with zeros between groups."""
    if groups == 1:
        return u
    positions, k, cg = u.shape
    full = torch.zeros(positions, k, cg * groups)
    kg = k // groups
    for g in range(groups):
        full[:, g * kg:(g + 1) * kg, g * cg:(g + 1) * cg] = u[:, g * kg:(g + 1) * kg]
    return full
