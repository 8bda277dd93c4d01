"""compile(model): an inference copy whose Winograd layers run the fused sparse CPU kernel."""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..nn.conv import WinogradConv2d, _WinogradConvNd
from . import kernels
from .modules import SparseWinogradConv2d, check_threads, unsupported_reason

__all__ = ["compile", "CompileReport", "LayerKernel", "compile_report"]


@dataclass(frozen=True)
class LayerKernel:
    """What compile() did with one Winograd layer."""

    name: str
    kernel: str            # "sparse-winograd" or "layer-forward" (fallback)
    detail: str            # algorithm, formats and density, or the fallback reason
    fused: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        return self.kernel == "sparse-winograd"


class CompileReport(list):
    """List of :class:`LayerKernel`; ``str()`` gives a table."""

    backend: str = "?"

    @property
    def compiled(self) -> list[str]:
        return [d.name for d in self if d.compiled]

    @property
    def fallbacks(self) -> dict[str, str]:
        return {d.name: d.detail for d in self if not d.compiled}

    def __str__(self) -> str:
        if not self:
            return "no Winograd layers found"
        width = max(5, max(len(d.name) for d in self))
        lines = [f"{'layer':<{width}}  {'kernel':<15}  details"]
        for d in self:
            fused = f" (+ fused {', '.join(d.fused)})" if d.fused else ""
            lines.append(f"{d.name:<{width}}  {d.kernel:<15}  {d.detail}{fused}")
        lines.append(f"{len(self.compiled)} of {len(self)} Winograd layers compiled; "
                     f"backend: {self.backend}")
        return "\n".join(lines)


def compile_report(model: nn.Module) -> CompileReport:
    """The report attached to a model returned by :func:`compile`."""
    report = getattr(model, "compile_report", None)
    if not isinstance(report, CompileReport):
        raise ValueError("model was not produced by sparsewino.engine.compile()")
    return report


def _refresh_masks(layer: nn.Module) -> None:
    """Recompute ``weight = weight_orig * weight_mask`` for prune-style masks."""
    for hook in list(layer._forward_pre_hooks.values()):
        if isinstance(hook, torch_prune.BasePruningMethod):
            hook(layer, None)


def _copy_model(model: nn.Module) -> nn.Module:
    """deepcopy that also copes with non-leaf tensor attributes (e.g. the ``weight`` that
    torch.nn.utils.prune computes with autograd history), without touching ``model``."""
    memo: dict[int, object] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def _reference_counts(model: nn.Module) -> Counter:
    counts: Counter = Counter()

    def visit(module: nn.Module) -> None:
        counts[id(module)] += 1
        if counts[id(module)] == 1:
            for child in module._modules.values():
                if child is not None:
                    visit(child)
    visit(model)
    return counts


def _batchnorm_affine(bn: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) of an eval-mode BatchNorm2d that can be folded, else None."""
    if type(bn) is not nn.BatchNorm2d or bn.num_features != channels or bn.running_mean is None:
        return None
    if bn.running_mean.device.type != "cpu":
        return None
    inv = torch.rsqrt(bn.running_var.double() + bn.eps)
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
    scale = weight * inv
    return scale.float(), (bias - bn.running_mean.double() * scale).float()


def _is_fusable_pool(module: nn.Module, tile: int) -> bool:
    """A plain 2x2 / stride-2 max-pool (floor mode) that a tile of even size m can absorb."""
    if type(module) is not nn.MaxPool2d or tile % 2:
        return False
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    stride = module.stride if module.stride is not None else module.kernel_size
    return (pair(module.kernel_size) == (2, 2) and pair(stride) == (2, 2) and
            pair(module.padding) == (0, 0) and pair(module.dilation) == (1, 1) and
            not module.ceil_mode and not module.return_indices)


def _fallback_reason(layer: WinogradConv2d) -> str | None:
    """Why compile() keeps ``layer`` as it is, or ``None`` when it compiles it."""
    if type(layer).forward is not _WinogradConvNd.forward:
        return f"{type(layer).__name__} overrides forward(); kept as is"
    return unsupported_reason(layer)


def _describe(layer: SparseWinogradConv2d) -> str:
    spec = layer.spec
    counts = layer.format_counts()
    return (f"F({spec.tile},{spec.kernel_size}), {layer.positions} positions: "
            f"{counts['sparse']} sparse, {counts['dense']} dense, {counts['zero']} zero; "
            f"weight density {layer.density():.3f}")


def compile(model: nn.Module, threads: int | None = None, *, fuse: bool = True,
            formats: str | Sequence[str] = "auto") -> nn.Module:
    """An inference copy of ``model`` whose Winograd layers run the sparse CPU kernel.

    Every :class:`~sparsewino.nn.WinogradConv2d` (spatial or Winograd domain, with or
    without prune masks, Winograd-ReLU included) becomes a
    :class:`~sparsewino.engine.SparseWinogradConv2d` holding its pre-transformed Winograd
    weights, packed per position as sparse (CSR) or dense panels by
    :func:`~sparsewino.engine.choose_format`. Other modules (``nn.Conv2d`` with stride 2 or
    1x1 kernels, pooling, linear layers, ...) are kept as they are.

    Fallbacks (listed in the report, computed exactly as before): ``WinogradConv3d``
    layers, float64 or GPU layers, non-square tiles/kernels and input tiles n > 8, and
    subclasses that override ``forward`` keep their own forward pass.

    With ``fuse=True``, inside ``nn.Sequential`` containers the modules that directly follow
    a compiled layer are fused into it, in this order when present: an eval-mode
    ``BatchNorm2d`` (folded into weights and bias), an ``nn.ReLU`` and a 2x2 / stride-2
    ``nn.MaxPool2d`` (floor mode; needs an even tile m), both applied in the kernel's output
    stage. Fused modules become ``nn.Identity``.

    The copy is in eval mode with ``requires_grad=False`` parameters; compiled layers are
    inference-only (see :class:`~sparsewino.engine.SparseWinogradConv2d`). The original
    model is not modified, and later changes to it do not affect the copy.

    Args:
        model: a model containing Winograd layers (or one Winograd layer).
        threads: OpenMP threads per layer call; ``None`` follows ``torch.get_num_threads()``.
        fuse: fuse BatchNorm2d / ReLU / MaxPool2d(2) that follow a compiled layer in an
            ``nn.Sequential``.
        formats: ``"auto"``, ``"sparse"`` or ``"dense"`` (force one format everywhere; for
            benchmarks), or one name per position.

    Returns:
        The compiled copy; its ``compile_report`` attribute (a :class:`CompileReport`) says
        which kernel each Winograd layer got.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        >>> fast = compile(net.eval())
        >>> fast.compile_report.compiled
        ['0']
        >>> x = torch.randn(1, 3, 12, 12)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), net(x), atol=1e-4)
        True
    """
    check_threads(threads)
    if not isinstance(model, nn.Module):
        raise TypeError(f"compile() expects an nn.Module, got {type(model).__name__}")
    result = _copy_model(model)
    result.eval()
    for parameter in result.parameters():
        parameter.requires_grad_(False)
    report = CompileReport()
    report.backend = kernels.backend()
    counts = _reference_counts(result)
    compiled: dict[int, nn.Module] = {}

    def build(layer: nn.Module, name: str, scale=None, shift=None, relu=False, pool=0,
              fused: tuple[str, ...] = ()) -> nn.Module:
        if id(layer) in compiled:
            return compiled[id(layer)]
        reason = _fallback_reason(layer)
        if reason is None:
            _refresh_masks(layer)
            new = SparseWinogradConv2d.from_layer(layer, threads, formats, relu, scale, shift,
                                                  pool)
            report.append(LayerKernel(name, "sparse-winograd", _describe(new), fused))
            compiled[id(layer)] = new
            return new
        report.append(LayerKernel(name, "layer-forward", reason))
        compiled[id(layer)] = layer
        return layer

    def visit(parent: nn.Module, prefix: str) -> None:
        names = [n for n, m in parent._modules.items() if m is not None]
        skip: set[str] = set()
        for index, name in enumerate(names):
            if name in skip:
                continue
            child = parent._modules[name]
            full = prefix + name
            if isinstance(child, WinogradConv2d):
                scale = shift = None
                relu, pool, fused = False, 0, []
                single = counts[id(child)] == 1 and id(child) not in compiled
                if fuse and single and isinstance(parent, nn.Sequential) and \
                        _fallback_reason(child) is None:
                    rest = names[index + 1:]
                    if rest and counts[id(parent._modules[rest[0]])] == 1:
                        affine = _batchnorm_affine(parent._modules[rest[0]], child.out_channels)
                        if affine is not None:
                            scale, shift = affine
                            fused.append(rest.pop(0))
                    if rest and type(parent._modules[rest[0]]) is nn.ReLU and \
                            counts[id(parent._modules[rest[0]])] == 1:
                        relu = True
                        fused.append(rest.pop(0))
                    if rest and _is_fusable_pool(parent._modules[rest[0]], child.tile[0]) and \
                            counts[id(parent._modules[rest[0]])] == 1:
                        pool = 2
                        fused.append(rest.pop(0))
                new = build(child, full, scale, shift, relu, pool,
                            tuple(prefix + f for f in fused))
                parent._modules[name] = new
                if new is not child:
                    for f in fused:
                        parent._modules[f] = nn.Identity()
                        skip.add(f)
            elif isinstance(child, _WinogradConvNd):
                if id(child) not in compiled:
                    reason = (f"{type(child).__name__}: only 2-D layers are compiled; "
                              "it runs its own (PyTorch) Winograd forward")
                    report.append(LayerKernel(full, "layer-forward", reason))
                    compiled[id(child)] = child
            else:
                visit(child, full + ".")

    if isinstance(result, _WinogradConvNd):
        if isinstance(result, WinogradConv2d):
            result = build(result, "")
        else:
            report.append(LayerKernel("", "layer-forward", f"{type(result).__name__}: only "
                                      "2-D layers are compiled"))
    else:
        visit(result, "")
    result.compile_report = report
    return result
