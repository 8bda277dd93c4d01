"""Spatial-Winograd step 1 (Yu, Park & Naumov): structured spatial pruning aimed at Winograd zeros.

Winograd position k of a kernel depends on the spatial taps {j : (G ⊗ G)[k, j] ≠ 0} (its
group). The importance of position k is max |g_j| over its group; every position scoring at
or below a threshold t has its whole group zeroed, which makes Q[k] = (G g Gᵀ)[k] exactly
zero. t is found per layer (or across layers) by bisection so that the fraction of exact
zeros of Q reaches the target Winograd-domain sparsity.

Tolerance: one threshold step changes the zeros of a single kernel (for weights without ties),
so a per-layer target is met within one kernel's positions, i.e. |reached - target| <=
1 / (K · C/groups), usually much closer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ...nn.convert import eligibility
from ..criteria import GroupMax, effective
from ..layers import conv_layer_types, is_winograd_layer, layer_algorithms
from ..selection import ThresholdProblem
from .base import MethodSpec, PruneContext, option, prune_layer, register_method

__all__ = ["spatial_winograd", "SPATIAL_WINOGRAD", "SpatialWinogradOptions", "WinogradGroupProblem"]


@dataclass(frozen=True)
class SpatialWinogradOptions:
    """Options of ``spatial_winograd`` in recipes and on the command line."""

    tile: int | None = option("output tile m of the F(m, r) the zeros are aimed at (default: "
                              "the recipe's tile)", low=1)


class WinogradGroupProblem(ThresholdProblem):
    """Step 1 for one layer: units are the Winograd positions of every kernel.

    Weights that are already zero (masked or exactly zero) count as pruned, so positions
    whose group is entirely zero are counted as zeros from the start. A DWM layer's units are
    the positions of every piece's Q; a tap belongs to the group of each position that depends
    on it (over all pieces), so the zero count stays exact.
    """

    domain = "winograd"

    def __init__(self, module: nn.Module, name: str = "weight", tile: int | Sequence[int] = 4,
                 points=None) -> None:
        weight = effective(module, name)
        self.module, self.name, self.shape = module, name, weight.shape
        kc = weight.shape[0] * weight.shape[1]
        support = GroupMax(tile, points).support(module, weight.device)              # (P, R)
        self.importance = GroupMax.group_max(weight, support)                         # (KC, P)
        self.support = support.to(torch.float64)
        self.fixed = (weight == 0).reshape(kc, -1)                                    # (KC, R)
        self.total = self.importance.numel()

    def candidates(self) -> torch.Tensor:
        return torch.unique(self.importance)

    def _pruned_weights(self, threshold: float) -> torch.Tensor:
        below = (self.importance <= threshold).to(torch.float64)
        return ((below @ self.support) > 0) | self.fixed

    def _zero_positions(self, pruned_weights: torch.Tensor) -> torch.Tensor:
        return ((~pruned_weights).to(torch.float64) @ self.support.T) == 0

    def pruned_at(self, threshold: float) -> int:
        return int(self._zero_positions(self._pruned_weights(threshold)).sum())

    def masks_at(self, threshold: float) -> dict[str, torch.Tensor]:
        return {self.name: (~self._pruned_weights(threshold)).reshape(self.shape)}


def _accept(module: nn.Module, tile: int | Sequence[int] = 4, points=None, **_: object) -> str | None:
    if not isinstance(module, conv_layer_types()):
        return "-"
    if is_winograd_layer(module, "winograd"):
        return "Winograd-domain layer (step 1 prunes spatial weights; use winograd_domain)"
    if layer_algorithms(module, tile, points) is None:
        return f"not Winograd-eligible: {eligibility(module)}"
    return None


def _build(module: nn.Module, name: str = "weight", tile: int | Sequence[int] = 4, points=None,
           **_: object) -> WinogradGroupProblem:
    if name != "weight":
        raise ValueError(f"spatial_winograd prunes a convolution's 'weight', got name={name!r}")
    return WinogradGroupProblem(module, name, tile, points)


def _prepare(values: dict[str, Any], context: PruneContext) -> dict[str, Any]:
    return {**values, "tile": values.get("tile") or context.tile}


def spatial_winograd(module: nn.Module, amount: float | int, name: str = "weight", *,
                     tile: int | Sequence[int] = 4, points=None) -> nn.Module:
    """Step 1 of spatial-Winograd pruning: zero whole spatial groups to reach a Winograd sparsity.

    Args:
        module: a spatial-domain ``WinogradConv1d``/``2d``/``3d`` (its own algorithms and DWM
            pieces are used), or an ``nn.Conv1d``/``2d``/``3d`` (pruned for the algorithms and
            pieces it would get from ``convert(model, tile=tile, points=points)``; strided and
            large kernels are decomposed).
        amount: target Winograd-domain sparsity: the fraction of exact zeros of Q = G g Gᵀ
            over all kernels and positions (or their count). Zeros already present count.
        name: must be ``"weight"``.
        tile, points: algorithms assumed for a plain convolution (ignored for Winograd layers).

    Returns:
        ``module`` with a spatial mask; ``pruning_info(module)["sparsity"]`` holds the
        Winograd-domain sparsity reached (equal to the exact zeros of G g Gᵀ).

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = spatial_winograd(WinogradConv2d(8, 8, 3, padding=1, tile=4), amount=0.5)
        >>> q = layer.winograd_weight()
        >>> abs(float((q == 0).float().mean()) - 0.5) <= 1 / 64
        True
    """
    return prune_layer(SPATIAL_WINOGRAD, module, amount, name, tile=tile, points=points)


SPATIAL_WINOGRAD = register_method(MethodSpec(
    "spatial_winograd", _accept, _build, options=SpatialWinogradOptions, states=("conv", "spatial"),
    prepare=_prepare, description="spatial-Winograd step 1 (Yu et al.): zero whole spatial groups "
                                  "so that Q = G g Gᵀ gets exact zeros",
    layer_function=spatial_winograd, usage="sp.spatial_winograd(layer, amount, tile=4)",
    prunes="spatial weights of convs (plain or WinogradConv1d/2d/3d(domain=\"spatial\"); DWM pieces)",
    unit="exact zeros of Q (Winograd sparsity)"))
