"""AdderNet layers: ``AdderConv2d`` → ``CompiledAdderConv2d`` → ``extract`` (im2col), one ``adder``
per image, and an ``eltwise`` for the bias, a fused BatchNorm, residual addition and ReLU."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ...nn.adder import AdderConv2d
from ..adder import CompiledAdderConv2d, adder_unsupported_reason
from . import register_kind
from .base import BuildOptions, CompiledKind, Emitter, conv_inputs, emit_plans, forward_overridden


class AdderKind(CompiledKind):
    name = "adder"
    description = ("AdderConv2d (AdderNet): -sum |x - w|^p per receptive field, any kernel, "
                   "stride and padding; BatchNorm, residual and ReLU fused after it")
    compiled_type = CompiledAdderConv2d
    report = "adder"
    counts = "adder"

    def takes(self, module: nn.Module) -> bool:
        return isinstance(module, AdderConv2d)

    def reason(self, module: nn.Module) -> str | None:
        return forward_overridden(module, AdderConv2d) or adder_unsupported_reason(module)

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        return CompiledAdderConv2d.from_layer(module, options.threads, options.relu,
                                              options.scale, options.shift, options.residual)

    def describe(self, layer: nn.Module) -> str:
        return (f"adder {layer.kernel_size[0]}x{layer.kernel_size[1]} stride {layer.stride}, "
                f"p = {layer.p:g}, {layer.in_channels} -> {layer.out_channels}; weight density "
                f"{layer.density():.3f}")

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        shape, refs = conv_inputs(emitter, layer, 2, inputs, out_shape, name, layer.residual)
        plans, partial = layer.lower(shape[0], shape[2], shape[3], emitter.threads,
                                     emitter.backend)
        return emit_plans(emitter, plans, refs, partial,
                          None if layer.relu else "relu")


ADDER = register_kind(AdderKind())
