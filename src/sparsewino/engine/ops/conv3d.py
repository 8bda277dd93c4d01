"""The 3-D Winograd convolution: ``WinogradConv3d`` (low-rank included) → ``SparseWinogradConv3d`` → ``conv3d``."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ...nn.conv import WinogradConv3d, _WinogradConvNd
from ..modules3d import SparseWinogradConv3d, unsupported_reason3d
from . import register_kind
from .base import BuildOptions, CompiledKind, Emitter, conv_inputs, forward_overridden, grouped_weights
from .conv2d import describe_winograd


class Conv3dKind(CompiledKind):
    name = "conv3d"
    description = ("stride-1 WinogradConv3d or LowRankWinogradConv3d: F(m, r)³ with all-zero "
                   "positions (pruned low-rank columns) skipped")
    compiled_type = SparseWinogradConv3d
    tunable = True
    dims = 3
    counts = "winograd"

    def takes(self, module: nn.Module) -> bool:
        return isinstance(module, WinogradConv3d)

    def reason(self, module: nn.Module) -> str | None:
        return forward_overridden(module, _WinogradConvNd) or unsupported_reason3d(module)

    def batchnorm_type(self, module: nn.Module) -> type[nn.Module]:
        return nn.BatchNorm3d

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        return SparseWinogradConv3d.from_layer(module, options.threads, options.formats,
                                               options.relu, options.scale, options.shift,
                                               options.residual, options.precision)

    def describe(self, layer: nn.Module) -> str:
        return describe_winograd(layer, "³")

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        shape, refs = conv_inputs(emitter, layer, 3, inputs, out_shape, name)
        args = layer.fill_args(shape[0], *shape[2:], emitter.threads, emitter.backend)
        return emitter.emit("conv3d", args, list(refs.items()), out_shape,
                            None if layer.spec.relu_output else "relu_output")

    def winograd_weights(self, layer: nn.Module) -> tuple:
        spec = layer.spec
        q = grouped_weights(layer.dense_weights(), spec.groups, spec.n, 3)
        return q, (spec.algorithm,) * 3, spec.padding, spec.winograd_relu, None


CONV3D = register_kind(Conv3dKind())
