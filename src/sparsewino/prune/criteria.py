"""Importance criteria: small callables returning a score per entry (higher = keep).

Every criterion reads the *effective* tensor (``orig * mask`` for a pruned layer), so entries
pruned earlier score zero. Write your own by subclassing :class:`Importance`::

    class Taylor(Importance):
        def __call__(self, module, name="weight"):
            w = effective(module, name)
            return (w * getattr(module, name + "_orig").grad).abs()
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import nn

from ..winograd.algorithm import WinogradAlgorithm, importance_factor_matrix
from ..winograd.decompose import Decomposition
from ..winograd.transform import filter_matrix, kron_matrix
from .layers import is_winograd_layer, winograd_view
from .mask import effective_weight

__all__ = ["Importance", "Magnitude", "IFMMagnitude", "OutputNormMagnitude", "GroupMax",
           "effective", "support_matrix", "output_norm_factors"]


def effective(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The tensor the layer computes with (masked), detached."""
    return effective_weight(module, name).detach()


def require_winograd_domain(module: nn.Module, name: str, who: str) -> None:
    if name != "weight" or not is_winograd_layer(module, "winograd"):
        kind = type(module).__name__
        detail = f" with domain={module.domain!r}" if is_winograd_layer(module) else ""
        raise ValueError(
            f"{who} needs a Winograd-domain layer's weight (WinogradConv2d/3d with "
            f"domain='winograd'), got {kind}{detail}.{name}. Convert first: "
            "sparsewino.nn.convert(model, domain='winograd') or layer.to_winograd().")


class Importance(ABC):
    """Abstract criterion: ``criterion(module, name)`` returns scores shaped like the tensor."""

    @abstractmethod
    def __call__(self, module: nn.Module, name: str = "weight") -> torch.Tensor:
        """Scores, one per entry of ``module.<name>`` (higher = more important)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Magnitude(Importance):
    """``|w|^p`` (``p=1``: the L1 magnitude baseline; ranking is the same for any ``p`` > 0).

    Examples:
        >>> conv = nn.Conv2d(1, 1, 2, bias=False)
        >>> conv.weight.data = torch.tensor([[[[1., -3.], [2., 0.]]]])
        >>> Magnitude()(conv).flatten().tolist()
        [1.0, 3.0, 2.0, 0.0]
    """

    def __init__(self, p: float = 1.0) -> None:
        if p <= 0:
            raise ValueError(f"Magnitude: p must be > 0, got {p}")
        self.p = p

    def __call__(self, module: nn.Module, name: str = "weight") -> torch.Tensor:
        return effective(module, name).abs() ** self.p


class IFMMagnitude(Importance):
    """``|Q| ⊙ M̂``: Winograd-domain magnitude weighted by the importance factor matrix.

    M̂ (Yu, Park & Naumov; docs/pruning.md) comes from the layer's own algorithms, so it
    depends on the interpolation points: a_i = ‖Aᵀ[:, i]‖₂·‖Bᵀ[i, :]‖₂, M = a ⊗ a (⊗ a),
    M̂ = M / min(M). Only Winograd-domain layers (``domain="winograd"``) qualify.

    Args:
        normalize: divide M by its minimum (the ranking within a layer does not change; the
            scale matters only when layers are compared globally).
    """

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize

    def __call__(self, module: nn.Module, name: str = "weight") -> torch.Tensor:
        require_winograd_domain(module, name, "IFMMagnitude")
        factors = importance_factor_matrix(module.algorithms, normalize=self.normalize)
        q = effective(module, name)
        return q.abs().to(torch.float64) * factors.to(q.device)


def output_norm_factors(algorithms: Sequence[WinogradAlgorithm], device=None) -> torch.Tensor:
    """‖row_i(A ⊗ A)‖₂ per Winograd position (shape ``(n_1, ..., n_d)``, float64).

    A = (Aᵀ)ᵀ; row i of A ⊗ A is column i of kron(Aᵀ, Aᵀ).
    """
    at = kron_matrix(algorithms, "AT", torch.float64, device)
    return at.norm(dim=0).reshape(*(a.n for a in algorithms))


class OutputNormMagnitude(Importance):
    """``|Q_i| · ‖row_i(A ⊗ A)‖₂`` (Li, Park & Tang's native pruning).

    ``score <= t₀`` is exactly their position-dependent hard threshold
    ``|Q_i| <= t₀ / ‖row_i(A ⊗ A)‖₂``.
    """

    def __call__(self, module: nn.Module, name: str = "weight") -> torch.Tensor:
        require_winograd_domain(module, name, "OutputNormMagnitude")
        q = effective(module, name)
        return q.abs().to(torch.float64) * output_norm_factors(module.algorithms, q.device)


def support_matrix(algorithms: Sequence[WinogradAlgorithm], device=None,
                   decomposition: Decomposition | None = None) -> torch.Tensor:
    """Boolean S ≠ 0 for S = G ⊗ G (⊗ G): entry [k, j] says Q position k depends on weight j.

    Shape ``(P, R)`` with P = prod(n_i) positions and R = prod(r_i) kernel taps, both in
    row-major order. For a DWM ``decomposition``: ``(S * P, R)`` over the pieces' positions
    and the full kernel's taps (a tap feeds the positions of the piece that holds it).
    """
    return filter_matrix(algorithms, decomposition, torch.float64, device) != 0


class GroupMax(Importance):
    """Importance of each Winograd position of each kernel: max |g_j| over its spatial group.

    Position k of a kernel depends on the taps {j : (G ⊗ G)[k, j] ≠ 0}; zeroing all of them
    makes Q[k] exactly zero (spatial-Winograd step 1, docs/pruning.md). Returns scores of shape
    ``(K, C/groups, *n)`` (``(K, C/groups, S, *n)`` for DWM pieces), not of the weight's shape.

    Args:
        tile, points: the algorithms assumed for a plain ``nn.Conv2d``/``nn.Conv3d`` (a
            Winograd layer always uses its own).
    """

    def __init__(self, tile: int | Sequence[int] = 4, points=None) -> None:
        self.tile = tile
        self.points = points

    def view(self, module: nn.Module) -> nn.Module:
        """The Winograd layer whose positions are scored (:func:`~sparsewino.prune.layers.winograd_view`)."""
        view = winograd_view(module, self.tile, self.points)
        if view is None or (is_winograd_layer(module) and module.domain != "spatial"):
            raise ValueError(
                f"spatial-Winograd step 1 needs spatial weights of a Winograd-eligible convolution "
                f"(nn.Conv1d/2d/3d or WinogradConv1d/2d/3d with domain='spatial'), got "
                f"{type(module).__name__}" + (f" with domain={module.domain!r}"
                                              if is_winograd_layer(module) else ""))
        return view

    def algorithms(self, module: nn.Module) -> tuple[WinogradAlgorithm, ...]:
        """The algorithms F(m, r) of the scored positions."""
        return self.view(module).algorithms

    def support(self, module: nn.Module, device=None) -> torch.Tensor:
        """:func:`support_matrix` of the layer (its pieces' positions when decomposed)."""
        view = self.view(module)
        return support_matrix(view.algorithms, device, view.decomposition)

    @staticmethod
    def group_max(weight: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """max |g_j| over each position's group: ``(K, C, *r)`` weights, ``(P, R)`` support
        -> ``(K·C, P)`` float64."""
        k, c = weight.shape[:2]
        flat = weight.abs().to(torch.float64).reshape(k * c, -1)           # (KC, R)
        out = torch.empty(k * c, support.shape[0], dtype=torch.float64, device=weight.device)
        chunk = max(1, 2 ** 24 // max(1, support.numel()))                 # bound (chunk, P, R)
        for start in range(0, k * c, chunk):
            part = flat[start:start + chunk, None, :].expand(-1, *support.shape)
            out[start:start + chunk] = part.masked_fill(~support, -math.inf).amax(dim=-1)
        return out

    def __call__(self, module: nn.Module, name: str = "weight") -> torch.Tensor:
        view = self.view(module)
        weight = effective(module, name)
        scores = self.group_max(weight, self.support(module, weight.device))
        return scores.reshape(*weight.shape[:2], *view.winograd_shape)
