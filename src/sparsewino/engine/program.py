"""Program: a compiled model's graph lowered, for one input shape, to kernel calls over one arena.

Plan once, run many (as XNNPACK's create/setup/run): for a given input shape every node of the
rewritten ``torch.fx`` graph (see :mod:`~sparsewino.engine.compile`) becomes either a kernel
operation (conv2d, conv3d, gemm, pool2d, eltwise), an alias (flatten, view, dropout, identity: no work)
or a PyTorch step (anything else, run as the graph would). Activations live in one arena
tensor, assigned by liveness so buffers are reused; the workspace is shared by all operations.
Consecutive kernel operations run as one ``sw_run_program`` call: no Python between layers.
Per call only the input and output pointers (and those of PyTorch steps' results) are patched.
"""
from __future__ import annotations

import ctypes
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from . import kernels
from .decomposed import SparseDecomposedConv2d
from .modules import SparseLinear, SparsePointwiseConv2d, SparseWinogradConv2d, _GemmModule
from .modules3d import SparseWinogradConv3d

__all__ = ["Program", "build_program", "node_op"]

_ALIGN = 16                                # floats: 64-byte aligned buffers
_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_ALIAS_METHODS = ("flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze")


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore


def node_op(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The kind of kernel operation a node becomes (shape-independent part of the decision),
    ``"alias"`` for no-ops, or ``None`` when it runs in PyTorch."""
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, SparseWinogradConv2d):
            return "conv2d"
        if isinstance(m, SparseWinogradConv3d):
            return "conv3d"
        if type(m) in (nn.MaxPool3d, nn.AdaptiveAvgPool3d):
            return "pool3d"
        if isinstance(m, SparseDecomposedConv2d):
            return "decomposed"
        if isinstance(m, _GemmModule):
            return "gemm"
        if type(m) is nn.MaxPool2d:
            return "pool2d" if _pair(m.dilation) == (1, 1) and not m.return_indices else None
        if type(m) in (nn.AvgPool2d, nn.AdaptiveAvgPool2d):
            return "pool2d" if getattr(m, "divisor_override", None) is None else None
        if type(m) is nn.ReLU:
            return "relu"
        if type(m) in (nn.BatchNorm2d, nn.BatchNorm3d):
            return "affine" if not m.training and m.running_mean is not None else None
        if type(m) in (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout3d) or \
                (type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim == -1):
            return "alias" if type(m) is nn.Identity or type(m) is nn.Flatten or not m.training \
                else None
        return None
    if node.op == "call_function":
        if node.target in _ADD_FUNCTIONS and len(node.args) == 2 and not node.kwargs and \
                all(isinstance(a, fx.Node) for a in node.args):
            return "add"
        if node.target in _RELU_FUNCTIONS:
            return "relu"
        if node.target is torch.flatten:
            return "alias"
        return None
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return "relu"
        if node.target in _ALIAS_METHODS:
            return "alias"
        if node.target == "size":
            return "size"
    return None


@dataclass
class _Value:
    shape: tuple[int, ...]
    root: int                      # storage owner (itself unless an alias)
    kind: str = "arena"            # "arena", "input", "dynamic" (PyTorch step results, output)
    offset: int = -1               # arena offset (floats), roots only
    first: int = 0                 # step index where it is written
    last: int = 0                  # last step index that reads it

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class _Op:
    kind: int                      # kernels.OP_KINDS
    args: Any                      # ctypes struct
    inputs: list[tuple[str, int]]  # (field, value id) of pointer fields
    output: tuple[str, int]
    relu_field: str | None = None  # field to set for a fused following ReLU
    name: str = ""                 # the graph node it computes (for profiles)


@dataclass
class _TorchStep:
    node: fx.Node
    run: Callable[..., Any]


@dataclass
class _Segment:
    ops: list[_Op] = field(default_factory=list)
    array: Any = None              # ctypes array of SwOp


class UnsupportedGraph(Exception):
    """The graph cannot run as a program for this input (the caller uses the graph itself)."""


class Program:
    """The executable plan of one graph for one input shape (see the module docstring)."""

    def __init__(self, gm: fx.GraphModule, x: torch.Tensor, threads: int, backend: str) -> None:
        self.threads, self.backend = threads, backend
        self.isa = kernels.isa_code(backend)
        self.modules = dict(gm.named_modules())
        self.values: dict[int, _Value] = {}
        self.node_value: dict[fx.Node, int] = {}
        self.steps: list[Any] = []                      # _Segment | _TorchStep
        self.keep: list[Any] = []                       # tensors the op structs point into
        self.torch_nodes: list[str] = []
        self.constants: dict[int, Any] = {}
        with torch.no_grad():
            ShapeProp(gm).propagate(x)
        self._lower(gm.graph)
        self._allocate()

    # ------------------------------------------------------------------ lowering
    def _new_value(self, shape: tuple[int, ...], kind: str = "arena",
                   alias_of: int | None = None) -> int:
        vid = len(self.values)
        root = self.values[alias_of].root if alias_of is not None else vid
        self.values[vid] = _Value(tuple(int(s) for s in shape), root, kind)
        return vid

    def _segment(self) -> _Segment:
        if not self.steps or not isinstance(self.steps[-1], _Segment):
            self.steps.append(_Segment())
        return self.steps[-1]

    def _emit(self, kind: str, args: Any, inputs: list[tuple[str, int]], out_shape,
              relu_field: str | None = None) -> int:
        out = self._new_value(out_shape)
        self._segment().ops.append(_Op(kernels.OP_KINDS[kind], args, inputs, ("y", out),
                                       relu_field, self._current))
        return out

    @staticmethod
    def _shape(node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise UnsupportedGraph(f"node {node.name} does not produce one tensor")
        if meta.dtype != torch.float32:
            raise UnsupportedGraph(f"node {node.name} produces {meta.dtype}")
        return tuple(meta.shape)

    def _lower(self, graph: fx.Graph) -> None:
        users = {node: len(node.users) for node in graph.nodes}
        for node in graph.nodes:
            if node.op == "placeholder":
                if self.node_value:
                    raise UnsupportedGraph("more than one input")
                self.node_value[node] = self._new_value(self._shape(node), "input")
                continue
            if node.op == "output":
                result = node.args[0]
                if not isinstance(result, fx.Node) or result not in self.node_value:
                    raise UnsupportedGraph("the output is not a single tensor")
                self.output = self.node_value[result]
                continue
            kind = node_op(node, self.modules)
            if kind == "size":                          # static for a fixed input shape
                self.node_value[node] = self._constant(node)
                continue
            self._current = str(node.target) if node.op == "call_module" else node.name
            try:
                vid = self._lower_node(node, kind, users) if kind is not None else None
            except UnsupportedGraph:
                vid = None
            if vid is None:
                vid = self._torch_step(node)
            self.node_value[node] = vid

    def _constant(self, node: fx.Node) -> int:
        """``x.size()`` / ``x.size(d)`` of a tensor whose shape this program fixes."""
        source = self._arg(node)
        shape = torch.Size(self.values[source].shape)
        dims = node.args[1:] or tuple(node.kwargs.values())
        vid = self._new_value((), "const")
        self.constants[vid] = shape[dims[0]] if dims else shape
        return vid

    def _arg(self, node: fx.Node, index: int = 0) -> int:
        arg = node.args[index]
        if not isinstance(arg, fx.Node) or arg not in self.node_value:
            raise UnsupportedGraph(f"{node.name}: argument {index} is not a computed tensor")
        return self.node_value[arg]

    def _lower_node(self, node: fx.Node, kind: str, users: dict) -> int | None:
        out_shape = self._shape(node)
        if kind == "alias":
            source = self._arg(node)
            if self.values[source].numel != _numel(out_shape):
                raise UnsupportedGraph(f"{node.name} changes the number of elements")
            return self._new_value(out_shape, self.values[source].kind, alias_of=source)
        if kind == "relu":
            source = self._arg(node)
            fused = self._fuse_relu(source, users)
            if fused is not None:
                return self._new_value(out_shape, self.values[source].kind, alias_of=fused)
            return self._eltwise(kernels_kind=2, a=source, b=None, shape=out_shape, relu=True)
        if kind == "add":
            a, b = self._arg(node, 0), self._arg(node, 1)
            if self.values[a].shape != out_shape or self.values[b].shape != out_shape:
                raise UnsupportedGraph(f"{node.name} broadcasts")
            return self._eltwise(kernels_kind=0, a=a, b=b, shape=out_shape, relu=False)
        module = self.modules[node.target]
        if kind == "affine":
            inv = torch.rsqrt(module.running_var.double() + module.eps)
            weight = module.weight.double() if module.weight is not None else torch.ones_like(inv)
            bias = module.bias.double() if module.bias is not None else torch.zeros_like(inv)
            scale = (weight * inv).float().contiguous()
            shift = (bias - module.running_mean.double() * weight * inv).float().contiguous()
            self.keep += [scale, shift]
            source = self._arg(node)
            if len(out_shape) < 2 or out_shape[1] != scale.numel():
                raise UnsupportedGraph(f"{node.name}: channels do not match")
            return self._eltwise(1, source, None, out_shape, False, scale, shift)
        if kind == "pool2d":
            return self._pool(node, module, out_shape)
        if kind == "conv2d":
            return self._conv(node, module, out_shape)
        if kind == "conv3d":
            return self._conv3d(node, module, out_shape)
        if kind == "pool3d":
            return self._pool3d(node, module, out_shape)
        if kind == "decomposed":
            return self._decomposed(node, module, out_shape)
        if kind == "gemm":
            return self._gemm(node, module, out_shape)
        return None

    def _fuse_relu(self, source: int, users: dict) -> int | None:
        """Set the ReLU flag of the op that wrote ``source`` when nothing else reads it."""
        value = self.values[source]
        if value.root != source or value.kind != "arena":
            return None
        producer = [n for n, v in self.node_value.items() if v == source]
        if len(producer) != 1 or users[producer[0]] != 1:
            return None
        segment = self.steps[-1] if self.steps and isinstance(self.steps[-1], _Segment) else None
        if segment is None or not segment.ops or segment.ops[-1].output[1] != source:
            return None
        op = segment.ops[-1]
        if op.relu_field is None or getattr(op.args, op.relu_field):
            return None
        setattr(op.args, op.relu_field, 1)
        return source

    def _eltwise(self, kernels_kind: int, a: int, b: int | None, shape, relu: bool,
                 scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> int:
        args = kernels.SwEltwiseArgs()
        args.kind, args.relu = kernels_kind, int(relu)
        channels = shape[1] if kernels_kind == 1 else 1
        args.outer = shape[0] if kernels_kind == 1 else 1
        args.channels = channels
        args.inner = _numel(shape) // (args.outer * channels)
        if scale is not None:
            args.scale, args.shift = scale.data_ptr(), shift.data_ptr()
        args.threads, args.isa = self.threads, self.isa
        inputs = [("a", a)] + ([("b", b)] if b is not None else [])
        return self._emit("eltwise", args, inputs, shape, "relu")

    def _pool(self, node: fx.Node, m: nn.Module, out_shape) -> int:
        source = self._arg(node)
        shape = self.values[source].shape
        if len(shape) != 4 or len(out_shape) != 4:
            raise UnsupportedGraph(f"{node.name}: pooling needs (N, C, H, W)")
        n, c, h, w = shape
        args = kernels.SwPool2dArgs()
        args.N, args.C, args.H, args.W = n, c, h, w
        args.Ho, args.Wo = out_shape[2], out_shape[3]
        if type(m) is nn.AdaptiveAvgPool2d:
            ho, wo = out_shape[2], out_shape[3]
            if h % ho or w % wo:
                raise UnsupportedGraph(f"{node.name}: adaptive pooling with uneven windows")
            (args.kh, args.kw), (args.sh, args.sw) = (h // ho, w // wo), (h // ho, w // wo)
            args.ph = args.pw = 0
            args.kind, args.count_include_pad = 1, 0
        else:
            (args.kh, args.kw) = _pair(m.kernel_size)
            stride = m.stride if m.stride is not None else m.kernel_size
            (args.sh, args.sw), (args.ph, args.pw) = _pair(stride), _pair(m.padding)
            if type(m) is nn.MaxPool2d:
                args.kind = 0
            else:
                args.kind, args.count_include_pad = 1, int(m.count_include_pad)
        args.threads, args.isa = self.threads, self.isa
        return self._emit("pool2d", args, [("x", source)], out_shape, "relu")

    def _conv_inputs(self, node: fx.Node, m: nn.Module, dims: int,
                     out_shape) -> tuple[tuple[int, ...], dict[str, int]]:
        """A compiled convolution's input shape and value refs (``x``, and ``residual`` for a
        fused residual addition), checked against what the layer was compiled for."""
        source = self._arg(node)
        shape = self.values[source].shape
        if len(shape) != dims + 2 or shape[1] != m.in_channels or shape[0] == 0:
            raise UnsupportedGraph(f"{node.name}: input {shape}")
        refs = {"x": source}
        if m.spec.residual:
            refs["residual"] = self._arg(node, 1)
            if self.values[refs["residual"]].shape != tuple(out_shape):
                raise UnsupportedGraph(f"{node.name}: residual shape")
        self.keep.append(m)
        return shape, refs

    def _conv(self, node: fx.Node, m: SparseWinogradConv2d, out_shape) -> int:
        shape, refs = self._conv_inputs(node, m, 2, out_shape)
        args = m.fill_args(*shape[:1], *shape[2:], self.threads, self.backend)
        relu_field = None if m.spec.relu_output or m.spec.pool_output else "relu_output"
        return self._emit("conv2d", args, list(refs.items()), out_shape, relu_field)

    def _conv3d(self, node: fx.Node, m: SparseWinogradConv3d, out_shape) -> int:
        shape, refs = self._conv_inputs(node, m, 3, out_shape)
        args = m.fill_args(*shape[:1], *shape[2:], self.threads, self.backend)
        return self._emit("conv3d", args, list(refs.items()), out_shape,
                          None if m.spec.relu_output else "relu_output")

    def _pool3d(self, node: fx.Node, m: nn.Module, out_shape) -> int:
        """3-D max pooling (no padding, floor mode) and global average pooling as 2-D pooling
        of views: the H x W windows over (N, C*D, H, W), then the depth windows over
        (N*C, 1, D, H'*W'); the global average over (N, C, 1, D*H*W)."""
        source = self._arg(node)
        shape = self.values[source].shape
        if len(shape) != 5 or len(out_shape) != 5:
            raise UnsupportedGraph(f"{node.name}: 3-D pooling needs (N, C, D, H, W)")
        n, c, d, h, w = shape
        if type(m) is nn.AdaptiveAvgPool3d:
            if tuple(out_shape[2:]) != (1, 1, 1):
                raise UnsupportedGraph(f"{node.name}: adaptive pooling to {out_shape[2:]}")
            return self._pool_op(source, (n, c, 1, d * h * w), (1, d * h * w), (1, d * h * w),
                                 1, out_shape)
        triple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)  # noqa: E731
        kernel = triple(m.kernel_size)
        stride = triple(m.stride if m.stride is not None else m.kernel_size)
        if triple(m.padding) != (0, 0, 0) or triple(m.dilation) != (1, 1, 1) or m.ceil_mode \
                or m.return_indices:
            raise UnsupportedGraph(f"{node.name}: padded, dilated or ceil-mode 3-D pooling")
        current, (ho, wo) = source, (out_shape[3], out_shape[4])
        if kernel[1:] != (1, 1) or stride[1:] != (1, 1):
            current = self._pool_op(current, (n, c * d, h, w), kernel[1:], stride[1:], 0,
                                    (n, c, d, ho, wo))
        if kernel[0] != 1 or stride[0] != 1:
            current = self._pool_op(current, (n * c, 1, d, ho * wo), (kernel[0], 1),
                                    (stride[0], 1), 0, out_shape)
        if current == source:
            raise UnsupportedGraph(f"{node.name}: a 1x1x1 pooling")
        return current

    def _pool_op(self, source: int, view: tuple[int, int, int, int], kernel: tuple[int, int],
                 stride: tuple[int, int], kind: int, out_shape) -> int:
        """One unpadded pool2d operation (``kind`` 0: max, 1: average) over ``source`` seen as
        ``view`` (N, C, H, W)."""
        args = kernels.SwPool2dArgs()
        args.N, args.C, args.H, args.W = view
        args.Ho = (view[2] - kernel[0]) // stride[0] + 1
        args.Wo = (view[3] - kernel[1]) // stride[1] + 1
        (args.kh, args.kw), (args.sh, args.sw), args.ph, args.pw = kernel, stride, 0, 0
        args.kind, args.count_include_pad = kind, 0
        args.threads, args.isa = self.threads, self.isa
        return self._emit("pool2d", args, [("x", source)], out_shape, "relu")

    def _decomposed(self, node: fx.Node, m: SparseDecomposedConv2d, out_shape) -> int:
        """A DWM layer's operations (extract + conv2d, or chained conv2d pieces)."""
        shape, refs = self._conv_inputs(node, m, 2, out_shape)
        plans = m.lower(shape[0], shape[2], shape[3], self.threads, self.backend)
        if plans[-1].shape != tuple(out_shape):
            raise UnsupportedGraph(f"{node.name}: output shape")
        for plan in plans:
            relu_field = None
            if plan.output == "y" and plan.kind == "conv2d" and not m.spec.relu_output:
                relu_field = "relu_output"
            refs[plan.output] = self._emit(plan.kind, plan.args,
                                           [(field, refs[ref]) for field, ref in plan.inputs],
                                           plan.shape, relu_field)
        return refs["y"]

    def _gemm(self, node: fx.Node, m: _GemmModule, out_shape) -> int:
        source = self._arg(node)
        shape = self.values[source].shape
        if isinstance(m, SparseLinear):
            if len(shape) != 2 or shape[0] == 0:
                raise UnsupportedGraph(f"{node.name}: input {shape}")
            batch, spatial = shape[0], 1
        else:
            assert isinstance(m, SparsePointwiseConv2d)
            if len(shape) != 4 or shape[0] == 0:
                raise UnsupportedGraph(f"{node.name}: input {shape}")
            if m.stride != (1, 1):                      # subsample with a 1x1 "pool"
                args = kernels.SwPool2dArgs()
                args.N, args.C, args.H, args.W = shape
                args.Ho, args.Wo = out_shape[2], out_shape[3]
                args.kh = args.kw = 1
                args.sh, args.sw = m.stride
                args.kind, args.threads, args.isa = 0, self.threads, self.isa
                source = self._emit("pool2d", args, [("x", source)],
                                    (shape[0], shape[1], out_shape[2], out_shape[3]))
            batch, spatial = shape[0], out_shape[2] * out_shape[3]
        args = m.fill_args(batch, spatial, self.threads, self.backend)
        inputs = [("x", source)]
        if m.residual:
            residual = self._arg(node, 1)
            if self.values[residual].shape != tuple(out_shape):
                raise UnsupportedGraph(f"{node.name}: residual shape")
            inputs.append(("residual", residual))
        self.keep.append(m)
        return self._emit("gemm", args, inputs, out_shape, None if m.relu else "relu")

    def _torch_step(self, node: fx.Node) -> int:
        self.torch_nodes.append(node.name)
        if node.op == "call_module":
            module = self.modules[node.target]
            run = module
        elif node.op == "call_function":
            run = node.target
        elif node.op == "call_method":
            run = (lambda name: lambda obj, *a, **k: getattr(obj, name)(*a, **k))(node.target)
        else:                                           # get_attr
            raise UnsupportedGraph(f"{node.name}: {node.op} is not supported")
        self.steps.append(_TorchStep(node, run))
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape") or meta.dtype != torch.float32:
            # A non-tensor or non-float32 result: only PyTorch steps may read it.
            return self._new_value((), "python")
        return self._new_value(tuple(meta.shape), "dynamic")

    # ------------------------------------------------------------------ memory
    def _allocate(self) -> None:
        if not hasattr(self, "output"):
            raise UnsupportedGraph("the graph has no output")
        for vid, value in self.values.items():
            if value.kind == "python" and vid == self.output:
                raise UnsupportedGraph("the output is not a float32 tensor")
        # Step index of each value's write and last read (aliases extend their root's life).
        order: list[tuple[int, _Op | _TorchStep]] = []
        for step in self.steps:
            if isinstance(step, _Segment):
                order += [(len(order), op) for op in step.ops]
            else:
                order.append((len(order), step))
        for index, item in order:
            reads = [v for _, v in item.inputs] if isinstance(item, _Op) else \
                [self.node_value[a] for a in _node_inputs(item.node)]
            for v in reads:
                root = self.values[v].root
                self.values[root].last = max(self.values[root].last, index)
            written = item.output[1] if isinstance(item, _Op) else self.node_value[item.node]
            self.values[written].first = index
        out_root = self.values[self.output].root
        if self.values[out_root].kind == "arena":
            self.values[out_root].kind = "dynamic"      # a fresh tensor per call
        # Greedy first-fit over the write order: a buffer is reused once its last reader ran.
        live: list[tuple[int, int, int]] = []           # (offset, size, last)
        size = 0
        for vid in sorted(self.values, key=lambda v: self.values[v].first):
            value = self.values[vid]
            if value.root != vid or value.kind != "arena":
                continue
            need = -(-max(value.numel, 1) // _ALIGN) * _ALIGN
            live = [blk for blk in live if blk[2] >= value.first]
            offset = 0
            for start, length, _ in sorted(live):
                if offset + need <= start:
                    break
                offset = max(offset, start + length)
            value.offset = offset
            live.append((offset, need, value.last))
            size = max(size, offset + need)
        self.arena = torch.empty(max(size, _ALIGN))
        base = self.arena.data_ptr()
        # Pointers: fixed for arena values, patched per call for the others.
        self.patches: list[tuple[Any, str, int]] = []
        workspace = 0
        lib = kernels.library()
        for step in self.steps:
            if not isinstance(step, _Segment):
                continue
            for op in step.ops:
                for name, vid in op.inputs + [op.output]:
                    root = self.values[self.values[vid].root]
                    if root.kind == "arena":
                        setattr(op.args, name, base + 4 * root.offset)
                    else:
                        self.patches.append((op.args, name, self.values[vid].root))
                if op.kind in (kernels.OP_KINDS["conv2d"], kernels.OP_KINDS["gemm"],
                               kernels.OP_KINDS["conv3d"]):
                    floats = ctypes.c_int64()
                    call = {kernels.OP_KINDS["conv2d"]: lib.sw_conv2d_workspace,
                            kernels.OP_KINDS["conv3d"]: lib.sw_conv3d_workspace}.get(
                        op.kind, lib.sw_gemm_workspace)
                    kernels.check_status(call(ctypes.byref(op.args), ctypes.byref(floats)),
                                         "planning")
                    workspace = max(workspace, floats.value)
        self.workspace = torch.empty(max(workspace, _ALIGN))
        for step in self.steps:
            if isinstance(step, _Segment):
                for op in step.ops:
                    if hasattr(op.args, "workspace"):
                        op.args.workspace = self.workspace.data_ptr()
                        op.args.workspace_floats = self.workspace.numel()
                step.array = (kernels.SwOp * len(step.ops))(
                    *[kernels.SwOp(op.kind, ctypes.cast(ctypes.pointer(op.args), ctypes.c_void_p))
                      for op in step.ops])
        self.kernel_ops = sum(len(s.ops) for s in self.steps if isinstance(s, _Segment))
        self._input = next(v for v, value in self.values.items() if value.kind == "input")
        self._fresh_output = self.values[out_root].kind == "dynamic" and out_root != \
            self.values[self._input].root and not any(
                isinstance(s, _TorchStep) and self.node_value[s.node] == out_root
                for s in self.steps)

    def _tensor(self, vid: int, dynamic: dict[int, Any]) -> Any:
        value = self.values[vid]
        if value.kind == "const":
            return self.constants[vid]
        root = self.values[value.root]
        if root.kind == "arena":
            return self.arena[root.offset:root.offset + value.numel].view(value.shape)
        data = dynamic[value.root]
        if not isinstance(data, torch.Tensor) or vid == value.root:
            return data
        return data.reshape(value.shape)

    # ------------------------------------------------------------------ run
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the graph's output for ``x`` (the shape this program was built for)."""
        lib = kernels.library()
        dynamic: dict[int, Any] = {self._input: x}
        if self._fresh_output:
            out_root = self.values[self.output].root
            dynamic[out_root] = torch.empty(self.values[out_root].shape)
        failed = ctypes.c_int32()
        for step in self.steps:
            if isinstance(step, _Segment):
                for struct, name, root in self.patches_by_segment(step):
                    setattr(struct, name, dynamic[root].data_ptr())
                status = lib.sw_run_program(step.array, len(step.ops), ctypes.byref(failed))
                kernels.check_status(status, f"program step {failed.value}")
                continue
            node = step.node
            args = fx.node.map_arg(node.args, lambda n: self._tensor(self.node_value[n], dynamic))
            kwargs = fx.node.map_arg(node.kwargs,
                                     lambda n: self._tensor(self.node_value[n], dynamic))
            result = step.run(*args, **kwargs)
            vid = self.node_value[node]
            if isinstance(result, torch.Tensor) and self.values[vid].kind == "dynamic":
                if result.dtype != torch.float32:
                    raise RuntimeError(f"{node.name} returned {result.dtype} where the plan "
                                       "expected float32")
                if _shares_storage(result, self.arena) or not result.is_contiguous():
                    result = result.contiguous().clone() if _shares_storage(result, self.arena) \
                        else result.contiguous()
            dynamic[vid] = result
        result = self._tensor(self.output, dynamic)
        return result

    def patches_by_segment(self, segment: _Segment) -> list[tuple[Any, str, int]]:
        structs = {id(op.args) for op in segment.ops}
        cached = getattr(segment, "_patches", None)
        if cached is None:
            cached = [p for p in self.patches if id(p[0]) in structs]
            segment._patches = cached  # type: ignore[attr-defined]
        return cached


def profile(program: "Program", x: torch.Tensor, repeats: int = 20) -> list[tuple[str, str, float]]:
    """Median milliseconds of each step of ``program`` on ``x``: kernel operations one by one
    (as one-operation programs), PyTorch steps as a whole. Returns (name, kind, ms) rows."""
    import statistics
    import time
    lib = kernels.library()
    kinds = {code: name for name, code in kernels.OP_KINDS.items()}
    keep = program.run(x)            # fills the dynamic pointers; keeps the output they point to
    rows = []
    with torch.no_grad():
        for step in program.steps:
            if isinstance(step, _Segment):
                for index, op in enumerate(step.ops):
                    one = ctypes.byref(step.array[index])
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        lib.sw_run_program(one, 1, None)
                        times.append(time.perf_counter() - start)
                    rows.append((op.name, kinds[op.kind], statistics.median(times) * 1e3))
            else:
                rows.append((step.node.name, "pytorch", float("nan")))
    del keep
    return rows


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _node_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def _shares_storage(tensor: torch.Tensor, arena: torch.Tensor) -> bool:
    start, end = arena.data_ptr(), arena.data_ptr() + 4 * arena.numel()
    return start <= tensor.data_ptr() < end


def build_program(gm: fx.GraphModule, x: torch.Tensor, threads: int,
                  backend: str) -> Program | None:
    """The program of ``gm`` for inputs shaped like ``x``, or ``None`` when the graph cannot
    run as one (several inputs or outputs, non-float32 values...): then run ``gm`` itself."""
    try:
        return Program(gm, x, threads, backend)
    except UnsupportedGraph:
        return None
