"""WinogradConv1d / 2d / 3d: drop-in convolutions (any kernel size and stride) computed with Winograd.

``domain="spatial"``: the parameter is the ordinary spatial ``weight`` (``state_dict``
compatible with ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d``); the forward pass runs Winograd.
``domain="winograd"``: the parameter ``weight`` is the Winograd-domain weight
Q = G g Gᵀ of shape ``(K, C/groups, n_1, ..., n_d)``, trained directly.

Strides above 1 and kernels larger than 3 taps are decomposed (DWM, Huang et al. 2020;
:mod:`sparsewino.winograd.decompose`) into S stride-1 pieces of at most 3 taps that run as one
Winograd convolution of the stacked sub-images; the Winograd-domain weight then holds one Q per
piece, ``(K, C/groups, S, n_1, ..., n_d)``. Pieces of at most 3 taps keep the accuracy close to
direct convolution's (DWM's point: a 5x5 kernel by F(2,3) pieces has 1.6x the float32 error of
direct convolution, plain F(2,5) 5.8x). ``decompose="auto"`` (the default) and ``"dwm"`` both
take such pieces (``"auto"`` prefers a tile within the accurate budget, ``"dwm"`` the fewest
multiplications within the limit); plain F(m, k) for k > 3 (``decompose="none"``) or larger
pieces (``decompose=4``) only when asked for.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Sequence, Union

import torch
from torch import nn

from ..winograd.algorithm import PointLike, WinogradAlgorithm, algorithm, conv_multiplications
from ..winograd.decompose import Decomposition
from ..winograd.decompose import decompose as build_decomposition
from ..winograd.error import (
    DECOMPOSE_MODES,
    ERROR_LIMIT,
    MAX_INPUT_TILE,
    WinogradAccuracyWarning,
    algorithm_error,
    choose_decomposition,
)
from ..winograd.tiles import output_size
from .functional import positions_first, winograd_conv, winograd_weight, winograd_weight_from_spatial
from .kinds import LayerKind, register_layer_kind
from .masks import exact_spatial_weight

__all__ = ["WinogradConv1d", "WinogradConv2d", "WinogradConv3d", "DOMAINS", "DECOMPOSE_MODES"]

DOMAINS = ("spatial", "winograd")
_SUPPORTED_DTYPES = (torch.float32, torch.float64)
TileArg = Union[int, str, Sequence[int]]
PaddingArg = Union[int, str, Sequence[int]]
DecomposeArg = Union[str, int, Sequence[int]]


def _ntuple(value: Any, dims: int, name: str, cls: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * dims
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{cls}: {name} must be an int or a tuple of {dims} ints, got {value!r}") from None
    if len(items) != dims or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{cls}: {name} must be an int or a tuple of {dims} ints, got {value!r}")
    return items


def _crop(y: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``y`` cut to ``size`` in its trailing dimensions (a contiguous copy only when cut)."""
    if tuple(y.shape[-len(size):]) == tuple(size):
        return y
    return y[(Ellipsis, *(slice(0, s) for s in size))].contiguous()


class _WinogradConvNd(nn.Module):
    _dims: int = 0
    _conv_type: type[nn.Module] = nn.Module

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: PaddingArg = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, tile: TileArg = 4,
                 domain: str = "spatial",
                 points: Iterable[PointLike] | Sequence[Iterable[PointLike] | None] | None = None,
                 winograd_relu: bool = False, error_budget: float | None = None,
                 decompose: DecomposeArg = "auto") -> None:
        super().__init__()
        cls, dims = type(self).__name__, self._dims
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{cls}: {name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{cls}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        kernel = _ntuple(kernel_size, dims, "kernel_size", cls)
        if min(kernel) < 1:
            raise ValueError(f"{cls}: kernel_size must be >= 1, got {kernel_size!r}")
        strides = _ntuple(stride, dims, "stride", cls)
        if min(strides) < 1:
            raise ValueError(f"{cls}: stride must be >= 1, got {stride!r}")
        if any(s > k for s, k in zip(strides, kernel)):
            raise ValueError(f"{cls}: stride {strides} is larger than the kernel {kernel}: some "
                             "inputs would meet no tap. Subsample the input first (x[..., ::s]) "
                             f"and use a stride-1 layer, or keep nn.{self._conv_type.__name__}.")
        if padding == "same" and strides != (1,) * dims:
            raise ValueError(f"{cls}: padding='same' is not supported for strided convolutions "
                             "(as in PyTorch); give the padding as ints")
        if _ntuple(dilation, dims, "dilation", cls) != (1,) * dims:
            raise ValueError(f"{cls} supports only dilation=1, got dilation={dilation!r}. Keep "
                             f"nn.{self._conv_type.__name__} for dilated convolutions.")
        if padding_mode != "zeros":
            raise ValueError(f"{cls} supports only padding_mode='zeros', got {padding_mode!r}. "
                             "Pad the input yourself (torch.nn.functional.pad) and use padding=0.")
        if domain not in DOMAINS:
            raise ValueError(f"{cls}: domain must be one of {DOMAINS}, got {domain!r}")
        if dtype is not None and dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{cls} supports float32 and float64 parameters, got {dtype}. "
                            "Half precision loses too much accuracy in Winograd transforms.")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = kernel
        self.stride, self.dilation = strides, (1,) * dims
        self.padding_mode = "zeros"
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, dims, "padding", cls)
        self._padding_pairs = self._resolve_padding(self.padding)
        self.points = self._points_per_dim(points)
        self.decompose = self._decompose_arg(decompose)
        (self.tile, self.piece_size), note = self.resolve_algorithms(
            self.kernel_size, tile, self.points, error_budget, stride=strides,
            decompose=self.decompose)
        if note:
            warnings.warn(f"{cls}: {note}. Ask for a smaller tile or tile='auto'.",
                          WinogradAccuracyWarning, stacklevel=2)
        plain = strides == (1,) * dims and self.piece_size == kernel
        self.decomposition: Decomposition | None = None if plain else build_decomposition(
            kernel, strides, self.piece_size, self._padding_pairs)
        self.domain = domain
        self.winograd_relu = bool(winograd_relu)
        _ = self.algorithms  # build (and verify) the algorithms now, so bad points fail here
        shape = (out_channels, in_channels // groups,
                 *(self.kernel_size if domain == "spatial" else self.winograd_shape))
        self.weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # ------------------------------------------------------------------ configuration
    def _resolve_padding(self, padding: PaddingArg) -> tuple[tuple[int, int], ...]:
        cls = type(self).__name__
        if isinstance(padding, str):
            if padding == "valid":
                return ((0, 0),) * self._dims
            if padding == "same":
                return tuple(((k - 1) // 2, (k - 1) - (k - 1) // 2) for k in self.kernel_size)
            raise ValueError(f"{cls}: padding must be an int, a tuple, 'same' or 'valid', "
                             f"got {padding!r}")
        if min(padding) < 0:
            raise ValueError(f"{cls}: padding must be >= 0, got {padding!r}")
        return tuple((p, p) for p in padding)

    @classmethod
    def _decompose_arg(cls, value: DecomposeArg) -> str | tuple[int, ...]:
        if isinstance(value, str):
            if value not in DECOMPOSE_MODES:
                raise ValueError(f"{cls.__name__}: decompose must be one of {DECOMPOSE_MODES} or "
                                 f"the piece size per dimension, got {value!r}")
            return value
        pieces = _ntuple(value, cls._dims, "decompose (piece size)", cls.__name__)
        if min(pieces) < 1:
            raise ValueError(f"{cls.__name__}: piece sizes must be >= 1, got {value!r}")
        return pieces

    @classmethod
    def resolve_algorithms(cls, kernel_size: Sequence[int], tile: TileArg, points: Any = None,
                           error_budget: float | None = None, *, stride: Sequence[int] | int = 1,
                           decompose: DecomposeArg = "auto"
                           ) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], str | None]:
        """Per-dimension tiles m and piece sizes r for ``kernel_size``, ``stride`` and ``tile``.

        Every dimension is decided by :func:`sparsewino.winograd.choose_decomposition` (which
        is :func:`~sparsewino.winograd.choose_tile` for stride-1 kernels of up to 3 taps and
        for ``decompose="none"``): ``"auto"`` takes the cheapest accurate tile within
        ``error_budget`` (default 1e-6); a requested tile whose float32 error exceeds
        ``error_budget`` (default :data:`~sparsewino.winograd.ERROR_LIMIT`) is replaced by the
        largest smaller one within it. A piece size equal to the kernel with stride 1 means no
        decomposition.

        Returns:
            ``((tiles, piece_sizes), note)``: ``note`` says which requested tiles were replaced
            and why (``None`` when none was); the constructor warns with it
            (:class:`~sparsewino.winograd.WinogradAccuracyWarning`).
        """
        name, dims = cls.__name__, cls._dims
        kernel = tuple(kernel_size)
        strides = _ntuple(stride, dims, "stride", name)
        points = cls._points_per_dim(points)
        mode = cls._decompose_arg(decompose)
        modes = [mode] * dims if isinstance(mode, str) else list(mode)
        if tile == "auto":
            chosen = [cls._choose(k, s, d, error_budget, None, p) for k, s, d, p in
                      zip(kernel, strides, modes, points)]
            return (tuple(c[0] for c in chosen), tuple(c[1] for c in chosen)), None
        if isinstance(tile, str):
            raise ValueError(f"{name}: tile must be an int, a tuple of ints or 'auto', got {tile!r}")
        if isinstance(tile, int) and not isinstance(tile, bool):
            # A dimension with kernel size 1 uses the trivial algorithm; tile 1 keeps the
            # Winograd-domain weights free of repeated positions.
            tiles = tuple(1 if k == 1 else tile for k in kernel)
        else:
            tiles = _ntuple(tile, dims, "tile", name)
        if min(tiles) < 1:
            raise ValueError(f"{name}: tile (output tile size m) must be >= 1, got {tile!r}")
        plain = [s == 1 and (k <= 3 or d == "none" or d == k) for k, s, d in zip(kernel, strides, modes)]
        if any(p and m + k - 1 > MAX_INPUT_TILE for p, m, k in zip(plain, tiles, kernel)):
            raise ValueError(f"{name}: tile {tiles} with kernel {kernel} gives input "
                             f"tiles over {MAX_INPUT_TILE} points; fp32 error would be enormous. Use a "
                             "smaller tile, tile='auto' or decompose='auto'.")
        chosen = [(m, k) if k == 1 else cls._choose(k, s, d, error_budget, m, p)
                  for m, k, s, d, p in zip(tiles, kernel, strides, modes, points)]
        result = (tuple(c[0] for c in chosen), tuple(c[1] for c in chosen))
        replaced = [(m, c, k, s, r) for m, (c, r), k, s in zip(tiles, chosen, kernel, strides) if m != c]
        if not replaced:
            return result, None
        budget = ERROR_LIMIT if error_budget is None else error_budget
        parts = []
        for m, c, k, s, r in dict.fromkeys(replaced):
            what = f"F({m},{k})" if s == 1 and r == k else f"DWM pieces of kernel {k}, stride {s}"
            parts.append(f"{what} float32 error {algorithm_error(k, s, m, r, dims):.2g} per output > "
                         f"budget {budget:g}; " + ("no tile fits (direct computation)" if c == 1 else
                                                   f"F({c},{r}) error {algorithm_error(k, s, c, r, dims):.2g}"))
        return result, f"tile {tiles} -> {result[0]} for kernel {kernel}: " + "; ".join(parts)

    @classmethod
    def _choose(cls, kernel: int, stride: int, mode: str | int, budget: float | None,
                requested: int | None, points: Any) -> tuple[int, int]:
        """(m, r) of one dimension; an int ``mode`` pins the piece size."""
        if isinstance(mode, str):
            return choose_decomposition(kernel, stride, budget, dims=cls._dims,
                                        requested=requested, decompose=mode, points=points)
        largest = -(-kernel // stride)
        if mode > largest:
            raise ValueError(f"{cls.__name__}: piece size {mode} is larger than the largest "
                             f"phase ({largest} taps) of kernel {kernel} with stride {stride}")
        if stride == 1 and mode == kernel:
            return choose_decomposition(kernel, 1, budget, dims=cls._dims, requested=requested,
                                        decompose="none", points=points)
        return choose_decomposition(kernel, stride, budget, dims=cls._dims, requested=requested,
                                    decompose=mode, points=points)

    @classmethod
    def resolve_tile(cls, kernel_size: Sequence[int], tile: TileArg, points: Any = None,
                     error_budget: float | None = None) -> tuple[tuple[int, ...], str | None]:
        """The per-dimension tiles of a stride-1 layer (:meth:`resolve_algorithms` without
        the piece sizes; kept for callers that only need the tiles)."""
        (tiles, _), note = cls.resolve_algorithms(kernel_size, tile, points, error_budget)
        return tiles, note

    @classmethod
    def _points_per_dim(cls, points: Any) -> tuple[tuple[PointLike, ...] | None, ...]:
        if points is None:
            return (None,) * cls._dims
        items = list(points)
        per_dim = len(items) == cls._dims and all(
            p is None or (not isinstance(p, (str, bytes)) and isinstance(p, Iterable)) for p in items)
        if per_dim:
            return tuple(None if p is None else tuple(p) for p in items)
        return (tuple(items),) * cls._dims

    @property
    def algorithms(self) -> tuple[WinogradAlgorithm, ...]:
        """One WinogradAlgorithm F(m_i, r_i) per spatial dimension (r_i: the piece size)."""
        return tuple(algorithm(m, r, p) for m, r, p in zip(self.tile, self.piece_size, self.points))

    @property
    def winograd_size(self) -> tuple[int, ...]:
        """Input tile size n_i = m_i + r_i - 1 per spatial dimension."""
        return tuple(m + r - 1 for m, r in zip(self.tile, self.piece_size))

    @property
    def pieces(self) -> int:
        """Number of DWM pieces S (1 without decomposition)."""
        return 1 if self.decomposition is None else self.decomposition.pieces

    @property
    def winograd_shape(self) -> tuple[int, ...]:
        """Shape of one kernel's Winograd-domain weights: ``n`` or, decomposed, ``(S, *n)``."""
        n = self.winograd_size
        return n if self.decomposition is None else (self.decomposition.pieces, *n)

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Output spatial size for an input spatial size (entries <= 0: input too small)."""
        if self.decomposition is not None:
            return self.decomposition.output_size(input_size)
        return output_size(input_size, self.kernel_size, self._padding_pairs)

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation of the spatial weights (transformed in the Winograd domain)."""
        spatial = torch.empty(self.out_channels, self.in_channels // self.groups,
                              *self.kernel_size, dtype=self.weight.dtype, device=self.weight.device)
        nn.init.kaiming_uniform_(spatial, a=math.sqrt(5))
        with torch.no_grad():
            if self.domain == "spatial":
                self.weight.copy_(spatial)
            else:
                self.weight.copy_(self._transform(spatial))
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    # ------------------------------------------------------------------ weights in both domains
    def _transform(self, spatial: torch.Tensor) -> torch.Tensor:
        """Q of spatial weights: G g Gᵀ, per piece when decomposed."""
        return winograd_weight(spatial, self.algorithms, self.decomposition)

    def winograd_weight(self) -> torch.Tensor:
        """Winograd-domain weights Q = G g Gᵀ, shape ``(K, C/groups, *n)``, or one Q per DWM
        piece, ``(K, C/groups, S, *n)`` (differentiable)."""
        if self.domain == "winograd":
            return self.weight
        return self._transform(self.weight)

    def spatial_weight(self) -> torch.Tensor:
        """Spatial weights ``(K, C/groups, *r)``.

        For a Winograd-domain layer this is the least-squares solution of (G ⊗ G) g = vec(Q),
        exact when Q is in the range of G ⊗ G (a warning says so when it is not), with taps that
        are zero up to rounding set exactly to zero where that still reproduces Q
        (:func:`~sparsewino.nn.masks.exact_spatial_weight`).
        """
        if self.domain == "spatial":
            return self.weight
        q = self.weight.detach()
        g, worst = exact_spatial_weight(q, self.algorithms, self.decomposition)
        if worst > 1e-5:
            warnings.warn(
                f"{type(self).__name__}.to_spatial(): the Winograd-domain weights are not in the "
                f"range of G⊗G (worst relative residual {worst:.3g}); returning the "
                "least-squares spatial weights, whose outputs differ from this layer's.",
                stacklevel=3)
        return g.to(q.dtype)

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        cls, dims = type(self).__name__, self._dims
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{cls} expects a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{cls} supports float32 and float64 input, got {x.dtype}. Cast "
                            "with x.float(); half/bfloat16 Winograd loses too much accuracy.")
        if x.dim() != dims + 2:
            raise ValueError(f"{cls} expects a {dims + 2}-D input (N, C, {', '.join('DHW'[3 - dims:])}) "
                             f"or {dims + 1}-D without batch, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{cls} expects {self.in_channels} input channels, got input of "
                             f"shape {tuple(x.shape)} (channels are dimension 1)")
        weight = self.weight
        if x.dtype != weight.dtype:
            raise TypeError(f"{cls}: input dtype {x.dtype} does not match weight dtype "
                            f"{weight.dtype}; cast the input or the layer (layer.to({x.dtype})).")
        if x.device != weight.device:
            raise ValueError(f"{cls}: input is on {x.device} but weights are on {weight.device}")
        out = self.output_size(x.shape[2:])
        if min(out) < 1:
            raise ValueError(f"{cls}: input spatial size {tuple(x.shape[2:])} is too small for "
                             f"kernel {self.kernel_size} with padding {self._padding_pairs}: the "
                             "kernel is larger than the padded input")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = isinstance(x, torch.Tensor) and x.dim() == self._dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        self._check_input(x)
        algorithms = self.algorithms
        split = self.decomposition
        if split is None:
            if self.domain == "spatial":
                weight = winograd_weight_from_spatial(self.weight, algorithms)
            else:
                weight = positions_first(self.weight)
            y = winograd_conv(x, weight, self.bias, algorithms, self._padding_pairs,
                              self.groups, self.winograd_relu)
            return y.squeeze(0) if unbatched else y
        # DWM: one stride-1 convolution of the stacked sub-images, pieces as channels (c, p).
        k, cg = self.weight.shape[:2]
        if self.domain == "spatial":
            pieces = split.split(self.weight)                         # (K, C/g, S, *r)
            weight = winograd_weight_from_spatial(pieces.reshape(k, cg * split.pieces,
                                                                 *split.piece_size), algorithms)
        else:
            weight = positions_first(self.weight.reshape(k, cg * split.pieces,
                                                         *self.winograd_size))
        y = winograd_conv(split.stack(x, self.tile), weight, self.bias, algorithms,
                          ((0, 0),) * self._dims, self.groups, self.winograd_relu)
        y = _crop(y, split.output_size(x.shape[2:]))                  # whole tiles -> outputs
        return y.squeeze(0) if unbatched else y

    # ------------------------------------------------------------------ conversions
    def _config(self, **changes: Any) -> dict[str, Any]:
        config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                      kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                      groups=self.groups, bias=self.bias is not None, tile=self.tile,
                      domain=self.domain, points=self.points, winograd_relu=self.winograd_relu,
                      decompose=self.piece_size, device=self.weight.device,
                      dtype=self.weight.dtype)
        config.update(changes)
        return config

    def _copy_with(self, weight: torch.Tensor, **changes: Any) -> "_WinogradConvNd":
        layer = type(self)(**self._config(**changes))
        with torch.no_grad():
            layer.weight.copy_(weight)
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        layer.train(self.training)
        return layer

    def to_winograd(self) -> "_WinogradConvNd":
        """A new layer with ``domain="winograd"`` computing the same function (same tile and
        pieces)."""
        with torch.no_grad():
            return self._copy_with(self.winograd_weight().detach(), domain="winograd")

    def to_spatial(self) -> "_WinogradConvNd":
        """A new layer with ``domain="spatial"`` (least squares if Q is not in range of G⊗G)."""
        with torch.no_grad():
            return self._copy_with(self.spatial_weight().detach(), domain="spatial")

    def to_conv(self) -> nn.Module:
        """The equivalent ``nn.Conv1d``/``2d``/``3d`` (least squares for Winograd-domain weights)."""
        conv = self._conv_type(self.in_channels, self.out_channels, self.kernel_size,
                               stride=self.stride, padding=self.padding, groups=self.groups,
                               bias=self.bias is not None, device=self.weight.device,
                               dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.spatial_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        conv.train(self.training)
        return conv

    @classmethod
    def from_conv(cls, conv: nn.Module, tile: TileArg = 4, domain: str = "spatial",
                  points: Any = None, winograd_relu: bool = False,
                  decompose: DecomposeArg = "auto") -> "_WinogradConvNd":
        """Build the Winograd layer equivalent to ``conv`` (weights and bias copied exactly).

        Any kernel size and stride: kernels above 3 taps and strides above 1 are decomposed
        as ``decompose`` says (see the class).

        Raises:
            TypeError: ``conv`` is not an ``nn.Conv2d`` (``nn.Conv1d``/``nn.Conv3d`` for the
                other layers).
            ValueError: dilation, padding mode or a stride the Winograd layer cannot run.
        """
        if not isinstance(conv, cls._conv_type):
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.{cls._conv_type.__name__}, "
                            f"got {type(conv).__name__}")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype, tile=tile,
                    domain="spatial", points=points, winograd_relu=winograd_relu,
                    decompose=decompose)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        layer.train(conv.training)
        return layer.to_winograd() if domain == "winograd" else layer

    # ------------------------------------------------------------------ reporting
    def multiplications(self, input_shape: Sequence[int]) -> dict[str, int]:
        """Multiplications of one forward pass on ``input_shape`` ``(N, C, *S)``.

        ``direct``: K·C/g·prod(k)·prod(O)·N; ``winograd``: element-wise stage only,
        K·C/g·S·P·tiles·N (S DWM pieces; transforms excluded, as in the papers).
        """
        return conv_multiplications(self.algorithms, self.in_channels, self.out_channels,
                                    self.groups, input_shape, self._padding_pairs,
                                    decomposition=self.decomposition)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1,) * self._dims:
            text += f", stride={self.stride}"
        text += f", padding={self.padding!r}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        text += f", tile={self.tile}, domain={self.domain!r}"
        if self.decomposition is not None:
            text += f", decomposed=({self.decomposition.describe()})"
        if self.winograd_relu:
            text += ", winograd_relu=True"
        return text


class WinogradConv2d(_WinogradConvNd):
    """Drop-in ``nn.Conv2d`` (any kernel size and stride, dilation 1) computed with Winograd.

    Stride-1 kernels of up to 3 taps run F(m x m, r x r). Larger kernels and strides above 1
    are decomposed (DWM): S pieces of at most 3 taps per dimension, each a stride-1 Winograd
    convolution of a polyphase / shifted sub-image, summed (``decompose``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv2d``; dilation must be 1, stride at most the
            kernel size, padding_mode ``"zeros"``, dtype float32 or float64.
        tile: output tile size m (int, per-dimension tuple, or ``"auto"``: the largest tile
            whose measured fp32 error fits ``error_budget``). Dimensions with kernel size 1
            use the trivial algorithm. A requested tile whose fp32 error exceeds the budget
            (e.g. ``tile=4`` for 9x9 kernels, ``tile=10`` for 3x3) is replaced by the largest
            smaller one that fits, with a :class:`~sparsewino.winograd.WinogradAccuracyWarning`
            (see :meth:`resolve_tile`).
        domain: ``"spatial"`` (parameter = spatial weight) or ``"winograd"`` (parameter = Q).
        points: interpolation points (one list for every dimension or one per dimension);
            ``None`` takes the curated accurate defaults. Points whose algorithm exceeds the
            budget raise ``ValueError``.
        winograd_relu: apply ReLU after the input transform (Liu et al.'s Winograd-ReLU).
        error_budget: the fp32 error budget of :func:`~sparsewino.winograd.choose_tile`
            (default: 1e-6 for ``"auto"``, :data:`~sparsewino.winograd.ERROR_LIMIT` = 1e-3
            for a requested tile).
        decompose: ``"auto"`` (default) or ``"dwm"``: DWM pieces of at most 3 taps for kernels
            above 3 taps and strides above 1 (:func:`~sparsewino.winograd.choose_decomposition`;
            ``"auto"`` prefers an accurate tile, ``"dwm"`` the fewest multiplications),
            ``"none"`` (plain F(m, r); stride 1 only), or the piece size per dimension (the
            way to ask for larger pieces). Decomposed Winograd-domain weights have shape
            ``(K, C/groups, S, n, n)``: one Q per piece.

    Examples:
        >>> layer = WinogradConv2d(16, 32, 3, padding=1, tile=4)
        >>> layer(torch.randn(2, 16, 10, 10)).shape
        torch.Size([2, 32, 10, 10])
        >>> stem = WinogradConv2d(3, 8, 7, stride=2, padding=3, tile=4)
        >>> stem(torch.randn(1, 3, 32, 32)).shape, stem.decomposition.describe()
        (torch.Size([1, 8, 16, 16]), 'stride 2x2: 9 pieces 3x3')
    """

    _dims = 2
    _conv_type = nn.Conv2d


class WinogradConv3d(_WinogradConvNd):
    """Drop-in ``nn.Conv3d`` (any kernel size and stride, dilation 1) computed with Winograd F(m³, r³).

    Arguments as :class:`WinogradConv2d`; Winograd-domain weights have shape
    ``(K, C/groups, n_d, n_h, n_w)`` (``(K, C/groups, S, n_d, n_h, n_w)`` when decomposed).
    """

    _dims = 3
    _conv_type = nn.Conv3d


class WinogradConv1d(_WinogradConvNd):
    """Drop-in ``nn.Conv1d`` (any kernel size and stride, dilation 1) computed with Winograd F(m, r).

    Arguments as :class:`WinogradConv2d`; input ``(N, C, L)`` or ``(C, L)``; Winograd-domain
    weights have shape ``(K, C/groups, n)`` (``(K, C/groups, S, n)`` when decomposed).

    Examples:
        >>> layer = WinogradConv1d(4, 6, 5, stride=2, padding=2, tile=4)
        >>> layer(torch.randn(2, 4, 17)).shape
        torch.Size([2, 6, 9])
    """

    _dims = 1
    _conv_type = nn.Conv1d


register_layer_kind(LayerKind("conv1d", "nn.Conv1d -> WinogradConv1d, F(m, r) per tile",
                              nn.Conv1d, WinogradConv1d))
register_layer_kind(LayerKind("conv2d", "nn.Conv2d -> WinogradConv2d, F(m x m, r x r) per tile",
                              nn.Conv2d, WinogradConv2d))
register_layer_kind(LayerKind("conv3d", "nn.Conv3d -> WinogradConv3d, F(m x m x m, r x r x r) per tile",
                              nn.Conv3d, WinogradConv3d))
