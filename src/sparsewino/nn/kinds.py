"""Layer kinds: every layer class of ``sparsewino.nn`` and what the rest of the package may ask of it, as a registry.

A layer kind pairs a torch convolution type with the layer class of the kind (a Winograd layer
with ``from_conv``, ``to_winograd``/``to_spatial``/``to_conv``, ``algorithms`` and ``domain``; a
low-rank Winograd layer; an adder layer) and answers the questions that callers would otherwise
answer by testing classes: which tensor is the layer's effective weight and in which domain
(:meth:`LayerKind.effective_weight`, :meth:`LayerKind.weight_domain`,
:meth:`LayerKind.winograd_weight`), which parameter carries its position masks
(:attr:`LayerKind.mask_name`), whether it adds instead of multiplying (:attr:`LayerKind.adder`,
:meth:`LayerKind.exponent`), whether it is low-rank (:attr:`LayerKind.low_rank`,
:meth:`LayerKind.rank`), and what ``convert``/``revert`` do with it (:attr:`LayerKind.made_by`,
:attr:`LayerKind.to_full`).

``convert``/``revert``, the pruning methods, ``prune.stats`` and the docs tables read
:data:`LAYER_KINDS`; adding a kind is one new module in ``sparsewino/nn/`` that defines the layer
and calls :func:`register_layer_kind`, plus one import line in ``sparsewino/nn/__init__.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..registry import Registry
from ..winograd.algorithm import WinogradAlgorithm
from ..winograd.decompose import Decomposition
from .functional import winograd_weight as transform_weight
from .masks import pruning_hook

__all__ = ["LayerKind", "LAYER_KINDS", "register_layer_kind", "kind_of", "layer_kind",
           "winograd_layer_types", "convertible_types", "adder_layer_types", "layer_types",
           "low_rank_kind", "is_adder_layer", "masked_weight", "MADE_BY"]

#: How a kind's layers come to be: ``"convert"`` (``convert(model)`` makes them from
#: ``conv_type``), ``"low_rank"`` (``convert(model, low_rank=...)``), ``None`` (only their own
#: ``from_conv``; ``convert``/``revert`` leave them as they are).
MADE_BY = ("convert", "low_rank", None)
DOMAINS = ("spatial", "winograd")


def masked_weight(module: nn.Module) -> torch.Tensor:
    """``module.weight`` as the next forward sees it (``weight_orig * weight_mask`` when pruned)."""
    hook = pruning_hook(module, "weight")
    return hook.apply_mask(module) if hook is not None else module.weight


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer: the questions every pass asks of a layer, answered once.

    Attributes:
        name: registry name (``"conv2d"``).
        description: one line for the docs.
        conv_type: the torch layer the kind is made from (``nn.Conv2d``).
        winograd_type: the layer class of the kind (``WinogradConv2d``, ``LowRankWinogradConv3d``,
            ``AdderConv2d``...).
        made_by: ``"convert"``, ``"low_rank"`` or ``None`` (see :data:`MADE_BY`).
        domain: the domain of the layer's ``weight`` when fixed by the kind (``"winograd"`` for
            low-rank and Winograd adder layers, ``"spatial"`` for ``AdderConv2d``); ``None``: the
            layer's own ``domain`` attribute (vanilla Winograd layers; plain convolutions are
            spatial).
        mask_name: the parameter whose masks prune whole Winograd positions (column pruning):
            ``"v"`` for low-rank layers (the columns of the position factor), else ``"weight"``.
            ``prune.stats`` reads the pruning method from it.
        low_rank: the Winograd weight is the product of trained factors ``u·v``.
        adder: the layer computes ``-sum |x - w|^p`` (additions) instead of products; its
            exponent is :meth:`exponent`.
        effective: ``effective(module)``: the weight the layer computes with, in its domain,
            masked, with autograd (default :func:`masked_weight`; low-rank: ``u·v``).
        to_full: ``to_full(module) -> (layer, note)``: the full spatial-domain Winograd layer
            of the same function that ``convert(domain="spatial")`` and ``revert`` turn a layer
            of this kind into first (masks carried; ``note`` for the conversion report);
            ``None``: the layer is a full Winograd layer already.
    """

    name: str
    description: str
    conv_type: type[nn.Module]
    winograd_type: type[nn.Module]
    made_by: str | None = "convert"
    domain: str | None = None
    mask_name: str = "weight"
    low_rank: bool = False
    adder: bool = False
    effective: Callable[[nn.Module], torch.Tensor] = masked_weight
    to_full: Callable[[nn.Module], tuple[nn.Module, str]] | None = None

    def __post_init__(self) -> None:
        if self.made_by not in MADE_BY:
            raise ValueError(f"layer kind {self.name!r}: made_by must be one of {MADE_BY}, got "
                             f"{self.made_by!r}")
        if self.domain not in (None, *DOMAINS):
            raise ValueError(f"layer kind {self.name!r}: domain must be None or one of "
                             f"{DOMAINS}, got {self.domain!r}")

    def weight_domain(self, module: nn.Module) -> str:
        """``"spatial"`` or ``"winograd"``: the domain of ``module``'s (effective) weight."""
        return self.domain or getattr(module, "domain", "spatial")

    def effective_weight(self, module: nn.Module) -> torch.Tensor:
        """The (masked) weight ``module`` computes with, in :meth:`weight_domain` (with autograd)."""
        return self.effective(module)

    def winograd_weight(self, module: nn.Module,
                        algorithms: Sequence[WinogradAlgorithm] | None = None,
                        decomposition: Decomposition | None = None) -> torch.Tensor | None:
        """The effective Winograd-domain weight of ``module`` (with autograd).

        Q of a Winograd-domain layer, ``u·v`` of a low-rank layer, U of a Winograd adder layer
        (``(K, C/groups, *n)``); for a spatial weight its transform ``G g Gᵀ`` with
        ``algorithms``/``decomposition`` (default: the layer's own; one Q per DWM piece,
        ``(K, C/groups, S, *n)``). ``None`` for a spatial layer without algorithms (a plain
        convolution given none, ``AdderConv2d``).
        """
        weight = self.effective_weight(module)
        if self.weight_domain(module) == "winograd":
            return weight
        if algorithms is None:
            algorithms = getattr(module, "algorithms", None)
            decomposition = getattr(module, "decomposition", None)
        if algorithms is None:
            return None
        return transform_weight(weight, algorithms, decomposition)

    def exponent(self, module: nn.Module) -> float | None:
        """``p`` of an adder layer (``-sum |x - w|^p``); ``None`` for a multiplying layer."""
        return float(module.p) if self.adder else None

    def rank(self, module: nn.Module) -> int | None:
        """The rank R of a low-rank layer's ``u·v``; ``None`` for other kinds."""
        return int(module.rank) if self.low_rank else None


#: Every layer kind, by name.
LAYER_KINDS: Registry[LayerKind] = Registry("layer kind")


def register_layer_kind(kind: LayerKind) -> LayerKind:
    """Add ``kind`` to :data:`LAYER_KINDS` (its name must be new) and return it."""
    return LAYER_KINDS.register(kind)


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The kind whose layer class ``module`` is an instance of (the most derived class wins:
    a ``LowRankWinogradConv3d`` is of kind ``lowrank3d``, not ``conv3d``); ``None`` for others."""
    mro = type(module).__mro__
    matches = [k for k in LAYER_KINDS.values() if k.winograd_type in mro]
    return min(matches, key=lambda k: mro.index(k.winograd_type), default=None)


def kind_of(module: nn.Module) -> LayerKind | None:
    """The kind ``module`` belongs to: as a layer of the kind (:func:`layer_kind`), or as the torch
    layer ``convert(model)`` replaces (``made_by="convert"``)."""
    own = layer_kind(module)
    if own is not None:
        return own
    return next((k for k in LAYER_KINDS.values()
                 if k.made_by == "convert" and isinstance(module, k.conv_type)), None)


def low_rank_kind(module: nn.Module) -> LayerKind | None:
    """The low-rank kind ``convert(model, low_rank=...)`` makes from ``module`` (a convolution or a
    Winograd layer of the same torch type), if any."""
    base = kind_of(module)
    if base is None or base.adder:
        return None
    return next((k for k in LAYER_KINDS.values()
                 if k.made_by == "low_rank" and k.conv_type is base.conv_type), None)


def winograd_layer_types() -> tuple[type[nn.Module], ...]:
    """The Winograd convolution layer classes (vanilla and low-rank; not the adder layers)."""
    return tuple(kind.winograd_type for kind in LAYER_KINDS.values() if not kind.adder)


def convertible_types() -> tuple[type[nn.Module], ...]:
    """The torch layer classes ``convert`` may replace."""
    return tuple(kind.conv_type for kind in LAYER_KINDS.values() if kind.made_by == "convert")


def adder_layer_types() -> tuple[type[nn.Module], ...]:
    """The adder layer classes (kinds with ``adder=True``: AdderConv2d, WinogradAdderConv2d)."""
    return tuple(kind.winograd_type for kind in LAYER_KINDS.values() if kind.adder)


def layer_types() -> tuple[type[nn.Module], ...]:
    """The layer class of every registered kind."""
    return tuple(kind.winograd_type for kind in LAYER_KINDS.values())


def is_adder_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a layer of an adder kind."""
    kind = layer_kind(module)
    return kind is not None and kind.adder
