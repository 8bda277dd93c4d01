"""The 2-D Winograd convolution: a stride-1 ``WinogradConv2d`` → ``SparseWinogradConv2d`` → ``conv2d``."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ...nn.conv import WinogradConv2d, _WinogradConvNd
from ..modules import SparseWinogradConv2d, unsupported_reason
from ..packing import describe_formats
from . import register_kind
from .base import BuildOptions, CompiledKind, Emitter, conv_inputs, forward_overridden, grouped_weights


def describe_winograd(layer: nn.Module, cube: str = "") -> str:
    """The report line of a compiled 2-D or 3-D Winograd layer."""
    spec, counts = layer.spec, layer.format_counts()
    return (f"F({spec.tile},{spec.kernel_size}){cube}, {layer.positions} positions: "
            f"{describe_formats(counts)}; "
            f"weight density {layer.density():.3f}")


class Conv2dKind(CompiledKind):
    name = "conv2d"
    description = ("stride-1 WinogradConv2d (any domain, masks, Winograd-ReLU): fused input "
                   "transform, sparse/dense product per position, output transform")
    compiled_type = SparseWinogradConv2d
    tunable = True
    counts = "winograd"

    def takes(self, module: nn.Module) -> bool:
        return isinstance(module, WinogradConv2d) and module.decomposition is None

    def reason(self, module: nn.Module) -> str | None:
        return forward_overridden(module, _WinogradConvNd) or unsupported_reason(module)

    def can_pool(self, module: nn.Module) -> bool:
        return module.tile[0] % 2 == 0

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        return SparseWinogradConv2d.from_layer(module, options.threads, options.formats,
                                               options.relu, options.scale, options.shift,
                                               options.pool, options.residual, options.precision)

    def describe(self, layer: nn.Module) -> str:
        return describe_winograd(layer)

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        shape, refs = conv_inputs(emitter, layer, 2, inputs, out_shape, name)
        args = layer.fill_args(shape[0], *shape[2:], emitter.threads, emitter.backend)
        spec = layer.spec
        relu_field = None if spec.relu_output or spec.pool_output else "relu_output"
        return emitter.emit("conv2d", args, list(refs.items()), out_shape, relu_field)

    def winograd_weights(self, layer: nn.Module) -> tuple:
        spec = layer.spec
        q = grouped_weights(layer.dense_weights(), spec.groups, spec.n, 2)
        return q, (spec.algorithm,) * 2, spec.padding, spec.winograd_relu, None


CONV2D = register_kind(Conv2dKind())
