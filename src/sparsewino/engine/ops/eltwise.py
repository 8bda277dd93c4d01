"""Element-wise nodes: ReLU (fused into the producing operation where it can be), residual
additions, eval BatchNorm as a per-channel affine map → ``eltwise``; aliases (flatten, view,
identity, eval dropout) and ``x.size()`` cost nothing."""
from __future__ import annotations

import math
import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import kernels
from . import register_node_op
from .base import Emitter, NodeOp, UnsupportedGraph

RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
ALIAS_METHODS = ("flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze")


def eltwise(emitter: Emitter, kind: int, a: int, b: int | None, shape: tuple[int, ...],
            relu: bool, scale: torch.Tensor | None = None,
            shift: torch.Tensor | None = None) -> int:
    """One ``eltwise`` operation (``kind``: ``kernels.ELTWISE_*``) writing a value of ``shape``."""
    args = kernels.eltwise_args(kind, relu, shape, emitter.threads, emitter.isa, scale, shift)
    inputs = [("a", a)] + ([("b", b)] if b is not None else [])
    return emitter.emit("eltwise", args, inputs, shape, "relu")


class Relu(NodeOp):
    name = "relu"
    description = "ReLU: a flag of the operation before it when nothing else reads its output"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        if node.op == "call_module":
            return type(module) is nn.ReLU
        if node.op == "call_function":
            return node.target in RELU_FUNCTIONS
        return node.op == "call_method" and node.target in ("relu", "relu_")

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        fused = emitter.fuse_relu(inputs[0])
        if fused is not None:
            return emitter.alias(fused, out_shape)
        return eltwise(emitter, kernels.ELTWISE_COPY, inputs[0], None, out_shape, relu=True)


class Add(NodeOp):
    name = "add"
    description = "a + b of two tensors of one shape (residual additions not fused into a layer)"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return node.op == "call_function" and node.target in ADD_FUNCTIONS and \
            len(node.args) == 2 and not node.kwargs and \
            all(isinstance(a, fx.Node) for a in node.args)

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        a, b = inputs
        if emitter.shape(a) != out_shape or emitter.shape(b) != out_shape:
            raise UnsupportedGraph(f"{node.name} broadcasts")
        return eltwise(emitter, kernels.ELTWISE_ADD, a, b, out_shape, relu=False)


class Affine(NodeOp):
    name = "affine"
    description = "eval-mode BatchNorm2d/3d not folded into a layer: y = x * scale[c] + shift[c]"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return type(module) in (nn.BatchNorm2d, nn.BatchNorm3d) and not module.training and \
            module.running_mean is not None

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        inv = torch.rsqrt(module.running_var.double() + module.eps)
        weight = module.weight.double() if module.weight is not None else torch.ones_like(inv)
        bias = module.bias.double() if module.bias is not None else torch.zeros_like(inv)
        scale = (weight * inv).float().contiguous()
        shift = (bias - module.running_mean.double() * weight * inv).float().contiguous()
        if len(out_shape) < 2 or out_shape[1] != scale.numel():
            raise UnsupportedGraph(f"{node.name}: channels do not match")
        emitter.keep(scale)
        emitter.keep(shift)
        return eltwise(emitter, kernels.ELTWISE_AFFINE, inputs[0], None, out_shape, False,
                       scale, shift)


class Alias(NodeOp):
    name = "alias"
    description = "flatten, view, reshape, identity, eval dropout: the same memory, no work"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        if node.op == "call_module":
            if type(module) in (nn.Identity,) or \
                    (type(module) is nn.Flatten and module.start_dim == 1 and module.end_dim == -1):
                return True
            return type(module) in (nn.Dropout, nn.Dropout2d, nn.Dropout3d) and not module.training
        if node.op == "call_function":
            return node.target is torch.flatten
        return node.op == "call_method" and node.target in ALIAS_METHODS

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        if math.prod(emitter.shape(inputs[0])) != math.prod(out_shape):
            raise UnsupportedGraph(f"{node.name} changes the number of elements")
        return emitter.alias(inputs[0], out_shape)


class Size(NodeOp):
    name = "size"
    description = "x.size() / x.size(d): a constant once the input shape is fixed"
    produces_tensor = False

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return node.op == "call_method" and node.target == "size"

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        shape = torch.Size(emitter.shape(inputs[0]))
        dims = node.args[1:] or tuple(node.kwargs.values())
        return emitter.constant(shape[dims[0]] if dims else shape)


RELU = register_node_op(Relu())
ADD = register_node_op(Add())
AFFINE = register_node_op(Affine())
ALIAS = register_node_op(Alias())
SIZE = register_node_op(Size())
