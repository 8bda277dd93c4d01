"""The engine's operation kinds, in two registries that every pass asks instead of testing classes.

* :data:`COMPILED_KINDS` — layers compiled into packed inference modules, one file each:
  :mod:`.conv2d` (2-D Winograd), :mod:`.conv3d` (3-D Winograd), :mod:`.dwm` (DWM pieces),
  :mod:`.direct` (pruned k×k ``nn.Conv2d``, im2col + sparse GEMM), :mod:`.gemm` (``nn.Linear``
  and 1x1 ``nn.Conv2d``);
* :data:`NODE_OPS` — graph nodes without weights of their own: :mod:`.pool` (2-D and 3-D
  pooling), :mod:`.eltwise` (ReLU, residual additions, BatchNorm as an affine map, aliases).

``compile`` asks :func:`source_kind` what a layer becomes; the program builder asks
:func:`node_op` and :func:`lookup` how a graph node lowers (through the
:class:`~.base.Emitter` interface, so no kind imports the program); the workspace planner reads
the operation's argument struct; ``count`` asks :func:`compiled_kind`. Adding a kind is one
file here that subclasses :class:`~.base.CompiledKind` or :class:`~.base.NodeOp` and calls
:func:`register_kind` / :func:`register_node_op`, plus its import line below
(docs/contributing.md, "Adding an engine operation").
"""
from __future__ import annotations

from torch import fx, nn

from ...registry import Registry
from .base import BuildOptions, CompiledKind, Emitter, NodeOp, UnsupportedGraph

__all__ = ["COMPILED_KINDS", "NODE_OPS", "register_kind", "register_node_op", "source_kind",
           "compiled_kind", "node_op", "lookup", "CompiledKind", "NodeOp", "Emitter",
           "BuildOptions", "UnsupportedGraph"]

#: Layers the engine compiles, in the order they are asked (the first that takes a layer wins).
COMPILED_KINDS: Registry[CompiledKind] = Registry("compiled layer kind")
#: Graph nodes the engine runs without weights of their own.
NODE_OPS: Registry[NodeOp] = Registry("engine node operation")


def _check_new(name: str) -> None:
    if name in COMPILED_KINDS or name in NODE_OPS:
        raise ValueError(f"engine operation kind {name!r} is already registered")


def register_kind(kind: CompiledKind) -> CompiledKind:
    """Add a compiled kind (its name must be new among kinds and node operations)."""
    _check_new(kind.name)
    return COMPILED_KINDS.register(kind)


def register_node_op(op: NodeOp) -> NodeOp:
    """Add a node operation (its name must be new among kinds and node operations)."""
    _check_new(op.name)
    return NODE_OPS.register(op)


def source_kind(module: nn.Module) -> CompiledKind | None:
    """The kind that compiles ``module``, or ``None`` (its :meth:`~.base.CompiledKind.reason`
    may still refuse it)."""
    return next((kind for kind in COMPILED_KINDS.values() if kind.takes(module)), None)


def compiled_kind(layer: nn.Module) -> CompiledKind | None:
    """The kind a compiled layer was built by, or ``None`` for any other module."""
    return next((kind for kind in COMPILED_KINDS.values()
                 if isinstance(layer, kind.compiled_type)), None)


def node_op(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The kind of engine operation a graph node becomes (shape-independent part of the
    decision), or ``None`` when it runs in PyTorch."""
    module = modules.get(node.target) if node.op == "call_module" else None
    if module is not None:
        kind = compiled_kind(module)
        if kind is not None:
            return kind.name
    return next((op.name for op in NODE_OPS.values() if op.matches(node, module)), None)


def lookup(name: str) -> CompiledKind | NodeOp:
    """The compiled kind or node operation called ``name``."""
    return COMPILED_KINDS[name] if name in COMPILED_KINDS else NODE_OPS.lookup(name)


# Registration (order matters for source_kind: the first kind that takes a layer compiles it).
from . import adder, conv2d, conv3d, direct, dwm, eltwise, gemm, pool  # noqa: E402,F401
