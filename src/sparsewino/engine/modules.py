"""SparseWinogradConv2d: an inference-only Winograd layer holding pre-transformed, packed weights."""
from __future__ import annotations

import ctypes
import functools
import operator
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.conv import WinogradConv2d
from ..nn.functional import positions_first, winograd_conv
from ..winograd.algorithm import WinogradAlgorithm, algorithm
from ..winograd.tiles import output_size
from . import kernels
from .packing import FORMATS, PACKED_NAMES, pack_weights, unpack_weights, validate_packed

__all__ = ["SparseWinogradConv2d", "LayerSpec", "unsupported_reason", "check_threads"]

_WATCHED = PACKED_NAMES + ("bias", "bt", "at")      # buffers whose change needs re-validation
_VERSION = operator.attrgetter("_version")


@dataclass(frozen=True)
class LayerSpec:
    """The fixed configuration of a compiled layer (immutable after compile)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    tile: int
    padding: tuple[tuple[int, int], tuple[int, int]]
    points: tuple | None
    winograd_relu: bool
    relu_output: bool
    groups: int = 1            # of the source layer; weights are packed block-diagonal
    pool_output: int = 0       # 2: a fused 2x2 / stride-2 max-pool (floor mode) on the output

    @property
    def n(self) -> int:
        return self.tile + self.kernel_size - 1

    @functools.cached_property
    def growth(self) -> tuple[int, int]:
        """Output size minus input size along H and W (the output size of an empty input)."""
        return output_size((0, 0), (self.kernel_size,) * 2, self.padding)

    @functools.cached_property
    def algorithm(self) -> WinogradAlgorithm:
        return algorithm(self.tile, self.kernel_size, self.points)


def check_threads(threads: object) -> None:
    """Raise ``ValueError`` unless ``threads`` is a positive int or ``None``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")


def unsupported_reason(layer: nn.Module) -> str | None:
    """Why the engine cannot compile ``layer`` (a WinogradConv2d), or ``None`` when it can."""
    if not isinstance(layer, WinogradConv2d):
        return f"{type(layer).__name__} is not a WinogradConv2d"
    weight = layer.weight
    if weight.device.type != "cpu":
        return f"weights on {weight.device}: the engine runs on CPU"
    if weight.dtype != torch.float32:
        return f"dtype {weight.dtype}: the kernels are float32"
    (kh, kw), (mh, mw) = layer.kernel_size, layer.tile
    if kh != kw or mh != mw:
        return (f"non-square kernel {layer.kernel_size} or tile {layer.tile}: the kernel "
                "needs the same F(m, r) along H and W")
    n = mh + kh - 1
    if not 2 <= n <= 8 or mh >= n:
        return f"input tile n = {n}: the kernel supports 2 <= n <= 8 (F(2,3), F(4,3), F(6,3), ...)"
    return None


class SparseWinogradConv2d(nn.Module):
    """Inference-only stride-1 Winograd convolution running the fused sparse CPU kernel.

    Built by :func:`sparsewino.engine.compile` (or :meth:`from_layer`) from a
    :class:`~sparsewino.nn.WinogradConv2d`: its effective Winograd weights (prune masks
    applied) are transformed once and packed per position (zero / CSR / dense, see
    :mod:`~sparsewino.engine.packing`). Grouped layers are packed as block-diagonal weights.

    The packed tensors are buffers (in ``state_dict``). Editing them in place is detected:
    the next call re-validates the packing (so the kernel never reads out of bounds) and uses
    the new values; a packing that no longer fits raises ``ValueError``. The configuration
    (``spec``) is immutable.

    Inference only: ``forward`` raises in training mode or when the input requires grad;
    the output never requires grad.

    Args:
        spec: layer configuration.
        packed: tensors from :func:`~sparsewino.engine.packing.pack_weights`.
        bias: ``(K,)`` or ``None`` (stored as zeros then).
        threads: OpenMP threads; ``None`` uses ``torch.get_num_threads()`` at each call.

    Attributes:
        threads: as the argument (may be changed).
        tile_block, kernel_mode: tuning knobs for benchmarks (0 = automatic): tiles per block
            (rounded up to a power of two, 8 to 64) and 1 = independent blocks per thread,
            2 = all threads cooperate on each block.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = WinogradConv2d(8, 16, 3, padding=1).eval()
        >>> fast = SparseWinogradConv2d.from_layer(layer)
        >>> x = torch.randn(1, 8, 9, 9)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), atol=1e-4)
        True
    """

    def __init__(self, spec: LayerSpec, packed: dict[str, torch.Tensor],
                 bias: torch.Tensor | None, threads: int | None = None) -> None:
        super().__init__()
        check_threads(threads)
        object.__setattr__(self, "_spec", spec)
        self.threads = threads
        self.tile_block = 0
        self.kernel_mode = 0
        for name in PACKED_NAMES:
            self.register_buffer(name, packed[name].contiguous())
        self.register_buffer("bias", torch.zeros(spec.out_channels) if bias is None else
                             bias.detach().to(torch.float32).clone().contiguous())
        alg = spec.algorithm
        at, _, bt = alg.matrices(torch.float32)
        self.register_buffer("bt", bt.contiguous().clone(), persistent=False)
        self.register_buffer("at", at.contiguous().clone(), persistent=False)
        self._dense_cache: torch.Tensor | None = None
        self._workspace = torch.empty(0)
        self._new_args()
        self.eval()
        self._refresh()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layer(cls, layer: WinogradConv2d, threads: int | None = None,
                   formats: str | Sequence[str] = "auto", relu_output: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   pool_output: int = 0) -> "SparseWinogradConv2d":
        """Compile one :class:`~sparsewino.nn.WinogradConv2d`.

        Args:
            layer: the layer (spatial or Winograd domain, prune masks honoured).
            threads: see the class.
            formats: ``"auto"``, ``"sparse"``, ``"dense"`` or one name per position.
            relu_output: apply ReLU to the output (a fused following ``nn.ReLU``).
            scale, shift: per-output-channel affine map folded into weights and bias
                (a fused following eval-mode BatchNorm): ``y * scale + shift``.
            pool_output: 2 to fuse a following ``nn.MaxPool2d(2)`` (floor mode) into the
                output stage (needs an even tile m), else 0.

        Raises:
            ValueError: the layer cannot be compiled (see :func:`unsupported_reason`).
        """
        reason = unsupported_reason(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        if pool_output not in (0, 2) or (pool_output and layer.tile[0] % 2):
            raise ValueError(f"pool_output must be 0 or 2 (with an even tile), got "
                             f"{pool_output} for tile {layer.tile}")
        with torch.no_grad():
            q = layer.winograd_weight().detach().to(torch.float32)       # (K, C/g, n, n)
            k, cg = q.shape[:2]
            groups = layer.groups
            bias = layer.bias.detach().float() if layer.bias is not None else None
            if scale is not None:
                q = q * scale.to(q).reshape(-1, 1, 1, 1)
                bias = (bias if bias is not None else torch.zeros(k)) * scale.to(q)
            if shift is not None:
                bias = (bias if bias is not None else torch.zeros(k)) + shift.to(q)
            u = positions_first(q)                                        # (P, K, C/g)
            if groups > 1:                                                # block-diagonal
                full = torch.zeros(u.shape[0], k, cg * groups)
                kg = k // groups
                for g in range(groups):
                    full[:, g * kg:(g + 1) * kg, g * cg:(g + 1) * cg] = u[:, g * kg:(g + 1) * kg]
                u = full
            packed = pack_weights(u, formats)
        spec = LayerSpec(in_channels=layer.in_channels, out_channels=layer.out_channels,
                         kernel_size=layer.kernel_size[0], tile=layer.tile[0],
                         padding=tuple(layer._padding_pairs), points=layer.points[0],
                         winograd_relu=layer.winograd_relu, relu_output=relu_output,
                         groups=groups, pool_output=pool_output)
        return cls(spec, packed, bias, threads)

    # ------------------------------------------------------------------ read-only config
    @property
    def spec(self) -> LayerSpec:
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
        return self._spec.n ** 2

    def format_counts(self) -> dict[str, int]:
        """How many Winograd positions are stored in each format."""
        codes = self.formats.tolist()
        return {name: codes.count(i) for i, name in enumerate(FORMATS)}

    def density(self) -> float:
        """Fraction of non-zero Winograd weights (over K x C x P, block-diagonal for groups)."""
        return float((self.dense_weights() != 0).sum()) / (
            self.positions * self.out_channels * self.in_channels)

    def dense_weights(self) -> torch.Tensor:
        """The packed weights as a dense ``(P, K, C)`` tensor.

        Only the ``"torch"`` backend keeps this dense copy (it multiplies with it at every
        call); reports and counts unpack it afresh, so a compiled model holds just the packing.
        """
        self._refresh()
        if self._dense_cache is not None:
            return self._dense_cache
        return unpack_weights(self._packed(), self.out_channels, self.in_channels)

    def _packed(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in PACKED_NAMES}

    # ------------------------------------------------------------------ change detection
    def _fingerprint(self) -> tuple:
        # Identity, version counter (bumped by every in-place change) and data pointer of
        # each buffer the kernel reads; builtin maps keep this cheap (called every forward).
        tensors = tuple(map(self._buffers.get, _WATCHED))
        try:
            return (tuple(map(id, tensors)), tuple(map(_VERSION, tensors)),
                    tuple(map(torch.Tensor.data_ptr, tensors)))
        except (AttributeError, TypeError):          # a buffer was deleted or set to None
            return ()

    def _refresh(self) -> None:
        """Re-validate the packed buffers if they changed since the last call."""
        fingerprint = self._fingerprint()
        if fingerprint == self._seen:
            return
        spec = self._spec
        validate_packed(self._packed(), self.positions, spec.out_channels, spec.in_channels)
        bias = self._buffers.get("bias")
        if not isinstance(bias, torch.Tensor) or bias.shape != (spec.out_channels,) or \
                bias.dtype != torch.float32 or bias.device.type != "cpu" or \
                not bias.is_contiguous():
            raise ValueError(f"bias must be a contiguous float32 CPU tensor of shape "
                             f"({spec.out_channels},); recompile instead of editing it")
        args = self._args
        args.K, args.C = spec.out_channels, spec.in_channels
        args.n, args.m = spec.n, spec.tile
        args.pad_top, args.pad_left = spec.padding[0][0], spec.padding[1][0]
        args.bt, args.at = self.bt.data_ptr(), self.at.data_ptr()
        for name in PACKED_NAMES:
            setattr(args, name, getattr(self, name).data_ptr())
        args.bias = self.bias.data_ptr()
        args.relu_input, args.relu_output = int(spec.winograd_relu), int(spec.relu_output)
        args.pool = spec.pool_output
        self._dense_cache = None
        self._seen = fingerprint

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # The packed tensors' sizes depend on the sparsity pattern: take the incoming sizes
        # (the next call re-validates the whole packing).
        for name in PACKED_NAMES:
            incoming = state_dict.get(prefix + name)
            if isinstance(incoming, torch.Tensor) and incoming.shape != self._buffers[name].shape:
                self._buffers[name] = torch.empty(incoming.shape, dtype=self._buffers[name].dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "SparseWinogradConv2d":
        result = super()._apply(fn, *args, **kwargs)
        self._seen = None                    # buffers may have been replaced: re-validate
        self._last_key = None
        return result

    def _new_args(self) -> None:
        self._lock = threading.Lock()
        self._args = kernels.SwConv2dArgs()
        self._args_ptr = ctypes.pointer(self._args)
        self._last_key: tuple | None = None
        self._run = None
        self._seen = None

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._new_args()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for transient in ("_lock", "_args", "_args_ptr", "_last_key", "_seen", "_run"):
            state.pop(transient, None)
        state["_workspace"] = torch.empty(0)
        state["_dense_cache"] = None         # derived from the packing; rebuilt when needed
        return state

    # ------------------------------------------------------------------ forward
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (Ho, Wo) for an input of (height, width) (after the fused pool, if any)."""
        grow_h, grow_w = self._spec.growth
        pool = self._spec.pool_output or 1
        return (height + grow_h) // pool, (width + grow_w) // pool

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
        if self.training:
            raise RuntimeError(f"{name} is inference-only: call .eval() (engine.compile returns "
                               "the model in eval mode); train the uncompiled model instead")
        if x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(f"{name} is inference-only and computes no gradients; run it "
                               "under torch.no_grad() or on an input that does not require grad")
        if x.device.type != "cpu":
            raise ValueError(f"{name} runs on CPU; got an input on {x.device}. Move it with "
                             "x.cpu() (or keep the uncompiled model on the GPU)")
        if x.dtype != torch.float32:
            raise TypeError(f"{name} computes in float32; got {x.dtype}. Cast with x.float()")
        if x.dim() != 4:
            raise ValueError(f"{name} expects a 4-D input (N, C, H, W) or 3-D (C, H, W), got "
                             f"shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} input channels, got input of "
                             f"shape {tuple(x.shape)} (channels are dimension 1)")
        if min(self.output_size(x.shape[2], x.shape[3])) < 1 or min(x.shape[2:]) < 1:
            raise ValueError(f"{name}: input spatial size {tuple(x.shape[2:])} is too small for "
                             f"kernel {self._spec.kernel_size} with padding {self._spec.padding}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self._spec
        # One combined test for the usual case; _check_input explains anything unusual.
        if not (type(x) is torch.Tensor and x.dim() == 4 and x.dtype is torch.float32 and
                x.is_cpu and not self.training and x.shape[1] == spec.in_channels and
                x.shape[2] + spec.growth[0] >= (spec.pool_output or 1) and
                x.shape[3] + spec.growth[1] >= (spec.pool_output or 1) and x.numel() and
                not (x.requires_grad and torch.is_grad_enabled())):
            if isinstance(x, torch.Tensor) and x.dim() == 3:
                return self.forward(x.unsqueeze(0)).squeeze(0)
            self._check_input(x)
        if self._fingerprint() != self._seen:
            self._refresh()
        name = kernels.backend()
        if name == "torch" or x.shape[0] == 0:                      # no kernel for N = 0
            return self._forward_torch(x)
        return self._forward_kernel(x, name)

    def _forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        spec = self._spec
        if self._dense_cache is None:
            self._dense_cache = self.dense_weights()
        with torch.no_grad():
            y = winograd_conv(x, self._dense_cache, self.bias, (spec.algorithm,) * 2,
                              spec.padding, 1, spec.winograd_relu)
            if spec.relu_output:
                y = torch.relu_(y)
            return F.max_pool2d(y, spec.pool_output) if spec.pool_output else y

    def _forward_kernel(self, x: torch.Tensor, backend_name: str,
                        out: torch.Tensor | None = None) -> torch.Tensor:
        """Run the compiled kernel; ``out`` (tests poison it) receives the result if given."""
        if not x.is_contiguous():
            x = x.contiguous()
        batch, _, height, width = x.shape
        spec = self._spec
        ho, wo = self.output_size(height, width)
        threads = self.threads or torch.get_num_threads()
        if out is None:
            y = torch.empty((batch, spec.out_channels, ho, wo))
        elif out.shape != (batch, spec.out_channels, ho, wo) or out.dtype != torch.float32 or \
                not out.is_contiguous():
            raise ValueError(f"out must be a contiguous float32 tensor of shape "
                             f"{(batch, spec.out_channels, ho, wo)}")
        else:
            y = out
        key = (batch, height, width, threads, backend_name, self.tile_block, self.kernel_mode)
        with self._lock:
            if key != self._last_key:
                self._prepare(key)
            args = self._args
            args.x = x.data_ptr()
            args.y = y.data_ptr()
            status = self._run(self._args_ptr)
        if status:
            _check(status)
        return y

    def _prepare(self, key: tuple) -> None:
        """Set the call geometry and make sure the (reused) workspace is large enough."""
        args = self._args
        batch, height, width, threads, backend_name, tile_block, mode = key
        self._set_geometry(args, batch, height, width, threads, tile_block, mode)
        args.isa = kernels.ISA_CODES[backend_name]
        lib = kernels.library()
        floats = ctypes.c_int64()
        _check(lib.sw_conv2d_workspace(self._args_ptr, ctypes.byref(floats)))
        if self._workspace.numel() < floats.value:
            # Kept across calls: no fresh large allocation (and page faults) per call.
            self._workspace = torch.empty(max(floats.value, 16))
        self._run = lib.sw_conv2d_forward
        args.workspace = self._workspace.data_ptr()
        args.workspace_floats = self._workspace.numel()
        self._last_key = key

    def _set_geometry(self, args: kernels.SwConv2dArgs, batch: int, height: int, width: int,
                      threads: int, tile_block: int, mode: int) -> None:
        """The per-call fields of ``args`` (all but the ISA, the data and the workspace)."""
        grow_h, grow_w = self._spec.growth
        args.N, args.H, args.W = batch, height, width
        args.Ho, args.Wo = height + grow_h, width + grow_w            # before the fused pool
        args.threads, args.tile_block, args.mode = threads, tile_block, mode

    def plan(self, input_shape: Sequence[int], threads: int | None = None) -> dict[str, Any]:
        """How the kernel would run an input of ``input_shape``: tiles per block, blocks, mode."""
        lib = kernels.library()
        if lib is None:
            raise RuntimeError(f"no compiled kernel: {kernels.load_error()}")
        batch, _, height, width = input_shape
        args = kernels.SwConv2dArgs.from_buffer_copy(self._args)
        self._set_geometry(args, batch, height, width,
                           threads or self.threads or torch.get_num_threads(), self.tile_block,
                           self.kernel_mode)
        args.isa = 0
        out = [ctypes.c_int32() for _ in range(4)]
        _check(lib.sw_conv2d_plan(ctypes.byref(args), *map(ctypes.byref, out)))
        tb, blocks, mode, isa = (v.value for v in out)
        return {"tile_block": tb, "blocks": blocks,
                "mode": {1: "blocks", 2: "cooperative"}[mode],
                "isa": {1: "portable", 2: "avx2"}[isa]}

    def extra_repr(self) -> str:
        spec = self._spec
        counts = self.format_counts()
        text = (f"{spec.in_channels}, {spec.out_channels}, kernel_size={spec.kernel_size}, "
                f"F({spec.tile},{spec.kernel_size}), padding={spec.padding}, positions: "
                f"{counts['sparse']} sparse / {counts['dense']} dense / {counts['zero']} zero")
        if spec.groups != 1:
            text += f", groups={spec.groups}"
        if spec.winograd_relu:
            text += ", winograd_relu=True"
        if spec.relu_output:
            text += ", relu_output=True"
        if spec.pool_output:
            text += f", max_pool={spec.pool_output}"
        return text


def _check(status: int) -> None:
    if status != 0:
        raise RuntimeError(f"sparsewino kernel failed: "
                           f"{kernels.STATUS_MESSAGES.get(status, f'status {status}')}")
