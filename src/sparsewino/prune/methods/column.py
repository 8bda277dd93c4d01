"""Column-wise (low-rank oriented) pruning (Qin, Lin & Lin 2023): whole Winograd positions at once.

A Winograd-domain weight seen as a matrix ``W`` (rows: the K·C/groups channel pairs, columns:
the P Winograd positions) is pruned a column at a time: a pruned column is a position whose
element-wise product vanishes for every channel pair, which the engine skips entirely, so the
sparsity turns into speed (unstructured zeros of the same count do not). Units are positions,
scored by a :class:`ColumnImportance`:

* ``"l2"`` (default): the column's root mean square ``||W[:, j]|| / sqrt(rows)``; for a low-rank
  layer computed from the factors, ``||U V[:, j]||² = V[:, j]ᵀ (UᵀU) V[:, j]``, without forming W;
* ``"l1"``: the column's mean ``|W[:, j]|``;
* ``"factor"``: ``||V[:, j]|| / sqrt(R)`` of a low-rank layer's position factor.

The scores are per-entry averages, so one threshold across layers of different widths (a global
amount) compares like with like. On a :class:`~sparsewino.nn.LowRankWinogradConv3d` (or 2d) the
mask goes on ``v``'s columns; on a vanilla Winograd-domain layer on the positions of ``weight``.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Union

import torch
from torch import nn

from ...nn.kinds import LayerKind, layer_kind
from ..layers import is_winograd_layer
from ..mask import effective_weight, get_mask
from ..selection import ScoreProblem
from .base import MethodSpec, option, prune_layer, register_method

__all__ = ["column", "COLUMN", "ColumnOptions", "ColumnImportance", "ColumnNorm", "FactorNorm",
           "column_importance", "COLUMN_IMPORTANCES", "pruned_columns"]


class ColumnImportance(ABC):
    """A score per Winograd position (higher = keep) of a low-rank or Winograd-domain layer."""

    @abstractmethod
    def __call__(self, module: nn.Module) -> torch.Tensor:
        """Scores ``(P,)`` in float64, positions in the layer's row-major order."""


def _low_rank(module: nn.Module) -> bool:
    """Whether ``module``'s kind is low-rank (its Winograd weight is the product u·v)."""
    kind = layer_kind(module)
    return kind is not None and kind.low_rank


def _kind(module: nn.Module) -> LayerKind:
    kind = layer_kind(module)
    if kind is None:
        raise TypeError(f"{type(module).__name__} is not a layer of a registered layer kind")
    return kind


def _factors(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A low-rank layer's effective (masked) ``u`` and ``v`` in float64, detached."""
    return (effective_weight(module, "u").detach().double(),
            effective_weight(module, "v").detach().double())


def _matrix(module: nn.Module) -> torch.Tensor:
    """The effective Winograd weight as ``(rows, P)`` float64 (u·v of a low-rank layer)."""
    q = _kind(module).winograd_weight(module).detach().double()
    return q.reshape(q.shape[0] * q.shape[1], -1)


class ColumnNorm(ColumnImportance):
    """Per-entry norm of each column of W: root mean square (``p=2``) or mean ``|w|`` (``p=1``).

    Args:
        p: 2 or 1.

    Examples:
        >>> from sparsewino.nn import LowRankWinogradConv3d
        >>> layer = LowRankWinogradConv3d(2, 4, 3, rank=4, tile=2, padding=1)
        >>> ColumnNorm()(layer).shape
        torch.Size([64])
    """

    def __init__(self, p: int = 2) -> None:
        if p not in (1, 2):
            raise ValueError(f"ColumnNorm: p must be 1 or 2, got {p!r}")
        self.p = p

    def __call__(self, module: nn.Module) -> torch.Tensor:
        if self.p == 2 and _low_rank(module):
            u, v = _factors(module)                       # ||U v_j||² = v_jᵀ (UᵀU) v_j
            squares = ((u.T @ u) @ v * v).sum(dim=0).clamp_min(0.0)
            return (squares / u.shape[0]).sqrt()
        w = _matrix(module)
        if self.p == 2:
            return w.pow(2).mean(dim=0).sqrt()
        return w.abs().mean(dim=0)


class FactorNorm(ColumnImportance):
    """Root mean square of each column of a low-rank layer's ``v``: ``||V[:, j]|| / sqrt(R)``."""

    def __call__(self, module: nn.Module) -> torch.Tensor:
        if not _low_rank(module):
            raise ValueError(f"importance 'factor' scores the columns of v and needs a low-rank "
                             f"layer (LowRankWinogradConv3d/2d), got {type(module).__name__}; "
                             "use 'l2' for vanilla Winograd-domain layers")
        _, v = _factors(module)
        return v.pow(2).mean(dim=0).sqrt()


#: The importances by name (the method's ``importance`` option).
COLUMN_IMPORTANCES = {"l2": lambda: ColumnNorm(2), "l1": lambda: ColumnNorm(1), "factor": FactorNorm}
ImportanceArg = Union[str, ColumnImportance, None]


def column_importance(module: nn.Module, importance: ImportanceArg = None) -> torch.Tensor:
    """Scores ``(P,)`` of the Winograd positions of ``module`` (``None``/``"l2"``: :class:`ColumnNorm`).

    Examples:
        >>> from sparsewino.nn import WinogradConv3d
        >>> layer = WinogradConv3d(2, 3, 3, tile=2, domain="winograd")
        >>> column_importance(layer, "l1").shape
        torch.Size([64])
    """
    if importance is None or isinstance(importance, str):
        name = importance or "l2"
        if name not in COLUMN_IMPORTANCES:
            raise ValueError(f"column importance must be one of {sorted(COLUMN_IMPORTANCES)} or a "
                             f"ColumnImportance, got {importance!r}")
        importance = COLUMN_IMPORTANCES[name]()
    scores = importance(module).detach().to(torch.float64).reshape(-1)
    positions = math.prod(module.winograd_size)
    if scores.shape != (positions,):
        raise ValueError(f"column importance returned {tuple(scores.shape)} scores for "
                         f"{positions} positions")
    return scores


def pruned_columns(module: nn.Module) -> torch.Tensor:
    """Boolean ``(P,)``: positions whose whole column is masked (pruned earlier)."""
    positions = math.prod(module.winograd_size)
    mask = get_mask(module, _kind(module).mask_name)      # v (R, P) or weight (K, C/groups, *n)
    if mask is None:
        return torch.zeros(positions, dtype=torch.bool)
    return (mask.reshape(-1, positions) == 0).all(dim=0).cpu()


@dataclass(frozen=True)
class ColumnOptions:
    """Options of ``column`` in recipes and on the command line."""

    importance: Literal["l2", "l1", "factor"] | None = option(
        "column importance: l2 (default, root mean square of W's column, from the factors of "
        "low-rank layers), l1 (mean |w| of the column) or factor (RMS of v's column, low-rank "
        "layers only)")


def _accept(module: nn.Module, **_: object) -> str | None:
    kind = layer_kind(module)
    if kind is None or kind.adder or not is_winograd_layer(module):
        return "-"
    if kind.weight_domain(module) != "winograd":
        return ("spatial-domain Winograd layer (convert with domain='winograd', or with "
                "low_rank, first)")
    return None


def _build(module: nn.Module, name: str = "weight", importance: ImportanceArg = None,
           **_: object) -> ScoreProblem:
    reason = _accept(module)
    if reason is not None:
        raise ValueError(f"column pruning needs a low-rank Winograd layer (LowRankWinogradConv3d"
                         f"/2d) or a Winograd-domain layer, got {type(module).__name__}"
                         + ("" if reason == "-" else f": {reason}"))
    target = _kind(module).mask_name                # "v" (columns of u·v's factor) or "weight"
    if name not in {"weight", target}:
        raise ValueError(f"column pruning masks whole positions of the Winograd weight "
                         f"({'the columns of ' + target if target != 'weight' else 'weight'}); "
                         f"got name={name!r}")
    scores = column_importance(module, importance)
    scores = scores.masked_fill(pruned_columns(module).to(scores.device), float("-inf"))
    tensor = effective_weight(module, target)         # its rows are flattened as (rows, P)
    positions = scores.numel()

    def expand(keep: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = keep.reshape(1, positions).expand(tensor.numel() // positions, positions)
        return {target: mask.reshape(tensor.shape).to(tensor.dtype)}
    return ScoreProblem(module, scores, expand, "winograd")


def column(module: nn.Module, amount: float | int, name: str = "weight", *,
           importance: ImportanceArg = None) -> nn.Module:
    """Prune whole Winograd positions (columns of W) of a low-rank or Winograd-domain layer.

    Low-rank oriented sparse granularity (Qin, Lin & Lin 2023): the positions with the lowest
    column importance are masked in every channel pair, so the layer's element-wise stage
    skips them entirely. On a :class:`~sparsewino.nn.LowRankWinogradConv3d`/``2d`` the mask is
    on the columns of ``v`` (``v_mask``); on a vanilla Winograd-domain layer on ``weight``.

    Args:
        module: a low-rank Winograd layer, or a ``WinogradConv3d``/``2d`` with
            ``domain="winograd"``.
        amount: fraction of the positions pruned after the call (in [0, 1]), or their count.
            Positions pruned before stay pruned and count towards it.
        name: ``"weight"`` (the Winograd weight; ``"v"`` is accepted for low-rank layers).
        importance: ``"l2"`` (default), ``"l1"``, ``"factor"`` or a :class:`ColumnImportance`.

    Returns:
        ``module``.

    Examples:
        >>> from sparsewino.nn import LowRankWinogradConv3d
        >>> layer = column(LowRankWinogradConv3d(4, 8, 3, rank=8, tile=2, padding=1), 0.75)
        >>> int((layer.winograd_weight() == 0).flatten(0, 1).all(dim=0).sum())   # of 64 positions
        48
    """
    return prune_layer(COLUMN, module, amount, name, importance=importance)


COLUMN = register_method(MethodSpec(
    "column", _accept, _build, options=ColumnOptions, states=("winograd", "winograd_relu"),
    description="column-wise (low-rank oriented) pruning (Qin et al.): whole Winograd positions "
                "by column importance",
    layer_function=column,
    usage="sp.column(layer, amount, importance='l2')",
    prunes="whole Winograd positions: columns of v of low-rank layers, positions of Q of "
           "Winograd-domain layers",
    unit="Winograd positions"))
