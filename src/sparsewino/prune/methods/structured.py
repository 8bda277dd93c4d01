"""Structured pruning (Anwar, Hwang & Sung 2017): feature maps, kernels, intra-kernel strided patterns.

Granularities (units of a convolution weight ``(K, C/groups, *taps)``):

* ``"feature_map"`` — a whole output channel k (its bias too, by default): K units;
* ``"kernel"`` — one kernel (k, c): K·C/groups units;
* ``"strided"`` — one unit per input map c: the map keeps only the taps j (row-major over the
  kernel) with j % stride == o for one offset o, in every filter that reads it, and loses the
  other (stride − 1)/stride of its taps. Shared by all filters, the pattern removes whole rows
  (c, j) of the im2col matrix; the kept offset is the map's most important one, so a map never
  loses all its taps. C/groups units.

Importance: ``"l1"`` (mean |w| of the unit), ``"l2"`` (root mean square), an
:class:`~sparsewino.prune.criteria.Importance` (per-entry scores averaged per unit), or a
:class:`~sparsewino.prune.methods.particle_filter.ParticleFilter` (``"particle_filter"``).
Works on spatial weights and on Winograd-domain Q alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..criteria import Importance, Magnitude
from ..fold import fold_pruned_feature_maps
from ..layers import conv_layer_types, is_winograd_layer
from ..mask import get_mask
from ..selection import ScoreProblem, amount_to_count
from .base import MethodSpec, PruneContext, option, prune_layer, register_method
from .particle_filter import ParticleFilter, batch_accuracy

__all__ = ["structured", "STRUCTURED", "StructuredOptions", "GRANULARITIES", "unit_index"]

GRANULARITIES = ("feature_map", "kernel", "strided")


@dataclass(frozen=True)
class StructuredOptions:
    """Options of ``structured`` in recipes and on the command line."""

    granularity: Literal["feature_map", "kernel", "strided"] | None = option(
        "unit: feature_map, kernel (default) or strided")
    importance: Literal["l1", "l2", "particle_filter"] | None = option(
        "unit importance: l1 (default), l2 or particle_filter (needs held-out images: "
        "data.validation in a recipe)")
    stride: int | None = option("strided granularity: a pruned input map keeps one tap in stride "
                                "(default 2)", low=2)
    include_bias: bool | None = option("feature_map: mask the channel's bias too (default true)")
    fold: bool | None = option("feature_map: fold what a pruned map still outputs (its BatchNorm "
                               "shift) into the next layer's bias and mask that layer's kernels "
                               "reading it (default true)")
    particles: int | None = option("particle_filter: particles per generation (default 16)", low=1)
    iterations: int | None = option("particle_filter: generations (default 8)", low=1)

    def __post_init__(self) -> None:
        if (self.particles, self.iterations) != (None, None) and self.importance != "particle_filter":
            raise ValueError("particles and iterations apply to importance 'particle_filter' only")


def unit_index(shape: torch.Size | tuple[int, ...], granularity: str, stride: int = 2,
               kept_offsets: torch.Tensor | None = None, groups: int = 1) -> tuple[torch.Tensor, int]:
    """Unit id of every weight entry (a long tensor of ``shape``) and the number of units.

    For ``"strided"``, unit c is input map c's taps outside its kept offset
    (``kept_offsets[c]``, default 0): entries at the kept offset belong to no unit and carry
    the id ``units`` (they are never pruned). With ``groups`` > 1 the filters of group g read
    input maps g·C/g ... (g+1)·C/g − 1: C units in all.

    Examples:
        >>> index, units = unit_index((2, 3, 3, 3), "strided", 2, torch.tensor([0, 1, 0]))
        >>> units, index[0, 1].flatten().tolist()
        (3, [1, 3, 1, 3, 1, 3, 1, 3, 1])
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if len(shape) < 3:
        raise ValueError(f"structured pruning needs a convolution weight (K, C, *kernel), "
                         f"got shape {tuple(shape)}")
    k, c = shape[:2]
    taps = math.prod(shape[2:])
    if granularity == "feature_map":
        index = torch.arange(k).reshape(k, 1, 1).expand(k, c, taps)
        units = k
    elif granularity == "kernel":
        index = torch.arange(k * c).reshape(k, c, 1).expand(k, c, taps)
        units = k * c
    else:
        if isinstance(stride, bool) or not isinstance(stride, int) or not 2 <= stride <= taps:
            raise ValueError(f"strided granularity needs an int stride in [2, {taps}] "
                             f"(taps per kernel), got {stride!r}")
        if k % groups:
            raise ValueError(f"{k} filters cannot form {groups} groups")
        units = c * groups
        kept = (torch.zeros(units, dtype=torch.long) if kept_offsets is None
                else kept_offsets.long().cpu())
        if kept.shape != (units,) or kept.min() < 0 or kept.max() >= stride:
            raise ValueError(f"kept_offsets must hold one offset in [0, {stride}) per input map "
                             f"({units}), got {kept_offsets!r}")
        offsets = torch.arange(taps) % stride
        in_unit = offsets.reshape(1, taps) != kept.reshape(units, 1)           # (maps, taps)
        per_map = torch.where(in_unit, torch.arange(units).reshape(units, 1), torch.tensor(units))
        index = per_map.reshape(groups, 1, c, taps).expand(groups, k // groups, c, taps)
    return index.reshape(shape), units


def kept_offsets(element: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
    """Per input map, the tap offset (mod ``stride``) with the largest mean importance.

    ``element`` holds per-entry importance shaped like the weight ``(K, C/groups, *taps)``;
    entries pruned earlier score zero, so a map pruned before keeps the offset it kept then.
    """
    k, c = element.shape[:2]
    flat = element.detach().to(torch.float64).reshape(groups, k // groups, c, -1)
    offsets = torch.arange(flat.shape[3], device=flat.device) % stride
    means = torch.stack([flat[..., offsets == o].mean(dim=(1, 3)) for o in range(stride)], -1)
    return means.reshape(groups * c, stride).argmax(dim=1)


def _unit_scores(element: torch.Tensor, index: torch.Tensor, units: int) -> torch.Tensor:
    """Mean importance per unit (entries with id ``units`` belong to none)."""
    flat_index = index.flatten().to(element.device)
    total = torch.zeros(units + 1, dtype=torch.float64, device=element.device)
    total.index_add_(0, flat_index, element.flatten().to(torch.float64))
    sizes = torch.bincount(flat_index, minlength=units + 1).to(torch.float64)
    return (total / sizes.clamp(min=1))[:units]


def _accept(module: nn.Module, **_: object) -> str | None:
    return None if isinstance(module, conv_layer_types()) else "-"


def _build(module: nn.Module, name: str = "weight", granularity: str = "kernel",
           importance: str | Importance | ParticleFilter = "l1", stride: int = 2,
           include_bias: bool = True, amount: float | int | None = None,
           evaluate: Any = None, model: nn.Module | None = None, seed: int = 0,
           **_: object) -> ScoreProblem:
    if name != "weight":
        raise ValueError(f"structured pruning works on a convolution's 'weight', got {name!r}")
    weight = getattr(module, "weight_orig", None)
    weight = module.weight if weight is None else weight
    if importance in ("l1", "l2"):
        element = Magnitude(p=1 if importance == "l1" else 2)(module, name)
    elif isinstance(importance, Importance):
        element = importance(module, name)
    elif importance == "particle_filter" or isinstance(importance, ParticleFilter):
        element = Magnitude()(module, name)
    else:
        raise ValueError(f"importance must be 'l1', 'l2', 'particle_filter', an Importance or a "
                         f"ParticleFilter, got {importance!r}")
    groups = int(getattr(module, "groups", 1))
    offsets = kept_offsets(element, stride, groups) if granularity == "strided" else None
    index, units = unit_index(weight.shape, granularity, stride, offsets, groups)
    index = index.to(weight.device)
    scores = _unit_scores(element, index, units)
    if importance == "l2":
        scores = scores.sqrt()
    mask = get_mask(module, name)
    if mask is not None:     # units whose entries are all masked are already pruned
        alive = torch.zeros(units + 1, dtype=torch.float64, device=weight.device)
        alive.index_add_(0, index.flatten(), mask.flatten().to(torch.float64))
        scores = scores.masked_fill(alive[:units] == 0, -math.inf)
    with_bias = (include_bias and granularity == "feature_map"
                 and isinstance(getattr(module, "bias", None), torch.Tensor))

    def expand(keep: torch.Tensor) -> dict[str, torch.Tensor]:
        masks = {name: torch.cat([keep, keep.new_ones(1)])[index]}
        if with_bias:
            masks["bias"] = keep.clone()
        return masks

    domain = "winograd" if is_winograd_layer(module, "winograd") else "spatial"
    if importance == "particle_filter" or isinstance(importance, ParticleFilter):
        search = importance if isinstance(importance, ParticleFilter) else ParticleFilter(
            evaluate, model=model, seed=seed)
        if amount is None:
            raise ValueError("particle filtering needs the amount to prune (per layer)")
        keep = search.search(module, expand, scores, amount_to_count(amount, units, "units"),
                             model=model)
        # Rank the found mask first; the prior breaks ties among kept and pruned units.
        finite = scores.clone().masked_fill(torch.isinf(scores), 0)
        spread = float(finite.abs().max()) + 1.0
        scores = torch.where(keep.to(scores.device), finite + 2 * spread, finite - 2 * spread
                             ).masked_fill(torch.isinf(scores), -math.inf)
    return ScoreProblem(module, scores, expand, domain)


def _finish(module: nn.Module, name: str = "weight", granularity: str = "kernel",
            model: nn.Module | None = None, fold: bool = True, **_: object) -> None:
    if granularity == "feature_map" and fold and model is not None:
        fold_pruned_feature_maps(model, module)


def _prepare(values: dict[str, Any], context: PruneContext) -> dict[str, Any]:
    values = dict(values, seed=context.seed)
    if context.model is not None:
        values.setdefault("model", context.model)
    search = {k: values.pop(k) for k in ("particles", "iterations") if k in values}
    if values.get("importance") == "particle_filter":
        if context.validation_batches is None:
            raise ValueError("importance 'particle_filter' needs held-out validation images "
                             "(a recipe with data.validation > 0)")
        values["importance"] = ParticleFilter(batch_accuracy(context.validation_batches()),
                                              model=context.model, seed=context.seed, **search)
    return values


def structured(module: nn.Module, amount: float | int, granularity: str = "kernel",
               name: str = "weight", *, importance: str | Importance | ParticleFilter = "l1",
               stride: int = 2, include_bias: bool = True, evaluate: Any = None,
               model: nn.Module | None = None, seed: int = 0, fold: bool = True) -> nn.Module:
    """Prune whole feature maps, kernels or strided intra-kernel patterns of a convolution.

    Args:
        module: a convolution (``nn.Conv2d``/``3d``, ``WinogradConv2d``/``3d`` in either domain).
        amount: fraction of the granularity's units pruned after the call (or their count).
        granularity: ``"feature_map"``, ``"kernel"`` or ``"strided"``.
        name: must be ``"weight"``.
        importance: ``"l1"``, ``"l2"``, ``"particle_filter"``, an ``Importance`` or a
            ``ParticleFilter``.
        stride: pattern stride for ``"strided"``: a pruned input map keeps one tap in
            ``stride`` (the same taps in every filter reading it).
        include_bias: for ``"feature_map"``, mask the channel's bias as well (the map is
            then exactly zero).
        evaluate, model, seed: for ``importance="particle_filter"``: ``evaluate(model) ->
            accuracy`` on held-out data (see :func:`batch_accuracy`), the network it runs
            (default: ``module``), and the search seed.
        fold: for ``"feature_map"`` with ``model`` given: fold the constant a pruned map still
            feeds the next layer (its BatchNorm shift) into that layer's bias and mask the
            layer's kernels reading it (:func:`~sparsewino.prune.fold_pruned_feature_maps`;
            ``prune_model`` passes the model).

    Returns:
        ``module``.

    Examples:
        >>> conv = structured(nn.Conv2d(4, 8, 3), amount=0.25, granularity="feature_map")
        >>> int((conv.weight.flatten(1).abs().sum(1) == 0).sum())
        2
    """
    return prune_layer(STRUCTURED, module, amount, name, granularity=granularity,
                       importance=importance, stride=stride, include_bias=include_bias,
                       evaluate=evaluate, model=model, seed=seed, fold=fold)


STRUCTURED = register_method(MethodSpec(
    "structured", _accept, _build, _finish, options=StructuredOptions, prepare=_prepare,
    takes_model=True,
    description="structured pruning (Anwar et al.): feature maps, kernels or strided patterns, "
                "by L1/L2 or particle filtering",
    layer_function=structured, usage='sp.structured(layer, amount, granularity, importance="l1")',
    prunes="feature maps, kernels, strided patterns (either domain)", unit="units"))
