"""convert(model): replace every eligible nn.Conv1d/2d/3d by its Winograd layer (DWM where needed); revert()."""
from __future__ import annotations

import fnmatch
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..winograd.error import WinogradAccuracyWarning
from .kinds import convertible_types, kind_of, layer_kind, low_rank_kind
from .lowrank import LowRankArg, resolve_rank
from .masks import carry_mask, pruning_hook, spatial_mask, winograd_mask

__all__ = ["convert", "revert", "ConversionReport", "LayerDecision", "eligibility",
           "carry_layer_masks"]

logger = logging.getLogger("sparsewino")

NameFilter = Union[None, str, Iterable[str], Callable[[str, nn.Module], bool]]


@dataclass(frozen=True)
class LayerDecision:
    """What convert() did with one convolution: converted or not, and why."""

    name: str
    kind: str
    converted: bool
    reason: str


class ConversionReport(list):
    """List of :class:`LayerDecision`; ``str()`` gives a table."""

    @property
    def converted(self) -> list[str]:
        return [d.name for d in self if d.converted]

    @property
    def skipped(self) -> dict[str, str]:
        return {d.name: d.reason for d in self if not d.converted}

    def __str__(self) -> str:
        if not self:
            return "no convolution layers found"
        width = max(len(d.name) for d in self)
        lines = [f"{'layer':<{width}}  {'type':<8}  converted  reason"]
        for d in self:
            lines.append(f"{d.name:<{width}}  {d.kind:<8}  {'yes' if d.converted else 'no':<9}  "
                         f"{d.reason}")
        lines.append(f"{len(self.converted)} of {len(self)} convolutions converted")
        return "\n".join(lines)


def _matches(name: str, module: nn.Module, spec: NameFilter) -> bool:
    if callable(spec):
        return bool(spec(name, module))
    patterns = [spec] if isinstance(spec, str) else list(spec or ())
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def eligibility(conv: nn.Module) -> str | None:
    """Why ``conv`` cannot become a Winograd layer, or ``None`` when it can."""
    kind = kind_of(conv)
    base = kind.conv_type if kind is not None and isinstance(conv, kind.conv_type) else None
    if base is None:
        names = "/".join(f"nn.{t.__name__}" for t in convertible_types())
        return f"{type(conv).__name__} is not an {names}"
    if type(conv).forward is not base.forward or type(conv)._conv_forward is not base._conv_forward:
        return f"{type(conv).__name__} overrides forward(); its semantics may differ"
    if isinstance(conv.weight, nn.parameter.UninitializedParameter):
        return "lazy module not initialised yet; run a forward pass first"
    if all(k == 1 for k in conv.kernel_size):
        return "1x1 kernel: Winograd saves no multiplications"
    if any(s > k for s, k in zip(conv.stride, conv.kernel_size)):
        return (f"stride {tuple(conv.stride)} larger than the kernel {tuple(conv.kernel_size)} "
                "(a subsampling: some inputs meet no tap)")
    if any(d != 1 for d in conv.dilation):
        return f"dilation {tuple(conv.dilation)} != 1"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r} (only 'zeros')"
    if conv.weight.dtype not in (torch.float32, torch.float64):
        return f"dtype {conv.weight.dtype} (float32/float64 only)"
    return None


def convert(model: nn.Module, tile: Any = 4, domain: str = "spatial",
            include: NameFilter = None, exclude: NameFilter = None, points: Any = None,
            winograd_relu: bool = False, low_rank: LowRankArg | None = None, decompose: Any = "auto"
            ) -> tuple[nn.Module, ConversionReport]:
    """Replace every eligible ``nn.Conv1d``/``2d``/``3d`` of ``model`` by a Winograd layer.

    Eligible: any kernel size and stride (kernels above 3 taps and strides above 1 are
    decomposed into small stride-1 Winograd pieces, DWM; the report says how), dilation 1,
    zero padding, a kernel larger than 1 in some dimension, a stride no larger than the kernel,
    float32/float64. Winograd layers already in the other domain are switched to ``domain``
    (``to_winograd()``/``to_spatial()``, keeping their tile and points). Weights and bias are
    copied exactly. Pruning masks (``torch.nn.utils.prune``-compatible, the pruning hook kept)
    survive: within a domain as they are; to the Winograd domain as the mask of the entries of
    Q the spatial mask makes exactly zero; back to the spatial domain, for each kernel whose
    spatial weights are zero on every tap a masked position depends on (see
    :mod:`sparsewino.nn.masks`). Gradient scales, which belong to one domain, are dropped.

    Args:
        model: any module (torchvision-style models included); modified in place.
        tile, domain, points, winograd_relu, decompose: passed to the Winograd layers
            (``decompose``: ``"auto"``, ``"dwm"`` or ``"none"``, which leaves strided
            convolutions alone).
        include: only convert layers whose qualified name matches (glob patterns, or a
            callable ``(name, module) -> bool``); ``None`` means all.
        exclude: never convert layers that match.
        low_rank: make low-rank Winograd layers (:class:`~sparsewino.nn.LowRankWinogradConv3d`
            / ``2d``, W = U·V) of this rank (an int, or a fraction of the positions), from
            the convolutions and from vanilla Winograd layers (truncated SVD of their Winograd
            weight; masks baked in). An int above a layer's ``min(K·C/groups, P)`` is capped
            there (the report says so). Low-rank layers are Winograd-domain layers: ``domain``
            is not used. ``None`` (default): no factorisation; low-rank layers met with
            ``domain="spatial"`` become spatial Winograd layers by least squares (the report
            gives the residual).

    Returns:
        ``(model, report)``; the report lists each convolution, converted or not, and why.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.ReLU(),
        ...                     nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1))
        >>> net, report = convert(net, tile=4)
        >>> report.converted, report.skipped
        (['0', '2'], {'3': '1x1 kernel: Winograd saves no multiplications'})
        >>> [d.reason for d in report][0]
        'spatial domain, DWM stride 2x2: 9 pieces 3x3 of F(4x4,3x3)'
    """
    report = ConversionReport()
    replaced: list[str] = []
    if low_rank is not None:
        resolve_rank(low_rank, 2**31, 2**31, who="convert(low_rank=...)")    # 0, 1.5, NaN fail here
    for name, module in list(model.named_modules()):
        layer_of = kind_of(module)
        if layer_of is None or layer_of.made_by is None:      # not a convolution convert handles
            continue
        is_winograd = isinstance(module, layer_of.winograd_type)
        kind = type(module).__name__
        reason = None if is_winograd else eligibility(module)
        if reason is None and not is_winograd and decompose == "none" and \
                any(st != 1 for st in module.stride):
            reason = f"stride {tuple(module.stride)} != 1 (decompose='none')"
        if reason is None and include is not None and not _matches(name, module, include):
            reason = "not matched by include"
        if reason is None and exclude is not None and _matches(name, module, exclude):
            reason = "matched by exclude"
        if reason is None and low_rank is not None:
            if layer_of.low_rank:
                reason = f"already a low-rank Winograd layer (rank {layer_of.rank(module)})"
            elif low_rank_kind(module) is None:
                reason = f"no low-rank Winograd layer for {kind}"
            elif (module.decomposition is not None) if is_winograd else \
                    (any(st != 1 for st in module.stride) or max(module.kernel_size) > 3):
                reason = ("low-rank layers are not decomposed (DWM): stride "
                          f"{tuple(module.stride)}, kernel {tuple(module.kernel_size)}")
        elif reason is None and is_winograd and module.domain == domain:
            reason = f"already a Winograd layer ({domain} domain)"
        if reason is not None:
            report.append(LayerDecision(name, kind, False, reason))
            continue
        _refresh(module)
        if low_rank is not None:
            layer_type = low_rank_kind(module).winograd_type
            tiles = module.tile if is_winograd else layer_type.resolve_tile(module.kernel_size,
                                                                            tile, points)[0]
            if not is_winograd and all(m == 1 or r == 1 for m, r in zip(tiles, module.kernel_size)):
                report.append(LayerDecision(name, kind, False,
                                            "no Winograd tile is accurate in float32"))
                continue
            layer = layer_type.from_conv(module, rank=low_rank, tile=tiles,
                                         points=None if is_winograd else points,
                                         winograd_relu=None if is_winograd else winograd_relu,
                                         clamp_rank=True)
            masked = pruning_hook(module, "weight") is not None
            note = f"; rank {layer.rank} of {layer.positions} positions"
            if isinstance(low_rank, int) and layer.rank < low_rank:
                note += f" (capped at min(K·C/groups, P) = {layer.rank})"
            counts = layer.parameter_counts()
            note += (f", {counts['low_rank']:,} weights (vanilla Winograd {counts['winograd']:,}"
                     + (", no saving at this rank" if counts["low_rank"] >= counts["winograd"]
                        else "") + f"); SVD error {layer.init_error:.3g}")
            if masked:
                note += "; pruning mask baked in (not carried to the factors)"
            _set_submodule(model, name, layer)
            report.append(LayerDecision(name, kind, True,
                                        f"low-rank Winograd, {describe(layer.algorithms)}{note}"))
            continue
        if layer_of.to_full is not None:                # back to a full layer (spatial domain)
            layer, note = layer_of.to_full(module)
            _set_submodule(model, name, layer)
            report.append(LayerDecision(name, kind, True, (
                f"{layer_of.name} -> spatial domain, {describe(layer.algorithms)}; {note}")))
            continue
        if is_winograd:
            # Switch domains; the layer keeps its own tile and points, and its masks.
            layer = module.to_winograd() if domain == "winograd" else module.to_spatial()
            note = _carry_masks(module, layer, module.domain, domain, layer)
            _set_submodule(model, name, layer)
            report.append(LayerDecision(name, kind, True, f"{module.domain} -> {domain} domain, "
                                        f"{describe(layer.algorithms, layer.decomposition)}{note}"))
            continue
        layer_type = layer_of.winograd_type
        (tiles, pieces), accuracy = layer_type.resolve_algorithms(
            module.kernel_size, tile, points, stride=module.stride, decompose=decompose)
        if accuracy is not None:
            replaced.append(f"{name}: {accuracy}")
            if all(m == 1 or r == 1 for m, r in zip(tiles, pieces)):
                report.append(LayerDecision(name, kind, False,
                                            f"no Winograd tile is accurate in float32: {accuracy}"))
                continue
        layer = layer_type.from_conv(module, tile=tiles, domain=domain, points=points,
                                     winograd_relu=winograd_relu, decompose=pieces)
        note = f"; {accuracy}" if accuracy is not None else ""
        note += _carry_masks(module, layer, "spatial", domain, layer)
        _set_submodule(model, name, layer)
        report.append(LayerDecision(name, kind, True, f"{domain} domain, "
                                    f"{describe(layer.algorithms, layer.decomposition)}{note}"))
    if replaced:
        warnings.warn(f"convert(): tile {tile!r} is not accurate in float32 for {len(replaced)} "
                      f"layer(s), which got a smaller tile or stayed convolutions (see the report); "
                      f"{replaced[0]}", WinogradAccuracyWarning, stacklevel=2)
    logger.info("convert():\n%s", report)
    return model, report


def revert(model: nn.Module) -> nn.Module:
    """Replace every Winograd layer of ``model`` by the equivalent nn.Conv2d/nn.Conv3d, in place.

    Winograd-domain weights (low-rank U·V included, through their kind's ``to_full``) become
    spatial by least squares (a warning says when inexact); masks are carried like
    ``convert(model, domain="spatial")`` carries them. Layers of kinds ``convert`` does not make
    (``made_by=None``: the adder layers, which compute another function) are left as they are.
    """
    for name, module in list(model.named_modules()):
        kind = layer_kind(module)
        if kind is not None and kind.made_by is not None:   # a layer convert makes (not an adder)
            _refresh(module)
            if kind.to_full is not None:
                module, _ = kind.to_full(module)
            conv = module.to_conv()
            _carry_masks(module, conv, module.domain, "spatial", module)
            _set_submodule(model, name, conv)
    return model


def _refresh(module: nn.Module) -> None:
    """Recompute pruned tensors (``orig * mask``) so the copy sees the current weights."""
    for hook in list(module._forward_pre_hooks.values()):
        if isinstance(hook, torch_prune.BasePruningMethod):
            with torch.no_grad():
                hook(module, None)


def _carry_masks(old: nn.Module, new: nn.Module, old_domain: str, new_domain: str,
                 layer: nn.Module) -> str:
    """Mask ``new`` as ``old`` was masked, across a domain switch where exact (``layer``: the
    Winograd layer of the two, whose algorithms and decomposition relate the domains); the
    report note."""
    algorithms, decomposition = layer.algorithms, layer.decomposition
    if pruning_hook(old, "bias") is not None:
        carry_mask(old, new, old.bias_mask, "bias")
    if pruning_hook(old, "weight") is None:
        return ""
    mask = old.weight_mask
    if old_domain == new_domain:
        carry_mask(old, new, mask)
        return "; pruning mask carried over"
    if new_domain == "winograd":
        q_mask = winograd_mask(mask, algorithms, decomposition)
        if not (q_mask == 0).any():
            return "; spatial pruning mask baked in (it makes no entry of Q exactly zero)"
        carry_mask(old, new, q_mask, domain="winograd")
        return (f"; spatial mask carried to Q ({100 * float((q_mask == 0).double().mean()):.1f}% of "
                "Q masked)")
    g_mask = spatial_mask(mask, algorithms, decomposition)
    kernels = g_mask.flatten(2)
    exact = ~((new.weight.detach() != 0).flatten(2) & (kernels == 0)).any(dim=2)   # (K, C)
    kernels[~exact] = 1                     # those kernels' Winograd zeros cannot be held spatially
    if not (g_mask == 0).any():
        return "; Winograd-domain mask baked in (not expressible in the spatial domain)"
    carry_mask(old, new, g_mask, domain="spatial")
    return (f"; Winograd mask carried to the spatial weights of {int(exact.sum())} of "
            f"{exact.numel()} kernels (exact there)")


#: Public name of the mask carrying of convert/revert, for the layer modules' own conversions.
carry_layer_masks = _carry_masks


def describe(algorithms, decomposition=None) -> str:
    """``F(4x4,3x3)`` for equal algorithms per dimension, else ``F(2,1) x F(4,3)``; for a DWM
    layer ``DWM stride 2x2: 4 pieces 2x2 of F(4x4,2x2)``."""
    first = algorithms[0]
    if all((a.m, a.r) == (first.m, first.r) for a in algorithms):
        dims = len(algorithms)
        text = f"F({'x'.join([str(first.m)] * dims)},{'x'.join([str(first.r)] * dims)})"
    else:
        text = " x ".join(f"F({a.m},{a.r})" for a in algorithms)
    if decomposition is not None:
        return f"DWM {decomposition.describe()} of {text}"
    return text


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    if not name:
        raise ValueError("convert()/revert() cannot replace the root module itself; wrap it "
                         "in a container (e.g. nn.Sequential(conv))")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
