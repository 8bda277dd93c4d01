"""Layer kinds of ``convert()``: which torch layer becomes which Winograd layer, as a registry.

A layer kind pairs a torch convolution type with the Winograd layer that replaces it (a class
with ``from_conv``, ``to_winograd``/``to_spatial``/``to_conv``, ``algorithms`` and ``domain``).
``convert``/``revert``, the pruning methods and the docs tables read :data:`LAYER_KINDS`;
adding a kind is one new module in ``sparsewino/nn/`` that defines the layer and calls
:func:`register_layer_kind`, plus one import line in ``sparsewino/nn/__init__.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..registry import Registry

__all__ = ["LayerKind", "LAYER_KINDS", "register_layer_kind", "kind_of", "winograd_layer_types",
           "convertible_types"]


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer ``convert`` handles.

    Attributes:
        name: registry name (``"conv2d"``).
        description: one line for the docs.
        conv_type: the torch layer ``convert`` replaces (``nn.Conv2d``).
        winograd_type: the Winograd layer that replaces it (``WinogradConv2d``).
    """

    name: str
    description: str
    conv_type: type[nn.Module]
    winograd_type: type[nn.Module]


#: Every layer kind convert() knows, by name.
LAYER_KINDS: Registry[LayerKind] = Registry("layer kind")


def register_layer_kind(kind: LayerKind) -> LayerKind:
    """Add ``kind`` to :data:`LAYER_KINDS` (its name must be new) and return it."""
    return LAYER_KINDS.register(kind)


def kind_of(module: nn.Module) -> LayerKind | None:
    """The kind ``module`` belongs to (as a Winograd layer or as the torch layer it replaces)."""
    kinds = list(LAYER_KINDS.values())
    return (next((k for k in kinds if isinstance(module, k.winograd_type)), None)
            or next((k for k in kinds if isinstance(module, k.conv_type)), None))


def winograd_layer_types() -> tuple[type[nn.Module], ...]:
    """The Winograd layer classes of every registered kind."""
    return tuple(kind.winograd_type for kind in LAYER_KINDS.values())


def convertible_types() -> tuple[type[nn.Module], ...]:
    """The torch layer classes ``convert`` may replace."""
    return tuple(kind.conv_type for kind in LAYER_KINDS.values())
