"""The two shapes of an engine operation kind, and the interface lowering code writes to.

* :class:`CompiledKind` — a source layer the engine compiles into an inference module holding
  packed weights (a 2-D or 3-D Winograd convolution, DWM pieces, a GEMM layer, an adder
  layer): which modules it takes, why it refuses one, how it builds (packs), how it describes
  itself in the compile report, how it lowers into a program and what ``count`` reads.
* :class:`NodeOp` — a graph node the engine runs without weights of its own (pooling,
  element-wise operations, aliases such as ``flatten``).

Both lower through an :class:`Emitter` (implemented by :class:`~sparsewino.engine.program.Program`):
lowering code never imports the program, so there is no import cycle, and a kind is one file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch
from torch import fx, nn

__all__ = ["UnsupportedGraph", "Emitter", "BuildOptions", "CompiledKind", "NodeOp",
           "forward_overridden", "pair", "conv_inputs", "grouped_weights", "emit_plans"]


class UnsupportedGraph(Exception):
    """The graph (or one node of it) cannot run as a program for this input: the node runs in
    PyTorch (or the caller runs the graph itself)."""


class Emitter(Protocol):
    """What lowering code may do with the program being built.

    Values are integer ids of tensors of a fixed shape (the program's arena, its input and
    output, results of PyTorch steps); pointer fields of an operation's argument struct are
    bound to values by name (``("x", value)``) and filled in when memory is planned.
    """

    threads: int              #: OpenMP threads of every operation
    backend: str              #: the engine backend's name (``"avx2"``...)
    isa: int                  #: its instruction-set code

    def shape(self, value: int) -> tuple[int, ...]:
        """The shape of ``value``."""

    def emit(self, op: str, args: Any, inputs: list[tuple[str, int]], out_shape: Sequence[int],
             relu_field: str | None = None, output_field: str = "y",
             into: int | None = None) -> int:
        """Append operation ``op`` (an entry of ``kernels.OP_KINDS``) with argument struct
        ``args`` reading ``inputs`` and writing a new value of ``out_shape`` (or the existing
        value ``into``, e.g. a :meth:`view` of a larger one); ``relu_field`` names the flag a
        following ReLU may set instead of running on its own."""

    def alias(self, source: int, shape: Sequence[int]) -> int:
        """A new value sharing ``source``'s memory with another shape (same element count)."""

    def new(self, shape: Sequence[int]) -> int:
        """A new value that operations will write in parts (through views) later."""

    def view(self, source: int, offset: int, shape: Sequence[int]) -> int:
        """A value of ``shape`` at ``offset`` elements into ``source``'s memory (one image of a
        batch, say); raises :class:`UnsupportedGraph` when it does not fit."""

    def fuse_relu(self, source: int) -> int | None:
        """Set the ReLU flag of the operation that wrote ``source`` when nothing else reads it
        (returns ``source``), else ``None``."""

    def constant(self, value: Any) -> int:
        """A value known when the program is built (``x.size()`` of a fixed shape)."""

    def keep(self, obj: Any) -> None:
        """Keep ``obj`` alive as long as the program (tensors the structs point into)."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build one compiled layer: what ``compile`` was asked for and what it fuses."""

    threads: int | None = None
    formats: Any = "auto"
    precision: str = "fp32"
    relu: bool = False
    scale: torch.Tensor | None = None       # a fused eval BatchNorm: y * scale + shift
    shift: torch.Tensor | None = None
    pool: int = 0                           # a fused 2x2 max-pool (kinds with can_pool)
    residual: bool = False                  # a fused residual addition (second input)


def forward_overridden(module: nn.Module, base: type) -> str | None:
    """Why a subclass of ``base`` that overrides ``forward`` is kept as it is, else ``None``."""
    if type(module).forward is not base.forward:
        return f"{type(module).__name__} overrides forward(); kept as is"
    return None


class CompiledKind:
    """A kind of layer the engine compiles (subclass per file of :mod:`sparsewino.engine.ops`).

    Attributes:
        name: registry name (``"conv2d"``); also the program operation it lowers to unless
            :meth:`lower` says otherwise.
        description: one line for docs and reports.
        compiled_type: the inference module class it builds (how programs and ``count`` find
            the kind of a compiled layer).
        report: the compile report's kernel column (``"sparse-winograd"``, ``"sparse-gemm"``...).
        tunable: tile and formats chosen by measurement when ``compile`` gets ``tune=``.
        dims: spatial dimensions of its inputs (``count`` uses it for unbatched calls).
        counts: what ``count`` does with a compiled layer: ``"winograd"`` (reads
            :meth:`winograd_weights`) or ``None`` (not a convolution it counts).
    """

    name: str = ""
    description: str = ""
    compiled_type: type[nn.Module] = nn.Module
    report: str = "sparse-winograd"
    tunable: bool = False
    dims: int = 2
    counts: str | None = None

    @property
    def compiled_names(self) -> str:
        """The inference module class(es) it builds, for docs."""
        return self.compiled_type.__name__

    # ------------------------------------------------------------------ source side
    def takes(self, module: nn.Module) -> bool:
        """Whether ``module`` is of this kind (a cheap type test; :meth:`reason` checks the rest)."""
        raise NotImplementedError

    def reason(self, module: nn.Module) -> str | None:
        """Why the engine cannot compile ``module`` (one this kind takes), or ``None``."""
        return None

    def out_channels(self, module: nn.Module) -> int:
        """Output channels (a fused BatchNorm must have as many)."""
        return int(module.out_channels)

    def batchnorm_type(self, module: nn.Module) -> type[nn.Module]:
        """The BatchNorm class that may be folded into ``module``'s output."""
        return nn.BatchNorm2d

    def can_pool(self, module: nn.Module) -> bool:
        """Whether a following 2x2 / stride-2 max-pool may be fused into the output stage."""
        return False

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        """The compiled (packed) inference module of ``module``."""
        raise NotImplementedError

    def describe(self, layer: nn.Module) -> str:
        """One line for the compile report: algorithm, formats and density."""
        raise NotImplementedError

    # ------------------------------------------------------------------ program side
    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        """Emit the operations computing ``layer`` on ``inputs`` (value ids: ``x`` and, for a
        fused residual addition, the residual); returns the output value. Raise
        :class:`UnsupportedGraph` for an input it cannot take (the node then runs in PyTorch)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ counting
    def winograd_weights(self, layer: nn.Module) -> tuple[torch.Tensor, tuple, tuple, bool, Any]:
        """(Q float64 of shape (K, C/g, *n) or (K, C/g, S, *n), algorithms, padding pairs,
        Winograd-ReLU, decomposition) of a compiled Winograd layer, for ``count``."""
        raise NotImplementedError


class NodeOp:
    """A graph node run by the engine without weights of its own (pooling, element-wise, aliases).

    Attributes:
        name: registry name; what ``node_op`` reports.
        description: one line for docs.
    """

    name: str = ""
    description: str = ""
    produces_tensor: bool = True       #: False: a Python value (``x.size()``), no output shape

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        """Whether ``node`` (``module``: its module for ``call_module`` nodes, else ``None``) is
        of this kind (the shape-independent part of the decision)."""
        raise NotImplementedError

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        """Emit the node's operations (``inputs``: value ids of its tensor arguments, in order);
        returns its value. Raise :class:`UnsupportedGraph` to run it in PyTorch."""
        raise NotImplementedError


def pair(value: Any) -> tuple[int, int]:
    """``(v, v)`` for a number, the tuple for a pair."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore


def conv_inputs(emitter: Emitter, layer: nn.Module, dims: int, inputs: Sequence[int],
                out_shape: Sequence[int], name: str,
                residual: bool | None = None) -> tuple[tuple[int, ...], dict[str, int]]:
    """A compiled convolution's input shape and value refs (``x``, and ``residual`` for a fused
    residual addition: ``residual``, default ``layer.spec.residual``), checked against what the
    layer was compiled for."""
    if not inputs:
        raise UnsupportedGraph(f"{name}: no tensor input")
    shape = emitter.shape(inputs[0])
    if len(shape) != dims + 2 or shape[1] != layer.in_channels or shape[0] == 0:
        raise UnsupportedGraph(f"{name}: input {shape}")
    refs = {"x": inputs[0]}
    if layer.spec.residual if residual is None else residual:
        if len(inputs) < 2 or emitter.shape(inputs[1]) != tuple(out_shape):
            raise UnsupportedGraph(f"{name}: residual shape")
        refs["residual"] = inputs[1]
    emitter.keep(layer)
    return shape, refs


def grouped_weights(u: torch.Tensor, groups: int, n: int, dims: int) -> torch.Tensor:
    """Packed ``(P, K, C)`` weights of a compiled Winograd layer as ``(K, C/g, *n)`` float64
    (the block-diagonal packing of grouped layers undone)."""
    k, c = u.shape[1], u.shape[2]
    q = u.permute(1, 2, 0).reshape(k, c, *(n,) * dims)
    q = torch.cat([q[i * k // groups:(i + 1) * k // groups, i * c // groups:(i + 1) * c // groups]
                   for i in range(groups)])
    return q.double()


def emit_plans(emitter: Emitter, plans: Sequence[Any], refs: dict[str, int],
               partial: dict[str, Sequence[int]] | None = None,
               final_relu_field: str | None = None) -> int:
    """Emit a compiled layer's operations (``OpPlan``s naming buffers, as its standalone forward
    runs them) and return the value of its output ``"y"``.

    ``refs`` maps the layer's inputs (``"x"``, ``"residual"``) to values; ``partial`` names the
    buffers that operations write in parts (at ``plan.offsets``), made first with their shape;
    ``final_relu_field`` is the flag of the operation writing ``"y"`` that a following ReLU may
    set.
    """
    refs = dict(refs)
    for name, shape in (partial or {}).items():
        refs[name] = emitter.new(tuple(shape))
    for plan in plans:
        inputs = []
        for name, ref in plan.inputs:
            value = refs[ref]
            offset = plan.offsets.get(name)
            if offset is not None:
                rest = math.prod(emitter.shape(value)) - offset
                value = emitter.view(value, offset, (rest,))
            inputs.append((name, value))
        offset = plan.offsets.get(plan.output_field)
        relu_field = final_relu_field if plan.output == "y" and offset is None else None
        if offset is not None:
            into = emitter.view(refs[plan.output], offset, plan.shape)
            emitter.emit(plan.kind, plan.args, inputs, plan.shape, relu_field, plan.output_field,
                         into=into)
        else:
            refs[plan.output] = emitter.emit(plan.kind, plan.args, inputs, plan.shape,
                                             relu_field, plan.output_field)
    return refs["y"]
