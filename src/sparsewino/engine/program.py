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
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

from . import kernels, ops
from .ops import node_op
from .ops.base import UnsupportedGraph

__all__ = ["Program", "build_program", "node_op", "UnsupportedGraph"]

_ALIGN = 16                                # floats: 64-byte aligned buffers


@dataclass
class _Value:
    shape: tuple[int, ...]
    root: int                      # storage owner (itself unless an alias)
    kind: str = "arena"            # "arena", "input", "dynamic" (PyTorch step results, output)
    offset: int = -1               # arena offset (floats), roots only
    shift: int = 0                 # floats from the root's start (views into a root)
    first: int = 0                 # step index where it is written
    last: int = 0                  # last step index that reads it

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class _Op:
    op: str                        # an operation name of kernels.OP_KINDS
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


class Program:
    """The executable plan of one graph for one input shape (see the module docstring).

    It is the :class:`~sparsewino.engine.ops.base.Emitter` the operation kinds of
    :mod:`sparsewino.engine.ops` lower into.
    """

    def __init__(self, gm: fx.GraphModule, x: torch.Tensor, threads: int, backend: str) -> None:
        self.threads, self.backend = threads, backend
        self.isa = kernels.isa_code(backend)
        self.modules = dict(gm.named_modules())
        self.values: dict[int, _Value] = {}
        self.node_value: dict[fx.Node, int] = {}
        self.steps: list[Any] = []                      # _Segment | _TorchStep
        self.kept: list[Any] = []                       # what the op structs point into
        self.torch_nodes: list[str] = []
        self.constants: dict[int, Any] = {}
        self._current = ""
        self._users: dict[fx.Node, int] = {}
        with torch.no_grad():
            ShapeProp(gm).propagate(x)
        self._lower(gm.graph)
        self._allocate()

    # ------------------------------------------------------------------ the Emitter interface
    def shape(self, value: int) -> tuple[int, ...]:
        return self.values[value].shape

    def emit(self, op: str, args: Any, inputs: list[tuple[str, int]], out_shape,
             relu_field: str | None = None, output_field: str = "y",
             into: int | None = None) -> int:
        if op not in kernels.OP_KINDS:
            raise ValueError(f"unknown engine operation {op!r}; known: {sorted(kernels.OP_KINDS)}")
        out = self._new_value(out_shape) if into is None else into
        self._segment().ops.append(_Op(op, args, inputs, (output_field, out), relu_field,
                                       self._current))
        return out

    def alias(self, source: int, shape) -> int:
        return self._new_value(shape, self.values[source].kind, alias_of=source)

    def new(self, shape) -> int:
        return self._new_value(shape)

    def view(self, source: int, offset: int, shape) -> int:
        value = self.values[source]
        if offset < 0 or value.shift + offset + math.prod(shape) > self.values[value.root].numel:
            raise UnsupportedGraph(f"a view of {math.prod(shape)} elements at {offset} does not fit "
                                   f"a value of shape {value.shape}")
        vid = self._new_value(shape, value.kind, alias_of=source)
        self.values[vid].shift = value.shift + offset
        return vid

    def constant(self, value: Any) -> int:
        vid = self._new_value((), "const")
        self.constants[vid] = value
        return vid

    def keep(self, obj: Any) -> None:
        self.kept.append(obj)

    def fuse_relu(self, source: int) -> int | None:
        value = self.values[source]
        if value.root != source or value.kind != "arena":
            return None
        producer = [n for n, v in self.node_value.items() if v == source]
        if len(producer) != 1 or self._users[producer[0]] != 1:
            return None
        segment = self.steps[-1] if self.steps and isinstance(self.steps[-1], _Segment) else None
        if segment is None or not segment.ops or segment.ops[-1].output[1] != source:
            return None
        op = segment.ops[-1]
        if op.relu_field is None or getattr(op.args, op.relu_field):
            return None
        setattr(op.args, op.relu_field, 1)
        return source

    # ------------------------------------------------------------------ lowering
    def _new_value(self, shape: tuple[int, ...], kind: str = "arena",
                   alias_of: int | None = None) -> int:
        vid = len(self.values)
        root = self.values[alias_of].root if alias_of is not None else vid
        self.values[vid] = _Value(tuple(int(s) for s in shape), root, kind)
        if alias_of is not None:
            self.values[vid].shift = self.values[alias_of].shift
        return vid

    def _segment(self) -> _Segment:
        if not self.steps or not isinstance(self.steps[-1], _Segment):
            self.steps.append(_Segment())
        return self.steps[-1]

    @staticmethod
    def _shape(node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise UnsupportedGraph(f"node {node.name} does not produce one tensor")
        if meta.dtype != torch.float32:
            raise UnsupportedGraph(f"node {node.name} produces {meta.dtype}")
        return tuple(meta.shape)

    def _lower(self, graph: fx.Graph) -> None:
        self._users = {node: len(node.users) for node in graph.nodes}
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
            self._current = str(node.target) if node.op == "call_module" else node.name
            try:
                vid = self._lower_node(node, kind) if kind is not None else None
            except UnsupportedGraph:
                vid = None
            if vid is None:
                vid = self._torch_step(node)
            self.node_value[node] = vid

    def _inputs(self, node: fx.Node) -> list[int]:
        """Value ids of the node's tensor arguments (positional, in order)."""
        values = []
        for index, arg in enumerate(node.args):
            if isinstance(arg, fx.Node):
                if arg not in self.node_value:
                    raise UnsupportedGraph(f"{node.name}: argument {index} is not a computed tensor")
                values.append(self.node_value[arg])
        if not values:
            raise UnsupportedGraph(f"{node.name}: no tensor argument")
        return values

    def _lower_node(self, node: fx.Node, kind: str) -> int:
        entry = ops.lookup(kind)
        module = self.modules[node.target] if node.op == "call_module" else None
        inputs = self._inputs(node)
        if isinstance(entry, ops.CompiledKind):
            return entry.lower(self, module, inputs, self._shape(node), node.name)
        out_shape = self._shape(node) if entry.produces_tensor else ()
        return entry.lower(self, node, module, inputs, out_shape)

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
        seen_writes: set[int] = set()
        for index, item in order:
            reads = [v for _, v in item.inputs] if isinstance(item, _Op) else \
                [self.node_value[a] for a in _node_inputs(item.node)]
            for v in reads:
                root = self.values[v].root
                self.values[root].last = max(self.values[root].last, index)
            written = item.output[1] if isinstance(item, _Op) else self.node_value[item.node]
            root = self.values[self.values[written].root]
            if written not in seen_writes and self.values[written].root not in seen_writes:
                root.first = index                      # the first write (views write in parts)
            seen_writes.update((written, self.values[written].root))
            root.last = max(root.last, index)
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
        self.patches: list[tuple[Any, str, int, int]] = []     # (struct, field, root, bytes)
        workspace = 0
        for step in self.steps:
            if not isinstance(step, _Segment):
                continue
            for op in step.ops:
                for name, vid in op.inputs + [op.output]:
                    value = self.values[vid]
                    root = self.values[value.root]
                    if root.kind == "arena":
                        setattr(op.args, name, base + 4 * (root.offset + value.shift))
                    else:
                        self.patches.append((op.args, name, value.root, 4 * value.shift))
                workspace = max(workspace, kernels.workspace_floats(op.op, op.args))
        self.workspace = torch.empty(max(workspace, _ALIGN))
        for step in self.steps:
            if isinstance(step, _Segment):
                for op in step.ops:
                    if hasattr(op.args, "workspace"):
                        op.args.workspace = self.workspace.data_ptr()
                        op.args.workspace_floats = self.workspace.numel()
                step.array = kernels.op_array([(op.op, op.args) for op in step.ops])
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
            start = root.offset + value.shift
            return self.arena[start:start + value.numel].view(value.shape)
        data = dynamic[value.root]
        if not isinstance(data, torch.Tensor) or vid == value.root:
            return data
        if value.shift:
            return data.reshape(-1)[value.shift:value.shift + value.numel].view(value.shape)
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
                for struct, name, root, shift in self.patches_by_segment(step):
                    setattr(struct, name, dynamic[root].data_ptr() + shift)
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

    def patches_by_segment(self, segment: _Segment) -> list[tuple[Any, str, int, int]]:
        cached = getattr(segment, "_patches", None)
        if cached is None:
            structs = {id(op.args) for op in segment.ops}
            cached = [p for p in self.patches if id(p[0]) in structs]
            segment._patches = cached  # type: ignore[attr-defined]
        return cached


def profile(program: "Program", x: torch.Tensor, repeats: int = 20,
            mode: str = "sequence") -> list[tuple[str, str, float]]:
    """Median milliseconds of each step of ``program`` on ``x``; PyTorch steps as NaN.

    ``mode="sequence"``: each kernel operation timed inside whole runs of its segment
    (``sw_run_program_timed``), with the caches as a real call leaves them: the rows add up
    to the call less its Python and ctypes time. ``mode="alone"``: each operation run by
    itself ``repeats`` times (its weights and buffers warm): what the operation costs at best.
    At batch 1 the two differ by what a call loses to cold weights and buffers (measured in
    docs/performance.md), not by time outside the kernels. Returns (name, kind, ms) rows.
    """
    import statistics
    import time
    if mode not in ("sequence", "alone"):
        raise ValueError(f"mode must be 'sequence' or 'alone', got {mode!r}")
    lib = kernels.library()
    keep = program.run(x)            # fills the dynamic pointers; keeps the output they point to
    rows = []
    with torch.no_grad():
        for step in program.steps:
            if not isinstance(step, _Segment):
                rows.append((step.node.name, "pytorch", float("nan")))
                continue
            if mode == "sequence":
                seconds = (ctypes.c_double * len(step.ops))()
                runs = [[] for _ in step.ops]
                for _ in range(repeats):
                    status = lib.sw_run_program_timed(step.array, len(step.ops), None, seconds)
                    kernels.check_status(status, "profiled program")
                    for i in range(len(step.ops)):
                        runs[i].append(seconds[i])
                rows += [(op.name, op.op, statistics.median(r) * 1e3)
                         for op, r in zip(step.ops, runs)]
                continue
            for index, op in enumerate(step.ops):
                one = ctypes.byref(step.array[index])
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    lib.sw_run_program(one, 1, None)
                    times.append(time.perf_counter() - start)
                rows.append((op.name, op.op, statistics.median(times) * 1e3))
    del keep
    return rows


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
