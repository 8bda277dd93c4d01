"""LowRankWinogradConv3d / 2d: Winograd-domain convolutions whose weight is a low-rank product W = U·V.

Qin, Lin & Lin (2023), "Low-Rank Winograd Transformation for 3D Convolutional Neural Networks".
Seen as a matrix, a Winograd-domain weight has one row per (output, input) channel pair and one
column per Winograd position: ``W`` is ``(K·C/groups) x P`` with ``P = n³`` for F(m, r)³ (``n²``
in 2-D). The low-rank layer trains two smaller tensors instead,

    W = U · V,   U: (K·C/groups, R) (parameter ``u``),   V: (R, P) (parameter ``v``),

so a layer holds ``R·(K·C/groups + P)`` weights instead of ``K·C/groups·P``. Column ``j`` of W
(position j across every channel pair) is ``U · V[:, j]``: zeroing column j of V (the column
pruning of :func:`sparsewino.prune.column`) removes that position's whole product, a pattern
the engine turns into a skipped position.

The layers are Winograd-domain layers (``domain == "winograd"``) of the vanilla classes
(:class:`~sparsewino.nn.WinogradConv3d`/``2d``): ``winograd_weight()`` is the effective (masked)
U·V in the vanilla layout ``(K, C/groups, *n)``, and ``weight`` is the same tensor (computed,
not a parameter; prune the factors, not it). Conversion back is exact to the Winograd domain
(:meth:`to_winograd`) and by least squares to spatial weights (:meth:`to_spatial`,
:meth:`to_conv`, with the residual reported).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Union

import torch
from torch import nn

from ..errors import UserError
from ..winograd.transform import filter_transform
from .conv import TileArg, WinogradConv2d, WinogradConv3d, _WinogradConvNd
from .kinds import LayerKind, layer_kind, low_rank_kind, register_layer_kind
from .masks import carry_mask, exact_spatial_weight, pruning_hook

__all__ = ["LowRankWinogradConv2d", "LowRankWinogradConv3d", "RankError", "resolve_rank",
           "truncated_factors", "is_low_rank", "low_rank_type", "LowRankArg"]

LowRankArg = Union[int, float]


class RankError(UserError, ValueError):
    """A rank that is impossible for the layer (0, negative, a fraction outside (0, 1], too large)."""


def resolve_rank(rank: LowRankArg, rows: int, positions: int, *, clamp: bool = False,
                 who: str = "LowRankWinogradConv") -> int:
    """The integer rank R of a low-rank Winograd weight of ``rows x positions``.

    Args:
        rank: an int (the rank itself) or a float in (0, 1] (a fraction of the ``positions``
            Winograd positions, rounded, at least 1).
        rows: channel pairs K·C/groups.
        positions: Winograd positions P (n³ in 3-D).
        clamp: cap the rank at ``min(rows, positions)`` instead of refusing a larger one
            (fractions are always capped; ``convert`` caps ints too and says so).
        who: the layer name for messages.

    Raises:
        RankError: 0 or negative, a fraction outside (0, 1], NaN, a bool, or (unless
            ``clamp``) an int above ``min(rows, positions)``, where the product stops gaining
            expressiveness and only adds parameters.

    Examples:
        >>> resolve_rank(8, rows=64, positions=64), resolve_rank(0.25, rows=64, positions=216)
        (8, 54)
    """
    limit = min(rows, positions)
    if isinstance(rank, bool) or not isinstance(rank, numbers.Real):
        raise RankError(f"{who}: rank must be an int (the rank) or a float in (0, 1] (a fraction "
                        f"of the {positions} Winograd positions), got {rank!r}")
    if isinstance(rank, numbers.Integral):
        if rank < 1:
            raise RankError(f"{who}: rank must be >= 1, got {rank}: a rank-0 weight is zero. Give "
                            f"a rank in [1, {limit}] or a fraction in (0, 1]")
        if rank > limit and not clamp:
            raise RankError(
                f"{who}: rank {rank} is larger than possible: the Winograd weight is {rows} "
                f"(K·C/groups) x {positions} (positions), so its rank is at most {limit}. Give a "
                f"rank in [1, {limit}] (a full-rank layer is the vanilla Winograd layer)")
        return int(min(rank, limit))
    if not (math.isfinite(rank) and 0.0 < rank <= 1.0):
        raise RankError(f"{who}: a fractional rank must lie in (0, 1] (a fraction of the "
                        f"{positions} positions), got {rank!r}")
    return int(min(max(1, round(float(rank) * positions)), limit))


def truncated_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Balanced rank-``rank`` factors of a ``(rows, positions)`` matrix by truncated SVD.

    ``W ≈ U V`` with ``U = U_R sqrt(S_R)`` and ``V = sqrt(S_R) V_Rᵀ`` (computed in float64), the
    best rank-R approximation in the Frobenius norm (Eckart–Young).

    Returns:
        ``(U (rows, R), V (R, positions), relative Frobenius error ||W - UV|| / ||W||)``, the
        factors in ``weight.dtype``.

    Examples:
        >>> w = torch.randn(10, 3, dtype=torch.float64) @ torch.randn(3, 16, dtype=torch.float64)
        >>> u, v, error = truncated_factors(w, 3)
        >>> tuple(u.shape), tuple(v.shape), error < 1e-12
        ((10, 3), (3, 16), True)
    """
    w = weight.detach().to(torch.float64)
    left, singular, right = torch.linalg.svd(w, full_matrices=False)
    root = singular[:rank].sqrt()
    u = left[:, :rank] * root
    v = root[:, None] * right[:rank]
    norm = float(w.norm())
    error = float((w - u @ v).norm()) / norm if norm > 0 else 0.0
    return u.to(weight.dtype), v.to(weight.dtype), error


def low_rank_type(module: nn.Module) -> type | None:
    """The low-rank layer class for ``module`` (a convolution or vanilla Winograd layer), if any
    (the layer class of :func:`~sparsewino.nn.kinds.low_rank_kind`)."""
    kind = low_rank_kind(module)
    return None if kind is None else kind.winograd_type


def is_low_rank(module: nn.Module) -> bool:
    """Whether ``module`` is a low-rank Winograd layer (its kind has ``low_rank=True``: its
    Winograd weight is U·V)."""
    kind = layer_kind(module)
    return kind is not None and kind.low_rank


class _LowRankWinograd:
    """The low-rank parametrisation shared by the 2-D and 3-D layers (a mixin of the vanilla
    Winograd layer classes; see the module docstring)."""

    _vanilla: type[_WinogradConvNd]
    #: Why the full Winograd weight of this layer cannot be pruned (the mask mechanism's
    #: message for a call such as ``sp.magnitude(layer)``).
    pruning_hint = ("its Winograd weight is the product of the factors u·v, not a parameter: "
                    "prune whole Winograd positions with sparsewino.prune.column(layer, amount) "
                    "(masks on v's columns), prune a factor by name (name='u' or 'v'), or convert "
                    "the layer to a full Winograd layer first (layer.to_winograd())")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, rank: LowRankArg = 0.25,
                 tile: TileArg = 4, points: Any = None, winograd_relu: bool = False,
                 error_budget: float | None = None) -> None:
        # The vanilla constructor validates everything and creates a Winograd-domain `weight`
        # initialised like nn.Conv*d (Q = G g Gᵀ of a Kaiming-uniform g); that Q becomes the
        # factors' initial value and the parameter is dropped. Low-rank layers are never
        # decomposed (DWM): W = U·V has one Q per channel pair, not one per piece.
        dims = self._dims
        strides = (stride,) * dims if isinstance(stride, int) else tuple(stride)
        if any(st != 1 for st in strides):
            raise ValueError(f"{type(self).__name__} needs stride=1 (got {stride}): low-rank "
                             "layers are not decomposed into DWM pieces; use a WinogradConv layer")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype, tile=tile, domain="winograd",
                         points=points, winograd_relu=winograd_relu, error_budget=error_budget,
                         decompose="none")
        q = self._parameters.pop("weight").detach()
        self.rank = resolve_rank(rank, self.rows, self.positions, who=type(self).__name__)
        self.requested_rank = rank
        self.u = nn.Parameter(torch.empty(self.rows, self.rank, device=q.device, dtype=q.dtype))
        self.v = nn.Parameter(torch.empty(self.rank, self.positions, device=q.device, dtype=q.dtype))
        self.init_error = self.set_winograd_weight(q)

    # ------------------------------------------------------------------ shape
    @property
    def rows(self) -> int:
        """Channel pairs K·C/groups: the rows of W."""
        return self.out_channels * (self.in_channels // self.groups)

    @property
    def positions(self) -> int:
        """Winograd positions P = prod(n_i): the columns of W."""
        return math.prod(self.winograd_size)

    # ------------------------------------------------------------------ weights
    @property
    def weight(self) -> torch.Tensor:
        """The effective Winograd-domain weight U·V ``(K, C/groups, *n)`` (computed, with autograd).

        Not a parameter: the trainable tensors are ``u`` and ``v``.
        """
        params = self._parameters
        if "u" not in params and "u_orig" not in params:   # inside the vanilla constructor
            if "weight" in params:
                return params["weight"]
            raise AttributeError("weight")
        return self.winograd_weight()

    def _factor(self, name: str) -> torch.Tensor:
        """``u`` or ``v`` as the next forward sees it (``orig * mask`` when pruned)."""
        hook = pruning_hook(self, name)
        return hook.apply_mask(self) if hook is not None else getattr(self, name)

    def winograd_weight(self) -> torch.Tensor:
        """The effective (masked) U·V in the vanilla layout ``(K, C/groups, *n)`` (differentiable)."""
        w = self._factor("u") @ self._factor("v")
        return w.reshape(self.out_channels, self.in_channels // self.groups, *self.winograd_size)

    def set_winograd_weight(self, q: torch.Tensor) -> float:
        """Set the factors to the best rank-R approximation of the Winograd weight ``q``.

        Args:
            q: ``(K, C/groups, *n)`` Winograd-domain weights (for example ``G g Gᵀ`` of a
                convolution). Masks on the factors stay and apply on top.

        Returns:
            The relative Frobenius error ``||q - U·V|| / ||q||`` of the approximation (0 when
            the rank is at least the rank of ``q``).
        """
        expected = (self.out_channels, self.in_channels // self.groups, *self.winograd_size)
        if tuple(q.shape) != expected:
            raise ValueError(f"{type(self).__name__}: Winograd weight of shape {tuple(q.shape)} "
                             f"does not fit this layer {expected}")
        u, v, error = truncated_factors(q.reshape(self.rows, self.positions), self.rank)
        params = self._parameters               # a pruned factor's parameter is <name>_orig
        target_u = params["u_orig"] if "u_orig" in params else params["u"]
        target_v = params["v_orig"] if "v_orig" in params else params["v"]
        with torch.no_grad():
            target_u.copy_(u)
            target_v.copy_(v)
        return error

    def reset_parameters(self) -> None:
        """Factors of a fresh nn.Conv*d initialisation (Kaiming-uniform g, Q = G g Gᵀ, SVD)."""
        if "u" not in self._parameters and "u_orig" not in self._parameters:
            super().reset_parameters()          # the vanilla constructor's call
            return
        dtype, device = self.v.dtype, self.v.device
        spatial = torch.empty(self.out_channels, self.in_channels // self.groups,
                              *self.kernel_size, dtype=dtype, device=device)
        nn.init.kaiming_uniform_(spatial, a=math.sqrt(5))
        self.init_error = self.set_winograd_weight(filter_transform(spatial, self.algorithms))
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def parameter_counts(self) -> dict[str, int]:
        """Weights of this layer against the vanilla Winograd layer and the spatial convolution.

        Returns:
            ``low_rank`` (R·(K·C/groups + P), the trainable u and v), ``winograd``
            (K·C/groups·P, a vanilla Winograd-domain layer), ``spatial`` (K·C/groups·prod(r),
            the convolution) and ``bias`` (K or 0, the same for all three).

        Examples:
            >>> layer = LowRankWinogradConv3d(16, 32, 3, rank=8, tile=2, padding=1)
            >>> layer.parameter_counts()
            {'low_rank': 4608, 'winograd': 32768, 'spatial': 13824, 'bias': 32}
        """
        return {"low_rank": self.rank * (self.rows + self.positions),
                "winograd": self.rows * self.positions,
                "spatial": self.rows * math.prod(self.kernel_size),
                "bias": self.out_channels if self.bias is not None else 0}

    # ------------------------------------------------------------------ conversions
    def _vanilla_config(self, domain: str) -> dict[str, Any]:
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, padding=self.padding, groups=self.groups,
                    bias=self.bias is not None, tile=self.tile, domain=domain, points=self.points,
                    winograd_relu=self.winograd_relu, device=self.v.device, dtype=self.v.dtype,
                    decompose="none")

    def column_mask(self) -> torch.Tensor | None:
        """Boolean ``(P,)``: positions kept by the mask of ``v`` (None when ``v`` is not masked).

        A position counts as pruned when its whole column of ``v`` is masked.
        """
        if pruning_hook(self, "v") is None:
            return None
        return (self.v_mask != 0).any(dim=0)

    def to_winograd(self) -> _WinogradConvNd:
        """The vanilla Winograd-domain layer with ``weight`` = U·V: the same function, exactly.

        A column-pruned layer's masked positions become a mask of the new ``weight`` (the
        pruning hook and its recorded info carried), so they stay pruned in training.
        """
        layer = self._vanilla(**self._vanilla_config("winograd"))
        with torch.no_grad():
            layer.weight.copy_(self.winograd_weight().detach())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        if pruning_hook(self, "bias") is not None:
            carry_mask(self, layer, self.bias_mask, "bias")
        kept = self.column_mask()
        if kept is not None and not kept.all():
            mask = kept.to(layer.weight.dtype).reshape(1, 1, *self.winograd_size)
            carry_mask(self, layer, mask.expand_as(layer.weight), "weight", domain="winograd",
                       old_name="v")
            with torch.no_grad():
                layer.weight_orig.mul_(layer.weight_mask)
        layer.train(self.training)
        return layer

    def spatial_residual(self) -> float:
        """Relative residual ``||W - (G⊗G⊗G) g*|| / ||W||`` of the least-squares spatial weights.

        0 when U·V is the Winograd transform of a spatial kernel; what :meth:`to_spatial` and
        :meth:`to_conv` lose otherwise.
        """
        with torch.no_grad():
            q = self.winograd_weight().detach().double()
            g, _ = exact_spatial_weight(q, self.algorithms)
            back = filter_transform(g, self.algorithms)
            norm = float(q.norm())
            return float((q - back).norm()) / norm if norm > 0 else 0.0

    def spatial_weight(self) -> torch.Tensor:
        """Least-squares spatial weights ``(K, C/groups, *r)`` of U·V (warns with the residual
        when U·V is not the transform of a spatial kernel)."""
        q = self.winograd_weight().detach()
        g, _ = exact_spatial_weight(q, self.algorithms)
        self.last_spatial_residual = self.spatial_residual()
        if self.last_spatial_residual > 1e-5:
            warnings.warn(
                f"{type(self).__name__}: U·V is not the Winograd transform of a spatial kernel; "
                f"the least-squares spatial weights differ from it by a relative residual of "
                f"{self.last_spatial_residual:.3g} (outputs change accordingly)", stacklevel=3)
        return g.to(q.dtype)

    def to_spatial(self) -> _WinogradConvNd:
        """A vanilla spatial-domain Winograd layer with the least-squares spatial weights of U·V.

        Warns with the relative residual (:meth:`spatial_residual`) when inexact; pruned
        positions become a spatial mask where exact (as ``convert(domain="spatial")`` does).
        """
        from .convert import carry_layer_masks  # convert imports this module
        full = self.to_winograd()
        layer = self._vanilla(**self._vanilla_config("spatial"))
        with torch.no_grad():
            layer.weight.copy_(self.spatial_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        carry_layer_masks(full, layer, "winograd", "spatial", full)
        layer.train(self.training)
        return layer

    @classmethod
    def from_conv(cls, conv: nn.Module, rank: LowRankArg = 0.25, tile: TileArg | None = None,
                  points: Any = None, winograd_relu: bool | None = None, *,
                  clamp_rank: bool = False) -> "_LowRankWinograd":
        """The low-rank layer closest to ``conv``: truncated SVD of its Winograd weight.

        Args:
            conv: an ``nn.Conv3d`` (``nn.Conv2d`` for the 2-D layer) or a vanilla Winograd
                layer of the same dimension (spatial or Winograd domain; its current masked
                weights are used, the masks themselves are not carried).
            rank: int or fraction of the positions (:func:`resolve_rank`).
            tile: output tile m; ``None``: a Winograd layer's own tile, else 4.
            points: interpolation points (``None``: a Winograd layer's own, else defaults).
            winograd_relu: Winograd-ReLU layer (``None``: the source's, else ``False``).
            clamp_rank: cap an int rank at ``min(K·C/groups, P)`` instead of refusing it.

        Returns:
            The layer; ``init_error`` holds the relative Frobenius error of the rank-R
            approximation (0 when the rank reaches the rank of the Winograd weight).

        Raises:
            TypeError: ``conv`` is not a convolution of this dimension.
            ValueError: stride, dilation or padding mode the Winograd layer cannot run, or a
                bad rank (:class:`RankError`).
        """
        vanilla = cls._vanilla
        source_is_winograd = isinstance(conv, vanilla)
        if not source_is_winograd and not isinstance(conv, vanilla._conv_type):
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.{vanilla._conv_type.__name__} "
                            f"or a {vanilla.__name__}, got {type(conv).__name__}")
        if source_is_winograd:
            tile = conv.tile if tile is None else tile
            points = conv.points if points is None else points
            winograd_relu = conv.winograd_relu if winograd_relu is None else winograd_relu
            weight = conv.weight.detach()
            stride, dilation, padding_mode = 1, 1, "zeros"
        else:
            weight = conv.weight.detach()
            stride, dilation, padding_mode = conv.stride, conv.dilation, conv.padding_mode
        tile = 4 if tile is None else tile
        kernel = conv.kernel_size
        groups = conv.groups
        if clamp_rank:
            tiles, _ = vanilla.resolve_tile(kernel, tile, points)
            rows = conv.out_channels * (conv.in_channels // groups)
            positions = math.prod(m + r - 1 for m, r in zip(tiles, kernel))
            rank = resolve_rank(rank, rows, positions, clamp=True, who=cls.__name__)
        layer = cls(conv.in_channels, conv.out_channels, kernel, stride=stride,
                    padding=conv.padding, dilation=dilation, groups=groups,
                    bias=conv.bias is not None, padding_mode=padding_mode,
                    device=weight.device, dtype=weight.dtype, rank=rank, tile=tile, points=points,
                    winograd_relu=bool(winograd_relu))
        if source_is_winograd and conv.domain == "winograd" and conv.algorithms == layer.algorithms:
            q = weight
        else:
            spatial = conv.spatial_weight().detach() if source_is_winograd else weight
            q = filter_transform(spatial, layer.algorithms)
        layer.init_error = layer.set_winograd_weight(q)
        with torch.no_grad():
            if conv.bias is not None:
                layer.bias.copy_(conv.bias.detach())
        layer.train(conv.training)
        return layer

    def extra_repr(self) -> str:
        counts = self.parameter_counts()
        return (super().extra_repr().replace(", domain='winograd'", "")
                + f", rank={self.rank} (weights {counts['low_rank']:,}; vanilla Winograd "
                f"{counts['winograd']:,}, spatial {counts['spatial']:,})")


class LowRankWinogradConv3d(_LowRankWinograd, WinogradConv3d):
    """3-D Winograd convolution F(m³, r³) whose Winograd weight is U·V (Qin, Lin & Lin 2023).

    A Winograd-domain :class:`~sparsewino.nn.WinogradConv3d` (stride 1, dilation 1) whose
    weight ``(K, C/groups, n, n, n)``, seen as ``(K·C/groups) x n³``, is the product of the
    trainable ``u`` ``(K·C/groups, R)`` and ``v`` ``(R, n³)``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype, tile, points, winograd_relu, error_budget: as
            :class:`~sparsewino.nn.WinogradConv3d`.
        rank: an int R in [1, min(K·C/groups, n³)] or a float in (0, 1], a fraction of the n³
            positions (default 0.25).

    Attributes:
        rank: the resolved integer rank.
        init_error: relative Frobenius error of the initial rank-R approximation.

    Examples:
        >>> layer = LowRankWinogradConv3d(4, 8, 3, rank=8, tile=2, padding=1)
        >>> tuple(layer.u.shape), tuple(layer.v.shape), tuple(layer.winograd_weight().shape)
        ((32, 8), (8, 64), (8, 4, 4, 4, 4))
        >>> layer(torch.randn(2, 4, 5, 6, 7)).shape
        torch.Size([2, 8, 5, 6, 7])
    """

    _vanilla = WinogradConv3d


class LowRankWinogradConv2d(_LowRankWinograd, WinogradConv2d):
    """2-D Winograd convolution F(m², r²) whose Winograd weight is U·V (the same maths in 2-D).

    Arguments as :class:`LowRankWinogradConv3d` with n² positions.

    Examples:
        >>> layer = LowRankWinogradConv2d(4, 8, 3, rank=0.5, tile=4, padding=1)
        >>> layer.rank, tuple(layer.v.shape)
        (18, (18, 36))
    """

    _vanilla = WinogradConv2d


def _to_full_spatial(layer: _LowRankWinograd) -> tuple[_WinogradConvNd, str]:
    """``convert(domain="spatial")``/``revert``'s first step: the least-squares spatial layer."""
    full = layer.to_spatial()
    return full, f"least-squares relative residual {layer.last_spatial_residual:.3g}"


def _product(layer: _LowRankWinograd) -> torch.Tensor:
    return layer.winograd_weight()


for _layer_type, _conv_type, _name in ((LowRankWinogradConv2d, nn.Conv2d, "lowrank2d"),
                                       (LowRankWinogradConv3d, nn.Conv3d, "lowrank3d")):
    register_layer_kind(LayerKind(
        _name, f"nn.{_conv_type.__name__} -> {_layer_type.__name__}: Winograd weight W = u·v "
        "(Qin et al.)", _conv_type, _layer_type,
        made_by="low_rank", domain="winograd", mask_name="v", low_rank=True, effective=_product,
        to_full=_to_full_spatial))
