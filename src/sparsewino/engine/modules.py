"""Inference-only compiled layers holding packed weights: Winograd convolutions and GEMM layers.

* :class:`SparseWinogradConv2d` — a stride-1 Winograd convolution (from a
  :class:`~sparsewino.nn.WinogradConv2d`), with BatchNorm folded in and ReLU, a 2x2 max-pool
  or a residual addition fused into its output stage;
* :class:`SparseLinear` — a fully connected layer (from ``nn.Linear``, BatchNorm1d/ReLU fused);
* :class:`SparsePointwiseConv2d` — a 1x1 convolution of any stride (from ``nn.Conv2d``).

Their weights are a :class:`~sparsewino.engine.packing.PackedMatrices`: validated once and
never exposed, so no write through ``.numpy()``, ``.data`` or a storage alias can reach what
the kernel reads; ``load_state_dict`` repacks (validated) under the module's lock, so it
cannot race with a running forward pass. Each module runs alone (``forward``) or as one step
of a compiled model's program (:mod:`sparsewino.engine.program`), through the same
``fill_args`` description.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.conv import WinogradConv2d
from ..nn.functional import positions_first, winograd_conv
from ..winograd.algorithm import WinogradAlgorithm, algorithm
from ..winograd.tiles import output_size
from . import kernels
from .packing import PackedMatrices, describe_formats, main_format, round_bf16

__all__ = ["CompiledLayer", "SparseWinogradConv2d", "SparseLinear", "SparsePointwiseConv2d", "LayerSpec",
           "unsupported_reason", "kernel_reason", "check_threads", "InferenceModule", "CompiledConv",
           "WinogradInferenceModule", "pack_winograd", "OpPlan"]


#: The most OpenMP threads a compiled layer may ask for (far more would exhaust the stacks).
MAX_THREADS = max(1024, 4 * (os.cpu_count() or 1))


def check_threads(threads: object) -> None:
    """Raise ``ValueError`` unless ``threads`` is ``None`` or an int in 1..:data:`MAX_THREADS`."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if threads is not None and threads > MAX_THREADS:
        raise ValueError(f"threads={threads} is more than {MAX_THREADS} (this machine has "
                         f"{os.cpu_count()} CPUs); use at most the number of cores, or None")


def kernel_reason(layer: nn.Module, sizes: Sequence[int], tiles: Sequence[int], columns: int,
                  axes: str, what: str = "kernel") -> str | None:
    """The checks every compiled Winograd layer shares, or ``None`` when they pass: float32 CPU
    weights, one F(m, r) along every axis (``sizes``: the kernel's or its DWM pieces' taps),
    input tile 2 <= n <= 8, at most :data:`~sparsewino.engine.kernels.MAX_COLUMNS` input
    columns of the packed matrices."""
    weight = layer.weight
    if weight.device.type != "cpu":
        return f"weights on {weight.device}: the engine runs on CPU"
    if weight.dtype != torch.float32:
        return f"dtype {weight.dtype}: the kernels are float32"
    if len(set(sizes)) != 1 or len(set(tiles)) != 1:
        return (f"non-square {what} {tuple(sizes)} with tile {tuple(tiles)}: the kernel needs the "
                f"same F(m, r) along {axes}")
    m, r = tiles[0], sizes[0]
    n, largest = m + r - 1, kernels.max_n()
    if not 2 <= n <= largest or m >= n:
        return (f"{what} F({m},{r}), input tile n = {n}: the kernel supports 2 <= n <= "
                f"{largest} and r >= 2 (F(2,3), F(4,3), F(6,3), ...)")
    if columns > kernels.MAX_COLUMNS:
        return f"{columns} input columns: the kernel supports at most {kernels.MAX_COLUMNS}"
    return None


def unsupported_reason(layer: nn.Module) -> str | None:
    """Why the engine cannot compile ``layer`` (a WinogradConv2d), or ``None`` when it can."""
    if not isinstance(layer, WinogradConv2d):
        return f"{type(layer).__name__} is not a WinogradConv2d"
    if getattr(layer, "decomposition", None) is not None:
        return "a decomposed (DWM) layer: compile it as a SparseDecomposedConv2d"
    return kernel_reason(layer, layer.kernel_size, layer.tile, layer.in_channels, "H and W")


def bf16_inputs(packed: PackedMatrices, v: torch.Tensor) -> torch.Tensor:
    """The kernels' view of the inputs ``v`` ``(P, C, ...)`` of ``packed`` (P matrices): for bf16
    weights, rounded to bf16 at the positions stored dense (their products are bf16; sparse
    positions multiply the bf16 weights with the fp32 inputs); otherwise ``v``."""
    if packed.precision != "bf16":
        return v
    dense = torch.tensor([f == "dense" for f in packed.formats()])
    return torch.where(dense.reshape(-1, *([1] * (v.dim() - 1))), round_bf16(v), v)


def torch_product(packed: PackedMatrices, weights: torch.Tensor
                  ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The Winograd-domain product of the PyTorch path for ``packed``'s precision: ``None``
    (winograd_conv's own) or, for bf16 weights, one that rounds the inputs as the kernels do
    (:func:`bf16_inputs`; the weights ``(P, K, C)`` already are rounded)."""
    if packed.precision != "bf16":
        return None
    return lambda v: torch.matmul(weights, bf16_inputs(packed, v))


def _affine(weight_rows: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor | None,
            shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold ``y * scale + shift`` into weights (rows = output channels, dim 1 after P for
    positions-first) and bias."""
    rows = weight_rows.shape[-2]
    if scale is not None:
        weight_rows = weight_rows * scale.to(weight_rows).reshape(-1, 1)
        bias = (bias if bias is not None else torch.zeros(rows)) * scale.float()
    if shift is not None:
        bias = (bias if bias is not None else torch.zeros(rows)) + shift.float()
    return weight_rows, bias


class CompiledLayer(nn.Module):
    """Base of every compiled layer: inference only, a threads setting, a lock (shared with the
    compiled model that holds it), and one runner for its operations (:meth:`_run_plans`).

    ``generation`` changes whenever the weights do (compiled models re-plan their programs).
    """

    def __init__(self, threads: int | None) -> None:
        super().__init__()
        check_threads(threads)
        self.threads = threads
        self._lock = threading.RLock()
        self._changed()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for transient in ("_lock", "_args", "_last_key", "_dense_cache"):
            state.pop(transient, None)
        state["_workspace"] = torch.empty(0)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._lock = threading.RLock()
        self._args, self._last_key, self._dense_cache = None, None, None

    def share_lock(self, lock: threading.RLock) -> None:
        """Use ``lock`` (a compiled model's) so that reloading weights waits for its calls."""
        self._lock = lock

    def _changed(self) -> None:
        """The weights changed: plan again, and so do the programs that hold this layer."""
        self._workspace = torch.empty(0)
        self._last_key: tuple | None = None
        self._args: Any = None
        self.generation = getattr(self, "generation", 0) + 1

    # ------------------------------------------------------------------ calling
    def _check_common(self, x: torch.Tensor, dims: int) -> None:
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

    def _run_plans(self, key: tuple, lower: Callable[[], list["OpPlan"]],
                   buffers: dict[str, torch.Tensor | None], poison: bool = False) -> torch.Tensor:
        """Run this layer's operations (``lower()``, planned again only when ``key`` changes) as
        one ``sw_run_program`` call over ``buffers`` (``"x"``, ``"residual"``, and ``"y"`` when
        the caller gives the output); returns ``buffers["y"]``. ``poison`` (tests): NaN in every
        new buffer and the workspace first, so that unwritten data shows up."""
        lib = kernels.library()
        with self._lock:
            if key != self._last_key:
                plans = lower()
                need = max(kernels.workspace_floats(p.kind, p.args) for p in plans)
                if self._workspace.numel() < need:
                    self._workspace = torch.empty(max(need, 16))
                for plan in plans:
                    if hasattr(plan.args, "workspace"):
                        plan.args.workspace = self._workspace.data_ptr()
                        plan.args.workspace_floats = self._workspace.numel()
                array = kernels.op_array([(p.kind, p.args) for p in plans])
                self._args, self._last_key = (plans, array), key
            plans, array = self._args
            for plan in plans:
                if buffers.get(plan.output) is None:
                    buffers[plan.output] = (torch.full(plan.shape, float("nan")) if poison
                                            else torch.empty(plan.shape))
            if poison:
                self._workspace.fill_(float("nan"))
            for plan in plans:
                for name, ref in plan.inputs:
                    data = buffers.get(ref)
                    setattr(plan.args, name, data.data_ptr() + 4 * plan.offsets.get(name, 0)
                            if data is not None else None)
                setattr(plan.args, plan.output_field, buffers[plan.output].data_ptr()
                        + 4 * plan.offsets.get(plan.output_field, 0))
            failed = ctypes.c_int32()
            kernels.check_status(lib.sw_run_program(array, len(plans), ctypes.byref(failed)),
                                 f"{type(self).__name__}, operation {failed.value}")
            return buffers["y"]



class InferenceModule(CompiledLayer):
    """Base of the compiled layers with packed weights (:class:`PackedMatrices`) and a bias.

    Subclasses implement ``_forward_kernel`` (the C library), ``_torch_forward`` (the
    ``torch`` backend) and ``fill_args`` (the argument struct for one input shape).
    """

    def __init__(self, packed: PackedMatrices, bias: torch.Tensor | None, out_features: int,
                 threads: int | None) -> None:
        super().__init__(threads)
        self._install(packed, bias if bias is not None else torch.zeros(out_features))
        self.eval()

    def _install(self, packed: PackedMatrices, bias: torch.Tensor) -> None:
        bias = bias.detach().to(device="cpu", dtype=torch.float32).reshape(-1).clone()
        if bias.shape != (packed.rows,):
            raise ValueError(f"bias must have {packed.rows} entries, got {tuple(bias.shape)}")
        self._packed, self._bias = packed, bias.contiguous()
        self._dense_cache: torch.Tensor | None = None
        self._changed()

    # ------------------------------------------------------------------ weights, read-only
    @property
    def packed(self) -> PackedMatrices:
        """The packed weights (immutable)."""
        return self._packed

    @property
    def bias(self) -> torch.Tensor:
        """A copy of the bias (folded BatchNorm included)."""
        return self._bias.clone()

    def format_counts(self) -> dict[str, int]:
        """How many weight matrices (Winograd positions) are stored in each format."""
        return self._packed.format_counts()

    def dense_weights(self) -> torch.Tensor:
        """The packed weights as a new dense ``(P, K, C)`` tensor."""
        return self._packed.dense()

    def density(self) -> float:
        """Fraction of non-zero weights (over P x K x C; block-diagonal for groups)."""
        p = self._packed
        return float((p.dense() != 0).sum()) / (p.positions * p.rows * p.cols)

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        return {"packed": self._packed.state(), "bias": self._bias.clone()}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or "packed" not in state or "bias" not in state:
            raise ValueError(f"{type(self).__name__}: not a compiled layer's state")
        packed = PackedMatrices.from_state(state["packed"])          # validated
        self._check_packed(packed)
        with self._lock:                                              # never under a running call
            self._install(packed, torch.as_tensor(state["bias"]))

    def _check_packed(self, packed: PackedMatrices) -> None:
        mine = self._packed
        if (packed.positions, packed.rows, packed.cols) != (mine.positions, mine.rows, mine.cols):
            raise ValueError(f"{type(self).__name__}: packed weights of shape "
                             f"{(packed.positions, packed.rows, packed.cols)} do not fit this "
                             f"layer {(mine.positions, mine.rows, mine.cols)}")

@dataclass
class OpPlan:
    """One kernel operation of a compiled layer for one input shape.

    ``inputs`` (pointer field, buffer) and ``output`` name buffers: ``"x"``, ``"residual"``,
    ``"y"`` (the layer's output) or ``"t<i>"`` (an intermediate of the layer); ``shape`` is the
    output's shape and ``output_field`` the struct field it is written through. ``offsets``
    (field -> elements) points a field into its buffer (one image of a batch); an operation
    that writes part of a buffer needs the buffer made beforehand (given to ``_run_plans``).
    """

    kind: str
    args: Any
    inputs: list[tuple[str, str]]
    output: str
    shape: tuple[int, ...]
    output_field: str = "y"
    offsets: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerSpec:
    """The fixed configuration of a compiled Winograd layer (immutable after compile); 2-D or
    3-D by the number of ``padding`` pairs."""

    in_channels: int
    out_channels: int
    kernel_size: int
    tile: int
    padding: tuple[tuple[int, int], ...]
    points: tuple | None
    winograd_relu: bool
    relu_output: bool
    groups: int = 1            # of the source layer; weights are packed block-diagonal
    pool_output: int = 0       # 2: a fused 2x2 / stride-2 max-pool (floor mode) on the output
    residual: bool = False     # forward(x, residual) adds a tensor before the output ReLU

    @property
    def n(self) -> int:
        return self.tile + self.kernel_size - 1

    @property
    def dims(self) -> int:
        return len(self.padding)

    @functools.cached_property
    def growth(self) -> tuple[int, ...]:
        """Output size minus input size per spatial dim (the output size of an empty input)."""
        return output_size((0,) * self.dims, (self.kernel_size,) * self.dims, self.padding)

    @functools.cached_property
    def algorithm(self) -> WinogradAlgorithm:
        return algorithm(self.tile, self.kernel_size, self.points)


def pack_winograd(q: torch.Tensor, groups: int, bias: torch.Tensor | None,
                  scale: torch.Tensor | None, shift: torch.Tensor | None,
                  formats: str | Sequence[str], precision: str = "fp32"
                  ) -> tuple[PackedMatrices, torch.Tensor | None]:
    """Pack Winograd weights ``(K, C/groups, *n)`` positions first, block-diagonal for groups,
    with a per-channel affine map ``y * scale + shift`` folded into weights and bias, values in
    ``precision`` (``"fp32"`` or ``"fp16"``)."""
    q = q.detach().to(torch.float32)
    k, cg = q.shape[:2]
    u = positions_first(q)                                        # (P, K, C/g)
    u, bias = _affine(u, bias.detach().float() if bias is not None else None, scale, shift)
    if groups > 1:                                                # block-diagonal
        full = torch.zeros(u.shape[0], k, cg * groups)
        kg = k // groups
        for g in range(groups):
            full[:, g * kg:(g + 1) * kg, g * cg:(g + 1) * cg] = u[:, g * kg:(g + 1) * kg]
        u = full
    return PackedMatrices.pack(u, formats, precision), bias


class CompiledConv(InferenceModule):
    """Base of the compiled convolutions (2-D and 3-D Winograd layers, DWM-decomposed layers):
    the spec, input checks, state and the choice between the kernel and the ``torch`` path.

    Subclasses set ``_dims``, hold ``_spec`` (``in_channels``, ``out_channels``,
    ``kernel_size``, ``padding``, ``residual``) and implement ``output_size(*sizes)``,
    ``_forward_kernel(x, backend, residual)`` and ``_torch_forward(x, residual)``.
    """

    _dims = 2

    # ------------------------------------------------------------------ read-only config
    @property
    def spec(self) -> Any:
        """The immutable layer configuration."""
        return self._spec

    @property
    def in_channels(self) -> int:
        return self._spec.in_channels

    @property
    def out_channels(self) -> int:
        return self._spec.out_channels

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        state["spec"] = asdict(self._spec)
        return state

    def set_extra_state(self, state: Any) -> None:
        if isinstance(state, dict) and "spec" in state and state["spec"] != asdict(self._spec):
            raise ValueError(f"{type(self).__name__}: the state was saved from a layer with a "
                             f"different configuration {state['spec']}; compile the matching "
                             "model instead")
        super().set_extra_state(state)

    # ------------------------------------------------------------------ forward
    def output_size(self, *sizes: int) -> tuple[int, ...]:
        """Output spatial size for an input of spatial size ``sizes``."""
        raise NotImplementedError

    def _check_input(self, x: torch.Tensor) -> None:
        name, dims = type(self).__name__, self._dims
        self._check_common(x, dims + 2)
        if x.dim() != dims + 2:
            axes = ", ".join("DHW"[3 - dims:])
            raise ValueError(f"{name} expects a {dims + 2}-D input (N, C, {axes}) or {dims + 1}-D "
                             f"(C, {axes}), got shape {tuple(x.shape)}")
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
        if isinstance(x, torch.Tensor) and x.dim() == self._dims + 1:
            residual = residual.unsqueeze(0) if residual is not None else None
            return self.forward(x.unsqueeze(0), residual).squeeze(0)
        self._check_input(x)
        name = kernels.backend()
        shape = (x.shape[0], spec.out_channels, *self.output_size(*x.shape[2:]))
        if residual is not None and (residual.shape != shape or residual.dtype != torch.float32
                                     or residual.device.type != "cpu"):
            name = "torch"                               # broadcasting residuals: the torch path
        if name == "torch" or x.shape[0] == 0:                      # no kernel for N = 0
            return self._torch_forward(x, residual)
        return self._forward_kernel(x, name, residual)


class WinogradInferenceModule(CompiledConv):
    """What the compiled 2-D and 3-D Winograd layers share: the spec, the calling sequence of
    their kernel (``sw_conv2d``/``sw_conv3d``), the PyTorch fallback, state and reports.

    Subclasses set ``_dims`` and ``_op`` (their engine operation) and implement ``from_layer``, ``output_size`` and
    ``fill_args(batch, *sizes, threads, backend_name)``.
    """

    _dims = 2
    _op = "conv2d"
    def __init__(self, spec: LayerSpec, packed: PackedMatrices, bias: torch.Tensor | None,
                 threads: int | None = None) -> None:
        if (packed.positions, packed.rows, packed.cols) != (spec.n ** self._dims,
                                                            spec.out_channels, spec.in_channels):
            raise ValueError(f"packed weights {(packed.positions, packed.rows, packed.cols)} do "
                             f"not fit F({spec.tile},{spec.kernel_size}) in {self._dims}-D with "
                             f"{spec.in_channels} -> {spec.out_channels} channels")
        object.__setattr__(self, "_spec", spec)
        super().__init__(packed, bias, spec.out_channels, threads)
        self.tile_block = 0
        self.kernel_mode = 0
        self.lanes = 0
        at, _, bt = spec.algorithm.matrices(torch.float32)
        self._bt, self._at = bt.contiguous().clone(), at.contiguous().clone()

    @classmethod
    def _compile(cls, layer: Any, threads: int | None, formats: str | Sequence[str],
                 relu_output: bool, scale: torch.Tensor | None, shift: torch.Tensor | None,
                 residual: bool, pool_output: int = 0,
                 precision: str = "fp32") -> "WinogradInferenceModule":
        """Pack ``layer``'s effective Winograd weights and build the compiled layer (the
        subclasses' ``from_layer`` check the layer first)."""
        with torch.no_grad():
            packed, bias = pack_winograd(layer.winograd_weight(), layer.groups, layer.bias,
                                         scale, shift, formats, precision)
        spec = LayerSpec(in_channels=layer.in_channels, out_channels=layer.out_channels,
                         kernel_size=layer.kernel_size[0], tile=layer.tile[0],
                         padding=tuple(layer._padding_pairs), points=layer.points[0],
                         winograd_relu=layer.winograd_relu, relu_output=relu_output,
                         groups=layer.groups, pool_output=pool_output, residual=residual)
        return cls(spec, packed, bias, threads)
    # ------------------------------------------------------------------ read-only config
    @property
    def positions(self) -> int:
        return self._spec.n ** self._dims

    # ------------------------------------------------------------------ forward
    def output_size(self, *sizes: int) -> tuple[int, ...]:
        """Output spatial size for an input of spatial size ``sizes`` (after a fused pool)."""
        pool = self._spec.pool_output or 1
        return tuple((s + g) // pool for s, g in zip(sizes, self._spec.growth))

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        spec = self._spec
        if self._dense_cache is None:
            self._dense_cache = self._packed.dense()
        with torch.no_grad():
            y = winograd_conv(x, self._dense_cache, self._bias, (spec.algorithm,) * self._dims,
                              spec.padding, 1, spec.winograd_relu,
                              torch_product(self._packed, self._dense_cache))
            if residual is not None:
                y = y + residual
            if spec.relu_output:
                y = torch.relu(y)
            return F.max_pool2d(y, spec.pool_output) if spec.pool_output else y

    def fill_args(self, batch: int, *sizes_threads_backend: Any) -> Any:
        raise NotImplementedError

    def _forward_kernel(self, x: torch.Tensor, backend_name: str,
                        residual: torch.Tensor | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
        """Run the compiled kernel; ``out`` (tests poison it) receives the result if given."""
        x = x.contiguous()
        residual = residual.contiguous() if residual is not None else None
        batch, sizes = x.shape[0], tuple(x.shape[2:])
        shape = (batch, self.out_channels, *self.output_size(*sizes))
        if out is None:
            y = torch.empty(shape)
        elif out.shape != shape or out.dtype != torch.float32 or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous float32 tensor of shape {shape}")
        else:
            y = out
        threads = self.threads or torch.get_num_threads()
        key = (batch, *sizes, threads, backend_name, self.tile_block, self.kernel_mode,
               self.lanes)
        return self._run_plans(key, lambda: [OpPlan(
            self._op, self.fill_args(batch, *sizes, threads, backend_name),
            [("x", "x"), ("residual", "residual")], "y", shape)],
            {"x": x, "residual": residual, "y": y})

    def plan(self, input_shape: Sequence[int], threads: int | None = None) -> dict[str, Any]:
        """How the kernel would run an input of ``input_shape``: tiles per block, blocks, mode."""
        lib = kernels.library()
        if lib is None:
            raise RuntimeError(f"no compiled kernel: {kernels.load_error()}")
        name = kernels.backend()
        args = self.fill_args(input_shape[0], *input_shape[2:],
                              threads or self.threads or torch.get_num_threads(),
                              name if name != "torch" else "portable")
        out = [ctypes.c_int32() for _ in range(4)]
        kernels.check_status(getattr(lib, f"sw_{self._op}_plan")(ctypes.byref(args),
                                                                 *map(ctypes.byref, out)))
        tb, blocks, mode, isa = (v.value for v in out)
        names = {b.isa: b.name for b in kernels.backends.registered_backends() if b.isa}
        return {"tile_block": tb, "blocks": blocks,
                "mode": {kernels.MODE_BLOCKS: "blocks", kernels.MODE_COOPERATIVE: "cooperative"}[mode],
                "isa": names[isa]}

    def extra_repr(self) -> str:
        spec = self._spec
        counts = self.format_counts()
        text = (f"{spec.in_channels}, {spec.out_channels}, kernel_size={spec.kernel_size}, "
                f"F({spec.tile},{spec.kernel_size}){'³' if self._dims == 3 else ''}, "
                f"padding={spec.padding}, positions: "
                f"{describe_formats(counts, ' / ')}")
        for flag, label in ((spec.groups != 1, f"groups={spec.groups}"),
                            (spec.winograd_relu, "winograd_relu=True"),
                            (spec.residual, "residual=True"),
                            (spec.relu_output, "relu_output=True"),
                            (spec.pool_output, f"max_pool={spec.pool_output}")):
            if flag:
                text += ", " + label
        return text


class SparseWinogradConv2d(WinogradInferenceModule):
    """Inference-only stride-1 Winograd convolution running the fused sparse CPU kernel.

    Built by :func:`sparsewino.engine.compile` (or :meth:`from_layer`) from a
    :class:`~sparsewino.nn.WinogradConv2d`: its effective Winograd weights (prune masks
    applied) are transformed once and packed per position (zero / sparse / dense, see
    :mod:`~sparsewino.engine.packing`). Grouped layers are packed as block-diagonal weights.

    ``forward(x)`` or, for a layer compiled with a fused residual addition,
    ``forward(x, residual)``. Inference only: it raises in training mode or when the input
    requires grad; the output never requires grad.

    Args:
        spec: layer configuration.
        packed: the packed ``(P, K, C)`` Winograd weights.
        bias: ``(K,)`` or ``None`` (zeros then).
        threads: OpenMP threads; ``None`` uses ``torch.get_num_threads()`` at each call.

    Attributes:
        threads: as the argument (may be changed).
        tile_block, kernel_mode, lanes: tuning knobs for benchmarks and tests (0 = automatic):
            tiles per block (rounded up to a power of two, 8 to 64); 1 = independent blocks
            per thread, 2 = all threads cooperate on each block; lanes 8 or 16: tiles per
            vector in the element-wise stage and the transforms (automatic: 16 in the AVX-512
            build, its transforms on 8 on CPUs that split 512-bit operations, AMD Zen 4).

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = WinogradConv2d(8, 16, 3, padding=1).eval()
        >>> fast = SparseWinogradConv2d.from_layer(layer)
        >>> x = torch.randn(1, 8, 9, 9)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), atol=1e-4)
        True
    """

    _dims = 2
    _op = "conv2d"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layer(cls, layer: WinogradConv2d, threads: int | None = None,
                   formats: str | Sequence[str] = "auto", relu_output: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   pool_output: int = 0, residual: bool = False,
                   precision: str = "fp32") -> "SparseWinogradConv2d":
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
            residual: take a second input added to the output (before the ReLU).
            precision: ``"fp32"`` or ``"fp16"`` weights (see :mod:`~sparsewino.engine.packing`).

        Raises:
            ValueError: the layer cannot be compiled (see :func:`unsupported_reason`), or its
                weights do not fit fp16.
        """
        reason = unsupported_reason(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        if pool_output not in (0, 2) or (pool_output and layer.tile[0] % 2) or \
                (pool_output and residual):
            raise ValueError(f"pool_output must be 0 or 2 (with an even tile and no residual), "
                             f"got {pool_output} for tile {layer.tile}")
        return cls._compile(layer, threads, formats, relu_output, scale, shift, residual,
                            pool_output, precision)

    def fill_args(self, batch: int, height: int, width: int, threads: int,
                  backend_name: str) -> kernels.SwConv2dArgs:
        """The kernel's argument struct for an input of (batch, C, height, width) (data and
        workspace pointers left unset)."""
        spec = self._spec
        grow_h, grow_w = spec.growth
        args = kernels.SwConv2dArgs()
        args.N, args.C, args.H, args.W = batch, spec.in_channels, height, width
        args.K, args.Ho, args.Wo = spec.out_channels, height + grow_h, width + grow_w
        args.n, args.m = spec.n, spec.tile
        args.pad_top, args.pad_left = spec.padding[0][0], spec.padding[1][0]
        args.bt, args.at = self._bt.data_ptr(), self._at.data_ptr()
        args.w = self._packed.struct()
        args.bias = self._bias.data_ptr()
        args.relu_input, args.relu_output = int(spec.winograd_relu), int(spec.relu_output)
        args.pool = spec.pool_output
        args.threads, args.isa = threads, kernels.isa_code(backend_name)
        args.tile_block, args.mode, args.lanes = self.tile_block, self.kernel_mode, self.lanes
        return args


class _GemmModule(InferenceModule):
    """y = W x (+ bias, residual, ReLU) over packed (1, K, C) weights: Linear and 1x1 conv."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, relu: bool,
                 residual: bool, threads: int | None, formats: str | Sequence[str],
                 scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                 precision: str = "fp32") -> None:
        with torch.no_grad():
            w = weight.detach().to(device="cpu", dtype=torch.float32).reshape(weight.shape[0], -1)
            bias = bias.detach().float() if bias is not None else None
            w, bias = _affine(w, bias, scale, shift)
            packed = PackedMatrices.pack(w.unsqueeze(0), formats, precision)
        self.relu, self.residual = bool(relu), bool(residual)
        super().__init__(packed, bias, w.shape[0], threads)
        self.tile_block = self.kernel_mode = self.lanes = 0

    @property
    def in_features(self) -> int:
        return self._packed.cols

    @property
    def out_features(self) -> int:
        return self._packed.rows

    def fill_args(self, batch: int, spatial: int, threads: int,
                  backend_name: str) -> kernels.SwGemmArgs:
        """The kernel's argument struct for ``batch`` images of ``spatial`` positions."""
        args = kernels.SwGemmArgs()
        args.N, args.C, args.K, args.S = batch, self.in_features, self.out_features, spatial
        args.w = self._packed.struct()
        args.bias = self._bias.data_ptr()
        args.relu = int(self.relu)
        args.threads, args.isa = threads, kernels.isa_code(backend_name)
        args.tile_block, args.mode, args.lanes = self.tile_block, self.kernel_mode, self.lanes
        return args

    def _gemm(self, x: torch.Tensor, shape: tuple[int, ...], batch: int, spatial: int,
              residual: torch.Tensor | None) -> torch.Tensor:
        """Run the kernel on contiguous x (batch x C x spatial) into a new tensor of ``shape``."""
        return self._run(x, shape, residual, (batch, spatial), lambda threads, name: [OpPlan(
            "gemm", self.fill_args(batch, spatial, threads, name),
            [("x", "x"), ("residual", "residual")], "y", tuple(shape))])

    def _run(self, x: torch.Tensor, shape: tuple[int, ...], residual: torch.Tensor | None,
             geometry: tuple, lower: Callable[[int, str], list["OpPlan"]]) -> torch.Tensor:
        """The output of ``shape`` from the torch backend, or from this layer's operations
        (``lower(threads, backend)``, planned again when ``geometry`` or the backend changes)."""
        name = kernels.backend()
        if name == "torch" or shape[0] == 0 or (residual is not None and (
                residual.shape != shape or residual.dtype != torch.float32)):
            return self._torch_forward(x, residual)
        x = x.contiguous()
        residual = residual.contiguous() if residual is not None else None
        threads = self.threads or torch.get_num_threads()
        key = (*geometry, threads, name, self.tile_block, self.kernel_mode, self.lanes)
        return self._run_plans(key, lambda: lower(threads, name), {"x": x, "residual": residual})

    def _weight_matrix(self) -> torch.Tensor:
        if self._dense_cache is None:
            self._dense_cache = self._packed.dense()[0]
        return self._dense_cache

    def _finish(self, y: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        if residual is not None:
            y = y + residual
        return torch.relu(y) if self.relu else y

    def _check_residual(self, residual: torch.Tensor | None) -> None:
        if (residual is not None) != self.residual:
            raise TypeError(f"{type(self).__name__} was compiled "
                            f"{'with' if self.residual else 'without'} a fused residual input")


class SparseLinear(_GemmModule):
    """Inference-only fully connected layer on packed (sparse or dense) weights.

    Built by :func:`sparsewino.engine.compile` from ``nn.Linear`` (and a following eval-mode
    ``BatchNorm1d`` / ``ReLU``) or with :meth:`from_linear`. Magnitude-pruned weights are
    stored sparse, so a pruned classifier streams only its non-zeros: what makes whole
    models fast at batch 1. Input ``(N, in_features)``.

    Examples:
        >>> fc = nn.Linear(16, 4).eval()
        >>> fast = SparseLinear.from_linear(fc)
        >>> x = torch.randn(3, 16)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), fc(x), atol=1e-5)
        True
    """

    @classmethod
    def from_linear(cls, linear: nn.Linear, threads: int | None = None,
                    formats: str | Sequence[str] = "auto", relu: bool = False,
                    scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                    residual: bool = False, precision: str = "fp32") -> "SparseLinear":
        """Compile ``linear`` (its effective weight: prune masks applied); ``scale``/``shift``
        fold a following BatchNorm1d, ``relu`` a following ReLU; ``precision`` as for
        :meth:`SparseWinogradConv2d.from_layer`."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear expects nn.Linear, got {type(linear).__name__}")
        return cls(linear.weight, linear.bias, relu=relu, residual=residual, threads=threads,
                   formats=formats, scale=scale, shift=shift, precision=precision)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        self._check_residual(residual)
        self._check_common(x, 2)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"SparseLinear expects input (N, {self.in_features}), got "
                             f"{tuple(x.shape)}")
        return self._gemm(x, (x.shape[0], self.out_features), x.shape[0], 1, residual)

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        x = bf16_inputs(self._packed, x.unsqueeze(0))[0]
        with torch.no_grad():
            return self._finish(F.linear(x, self._weight_matrix(), self._bias), residual)

    def extra_repr(self) -> str:
        counts = self.format_counts()
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"{main_format(counts)}, "
                f"density={self.density():.3f}" + (", relu=True" if self.relu else "")
                + (", residual=True" if self.residual else ""))


class _ConvGemm(_GemmModule):
    """A convolution run as a GEMM over packed ``K × C·kh·kw`` weights: the checks and the
    constructor from an ``nn.Conv2d`` shared by the 1x1 and the direct (im2col) layers."""

    @classmethod
    def _geometry_reason(cls, conv: nn.Conv2d) -> str | None:
        """Why this class does not run ``conv``'s kernel, stride and padding, or ``None``."""
        raise NotImplementedError

    @classmethod
    def _geometry(cls, conv: nn.Conv2d) -> dict[str, Any]:
        """The constructor's keyword arguments that describe ``conv``'s geometry."""
        return {"stride": conv.stride}

    @classmethod
    def supported(cls, conv: nn.Module) -> str | None:
        """Why ``conv`` is not a convolution this module runs, or ``None``."""
        if type(conv) is not nn.Conv2d:
            return f"{type(conv).__name__} is not an nn.Conv2d"
        reason = cls._geometry_reason(conv)
        if reason is not None:
            return reason
        if conv.weight.dtype != torch.float32 or conv.weight.device.type != "cpu":
            return "float32 CPU weights only"
        columns = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        if columns > kernels.MAX_COLUMNS:
            return (f"more than {kernels.MAX_COLUMNS} GEMM columns (input channels x kernel taps "
                    f"= {columns})")
        return None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, threads: int | None = None,
                  formats: str | Sequence[str] = "auto", relu: bool = False,
                  scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                  residual: bool = False, precision: str = "fp32") -> "_ConvGemm":
        """Compile ``conv`` (its effective weight: prune masks applied; see :meth:`supported`);
        ``scale``/``shift`` fold a following BatchNorm2d, ``relu`` a following ReLU."""
        reason = cls.supported(conv)
        if reason is not None:
            raise ValueError(f"cannot compile {type(conv).__name__}: {reason}")
        return cls(conv.weight, conv.bias, relu=relu, residual=residual, threads=threads,
                   formats=formats, scale=scale, shift=shift, precision=precision,
                   **cls._geometry(conv))


class SparsePointwiseConv2d(_ConvGemm):
    """Inference-only 1x1 convolution (any stride, no padding, groups 1) on packed weights.

    Built by :func:`sparsewino.engine.compile` from such an ``nn.Conv2d`` (BatchNorm2d /
    residual / ReLU fused), or with :meth:`from_conv`.

    Examples:
        >>> conv = nn.Conv2d(8, 6, 1, stride=2).eval()
        >>> fast = SparsePointwiseConv2d.from_conv(conv)
        >>> x = torch.randn(2, 8, 7, 7)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), conv(x), atol=1e-5)
        True
    """

    def __init__(self, *args: Any, stride: tuple[int, int] = (1, 1), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stride = tuple(stride)

    @classmethod
    def _geometry_reason(cls, conv: nn.Conv2d) -> str | None:
        if conv.kernel_size != (1, 1) or conv.padding not in ((0, 0), "valid") or \
                conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
            return "only 1x1 convolutions with padding 0 and groups 1 run as a GEMM"
        return None

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "stride": self.stride}

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        sh, sw = self.stride
        return (height - 1) // sh + 1, (width - 1) // sw + 1

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        self._check_residual(residual)
        self._check_common(x, 4)
        if x.dim() != 4 or x.shape[1] != self.in_features:
            raise ValueError(f"SparsePointwiseConv2d expects input (N, {self.in_features}, H, W)"
                             f", got {tuple(x.shape)}")
        if self.stride != (1, 1):
            x = x[:, :, ::self.stride[0], ::self.stride[1]]
        batch, _, height, width = x.shape
        return self._gemm(x, (batch, self.out_features, height, width), batch, height * width,
                          residual)

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        x = bf16_inputs(self._packed, x.unsqueeze(0))[0]
        with torch.no_grad():
            w = self._weight_matrix()
            return self._finish(F.conv2d(x, w.reshape(*w.shape, 1, 1), self._bias), residual)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, kernel_size=1, stride={self.stride}, "
                f"density={self.density():.3f}" + (", relu=True" if self.relu else "")
                + (", residual=True" if self.residual else ""))
