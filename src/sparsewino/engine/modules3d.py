"""SparseWinogradConv3d: the compiled 3-D Winograd convolution (fused sparse CPU kernel, F(m, r)³).

The 3-D counterpart of :class:`~sparsewino.engine.SparseWinogradConv2d`: built from a
:class:`~sparsewino.nn.WinogradConv3d` (spatial or Winograd domain, masked, or low-rank
:class:`~sparsewino.nn.LowRankWinogradConv3d`), its effective Winograd weights are packed once
per position (zero / sparse / dense, :mod:`~sparsewino.engine.packing`) and run by the C
kernel's ``conv3d`` operation: input transform, per-position product (an all-zero position,
such as a pruned column of a low-rank layer, is skipped entirely), output transform, with
BatchNorm3d folded in and a residual addition and ReLU fused into the output stage. It runs
alone (``forward``) or as one ``conv3d`` step of a compiled model's program.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..nn.conv import WinogradConv3d
from . import kernels
from .modules import WinogradInferenceModule, kernel_reason

__all__ = ["SparseWinogradConv3d", "unsupported_reason3d"]


def unsupported_reason3d(layer: Any) -> str | None:
    """Why the engine cannot compile ``layer`` (a WinogradConv3d), or ``None`` when it can."""
    if not isinstance(layer, WinogradConv3d):
        return f"{type(layer).__name__} is not a WinogradConv3d"
    if len(set(layer.points)) != 1:
        return "different interpolation points per dimension: the kernel needs one algorithm"
    return kernel_reason(layer, layer.kernel_size, layer.tile, layer.in_channels, "D, H and W")


class SparseWinogradConv3d(WinogradInferenceModule):
    """Inference-only stride-1 3-D Winograd convolution running the fused sparse CPU kernel.

    Built by :func:`sparsewino.engine.compile` (or :meth:`from_layer`) from a
    :class:`~sparsewino.nn.WinogradConv3d` or :class:`~sparsewino.nn.LowRankWinogradConv3d`.
    ``forward(x)`` (``x``: ``(N, C, D, H, W)`` or ``(C, D, H, W)``), or ``forward(x, residual)``
    for a layer compiled with a fused residual addition. Inference only.

    Args:
        spec: layer configuration (three padding pairs: D, H, W).
        packed: the packed ``(n³, K, C)`` Winograd weights.
        bias: ``(K,)`` or ``None``.
        threads: OpenMP threads; ``None`` uses ``torch.get_num_threads()`` at each call.

    Attributes:
        threads, tile_block, kernel_mode, lanes: as :class:`~sparsewino.engine.SparseWinogradConv2d`
            (the 3-D transforms always run 8 tiles per vector; lanes sets the element-wise
            stage).

    Examples:
        >>> from sparsewino.nn import WinogradConv3d
        >>> layer = WinogradConv3d(4, 8, 3, padding=1, tile=2).eval()
        >>> fast = SparseWinogradConv3d.from_layer(layer)
        >>> x = torch.randn(1, 4, 5, 6, 7)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), atol=1e-4)
        True
    """

    _dims = 3
    _op = "conv3d"

    @classmethod
    def from_layer(cls, layer: WinogradConv3d, threads: int | None = None,
                   formats: str | Sequence[str] = "auto", relu_output: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   residual: bool = False, precision: str = "fp32") -> "SparseWinogradConv3d":
        """Compile one 3-D Winograd layer (its effective Winograd weights: masks, U·V).

        Args:
            layer: a ``WinogradConv3d`` (spatial or Winograd domain) or low-rank layer.
            threads: see the class.
            formats: ``"auto"``, ``"sparse"``, ``"dense"`` or one name per position.
            relu_output: fuse a following ReLU.
            scale, shift: a following eval-mode BatchNorm3d ``y * scale + shift``, folded in.
            residual: take a second input added to the output (before the ReLU).
            precision: ``"fp32"`` or ``"fp16"`` weights (see :mod:`~sparsewino.engine.packing`).

        Raises:
            ValueError: the layer cannot be compiled (see :func:`unsupported_reason3d`).
        """
        reason = unsupported_reason3d(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        return cls._compile(layer, threads, formats, relu_output, scale, shift, residual,
                            precision=precision)

    def fill_args(self, batch: int, depth: int, height: int, width: int, threads: int,
                  backend_name: str) -> kernels.SwConv3dArgs:
        """The kernel's argument struct for an input of (batch, C, depth, height, width) (data
        and workspace pointers left unset)."""
        spec = self._spec
        args = kernels.SwConv3dArgs()
        args.N, args.C = batch, spec.in_channels
        args.D, args.H, args.W = depth, height, width
        args.K = spec.out_channels
        args.Do, args.Ho, args.Wo = self.output_size(depth, height, width)
        args.n, args.m = spec.n, spec.tile
        args.pad_front, args.pad_top, args.pad_left = (pad[0] for pad in spec.padding)
        args.bt, args.at = self._bt.data_ptr(), self._at.data_ptr()
        args.w = self._packed.struct()
        args.bias = self._bias.data_ptr()
        args.relu_input, args.relu_output = int(spec.winograd_relu), int(spec.relu_output)
        args.threads, args.isa = threads, kernels.isa_code(backend_name)
        args.tile_block, args.mode, args.lanes = self.tile_block, self.kernel_mode, self.lanes
        return args
