"""DWM pieces: a strided or large-kernel ``WinogradConv2d`` → ``SparseDecomposedConv2d`` →
``extract`` + ``conv2d`` operations (stacked sub-images, or one conv2d per piece chained
through the residual input)."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ...nn.conv import WinogradConv2d, _WinogradConvNd
from ..decomposed import SparseDecomposedConv2d, decomposed_unsupported_reason
from ..packing import describe_formats
from . import register_kind
from .base import (
    BuildOptions,
    CompiledKind,
    Emitter,
    UnsupportedGraph,
    conv_inputs,
    emit_plans,
    forward_overridden,
)


class DwmKind(CompiledKind):
    name = "dwm"
    description = ("WinogradConv2d with a stride above 1 or more than 3 taps, decomposed into "
                   "stride-1 pieces of at most 3 taps (Decomposable Winograd Method)")
    compiled_type = SparseDecomposedConv2d
    counts = "winograd"

    def takes(self, module: nn.Module) -> bool:
        return isinstance(module, WinogradConv2d) and module.decomposition is not None

    def reason(self, module: nn.Module) -> str | None:
        return forward_overridden(module, _WinogradConvNd) or decomposed_unsupported_reason(module)

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        return SparseDecomposedConv2d.from_layer(module, options.threads, options.formats,
                                                 options.relu, options.scale, options.shift,
                                                 options.residual, precision=options.precision)

    def describe(self, layer: nn.Module) -> str:
        spec, counts = layer.spec, layer.format_counts()
        matrices = layer.packed.positions
        shape = (f"{matrices} positions x {layer.decomposition.pieces} stacked pieces"
                 if spec.layout == "stacked" else f"{matrices} positions (all pieces)")
        return (f"DWM {layer.decomposition.describe()} of F({spec.tile},{spec.piece}), "
                f"{spec.layout}, {shape}: {describe_formats(counts)}; weight density "
                f"{layer.density():.3f}")

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        shape, refs = conv_inputs(emitter, layer, 2, inputs, out_shape, name)
        plans = layer.lower(shape[0], shape[2], shape[3], emitter.threads, emitter.backend)
        if plans[-1].shape != tuple(out_shape):
            raise UnsupportedGraph(f"{name}: output shape")
        final = None if layer.spec.relu_output else "relu_output"
        return emit_plans(emitter, plans, refs, final_relu_field=final)

    def winograd_weights(self, layer: nn.Module) -> tuple:
        spec = layer.spec
        return (layer.winograd_weight().double(), (spec.algorithm,) * 2, spec.padding,
                spec.winograd_relu, layer.decomposition)


DWM = register_kind(DwmKind())
