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

import ctypes
import functools
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from ..nn.conv import WinogradConv3d
from ..nn.functional import positions_first, winograd_conv
from ..winograd.algorithm import WinogradAlgorithm, algorithm
from ..winograd.tiles import output_size
from . import kernels
from .modules import InferenceModule, _affine
from .packing import PackedMatrices

__all__ = ["SparseWinogradConv3d", "LayerSpec3d", "unsupported_reason3d", "pack_winograd"]


def unsupported_reason3d(layer: Any) -> str | None:
    """Why the engine cannot compile ``layer`` (a WinogradConv3d), or ``None`` when it can."""
    if not isinstance(layer, WinogradConv3d):
        return f"{type(layer).__name__} is not a WinogradConv3d"
    weight = layer.weight
    if weight.device.type != "cpu":
        return f"weights on {weight.device}: the engine runs on CPU"
    if weight.dtype != torch.float32:
        return f"dtype {weight.dtype}: the kernels are float32"
    if len(set(layer.kernel_size)) != 1 or len(set(layer.tile)) != 1:
        return (f"kernel {layer.kernel_size} with tile {layer.tile}: the kernel needs the same "
                "F(m, r) along D, H and W")
    if len(set(layer.points)) != 1:
        return "different interpolation points per dimension: the kernel needs one algorithm"
    m, r = layer.tile[0], layer.kernel_size[0]
    n = m + r - 1
    if not 2 <= n <= 8 or m >= n:
        return f"input tile n = {n}: the kernel supports 2 <= n <= 8 (F(2,3)³, F(4,3)³, ...)"
    if layer.in_channels > kernels.MAX_COLUMNS:
        return f"{layer.in_channels} input channels: the kernel supports at most {kernels.MAX_COLUMNS}"
    return None


def pack_winograd(q: torch.Tensor, groups: int, bias: torch.Tensor | None,
                  scale: torch.Tensor | None, shift: torch.Tensor | None,
                  formats: str | Sequence[str]) -> tuple[PackedMatrices, torch.Tensor | None]:
    """Pack Winograd weights ``(K, C/groups, *n)`` positions first, block-diagonal for groups,
    with a per-channel affine map ``y * scale + shift`` folded into weights and bias."""
    q = q.detach().to(device="cpu", dtype=torch.float32)
    k, cg = q.shape[:2]
    u = positions_first(q)                                        # (P, K, C/g)
    u, bias = _affine(u, bias.detach().float() if bias is not None else None, scale, shift)
    if groups > 1:
        full = torch.zeros(u.shape[0], k, cg * groups)
        kg = k // groups
        for g in range(groups):
            full[:, g * kg:(g + 1) * kg, g * cg:(g + 1) * cg] = u[:, g * kg:(g + 1) * kg]
        u = full
    return PackedMatrices.pack(u, formats), bias


@dataclass(frozen=True)
class LayerSpec3d:
    """The fixed configuration of a compiled 3-D Winograd layer (immutable after compile)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    tile: int
    padding: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    points: tuple | None
    winograd_relu: bool
    relu_output: bool
    groups: int = 1            # of the source layer; weights are packed block-diagonal
    residual: bool = False     # forward(x, residual) adds a tensor before the output ReLU

    @property
    def n(self) -> int:
        return self.tile + self.kernel_size - 1

    @functools.cached_property
    def growth(self) -> tuple[int, int, int]:
        """Output size minus input size along D, H and W."""
        return output_size((0, 0, 0), (self.kernel_size,) * 3, self.padding)

    @functools.cached_property
    def algorithm(self) -> WinogradAlgorithm:
        return algorithm(self.tile, self.kernel_size, self.points)


class SparseWinogradConv3d(InferenceModule):
    """Inference-only stride-1 3-D Winograd convolution running the fused sparse CPU kernel.

    Built by :func:`sparsewino.engine.compile` (or :meth:`from_layer`) from a
    :class:`~sparsewino.nn.WinogradConv3d` or :class:`~sparsewino.nn.LowRankWinogradConv3d`.
    ``forward(x)`` (``x``: ``(N, C, D, H, W)`` or ``(C, D, H, W)``), or ``forward(x, residual)``
    for a layer compiled with a fused residual addition. Inference only.

    Args:
        spec: layer configuration.
        packed: the packed ``(n³, K, C)`` Winograd weights.
        bias: ``(K,)`` or ``None``.
        threads: OpenMP threads; ``None`` uses ``torch.get_num_threads()`` at each call.

    Attributes:
        threads, tile_block, kernel_mode, lanes: as :class:`~sparsewino.engine.SparseWinogradConv2d`.

    Examples:
        >>> from sparsewino.nn import WinogradConv3d
        >>> layer = WinogradConv3d(4, 8, 3, padding=1, tile=2).eval()
        >>> fast = SparseWinogradConv3d.from_layer(layer)
        >>> x = torch.randn(1, 4, 5, 6, 7)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), atol=1e-4)
        True
    """

    def __init__(self, spec: LayerSpec3d, packed: PackedMatrices, bias: torch.Tensor | None,
                 threads: int | None = None) -> None:
        if (packed.positions, packed.rows, packed.cols) != (spec.n ** 3, spec.out_channels,
                                                            spec.in_channels):
            raise ValueError(f"packed weights {(packed.positions, packed.rows, packed.cols)} do "
                             f"not fit F({spec.tile},{spec.kernel_size})³ with "
                             f"{spec.in_channels} -> {spec.out_channels} channels")
        object.__setattr__(self, "_spec", spec)
        super().__init__(packed, bias, spec.out_channels, threads)
        self.tile_block = self.kernel_mode = self.lanes = 0
        at, _, bt = spec.algorithm.matrices(torch.float32)
        self._bt, self._at = bt.contiguous().clone(), at.contiguous().clone()

    @classmethod
    def from_layer(cls, layer: WinogradConv3d, threads: int | None = None,
                   formats: str | Sequence[str] = "auto", relu_output: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   residual: bool = False) -> "SparseWinogradConv3d":
        """Compile one 3-D Winograd layer (its effective Winograd weights: masks, U·V).

        Args:
            layer: a ``WinogradConv3d`` (spatial or Winograd domain) or low-rank layer.
            threads: see the class.
            formats: ``"auto"``, ``"sparse"``, ``"dense"`` or one name per position.
            relu_output: fuse a following ReLU.
            scale, shift: a following eval-mode BatchNorm3d ``y * scale + shift``, folded in.
            residual: take a second input added to the output (before the ReLU).

        Raises:
            ValueError: the layer cannot be compiled (see :func:`unsupported_reason3d`).
        """
        reason = unsupported_reason3d(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        with torch.no_grad():
            packed, bias = pack_winograd(layer.winograd_weight(), layer.groups, layer.bias,
                                         scale, shift, formats)
        spec = LayerSpec3d(in_channels=layer.in_channels, out_channels=layer.out_channels,
                           kernel_size=layer.kernel_size[0], tile=layer.tile[0],
                           padding=tuple(layer._padding_pairs), points=layer.points[0],
                           winograd_relu=layer.winograd_relu, relu_output=relu_output,
                           groups=layer.groups, residual=residual)
        return cls(spec, packed, bias, threads)

    # ------------------------------------------------------------------ read-only config
    @property
    def spec(self) -> LayerSpec3d:
        """The immutable layer configuration."""
        return self._spec

    @property
    def in_channels(self) -> int:
        return self._spec.in_channels

    @property
    def out_channels(self) -> int:
        return self._spec.out_channels

    @property
    def positions(self) -> int:
        return self._spec.n ** 3

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "spec": asdict(self._spec)}

    def set_extra_state(self, state: Any) -> None:
        if isinstance(state, dict) and "spec" in state and state["spec"] != asdict(self._spec):
            raise ValueError("SparseWinogradConv3d: the state was saved from a layer with a "
                             f"different configuration {state['spec']}; compile the matching "
                             "model instead")
        super().set_extra_state(state)

    # ------------------------------------------------------------------ forward
    def output_size(self, depth: int, height: int, width: int) -> tuple[int, int, int]:
        """Output (Do, Ho, Wo) for an input of (depth, height, width)."""
        return tuple(s + g for s, g in zip((depth, height, width), self._spec.growth))

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        self._check_common(x, 5)
        if x.dim() != 5:
            raise ValueError(f"{name} expects a 5-D input (N, C, D, H, W) or 4-D (C, D, H, W), "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} input channels, got input of "
                             f"shape {tuple(x.shape)} (channels are dimension 1)")
        if min(self.output_size(*x.shape[2:])) < 1 or min(x.shape[2:]) < 1:
            raise ValueError(f"{name}: input spatial size {tuple(x.shape[2:])} is too small for "
                             f"kernel {self._spec.kernel_size} with padding {self._spec.padding}")

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        spec = self._spec
        if (residual is not None) != spec.residual:
            raise TypeError(f"{type(self).__name__} was compiled "
                            f"{'with' if spec.residual else 'without'} a fused residual input")
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            residual = residual.unsqueeze(0) if residual is not None else None
            return self.forward(x.unsqueeze(0), residual).squeeze(0)
        self._check_input(x)
        name = kernels.backend()
        shape = (x.shape[0], spec.out_channels, *self.output_size(*x.shape[2:]))
        if residual is not None and (residual.shape != shape or residual.dtype != torch.float32
                                     or residual.device.type != "cpu"):
            name = "torch"                               # broadcasting residuals: the torch path
        if name == "torch" or x.shape[0] == 0:
            return self._torch_forward(x, residual)
        return self._forward_kernel(x, name, residual)

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        spec = self._spec
        if self._dense_cache is None:
            self._dense_cache = self._packed.dense()
        with torch.no_grad():
            y = winograd_conv(x, self._dense_cache, self._bias, (spec.algorithm,) * 3,
                              spec.padding, 1, spec.winograd_relu)
            if residual is not None:
                y = y + residual
            return torch.relu(y) if spec.relu_output else y

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

    def _forward_kernel(self, x: torch.Tensor, backend_name: str,
                        residual: torch.Tensor | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
        """Run the compiled kernel; ``out`` (tests poison it) receives the result if given."""
        x = x.contiguous()
        residual = residual.contiguous() if residual is not None else None
        batch, _, depth, height, width = x.shape
        shape = (batch, self.out_channels, *self.output_size(depth, height, width))
        if out is None:
            y = torch.empty(shape)
        elif out.shape != shape or out.dtype != torch.float32 or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous float32 tensor of shape {shape}")
        else:
            y = out
        threads = self.threads or torch.get_num_threads()
        key = (batch, depth, height, width, threads, backend_name, self.tile_block,
               self.kernel_mode, self.lanes)
        self._run("sw_conv3d_forward", key,
                  lambda: self.fill_args(batch, depth, height, width, threads, backend_name),
                  x, y, residual)
        return y

    def plan(self, input_shape: Sequence[int], threads: int | None = None) -> dict[str, Any]:
        """How the kernel would run an input of ``input_shape``: tiles per block, blocks, mode."""
        lib = kernels.library()
        if lib is None:
            raise RuntimeError(f"no compiled kernel: {kernels.load_error()}")
        batch, _, depth, height, width = input_shape
        name = kernels.backend()
        args = self.fill_args(batch, depth, height, width,
                              threads or self.threads or torch.get_num_threads(),
                              name if name != "torch" else "portable")
        out = [ctypes.c_int32() for _ in range(4)]
        kernels.check_status(lib.sw_conv3d_plan(ctypes.byref(args), *map(ctypes.byref, out)))
        tb, blocks, mode, isa = (v.value for v in out)
        names = {b.isa: b.name for b in kernels.backends.registered_backends() if b.isa}
        return {"tile_block": tb, "blocks": blocks,
                "mode": {1: "blocks", 2: "cooperative"}[mode], "isa": names[isa]}

    def extra_repr(self) -> str:
        spec = self._spec
        counts = self.format_counts()
        text = (f"{spec.in_channels}, {spec.out_channels}, kernel_size={spec.kernel_size}, "
                f"F({spec.tile},{spec.kernel_size})³, padding={spec.padding}, positions: "
                f"{counts['sparse']} sparse / {counts['dense']} dense / {counts['zero']} zero")
        for flag, label in ((spec.groups != 1, f"groups={spec.groups}"),
                            (spec.winograd_relu, "winograd_relu=True"),
                            (spec.residual, "residual=True"),
                            (spec.relu_output, "relu_output=True")):
            if flag:
                text += ", " + label
        return text
