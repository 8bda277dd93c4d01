"""GEMM layers: ``nn.Linear`` → ``SparseLinear`` and 1x1 ``nn.Conv2d`` → ``SparsePointwiseConv2d``,
both → ``gemm`` (a strided 1x1 convolution subsamples first with a 1x1 ``pool2d``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import kernels
from ..modules import SparseLinear, SparsePointwiseConv2d, _GemmModule
from ..packing import main_format
from . import register_kind
from .base import BuildOptions, CompiledKind, Emitter, UnsupportedGraph
from .direct import is_pointwise
from .pool import pool_args


class GemmKind(CompiledKind):
    name = "gemm"
    description = ("nn.Linear and 1x1 nn.Conv2d (any stride): y = W x over packed sparse or "
                   "dense rows, BatchNorm, residual and ReLU fused")
    compiled_type = _GemmModule
    compiled_names = "SparseLinear, SparsePointwiseConv2d"
    report = "sparse-gemm"

    def takes(self, module: nn.Module) -> bool:
        return type(module) is nn.Linear or (type(module) is nn.Conv2d and is_pointwise(module))

    def reason(self, module: nn.Module) -> str | None:
        if type(module) is nn.Conv2d:
            reason = SparsePointwiseConv2d.supported(module)
            return None if reason is None else f"nn.Conv2d: {reason}"
        if module.weight.dtype != torch.float32 or module.weight.device.type != "cpu":
            return "Linear: float32 CPU weights only"
        if module.in_features > kernels.MAX_COLUMNS:
            return f"Linear with more than {kernels.MAX_COLUMNS} inputs"
        return None

    def out_channels(self, module: nn.Module) -> int:
        return module.out_features if type(module) is nn.Linear else module.out_channels

    def batchnorm_type(self, module: nn.Module) -> type[nn.Module]:
        return nn.BatchNorm1d if type(module) is nn.Linear else nn.BatchNorm2d

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        build = SparseLinear.from_linear if type(module) is nn.Linear else SparsePointwiseConv2d.from_conv
        return build(module, options.threads, options.formats, options.relu, options.scale,
                     options.shift, options.residual, options.precision)

    def describe(self, layer: nn.Module) -> str:
        counts = layer.format_counts()
        what = "Linear" if isinstance(layer, SparseLinear) else f"1x1 conv stride {layer.stride}"
        fmt = main_format(counts)
        return (f"{what} {layer.in_features} -> {layer.out_features}, {fmt}, weight density "
                f"{layer.density():.3f}")

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        source = inputs[0]
        shape = emitter.shape(source)
        if isinstance(layer, SparseLinear):
            if len(shape) != 2 or shape[0] == 0:
                raise UnsupportedGraph(f"{name}: input {shape}")
            batch, spatial = shape[0], 1
        else:
            if len(shape) != 4 or shape[0] == 0:
                raise UnsupportedGraph(f"{name}: input {shape}")
            if layer.stride != (1, 1):                      # subsample with a 1x1 "pool"
                args = pool_args(emitter, shape, (out_shape[2], out_shape[3]), (1, 1),
                                 layer.stride, (0, 0), kernels.POOL_MAX)
                source = emitter.emit("pool2d", args, [("x", source)],
                                      (shape[0], shape[1], out_shape[2], out_shape[3]))
            batch, spatial = shape[0], out_shape[2] * out_shape[3]
        args = layer.fill_args(batch, spatial, emitter.threads, emitter.backend)
        refs = [("x", source)]
        if layer.residual:
            if len(inputs) < 2 or emitter.shape(inputs[1]) != tuple(out_shape):
                raise UnsupportedGraph(f"{name}: residual shape")
            refs.append(("residual", inputs[1]))
        emitter.keep(layer)
        return emitter.emit("gemm", args, refs, out_shape, None if layer.relu else "relu")


GEMM = register_kind(GemmKind())
