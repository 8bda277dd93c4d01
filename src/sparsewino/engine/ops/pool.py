"""Pooling nodes: 2-D max/average/adaptive-average pooling → ``pool2d``; 3-D max pooling and global
average pooling → ``pool2d`` over views of the (N, C, D, H, W) tensor; ``x.mean((2, 3))`` (global
average pooling as ONNX models and hand-written forwards write it) → ``pool2d``."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import fx, nn

from .. import kernels
from . import register_node_op
from .base import Emitter, NodeOp, UnsupportedGraph, pair


def pool_args(emitter: Emitter, view: Sequence[int], out: Sequence[int], kernel: Sequence[int],
              stride: Sequence[int], padding: Sequence[int], kind: int,
              count_include_pad: bool = False) -> kernels.SwPool2dArgs:
    """The ``pool2d`` struct over ``view`` (N, C, H, W) to ``out`` (Ho, Wo)."""
    args = kernels.SwPool2dArgs()
    args.N, args.C, args.H, args.W = view
    args.Ho, args.Wo = out
    (args.kh, args.kw), (args.sh, args.sw), (args.ph, args.pw) = kernel, stride, padding
    args.kind, args.count_include_pad = kind, int(count_include_pad)
    args.threads, args.isa = emitter.threads, emitter.isa
    return args


class Pool2d(NodeOp):
    name = "pool2d"
    description = "MaxPool2d (no dilation), AvgPool2d, AdaptiveAvgPool2d with even windows"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        if type(module) is nn.MaxPool2d:
            return pair(module.dilation) == (1, 1) and not module.return_indices
        if type(module) in (nn.AvgPool2d, nn.AdaptiveAvgPool2d):
            return getattr(module, "divisor_override", None) is None
        return False

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        shape = emitter.shape(inputs[0])
        if len(shape) != 4 or len(out_shape) != 4:
            raise UnsupportedGraph(f"{node.name}: pooling needs (N, C, H, W)")
        h, w = shape[2:]
        ho, wo = out_shape[2:]
        if type(module) is nn.AdaptiveAvgPool2d:
            if h % ho or w % wo:
                raise UnsupportedGraph(f"{node.name}: adaptive pooling with uneven windows")
            window = (h // ho, w // wo)
            args = pool_args(emitter, shape, (ho, wo), window, window, (0, 0), kernels.POOL_AVG)
        else:
            stride = module.stride if module.stride is not None else module.kernel_size
            average = type(module) is nn.AvgPool2d
            args = pool_args(emitter, shape, (ho, wo), pair(module.kernel_size), pair(stride),
                             pair(module.padding),
                             kernels.POOL_AVG if average else kernels.POOL_MAX,
                             average and module.count_include_pad)
        return emitter.emit("pool2d", args, [("x", inputs[0])], out_shape, "relu")


class Pool3d(NodeOp):
    name = "pool3d"
    description = ("MaxPool3d (no padding or dilation, floor mode) and AdaptiveAvgPool3d(1) as "
                   "2-D pooling of views")

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return type(module) in (nn.MaxPool3d, nn.AdaptiveAvgPool3d)

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        """The H x W windows over (N, C*D, H, W), then the depth windows over
        (N*C, 1, D, H'*W'); the global average over (N, C, 1, D*H*W)."""
        source = inputs[0]
        shape = emitter.shape(source)
        if len(shape) != 5 or len(out_shape) != 5:
            raise UnsupportedGraph(f"{node.name}: 3-D pooling needs (N, C, D, H, W)")
        n, c, d, h, w = shape
        if type(module) is nn.AdaptiveAvgPool3d:
            if tuple(out_shape[2:]) != (1, 1, 1):
                raise UnsupportedGraph(f"{node.name}: adaptive pooling to {out_shape[2:]}")
            return _unpadded(emitter, source, (n, c, 1, d * h * w), (1, d * h * w),
                             (1, d * h * w), kernels.POOL_AVG, out_shape)
        triple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)  # noqa: E731
        kernel = triple(module.kernel_size)
        stride = triple(module.stride if module.stride is not None else module.kernel_size)
        if triple(module.padding) != (0, 0, 0) or triple(module.dilation) != (1, 1, 1) or \
                module.ceil_mode or module.return_indices:
            raise UnsupportedGraph(f"{node.name}: padded, dilated or ceil-mode 3-D pooling")
        current, (ho, wo) = source, (out_shape[3], out_shape[4])
        if kernel[1:] != (1, 1) or stride[1:] != (1, 1):
            current = _unpadded(emitter, current, (n, c * d, h, w), kernel[1:], stride[1:],
                                kernels.POOL_MAX, (n, c, d, ho, wo))
        if kernel[0] != 1 or stride[0] != 1:
            current = _unpadded(emitter, current, (n * c, 1, d, ho * wo), (kernel[0], 1),
                                (stride[0], 1), kernels.POOL_MAX, out_shape)
        if current == source:
            raise UnsupportedGraph(f"{node.name}: a 1x1x1 pooling")
        return current


def _unpadded(emitter: Emitter, source: int, view: tuple[int, int, int, int],
              kernel: Sequence[int], stride: Sequence[int], kind: int, out_shape) -> int:
    """One unpadded ``pool2d`` over ``source`` seen as ``view`` (N, C, H, W)."""
    out = ((view[2] - kernel[0]) // stride[0] + 1, (view[3] - kernel[1]) // stride[1] + 1)
    args = pool_args(emitter, view, out, kernel, stride, (0, 0), kind)
    return emitter.emit("pool2d", args, [("x", source)], out_shape, "relu")


class SpatialMean(NodeOp):
    name = "mean"
    description = "x.mean((2, 3)) / torch.mean over H and W of (N, C, H, W): global average pooling"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        if node.op == "call_function":
            return node.target is torch.mean
        return node.op == "call_method" and node.target == "mean"

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        shape = emitter.shape(inputs[0])
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        dims = (dims,) if isinstance(dims, int) else dims
        if len(shape) != 4 or not isinstance(dims, (tuple, list)) or \
                sorted(d % 4 for d in dims if isinstance(d, int)) != [2, 3] or \
                node.kwargs.get("dtype") is not None:
            raise UnsupportedGraph(f"{node.name}: only the mean over H and W of (N, C, H, W)")
        window = tuple(shape[2:])
        args = pool_args(emitter, shape, (1, 1), window, window, (0, 0), kernels.POOL_AVG)
        return emitter.emit("pool2d", args, [("x", inputs[0])], out_shape, "relu")


POOL2D = register_node_op(Pool2d())
POOL3D = register_node_op(Pool3d())
MEAN = register_node_op(SpatialMean())
