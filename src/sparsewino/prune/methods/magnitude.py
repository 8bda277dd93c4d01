"""Magnitude pruning, spatial and unstructured: the baseline every paper compares against."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ...nn.kinds import adder_layer_types, kind_of
from ..criteria import Importance, Magnitude
from ..layers import conv_layer_types
from ..selection import ScoreProblem
from .base import MethodSpec, element_problem, option, prune_layer, register_method

__all__ = ["magnitude", "MAGNITUDE", "MagnitudeOptions", "LAYER_TYPES"]

#: Which layers ``prune_model(model, "magnitude", ..., layers=...)`` prunes ("conv" includes
#: the layers of the adder kinds, AdderConv2d and WinogradAdderConv2d).
LAYER_TYPES = {"conv": lambda: (*conv_layer_types(), *adder_layer_types()),
               "linear": lambda: (nn.Linear,),
               "all": lambda: (*conv_layer_types(), *adder_layer_types(), nn.Linear)}


@dataclass(frozen=True)
class MagnitudeOptions:
    """Options of ``magnitude`` in recipes and on the command line."""

    layers: Literal["conv", "linear", "all"] | None = option(
        "which layers: conv (convolutions, the default), linear (nn.Linear: fully connected "
        "layers) or all")
    block: int | None = option("prune blocks of this many consecutive output channels at one "
                               "index of the other dims together (8: the engine's blocked "
                               "format); default 1: single entries", low=1)


def _accept(module: nn.Module, layers: str = "conv", **_: object) -> str | None:
    if layers not in LAYER_TYPES:
        raise ValueError(f"layers must be one of {sorted(LAYER_TYPES)}, got {layers!r}")
    return None if isinstance(module, LAYER_TYPES[layers]()) else "-"


def _build(module: nn.Module, name: str = "weight", importance: Importance | None = None,
           block: int | None = None, **_: object) -> ScoreProblem:
    scores = (importance or Magnitude())(module, name)
    kind = kind_of(module)                  # nn.Linear and other modules: spatial
    winograd = kind is not None and kind.weight_domain(module) == "winograd"
    domain = "winograd" if winograd and name == "weight" else "spatial"
    return element_problem(module, name, scores, domain, 1 if block is None else block)


def magnitude(module: nn.Module, amount: float | int, name: str = "weight", *,
              importance: Importance | None = None, block: int | None = None) -> nn.Module:
    """Prune the smallest-magnitude entries of ``module.<name>`` (unstructured).

    On a spatial layer this is the classic baseline; its Winograd-domain sparsity is whatever
    the transform leaves (see :func:`sparsewino.prune.stats`). On a Winograd-domain layer it
    prunes Q directly (plain Winograd-domain magnitude pruning). On an adder layer
    (``AdderConv2d``, or U of a ``WinogradAdderConv2d``) a pruned weight is an exact zero: its
    term becomes ``-|x - 0| = -|x|``, which is still added (the input still counts), so pruning
    saves the subtraction and the weight's storage, not the term; ``engine.count`` counts one
    addition instead of two for it.

    Args:
        module: any module with the parameter (``nn.Conv2d``, ``WinogradConv2d``, ``nn.Linear``...).
        amount: fraction of the tensor's entries pruned after the call (in [0, 1]), or their
            count. Entries pruned before stay pruned and count towards it.
        name: parameter name.
        importance: criterion (default :class:`~sparsewino.prune.criteria.Magnitude`).
        block: prune blocks of this many consecutive output channels (dim 0) at one index of
            the other dims together, scored by their mean magnitude (8: the engine's blocked
            format, e.g. for strided ``nn.Conv2d`` layers run directly); ``None`` or 1: single
            entries.

    Returns:
        ``module``, reparametrised like ``torch.nn.utils.prune``.

    Examples:
        >>> conv = magnitude(nn.Conv2d(8, 8, 3), amount=0.5)
        >>> float((conv.weight == 0).float().mean())
        0.5
    """
    return prune_layer(MAGNITUDE, module, amount, name, importance=importance, block=block)


MAGNITUDE = register_method(MethodSpec(
    "magnitude", _accept, _build, options=MagnitudeOptions,
    description="magnitude pruning (baseline): the smallest |w| of each layer",
    layer_function=magnitude,
    usage="sp.magnitude(layer, amount, block=None)",
    prunes="any conv's weight (spatial, or Q of a Winograd-domain layer), adder layers' weights "
           "(a pruned adder weight still adds |x|); nn.Linear with layers: linear/all",
    unit="entries"))
