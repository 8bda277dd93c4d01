"""Direct sparse convolution: a pruned k×k ``nn.Conv2d`` (any stride, zero padding) →
``SparseDirectConv2d`` → ``extract`` (im2col) + ``gemm``."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..direct import MAX_DENSITY, SparseDirectConv2d
from ..packing import main_format
from . import register_kind
from .base import BuildOptions, CompiledKind, Emitter, UnsupportedGraph, conv_inputs, emit_plans


def is_pointwise(module: nn.Module) -> bool:
    """A 1x1 ``nn.Conv2d`` without padding (the gemm kind's; any other goes direct)."""
    return module.kernel_size == (1, 1) and module.padding in ((0, 0), "valid")


class DirectConv2dKind(CompiledKind):
    name = "direct"
    description = ("pruned k×k nn.Conv2d (any stride, zero padding, groups 1): im2col copy "
                   f"(extract) + sparse GEMM, at weight density <= {MAX_DENSITY}")
    compiled_type = SparseDirectConv2d
    report = "sparse-direct"

    def takes(self, module: nn.Module) -> bool:
        return type(module) is nn.Conv2d and not is_pointwise(module)

    def reason(self, module: nn.Module) -> str | None:
        reason = SparseDirectConv2d.supported(module)
        if reason is not None:
            return f"nn.Conv2d: {reason}"
        weight = module.weight.detach()
        density = float((weight != 0).float().mean())
        if density > MAX_DENSITY:
            return (f"nn.Conv2d with weight density {density:.2f}: PyTorch's dense convolution is "
                    f"faster; pruned to density <= {MAX_DENSITY} it runs sparse (im2col + GEMM), "
                    "or convert it to a Winograd layer")
        return None

    def out_channels(self, module: nn.Module) -> int:
        return module.out_channels

    def build(self, module: nn.Module, options: BuildOptions) -> nn.Module:
        return SparseDirectConv2d.from_conv(module, options.threads, options.formats, options.relu,
                                            options.scale, options.shift, options.residual,
                                            options.precision)

    def describe(self, layer: nn.Module) -> str:
        counts = layer.format_counts()
        fmt = main_format(counts)
        (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
        return (f"direct {kh}x{kw}/{sh}x{sw} conv, im2col {layer.in_features} columns, {fmt}, "
                f"weight density {layer.density():.3f}")

    def lower(self, emitter: Emitter, layer: nn.Module, inputs: Sequence[int],
              out_shape: tuple[int, ...], name: str) -> int:
        shape, refs = conv_inputs(emitter, layer, 2, inputs, out_shape, name, layer.residual)
        plans = layer.lower(shape[0], shape[2], shape[3], emitter.threads, emitter.backend)
        if plans[-1].shape != tuple(out_shape):
            raise UnsupportedGraph(f"{name}: output shape")
        return emit_plans(emitter, plans, refs, final_relu_field=None if layer.relu else "relu")


DIRECT = register_kind(DirectConv2dKind())
