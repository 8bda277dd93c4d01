"""WinogradAdderConv2d (Li et al., ICML 2021): Y = Aᵀ[-|U - V|^p]A per tile, U trained in the Winograd domain.

The Winograd algorithm F(m x m, 3 x 3) with the element-wise product replaced by the adder
operation: ``V = Bᵀ d B`` (input tile), ``U`` the layer's parameter (one n x n tile per
filter and input channel), ``M = -sum_c |U - V|^p`` over input channels, ``Y = Aᵀ M A``.
Because |.| is not distributive this is not the spatial adder layer: it is a layer of its
own, trained directly. ``transforms="balanced"`` uses the output transform whose row sums
are equal (:mod:`sparsewino.winograd.balanced`), ``"standard"`` the library's default
algorithm. ``p`` (in [1, 2]) is annealed from 2 to 1 during training by
:class:`sparsewino.train.L2ToL1Schedule` (l2-to-l1 training); inference uses p = 1.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..winograd.algorithm import PointLike, WinogradAlgorithm, algorithm
from ..winograd.balanced import balanced_algorithm
from ..winograd.operations import tile_transform_operations
from ..winograd.tiles import output_size
from ..winograd.transform import filter_transform
from .adder import (
    AdderConv2d,
    AdderProduct,
    _check_channels,
    _check_input,
    _check_rule,
    _pair,
    check_exponent,
    scale_gradient,
)
from .conv import WinogradConv2d
from .functional import positions_first, winograd_conv
from .kinds import LayerKind, is_adder_layer, register_layer_kind

__all__ = ["WinogradAdderConv2d", "TRANSFORMS", "SUPPORTED_TILES", "set_exponent"]

TRANSFORMS = ("balanced", "standard")
SUPPORTED_TILES = (2, 4)


def adder_algorithm(tile: int, transforms: str, points: Sequence[PointLike] | None = None
                    ) -> WinogradAlgorithm:
    """F(tile, 3) with ``"standard"`` or ``"balanced"`` transforms."""
    if transforms == "balanced":
        return balanced_algorithm(tile, 3, points)
    return algorithm(tile, 3, points)


class WinogradAdderConv2d(nn.Module):
    """Winograd adder layer F(m x m, 3 x 3), stride 1, parameter ``weight`` = U ``(K, C, n, n)``.

    Args:
        in_channels, out_channels: channels.
        kernel_size: must be 3; stride and dilation 1, groups 1 (others raise ``ValueError``).
        padding: int, pair, ``"same"`` or ``"valid"``.
        bias: add a bias (default off: a BatchNorm follows, as in AdderNet).
        tile: output tile m, 2 (F(2,3), n = 4) or 4 (F(4,3), n = 6).
        p: exponent in [1, 2].
        transforms: ``"balanced"`` (equal output-transform row sums) or ``"standard"``.
        points: interpolation points (``None``: the library default for F(m, 3)).
        grad, eta: AdderNet's training rules, as in :class:`~sparsewino.nn.AdderConv2d`
            (``grad="addernet"``: gradient ``V - U`` for U and HardTanh(U - V) for V).

    Examples:
        >>> layer = WinogradAdderConv2d(4, 8, 3, padding=1, tile=2)
        >>> layer(torch.randn(2, 4, 9, 9)).shape, tuple(layer.weight.shape)
        (torch.Size([2, 8, 9, 9]), (8, 4, 4, 4))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3,
                 stride: int | Sequence[int] = 1, padding: int | str | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = False, *,
                 tile: int = 2, p: float = 1.0, transforms: str = "balanced",
                 points: Sequence[PointLike] | None = None, grad: str = "addernet",
                 eta: float | None = 0.1, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        cls = type(self).__name__
        _check_channels(cls, in_channels, out_channels, dtype)
        if _pair(kernel_size, "kernel_size", cls) != (3, 3):
            raise ValueError(f"{cls} supports only 3x3 kernels (F(2,3), F(4,3)), got "
                             f"kernel_size={kernel_size!r}; use AdderConv2d for other kernels.")
        if _pair(stride, "stride", cls) != (1, 1):
            raise ValueError(f"{cls} supports only stride=1, got stride={stride!r}: Winograd "
                             "tiles assume unit stride. Use AdderConv2d for strided layers.")
        if _pair(dilation, "dilation", cls) != (1, 1):
            raise ValueError(f"{cls} supports only dilation=1, got dilation={dilation!r}")
        if groups != 1:
            raise ValueError(f"{cls} supports only groups=1, got groups={groups!r}")
        if isinstance(tile, bool) or tile not in SUPPORTED_TILES:
            raise ValueError(f"{cls}: tile must be one of {SUPPORTED_TILES} (F(2,3) or F(4,3)), "
                             f"got {tile!r}")
        if transforms not in TRANSFORMS:
            raise ValueError(f"{cls}: transforms must be one of {TRANSFORMS}, got {transforms!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: padding must be an int, a pair, 'same' or 'valid', got "
                                 f"{padding!r}")
            padding = 1 if padding == "same" else 0
        self.padding = _pair(padding, "padding", cls)
        if min(self.padding) < 0:
            raise ValueError(f"{cls}: padding must be >= 0, got {padding!r}")
        _check_rule(grad, eta, cls)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.tile = (3, 3), (1, 1), tile
        self.p = check_exponent(p, cls)
        self.transforms, self.grad, self.eta = transforms, grad, eta
        self.points = None if points is None else tuple(points)
        alg = self.algorithms[0]                      # builds and verifies the algorithm now
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, alg.n, alg.n,
                                               device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def algorithms(self) -> tuple[WinogradAlgorithm, WinogradAlgorithm]:
        """The algorithm F(m, 3) along each spatial dimension."""
        alg = adder_algorithm(self.tile, self.transforms, self.points)
        return (alg, alg)

    @property
    def _padding_pairs(self) -> tuple[tuple[int, int], ...]:
        return tuple((p, p) for p in self.padding)

    def reset_parameters(self) -> None:
        """U = G g Gᵀ of nn.Conv2d's initial spatial weights g."""
        spatial = torch.empty(self.out_channels, self.in_channels, 3, 3, dtype=self.weight.dtype,
                              device=self.weight.device)
        nn.init.kaiming_uniform_(spatial, a=math.sqrt(5))
        with torch.no_grad():
            self.weight.copy_(filter_transform(spatial, self.algorithms))
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_channels * 9)
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = isinstance(x, torch.Tensor) and x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        _check_input(self, x, output_size(x.shape[2:], self.kernel_size, self._padding_pairs)
                     if isinstance(x, torch.Tensor) and x.dim() == 4 else (1, 1))
        u = positions_first(scale_gradient(self.weight, self.eta))        # (P, K, C)

        def adder(v: torch.Tensor) -> torch.Tensor:                       # V (P, C, N·T)
            m = AdderProduct.apply(v.transpose(1, 2).contiguous(), u, self.p, self.grad)
            return m.transpose(1, 2)                                      # (P, K, N·T)

        y = winograd_conv(x, u, self.bias, self.algorithms, self._padding_pairs, product=adder)
        return y.squeeze(0) if unbatched else y

    @classmethod
    def from_conv(cls, conv: nn.Module, tile: int = 2, transforms: str = "balanced",
                  **options: Any) -> "WinogradAdderConv2d":
        """A Winograd adder layer initialised from ``conv``: ``U = G g Gᵀ`` of its spatial weights.

        ``conv`` is an ``nn.Conv2d``, :class:`~sparsewino.nn.AdderConv2d` or
        :class:`~sparsewino.nn.WinogradConv2d` (3x3, stride 1). The layer computes a different
        function (|.| is not distributive): train or fine-tune afterwards. ``options``: ``p``,
        ``grad``, ``eta``, ``points``.
        """
        if isinstance(conv, WinogradConv2d):
            spatial = conv.spatial_weight().detach()
        elif isinstance(conv, (nn.Conv2d, AdderConv2d)):
            spatial = conv.weight.detach()
        else:
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.Conv2d, AdderConv2d or "
                            f"WinogradConv2d, got {type(conv).__name__}")
        if isinstance(conv, AdderConv2d):
            options = {"p": conv.p, "grad": conv.grad, "eta": conv.eta, **options}
        if getattr(conv, "padding_mode", "zeros") != "zeros":
            raise ValueError(f"{cls.__name__}.from_conv: padding_mode {conv.padding_mode!r} is not "
                             "supported (zeros only)")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=getattr(conv, "dilation", 1),
                    groups=getattr(conv, "groups", 1), bias=conv.bias is not None, tile=tile,
                    transforms=transforms, device=spatial.device, dtype=spatial.dtype, **options)
        with torch.no_grad():
            layer.weight.copy_(filter_transform(spatial, layer.algorithms))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        layer.train(conv.training)
        return layer

    def operations(self, input_shape: Sequence[int]) -> dict[str, int]:
        """Operations of one forward pass on ``(N, C, H, W)``.

        Element-wise stage: per tile, output and input channel, n² terms |U - V| of one
        subtraction and one accumulation each (a zero weight, i.e. pruned, saves the
        subtraction); with p != 1 each term also costs one multiplication (the square for
        p = 2; a lower bound for other p). Transforms: the input transform once per tile and
        input channel, the output transform once per tile and output channel, counted from
        the exact matrices (:func:`~sparsewino.winograd.operations.tile_transform_operations`).
        """
        n, c, h, w = input_shape
        algs = self.algorithms
        out = output_size((h, w), self.kernel_size, self._padding_pairs)
        tiles = n * math.prod(math.ceil(o / self.tile) for o in out)
        weight = self.weight.detach()
        nonzero = int((weight != 0).sum())
        terms = weight.numel() * tiles
        in_adds, in_mults = tile_transform_operations(algs, "BT")
        out_adds, out_mults = tile_transform_operations(algs, "AT")
        adds = (weight.numel() + nonzero) * tiles + tiles * (c * in_adds + self.out_channels * out_adds)
        mults = (0 if self.p == 1.0 else terms) + tiles * (c * in_mults + self.out_channels * out_mults)
        return {"additions": adds, "multiplications": mults, "terms": terms, "tiles": tiles,
                "outputs": n * math.prod(out) * self.out_channels, "nonzero": nonzero}

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), "
                f"padding={self.padding}, tile={self.tile}, transforms={self.transforms!r}")
        if self.bias is not None:
            text += ", bias=True"
        return text + f", p={self.p:g}, grad={self.grad!r}, eta={self.eta}"


def set_exponent(model: nn.Module, p: float) -> nn.Module:
    """Set the exponent ``p`` of every adder layer of ``model`` (l2-to-l1 training); returns it.

    Examples:
        >>> net = set_exponent(nn.Sequential(WinogradAdderConv2d(2, 2, 3)), 1.5)
        >>> net[0].p
        1.5
    """
    value = check_exponent(p, "set_exponent")
    for module in model.modules():
        if is_adder_layer(module):
            module.p = value
    return model


register_layer_kind(LayerKind(
    "winograd_adder2d", "WinogradAdderConv2d (Li et al.): -|U - V|^p per tile, U trained in the "
    "Winograd domain", nn.Conv2d, WinogradAdderConv2d,
    made_by=None, domain="winograd", adder=True))
